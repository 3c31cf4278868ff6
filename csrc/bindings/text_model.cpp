// Python class _core.TextModel: a loaded MiMo-V2 MoE text model (mimo2
// GGUF), shared by the _core.DecodeSession objects its .session() makes.
#include "bindings/common.h"
#include "core/errors.h"
#include "core/kv_cache.h"
#include "sessions/text_model.h"

namespace mimo::bindings {
namespace {

class PyTextModel {
public:
    PyTextModel(const std::string & path, const std::string & device, std::optional<int64_t> n_threads, bool repack_weights) {
        py::gil_scoped_release nogil;
        weights_ = std::make_shared<TextWeights>(path, std::make_shared<Backend>(device, n_threads, repack_weights));
    }

    const std::shared_ptr<const TextWeights> & weights() const {
        if (!weights_) fail(ErrorKind::InvalidArgument, "this model is closed");
        return weights_;
    }
    const Mimo2HParams & hp() const { return weights()->model().hparams(); }

    py::object session(std::optional<int64_t> n_ctx, const std::string & kv_type, std::optional<int64_t> window_keys,
                       int64_t n_batch) {
        const ggml_type kv = parse_kv_type(kv_type);
        auto w = weights();
        const int64_t ctx = n_ctx.value_or(hp().n_ctx_train > 0 ? hp().n_ctx_train : 4096);
        std::unique_ptr<DecodeSession> s;
        {
            py::gil_scoped_release nogil;
            s = std::make_unique<DecodeSession>(w, w->model(), *w->backend(), ctx, kv, window_keys, n_batch);
        }
        return make_decode_session(std::move(s), kv_type);
    }

    std::vector<bool> per_layer(bool (*pick)(const Mimo2Layer &)) const {
        std::vector<bool> out;
        for (int i = 0; i < hp().n_layer; ++i) out.push_back(pick(weights()->model().layer(i)));
        return out;
    }

    void close() {
        weights_.reset();
        release_free_heap();
    }

private:
    std::shared_ptr<const TextWeights> weights_;
};

}  // namespace

void bind_text_model(py::module_ & m) {
    using T = PyTextModel;
    py::class_<T>(m, "TextModel")
        .def(py::init<const std::string &, const std::string &, std::optional<int64_t>, bool>(), py::arg("path"),
             py::arg("device") = "auto", py::arg("n_threads") = py::none(), py::arg("repack_weights") = true)
        .def("session", &T::session, py::arg("n_ctx") = 4096, py::arg("kv_type") = "f16",
             py::arg("swa_window_keys") = py::none(), py::arg("n_batch") = DecodeSession::kDefaultMaxBatch)
        .def("close", &T::close)
        .def("string_arrays",
             [](T & self, const std::vector<std::string> & keys) {
                 return gguf_string_arrays(self.weights()->file(), keys);
             },
             py::arg("keys"), "string-array metadata of the model file (the vocabulary, merges)")
        .def_property_readonly("chat_template", [](T & self) -> py::object {
            const GgufFile & f = self.weights()->file();
            if (!f.has_key("tokenizer.chat_template")) return py::none();
            return py::str(f.str("tokenizer.chat_template"));
        })
        .def_property_readonly("n_vocab", [](T & self) { return self.hp().n_vocab; })
        .def_property_readonly("n_embd", [](T & self) { return self.hp().n_embd; })
        .def_property_readonly("n_layer", [](T & self) { return self.hp().n_layer; })
        .def_property_readonly("n_ctx_train", [](T & self) { return self.hp().n_ctx_train; })
        .def_property_readonly("n_expert", [](T & self) { return self.hp().n_expert; })
        .def_property_readonly("n_expert_used", [](T & self) { return self.hp().n_expert_used; })
        .def_property_readonly("eos_token_id", [](T & self) { return self.hp().eos_token_id; })
        .def_property_readonly("bos_token_id",
                               [](T & self) { return self.weights()->file().integer_or("tokenizer.ggml.bos_token_id", -1); })
        .def_property_readonly("window_keys", [](T & self) { return self.hp().window_keys; })
        .def_property_readonly("value_scale", [](T & self) { return self.hp().value_scale; })
        .def_property_readonly("swa_layers", [](T & self) {
            std::vector<bool> out;
            for (uint8_t s : self.hp().swa) out.push_back(s != 0);
            return out;
        })
        .def_property_readonly("moe_layers", [](T & self) { return self.per_layer([](const Mimo2Layer & L) { return L.moe(); }); })
        .def_property_readonly("fused_qkv",
                               [](T & self) { return self.per_layer([](const Mimo2Layer & L) { return L.wqkv != nullptr; }); })
        .def_property_readonly("sinks",
                               [](T & self) { return self.per_layer([](const Mimo2Layer & L) { return L.sinks != nullptr; }); })
        .def_property_readonly("device", [](T & self) { return self.weights()->backend()->device_name(); })
        .def_property_readonly("n_threads", [](T & self) { return self.weights()->backend()->n_threads(); })
        .def_property_readonly("weights_bytes", [](T & self) { return self.weights()->bytes(); });
}

}  // namespace mimo::bindings
