// Python class _core.LanguageModel: the low-level LM handle (weights plus
// one decoding session) and _core.Sampler. Long calls release the GIL; a
// per-object mutex keeps concurrent Python threads from sharing a session.
#include <mutex>

#include "bindings/common.h"
#include "core/errors.h"
#include "core/sampling.h"
#include "sessions/lm_session.h"

namespace mimo::bindings {
namespace {

class PyLanguageModel {
public:
    PyLanguageModel(const std::string & path, const std::string & device, int n_threads, int64_t n_ctx,
                    const std::string & kv_type, bool repack_weights) {
        const ggml_type kv = parse_kv_type(kv_type);
        py::gil_scoped_release nogil;
        auto backend = std::make_shared<Backend>(device, n_threads, repack_weights);
        weights_ = std::make_shared<LmWeights>(path, backend);
        const int64_t ctx = n_ctx > 0 ? n_ctx : weights_->model().hparams().n_ctx_train;
        session_ = std::make_unique<LmSession>(weights_, ctx, kv);
        kv_type_ = kv_type;
    }

    LmSession & session() {
        if (!session_) fail(ErrorKind::InvalidArgument, "this LanguageModel is closed");
        return *session_;
    }
    const Qwen2HParams & hp() { return session().weights().model().hparams(); }

    py::object eval(py::object tokens, py::object embeddings, int64_t n_out, bool return_hidden) {
        if (tokens.is_none() == embeddings.is_none()) {
            fail(ErrorKind::InvalidArgument, "pass exactly one of tokens= (token ids) or embeddings= (n, n_embd floats)");
        }
        const int64_t n_embd = hp().n_embd, n_vocab = hp().n_vocab;
        std::vector<int32_t> ids;
        std::vector<float> emb;
        int64_t n = 0;
        if (!tokens.is_none()) {
            ids = token_ids(tokens);
            n = int64_t(ids.size());
        } else {
            auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(embeddings);
            if (!a || a.ndim() != 2 || a.shape(1) != n_embd) {
                fail(ErrorKind::InvalidArgument,
                     strfmt("embeddings must be a 2-D float array of shape (n, %lld)", (long long) n_embd));
            }
            n = a.shape(0);
            emb.assign(a.data(), a.data() + n * n_embd);
        }
        if (n_out < 0) n_out = n;  // -1: every position
        LmOutput out;
        {
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(mutex_);
            out = session().eval(ids.empty() ? nullptr : ids.data(), emb.empty() ? nullptr : emb.data(), n, n_out,
                                 return_hidden);
        }
        py::array_t<float> logits({out.n_out, n_vocab});
        std::memcpy(logits.mutable_data(), out.logits.data(), out.logits.size() * sizeof(float));
        if (!return_hidden) return logits;
        py::array_t<float> hidden({out.n_out, n_embd});
        std::memcpy(hidden.mutable_data(), out.hidden.data(), out.hidden.size() * sizeof(float));
        return py::make_tuple(logits, hidden);
    }

    py::array_t<float> embed(py::handle tokens) {
        const std::vector<int32_t> ids = token_ids(tokens);
        const int64_t n = int64_t(ids.size()), n_embd = hp().n_embd;
        std::vector<float> rows;
        {
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(mutex_);
            rows = session().embed(ids.data(), n);
        }
        py::array_t<float> out({n, n_embd});
        std::memcpy(out.mutable_data(), rows.data(), rows.size() * sizeof(float));
        return out;
    }

    // Feeds prompt ids, then samples up to max_new_tokens, stopping after a
    // stop id (which is included). The whole loop runs without the GIL.
    std::vector<int32_t> generate(std::vector<int32_t> prompt, int64_t max_new_tokens, const SamplerParams & sp,
                                  const std::vector<int32_t> & stop, const std::vector<int32_t> & banned) {
        if (prompt.empty()) fail(ErrorKind::InvalidArgument, "generate needs at least one prompt token");
        if (max_new_tokens < 0) fail(ErrorKind::InvalidArgument, "max_new_tokens must be >= 0");
        Sampler sampler(sp);
        std::vector<int32_t> out;
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(mutex_);
        LmSession & s = session();
        const int64_t n_vocab = s.weights().model().hparams().n_vocab;
        LmOutput o = s.eval(prompt.data(), nullptr, int64_t(prompt.size()), 1, false);
        for (int64_t t = 0; t < max_new_tokens; ++t) {
            const int32_t id = sampler.sample(o.logits.data(), n_vocab, banned);
            out.push_back(id);
            if (std::find(stop.begin(), stop.end(), id) != stop.end() || t + 1 == max_new_tokens) break;
            o = s.eval(&id, nullptr, 1, 1, false);
        }
        return out;
    }

    void close() {
        std::lock_guard<std::mutex> lock(mutex_);
        session_.reset();
        weights_.reset();
    }

    std::string kv_type_;

private:
    std::shared_ptr<LmWeights> weights_;
    std::unique_ptr<LmSession> session_;
    std::mutex mutex_;
};

}  // namespace

void bind_language_model(py::module_ & m) {
    py::class_<SamplerParams>(m, "SamplerParams")
        .def(py::init([](float temperature, int top_k, float top_p, uint64_t seed) {
                 SamplerParams p{temperature, top_k, top_p, seed};
                 Sampler check(p);  // validates
                 return p;
             }),
             py::arg("temperature") = 0.0f, py::arg("top_k") = 0, py::arg("top_p") = 1.0f, py::arg("seed") = 0)
        .def_readonly("temperature", &SamplerParams::temperature)
        .def_readonly("top_k", &SamplerParams::top_k)
        .def_readonly("top_p", &SamplerParams::top_p)
        .def_readonly("seed", &SamplerParams::seed);

    py::class_<Sampler>(m, "Sampler")
        .def(py::init<const SamplerParams &>(), py::arg("params"))
        .def("sample",
             [](Sampler & s, py::array_t<float, py::array::c_style | py::array::forcecast> logits,
                std::vector<int32_t> banned) {
                 if (logits.ndim() != 1) fail(ErrorKind::InvalidArgument, "logits must be a 1-D float array");
                 return s.sample(logits.data(), logits.shape(0), banned);
             },
             py::arg("logits"), py::arg("banned") = std::vector<int32_t>{});

    py::class_<PyLanguageModel>(m, "LanguageModel")
        .def(py::init<const std::string &, const std::string &, int, int64_t, const std::string &, bool>(),
             py::arg("path"), py::arg("device") = "auto", py::arg("n_threads") = 0, py::arg("n_ctx") = 4096,
             py::arg("kv_type") = "f16", py::arg("repack_weights") = true)
        .def("eval", &PyLanguageModel::eval, py::arg("tokens") = py::none(), py::arg("embeddings") = py::none(),
             py::arg("n_out") = 1, py::arg("return_hidden") = false)
        .def("embed", &PyLanguageModel::embed, py::arg("tokens"))
        .def("generate", &PyLanguageModel::generate, py::arg("prompt"), py::arg("max_new_tokens"),
             py::arg("sampler") = SamplerParams{}, py::arg("stop") = std::vector<int32_t>{},
             py::arg("banned") = std::vector<int32_t>{})
        .def("reset", [](PyLanguageModel & self) { self.session().reset(); })
        .def("truncate", [](PyLanguageModel & self, int64_t n) { self.session().truncate(n); }, py::arg("n"))
        .def("close", &PyLanguageModel::close)
        .def_property_readonly("n_past", [](PyLanguageModel & self) { return self.session().n_past(); })
        .def_property_readonly("n_ctx", [](PyLanguageModel & self) { return self.session().n_ctx(); })
        .def_property_readonly("n_vocab", [](PyLanguageModel & self) { return self.hp().n_vocab; })
        .def_property_readonly("n_embd", [](PyLanguageModel & self) { return self.hp().n_embd; })
        .def_property_readonly("n_layer", [](PyLanguageModel & self) { return self.hp().n_layer; })
        .def_property_readonly("kv_type", [](PyLanguageModel & self) { return self.kv_type_; })
        .def_property_readonly("device",
                               [](PyLanguageModel & self) { return self.session().weights().backend()->device_name(); })
        .def_property_readonly("n_threads",
                               [](PyLanguageModel & self) { return self.session().weights().backend()->n_threads(); })
        .def_property_readonly("weights_bytes", [](PyLanguageModel & self) { return self.session().weights().bytes(); })
        .def_property_readonly("kv_bytes", [](PyLanguageModel & self) { return self.session().kv().bytes(); })
        .def_property_readonly("fused_qkv", [](PyLanguageModel & self) {
            std::vector<bool> f;
            const auto & model = self.session().weights().model();
            for (int i = 0; i < model.hparams().n_layer; ++i) f.push_back(model.fused_qkv(i));
            return f;
        });
}

}  // namespace mimo::bindings
