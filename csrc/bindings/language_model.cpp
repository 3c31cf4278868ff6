// Python class _core.AsrLanguageModel: the language model of a mimo_asr GGUF
// loaded alone (the low-level LanguageModel handle); .session() makes a
// _core.DecodeSession on it.
#include "bindings/common.h"
#include "core/errors.h"
#include "core/kv_cache.h"
#include "sessions/asr_model.h"

namespace mimo::bindings {
namespace {

class PyAsrLanguageModel {
public:
    PyAsrLanguageModel(const std::string & path, const std::string & device, std::optional<int64_t> n_threads,
                       bool repack_weights, const std::vector<std::string> & devices, const std::vector<double> & layer_split) {
        py::gil_scoped_release nogil;
        weights_ = std::make_shared<AsrLmWeights>(
            path, make_backend(device, devices, layer_split, n_threads, repack_weights), false, true);
    }

    const std::shared_ptr<const AsrLmWeights> & weights() const {
        if (!weights_) fail(ErrorKind::InvalidArgument, "this model is closed");
        return weights_;
    }
    const Qwen2HParams & hp() const { return weights()->lm().hparams(); }

    py::object session(std::optional<int64_t> n_ctx, const std::string & kv_type) {
        const ggml_type kv = parse_kv_type(kv_type);
        auto w = weights();
        std::unique_ptr<DecodeSession> s;
        {
            py::gil_scoped_release nogil;
            s = std::make_unique<DecodeSession>(w, w->lm(), *w->backend(), n_ctx.value_or(hp().n_ctx_train), kv);
        }
        return make_decode_session(std::move(s), kv_type);
    }

    void close() {
        weights_.reset();
        release_free_heap();
    }

private:
    std::shared_ptr<const AsrLmWeights> weights_;
};

}  // namespace

void bind_language_model(py::module_ & m) {
    using T = PyAsrLanguageModel;
    py::class_<T>(m, "AsrLanguageModel")
        .def(py::init<const std::string &, const std::string &, std::optional<int64_t>, bool, const std::vector<std::string> &, const std::vector<double> &>(),
             py::arg("path"), py::arg("device") = "auto", py::arg("n_threads") = py::none(),
             py::arg("repack_weights") = true, py::arg("devices") = std::vector<std::string>{}, py::arg("layer_split") = std::vector<double>{})
        .def("session", &T::session, py::arg("n_ctx") = 4096, py::arg("kv_type") = "f16")
        .def("close", &T::close)
        .def_property_readonly("n_vocab", [](T & self) { return self.hp().n_vocab; })
        .def_property_readonly("n_embd", [](T & self) { return self.hp().n_embd; })
        .def_property_readonly("n_layer", [](T & self) { return self.hp().n_layer; })
        .def_property_readonly("n_ctx_train", [](T & self) { return self.hp().n_ctx_train; })
        .def_property_readonly("device", [](T & self) { return self.weights()->backend()->device_name(); })
        .def_property_readonly("n_threads", [](T & self) { return self.weights()->backend()->n_threads(); })
        .def_property_readonly("weights_bytes", [](T & self) { return self.weights()->bytes(); })
        .def_property_readonly("weights_bytes_by_device", [](T & self) { return self.weights()->bytes_by_device(); })
        .def_property_readonly("fused_qkv", [](T & self) {
            std::vector<bool> f;
            for (int i = 0; i < self.hp().n_layer; ++i) f.push_back(self.weights()->lm().fused_qkv(i));
            return f;
        });
}

}  // namespace mimo::bindings
