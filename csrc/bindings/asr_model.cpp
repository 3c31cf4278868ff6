// Python classes _core.AsrModel (MiMo-V2.5-ASR loaded once: tokenizer,
// adapter and LM on one backend, shared by its sessions) and _core.AsrSession
// (per-request state; transcribe_clip runs a clip's whole native pipeline in
// one call with the GIL released). The per-token callback reacquires the
// GIL, checks for Ctrl-C and may cancel.
#include <Python.h>

#include "bindings/common.h"
#include "core/errors.h"
#include "core/kv_cache.h"
#include "sessions/asr_model.h"

namespace mimo::bindings {
namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

class PyAsrSession {
public:
    PyAsrSession(std::shared_ptr<const AsrModel> model, int64_t n_ctx, const std::string & kv_type)
        : kv_type_(kv_type) {
        const ggml_type kv = parse_kv_type(kv_type);
        py::gil_scoped_release nogil;
        session_ = std::make_unique<AsrSession>(std::move(model), n_ctx, kv);
    }

    AsrSession & get() {
        if (!session_) fail(ErrorKind::InvalidArgument, "this session is closed");
        return *session_;
    }

    // The mel arrays are kept alive (and contiguous) in `keep` while the native call reads them.
    AsrClipRequest request(py::list mels, py::handle prefix, py::handle suffix, std::vector<FloatArray> & keep) {
        AsrClipRequest r;
        const int64_t n_mels = get().model().tokenizer()->model().hparams().n_mels;
        for (py::handle h : mels) {
            FloatArray a = FloatArray::ensure(h);
            if (!a || a.ndim() != 2 || a.shape(1) != n_mels) {
                fail(ErrorKind::InvalidArgument,
                     strfmt("each log-mel chunk must be a (T_mel, %lld) float array", (long long) n_mels));
            }
            keep.push_back(a);
            r.mels.push_back(MelChunk{a.data(), a.shape(0)});
        }
        r.prefix = token_ids(prefix);
        r.suffix = token_ids(suffix);
        return r;
    }

    static GenerationOptions generation(int64_t max_tokens, double temperature, int64_t top_k, double top_p,
                                        py::object seed, py::handle stop, py::handle banned) {
        GenerationOptions g;
        g.sampler = sampler_params(temperature, top_k, top_p, seed);
        g.stop_ids = stop.is_none() ? std::vector<int32_t>{} : token_ids(stop);
        g.banned = banned.is_none() ? std::vector<int32_t>{} : token_ids(banned);
        g.max_tokens = max_tokens;
        return g;
    }

    py::dict result_dict(const AsrClipResult & res) {
        py::dict out;
        out["codes"] = int_array(res.codes, {res.n_frames, get().model().adapter_hparams().n_channels});
        out["tokens"] = res.tokens;
        out["logprobs"] = res.logprobs;
        out["finish_reason"] = finish_reason_name(res.finish);
        out["n_groups"] = res.n_groups;
        out["n_prompt"] = res.n_prompt;
        out["audio_encode"] = res.encode_s;
        out["lm_prefill"] = res.prefill_s;
        out["lm_decode"] = res.decode_s;
        return out;
    }

    py::dict transcribe(py::list mels, py::handle prefix, py::handle suffix, int64_t max_tokens, double temperature,
                        int64_t top_k, double top_p, py::object seed, py::handle stop, py::handle banned,
                        py::object on_token) {
        std::vector<FloatArray> keep;
        AsrClipRequest r = request(mels, prefix, suffix, keep);
        r.generation = generation(max_tokens, temperature, top_k, top_p, seed, stop, banned);
        AsrProgress progress = [&on_token](int32_t token) {
            py::gil_scoped_acquire gil;
            if (PyErr_CheckSignals() != 0) throw py::error_already_set();  // Ctrl-C between tokens
            if (token < 0 || on_token.is_none()) return true;
            py::object go = on_token(token);
            return go.is_none() || bool(py::bool_(go));
        };
        AsrClipResult res;
        {
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(mutex_);
            res = get().transcribe(r, progress);
        }
        return result_dict(res);
    }

    // clips: a list of (mels, prefix, suffix, max_tokens) tuples
    py::list transcribe_batch(py::list clips, int64_t batch_size, int64_t n_ctx_seq, double temperature,
                              int64_t top_k, double top_p, py::object seed, py::handle stop, py::handle banned,
                              py::object on_token, py::object on_clip) {
        std::vector<FloatArray> keep;
        std::vector<AsrClipRequest> reqs;
        for (py::handle h : clips) {
            py::tuple t = py::reinterpret_borrow<py::tuple>(h);
            if (t.size() != 4) fail(ErrorKind::InvalidArgument, "each clip is (mels, prefix, suffix, max_tokens)");
            AsrClipRequest r = request(t[0].cast<py::list>(), t[1], t[2], keep);
            r.generation = generation(t[3].cast<int64_t>(), temperature, top_k, top_p, seed, stop, banned);
            reqs.push_back(std::move(r));
        }
        AsrBatchProgress progress = [&on_token](int64_t clip, int32_t token) {
            py::gil_scoped_acquire gil;
            if (PyErr_CheckSignals() != 0) throw py::error_already_set();
            if (token < 0 || on_token.is_none()) return true;
            py::object go = on_token(clip, token);
            return go.is_none() || bool(py::bool_(go));
        };
        AsrClipDone done = [this, &on_clip](int64_t clip, const AsrClipResult & r) {
            if (on_clip.is_none()) return;
            py::gil_scoped_acquire gil;
            on_clip(clip, result_dict(r));
        };
        std::vector<AsrClipResult> res;
        {
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(mutex_);
            res = get().transcribe_batch(reqs, batch_size, n_ctx_seq, progress, done);
        }
        py::list out;
        for (const AsrClipResult & r : res) out.append(result_dict(r));
        return out;
    }

    py::dict stages(py::list mels, py::handle prefix, py::handle suffix) {
        std::vector<FloatArray> keep;
        AsrClipRequest r = request(mels, prefix, suffix, keep);
        AsrClipStages st;
        {
            py::gil_scoped_release nogil;
            std::lock_guard<std::mutex> lock(mutex_);
            st = get().stages(r);
        }
        const AsrAdapterHParams & a = get().model().adapter_hparams();
        const int64_t n_embd = get().model().lm_hparams().n_embd, G = st.n_groups;
        py::dict out;
        out["audio_codes"] = int_array(st.codes, {G * a.group_size, a.n_channels});
        out["ilt_input"] = float_array(st.adapter.ilt_input, {G, a.group_size, a.d});
        out["ilt_output"] = float_array(st.adapter.ilt_output, {G, a.group_size, a.d});
        out["audio_features"] = float_array(st.adapter.features, {G, n_embd});
        out["inputs_embeds"] = float_array(st.inputs, {st.n_prompt, n_embd});
        out["last_hidden"] = float_array(st.last_hidden, {n_embd});
        out["logits_step0"] = float_array(st.logits, {get().model().lm_hparams().n_vocab});
        return out;
    }

    void close() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            session_.reset();
        }
        release_free_heap();
    }

    std::string kv_type_;

private:
    std::unique_ptr<AsrSession> session_;
    std::mutex mutex_;
};

class PyAsrModel {
public:
    PyAsrModel(const std::string & model_path, const std::string & tokenizer_path, const std::string & device,
               std::optional<int64_t> n_threads, bool bf16_rope, const std::vector<std::string> & devices,
               const std::vector<double> & layer_split) {
        AudioTokenizerOptions opt;
        opt.bf16_rope = bf16_rope;
        py::gil_scoped_release nogil;
        model_ = std::make_shared<AsrModel>(model_path, tokenizer_path,
                                            make_backend(device, devices, layer_split, n_threads), opt);
    }

    const std::shared_ptr<const AsrModel> & get() const {
        if (!model_) fail(ErrorKind::InvalidArgument, "this model is closed");
        return model_;
    }

    std::unique_ptr<PyAsrSession> session(std::optional<int64_t> n_ctx, const std::string & kv_type) {
        return std::make_unique<PyAsrSession>(get(), n_ctx.value_or(get()->lm_hparams().n_ctx_train), kv_type);
    }

    void close() {
        model_.reset();
        release_free_heap();
    }
    bool closed() const { return !model_; }

private:
    std::shared_ptr<const AsrModel> model_;
};

}  // namespace

void bind_asr_model(py::module_ & m) {
    using M = PyAsrModel;
    py::class_<M>(m, "AsrModel")
        .def(py::init<const std::string &, const std::string &, const std::string &, std::optional<int64_t>, bool,
                      const std::vector<std::string> &, const std::vector<double> &>(),
             py::arg("model"), py::arg("tokenizer"), py::arg("device") = "auto", py::arg("n_threads") = py::none(),
             py::arg("bf16_rope") = true, py::arg("devices") = std::vector<std::string>{}, py::arg("layer_split") = std::vector<double>{})
        .def("session", &M::session, py::arg("n_ctx") = 4096, py::arg("kv_type") = "f16")
        .def("close", &M::close)
        .def("string_arrays",
             [](M & self, const std::vector<std::string> & keys) {
                 return gguf_string_arrays(self.get()->lm_weights()->file(), keys);
             },
             py::arg("keys"), "string-array metadata of the model file (the vocabulary, merges)")
        .def_property_readonly("closed", &M::closed)
        .def_property_readonly("group_size", [](M & self) { return self.get()->adapter_hparams().group_size; })
        .def_property_readonly("channels", [](M & self) { return self.get()->adapter_hparams().n_channels; })
        .def_property_readonly("empty_ids", [](M & self) { return self.get()->adapter_hparams().empty_ids; })
        .def_property_readonly("speech_vocab", [](M & self) { return self.get()->adapter_hparams().speech_vocab; })
        .def_property_readonly("n_embd", [](M & self) { return self.get()->lm_hparams().n_embd; })
        .def_property_readonly("n_vocab", [](M & self) { return self.get()->lm_hparams().n_vocab; })
        .def_property_readonly("n_ctx_train", [](M & self) { return self.get()->lm_hparams().n_ctx_train; })
        .def_property_readonly("n_mels",
                               [](M & self) { return self.get()->tokenizer()->model().hparams().n_mels; })
        .def_property_readonly("device", [](M & self) { return self.get()->backend()->device_name(); })
        .def_property_readonly("n_threads", [](M & self) { return self.get()->backend()->n_threads(); })
        .def_property_readonly("weights_bytes", [](M & self) { return self.get()->bytes(); })
        .def_property_readonly("weights_bytes_by_device", [](M & self) { return self.get()->bytes_by_device(); });

    using S = PyAsrSession;
    py::class_<S>(m, "AsrSession")
        .def("transcribe_clip", &S::transcribe, py::arg("mels"), py::arg("prefix"), py::arg("suffix"),
             py::arg("max_tokens"), py::arg("temperature") = 0.0, py::arg("top_k") = 0, py::arg("top_p") = 1.0,
             py::arg("seed") = py::none(), py::arg("stop") = py::none(), py::arg("banned") = py::none(),
             py::arg("on_token") = py::none(),
             "Codes, adapter, prefill and decoding of one clip: its log-mel chunks and the prompt ids around the "
             "audio groups in; token ids, log-probabilities, finish reason and phase times out")
        .def("transcribe_batch", &S::transcribe_batch, py::arg("clips"), py::arg("batch_size"), py::arg("n_ctx_seq"),
             py::arg("temperature") = 0.0, py::arg("top_k") = 0, py::arg("top_p") = 1.0,
             py::arg("seed") = py::none(), py::arg("stop") = py::none(), py::arg("banned") = py::none(),
             py::arg("on_token") = py::none(), py::arg("on_clip") = py::none(),
             "Clips (mels, prefix, suffix, max_tokens) decoded together, batch_size at a time: one dict per clip "
             "as transcribe_clip gives; on_clip(index, dict) as each finishes")
        .def("stages", &S::stages, py::arg("mels"), py::arg("prefix"), py::arg("suffix"),
             "The intermediate results of spec asr.md §15 for one clip")
        .def("close", &S::close)
        .def_property_readonly("n_ctx", [](S & self) { return self.get().lm().n_ctx(); })
        .def_property_readonly("kv_type", [](S & self) { return self.kv_type_; })
        .def_property_readonly("kv_bytes", [](S & self) { return self.get().lm().kv().bytes(); });
}

}  // namespace mimo::bindings
