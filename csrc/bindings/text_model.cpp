// Python classes _core.TextModel (a loaded MiMo-V2 MoE text model, mimo2
// GGUF, shared by the _core.DecodeSession objects its .session() makes)
// and _core.DraftModel (a DFlash drafter loaded beside one).
#include "bindings/common.h"
#include "core/errors.h"
#include "core/kv_cache.h"
#include "sessions/dflash_drafter.h"
#include "sessions/mtp_drafter.h"
#include "sessions/text_model.h"

namespace mimo::bindings {
namespace {

class PyTextModel {
public:
    PyTextModel(const std::string & path, const std::string & device, std::optional<int64_t> n_threads, bool repack_weights,
                bool mtp, const std::vector<std::string> & devices, const std::vector<double> & layer_split) {
        py::gil_scoped_release nogil;
        weights_ = std::make_shared<TextWeights>(
            path, make_backend(device, devices, layer_split, n_threads, repack_weights), mtp);
    }

    const std::shared_ptr<const TextWeights> & weights() const {
        if (!weights_) fail(ErrorKind::InvalidArgument, "this model is closed");
        return weights_;
    }
    const Mimo2HParams & hp() const { return weights()->model().hparams(); }

    // draft: None, a DraftModel (DFlash) or "mtp"; the draft_* options are
    // the spec's runtime parameters (None: the drafter file's value).
    py::object session(std::optional<int64_t> n_ctx, const std::string & kv_type, std::optional<int64_t> window_keys,
                       int64_t n_batch, py::object draft, int64_t draft_block, std::optional<int64_t> draft_window,
                       std::optional<bool> draft_causal, std::optional<float> rope_base_ctx,
                       std::optional<float> rope_base_block, int64_t mtp_blocks, bool mtp_pre_norm);

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

// A DFlash drafter loaded for one TextModel (its weights on the target's backend).
class PyDraftModel {
public:
    PyDraftModel(const std::string & path, const PyTextModel & target) {
        auto t = target.weights();
        py::gil_scoped_release nogil;
        weights_ = std::make_shared<DflashWeights>(path, t);
    }
    const std::shared_ptr<const DflashWeights> & weights() const {
        if (!weights_) fail(ErrorKind::InvalidArgument, "this draft model is closed");
        return weights_;
    }
    const DflashHParams & hp() const { return weights()->model().hparams(); }
    void close() {
        weights_.reset();
        release_free_heap();
    }

private:
    std::shared_ptr<const DflashWeights> weights_;
};

py::object PyTextModel::session(std::optional<int64_t> n_ctx, const std::string & kv_type,
                                std::optional<int64_t> window_keys, int64_t n_batch, py::object draft,
                                int64_t draft_block, std::optional<int64_t> draft_window,
                                std::optional<bool> draft_causal, std::optional<float> rope_base_ctx,
                                std::optional<float> rope_base_block, int64_t mtp_blocks, bool mtp_pre_norm) {
    const ggml_type kv = parse_kv_type(kv_type);
    auto w = weights();
    const int64_t ctx = n_ctx.value_or(hp().n_ctx_train > 0 ? hp().n_ctx_train : 4096);
    std::shared_ptr<const DflashWeights> dflash;
    std::string kind;
    if (!draft.is_none()) {
        if (py::isinstance<PyDraftModel>(draft)) {
            dflash = draft.cast<PyDraftModel &>().weights();
            if (dflash->target() != w) {
                fail(ErrorKind::InvalidArgument, "this draft model was loaded for another TextModel");
            }
            kind = "dflash";
        } else if (py::isinstance<py::str>(draft) && draft.cast<std::string>() == "mtp") {
            kind = "mtp";
        } else {
            fail(ErrorKind::InvalidArgument, "draft must be None, a DraftModel or \"mtp\"");
        }
        if (draft_block < 2 || draft_block > 64) {
            fail(ErrorKind::InvalidArgument,
                 strfmt("draft_block must be between 2 and 64 tokens per verify pass, got %lld", (long long) draft_block));
        }
        if (n_batch < draft_block) {
            fail(ErrorKind::InvalidArgument, strfmt("n_batch (%lld) must be at least draft_block (%lld)",
                                                    (long long) n_batch, (long long) draft_block));
        }
    }
    std::unique_ptr<DecodeSession> s;
    std::unique_ptr<Drafter> d;
    {
        py::gil_scoped_release nogil;
        s = std::make_unique<DecodeSession>(w, w->model(), *w->backend(), ctx, kv, window_keys, n_batch);
        if (kind == "dflash") {
            DflashRun run = dflash->model().default_run();
            if (draft_window) run.window_keys = *draft_window;
            if (draft_causal) run.causal = *draft_causal;
            if (rope_base_ctx) run.rope_base_ctx = *rope_base_ctx;
            if (rope_base_block) run.rope_base_block = *rope_base_block;
            d = std::make_unique<DflashDrafter>(dflash, ctx, kv, run);
        } else if (kind == "mtp") {
            MtpRun run;
            run.n_used = mtp_blocks;
            run.pre_norm_hidden = mtp_pre_norm;
            d = std::make_unique<MtpDrafter>(w, s->window_keys(), kv, run);
        }
        if (d) s->set_capture(d->capture());
    }
    return make_decode_session(std::move(s), kv_type, std::move(d), kind, draft_block);
}

}  // namespace

void bind_text_model(py::module_ & m) {
    using T = PyTextModel;
    py::class_<T>(m, "TextModel")
        .def(py::init<const std::string &, const std::string &, std::optional<int64_t>, bool, bool, const std::vector<std::string> &, const std::vector<double> &>(),
             py::arg("path"), py::arg("device") = "auto", py::arg("n_threads") = py::none(),
             py::arg("repack_weights") = true, py::arg("mtp") = true, py::arg("devices") = std::vector<std::string>{}, py::arg("layer_split") = std::vector<double>{})
        .def("session", &T::session, py::arg("n_ctx") = 4096, py::arg("kv_type") = "f16",
             py::arg("swa_window_keys") = py::none(), py::arg("n_batch") = DecodeSession::kDefaultMaxBatch,
             py::arg("draft") = py::none(), py::arg("draft_block") = 8, py::arg("draft_window") = py::none(),
             py::arg("draft_causal") = py::none(), py::arg("rope_base_ctx") = py::none(),
             py::arg("rope_base_block") = py::none(), py::arg("mtp_blocks") = 0, py::arg("mtp_pre_norm") = false)
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
        .def_property_readonly("n_mtp", [](T & self) { return self.weights()->model().n_mtp(); })
        .def_property_readonly("weights_bytes", [](T & self) { return self.weights()->bytes(); })
        .def_property_readonly("weights_bytes_by_device", [](T & self) { return self.weights()->bytes_by_device(); });

    using D = PyDraftModel;
    py::class_<D>(m, "DraftModel")
        .def(py::init<const std::string &, const PyTextModel &>(), py::arg("path"), py::arg("target"))
        .def("close", &D::close)
        .def_property_readonly("n_layer", [](D & self) { return self.hp().n_layer; })
        .def_property_readonly("n_embd", [](D & self) { return self.hp().n_embd; })
        .def_property_readonly("block_size", [](D & self) { return self.hp().block_size; })
        .def_property_readonly("window_keys", [](D & self) { return self.hp().window_keys; })
        .def_property_readonly("causal", [](D & self) { return self.hp().causal; })
        .def_property_readonly("mask_token_id", [](D & self) { return self.hp().mask_token_id; })
        .def_property_readonly("target_layers", [](D & self) { return self.hp().target_layers; })
        .def_property_readonly("rope_base", [](D & self) { return self.hp().rope_base; })
        .def_property_readonly("backbone_rope_base", [](D & self) { return self.hp().backbone_rope_base; })
        .def_property_readonly("weights_bytes", [](D & self) { return self.weights()->bytes(); });
}

}  // namespace mimo::bindings
