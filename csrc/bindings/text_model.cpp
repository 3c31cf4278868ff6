// Python class _core.TextModel: a loaded MiMo-V2 MoE text model (mimo2 GGUF)
// with one decoding session. Long calls release the GIL; a per-object mutex
// keeps concurrent Python threads from sharing the session at once.
#include <cstring>
#include <mutex>

#include "bindings/common.h"
#include "core/errors.h"
#include "core/sampling.h"
#include "sessions/text_session.h"

namespace mimo::bindings {
namespace {

class PyTextModel {
public:
    PyTextModel(const std::string & path, const std::string & device, int n_threads, int64_t n_ctx,
                const std::string & kv_type, int64_t window_keys, int64_t n_batch, bool repack_weights) {
        const ggml_type kv = parse_kv_type(kv_type);
        if (n_ctx < 0) fail(ErrorKind::InvalidArgument, strfmt("n_ctx must be positive, got %lld", (long long) n_ctx));
        if (window_keys < 0) {
            fail(ErrorKind::InvalidArgument, strfmt("swa_window_keys must be positive, got %lld", (long long) window_keys));
        }
        py::gil_scoped_release nogil;
        auto backend = std::make_shared<Backend>(device, n_threads, repack_weights);
        weights_ = std::make_shared<TextWeights>(path, backend);
        const int64_t ctx = n_ctx > 0 ? n_ctx : weights_->model().hparams().n_ctx_train;
        session_ = std::make_unique<TextSession>(weights_, ctx > 0 ? ctx : 4096, kv, window_keys, n_batch);
        kv_type_ = kv_type;
    }

    TextSession & session() {
        if (!session_) fail(ErrorKind::InvalidArgument, "this TextModel is closed");
        return *session_;
    }
    const Mimo2HParams & hp() { return session().weights().model().hparams(); }

    py::array_t<float> eval(py::handle tokens, int64_t n_out) {
        std::vector<int32_t> ids = token_ids(tokens);
        const int64_t n = int64_t(ids.size()), n_vocab = hp().n_vocab;
        if (n_out < 0) n_out = n;  // -1: every position
        std::vector<float> logits;
        {
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(mutex_);
            logits = session().eval(ids.data(), n, n_out);
        }
        py::array_t<float> out({n_out, n_vocab});
        std::memcpy(out.mutable_data(), logits.data(), logits.size() * sizeof(float));
        return out;
    }

    // Evaluates tokens and samples the next id from the last position's
    // logits in C++ (no logits copy to Python): the decode-loop step.
    int32_t eval_sample(py::handle tokens, Sampler & sampler, const std::vector<int32_t> & banned) {
        std::vector<int32_t> ids = token_ids(tokens);
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(mutex_);
        TextSession & s = session();
        const std::vector<float> logits = s.eval(ids.data(), int64_t(ids.size()), 1);
        return sampler.sample(logits.data(), s.weights().model().hparams().n_vocab, banned);
    }

    void close() {
        std::lock_guard<std::mutex> lock(mutex_);
        session_.reset();
        weights_.reset();
    }

    std::string kv_type_;
    std::mutex mutex_;

private:
    std::shared_ptr<TextWeights> weights_;
    std::unique_ptr<TextSession> session_;
};

}  // namespace

void bind_text_model(py::module_ & m) {
    using T = PyTextModel;
    py::class_<T>(m, "TextModel")
        .def(py::init<const std::string &, const std::string &, int, int64_t, const std::string &, int64_t, int64_t,
                      bool>(),
             py::arg("path"), py::arg("device") = "auto", py::arg("n_threads") = 0, py::arg("n_ctx") = 4096,
             py::arg("kv_type") = "f16", py::arg("swa_window_keys") = 0,
             py::arg("n_batch") = TextSession::kDefaultMaxBatch, py::arg("repack_weights") = true)
        .def("eval", &T::eval, py::arg("tokens"), py::arg("n_out") = 1)
        .def("eval_sample", &T::eval_sample, py::arg("tokens"), py::arg("sampler"),
             py::arg("banned") = std::vector<int32_t>{})
        .def("reset", [](T & self) {
            std::lock_guard<std::mutex> lock(self.mutex_);
            self.session().reset();
        })
        .def("truncate", [](T & self, int64_t n) {
            std::lock_guard<std::mutex> lock(self.mutex_);
            self.session().truncate(n);
        }, py::arg("n"))
        .def("can_truncate", [](T & self, int64_t n) { return self.session().can_truncate(n); }, py::arg("n"))
        .def("close", &T::close)
        .def_property_readonly("n_past", [](T & self) { return self.session().n_past(); })
        .def_property_readonly("n_ctx", [](T & self) { return self.session().n_ctx(); })
        .def_property_readonly("n_vocab", [](T & self) { return self.hp().n_vocab; })
        .def_property_readonly("n_embd", [](T & self) { return self.hp().n_embd; })
        .def_property_readonly("n_layer", [](T & self) { return self.hp().n_layer; })
        .def_property_readonly("n_expert", [](T & self) { return self.hp().n_expert; })
        .def_property_readonly("n_expert_used", [](T & self) { return self.hp().n_expert_used; })
        .def_property_readonly("eos_token_id", [](T & self) { return self.hp().eos_token_id; })
        .def_property_readonly("swa_window_keys", [](T & self) { return self.session().window_keys(); })
        .def_property_readonly("swa_slots", [](T & self) { return self.session().swa_slots(); })
        .def_property_readonly("n_batch", [](T & self) { return self.session().max_batch(); })
        .def_property_readonly("value_scale", [](T & self) { return self.hp().value_scale; })
        .def_property_readonly("swa_layers", [](T & self) {
            std::vector<bool> out;
            for (uint8_t s : self.hp().swa) out.push_back(s != 0);
            return out;
        })
        .def_property_readonly("moe_layers", [](T & self) {
            std::vector<bool> out;
            const auto & model = self.session().weights().model();
            for (int i = 0; i < model.hparams().n_layer; ++i) out.push_back(model.layer(i).moe());
            return out;
        })
        .def_property_readonly("fused_qkv", [](T & self) {
            std::vector<bool> out;
            const auto & model = self.session().weights().model();
            for (int i = 0; i < model.hparams().n_layer; ++i) out.push_back(model.layer(i).wqkv != nullptr);
            return out;
        })
        .def_property_readonly("sinks", [](T & self) {
            std::vector<bool> out;
            const auto & model = self.session().weights().model();
            for (int i = 0; i < model.hparams().n_layer; ++i) out.push_back(model.layer(i).sinks != nullptr);
            return out;
        })
        .def_property_readonly("kv_type", [](T & self) { return self.kv_type_; })
        .def_property_readonly("device", [](T & self) { return self.session().weights().backend()->device_name(); })
        .def_property_readonly("n_threads", [](T & self) { return self.session().weights().backend()->n_threads(); })
        .def_property_readonly("weights_bytes", [](T & self) { return self.session().weights().bytes(); })
        .def_property_readonly("kv_bytes", [](T & self) { return self.session().kv().bytes(); })
        .def_property_readonly("kv_bytes_per_token", [](T & self) { return self.session().kv_bytes_per_token(); })
        .def_property_readonly("kv_bytes_swa", [](T & self) { return self.session().kv_bytes_swa(); });
}

}  // namespace mimo::bindings
