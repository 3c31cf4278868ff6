// Python class _core.AudioTokenizer: the low-level audio-tokenizer handle
// (weights plus one runner). It takes one chunk's log-mel [T_mel, n_mels]
// float32 and returns RVQ codes; the Python wrapper (mimo_ggml.tokenizer)
// owns audio decoding, chunking and the mel front-end. Encoding releases the
// GIL; a per-object mutex keeps concurrent Python threads apart.
#include <cstring>
#include <mutex>

#include "bindings/common.h"
#include "core/errors.h"
#include "sessions/audio_tokenizer_session.h"

namespace mimo::bindings {
namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

class PyAudioTokenizer {
public:
    PyAudioTokenizer(const std::string & path, const std::string & device, std::optional<int64_t> n_threads, bool bf16_rope,
                     int64_t n_codebooks, const std::vector<std::string> & devices, const std::vector<double> & layer_split) {
        AudioTokenizerOptions opt;
        opt.bf16_rope = bf16_rope;
        opt.n_codebooks = n_codebooks;
        py::gil_scoped_release nogil;
        auto backend = make_backend(device, devices, layer_split, n_threads);
        h_.weights = std::make_shared<AudioTokenizerWeights>(path, backend, opt);
        h_.runner = std::make_unique<AudioTokenizerSession>(h_.weights);
    }

    AudioTokenizerSession & session() { return h_.get("AudioTokenizer"); }
    const AudioTokenizerModel & model() { return session().weights().model(); }

    TokenizerResult run(py::object mel_obj, bool keep_stages) {
        const int64_t nm = model().hparams().n_mels;
        auto mel = FloatArray::ensure(mel_obj);
        if (!mel || mel.ndim() != 2 || mel.shape(1) != nm) {
            fail(ErrorKind::InvalidArgument,
                 strfmt("mel must be a 2-D float array of shape (T_mel, %lld) (mimo_ggml.audio.log_mel of one chunk)",
                        (long long) nm));
        }
        const int64_t t_mel = mel.shape(0);
        const float * data = mel.data();
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(h_.mutex);
        return session().encode_mel(data, t_mel, keep_stages);
    }

    py::object encode_mel(py::object mel, bool return_gaps) {
        TokenizerResult r = run(mel, false);
        if (!return_gaps) return int_array(r.codes, {r.n_frames, r.n_codebooks});
        return py::make_tuple(int_array(r.codes, {r.n_frames, r.n_codebooks}),
                              float_array(r.gaps, {r.n_frames, r.n_codebooks}));
    }

    py::dict encode_mel_stages(py::object mel) {
        TokenizerResult r = run(mel, true);
        py::dict out;
        for (const TokenizerStage & s : r.stages) out[py::str(s.name)] = float_array(s.data, {s.rows, s.cols});
        out["tok_codes"] = int_array(r.codes, {r.n_frames, r.n_codebooks});
        out["tok_code_gaps"] = float_array(r.gaps, {r.n_frames, r.n_codebooks});
        return out;
    }

    void close() { h_.close(); }

private:
    RunnerHandle<AudioTokenizerWeights, AudioTokenizerSession> h_;
};

}  // namespace

void bind_audio_tokenizer(py::module_ & m) {
    py::class_<PyAudioTokenizer>(m, "AudioTokenizer")
        .def(py::init<const std::string &, const std::string &, std::optional<int64_t>, bool, int64_t, const std::vector<std::string> &, const std::vector<double> &>(),
             py::arg("path"), py::arg("device") = "auto", py::arg("n_threads") = py::none(),
             py::arg("bf16_rope") = true, py::arg("n_codebooks") = 8, py::arg("devices") = std::vector<std::string>{}, py::arg("layer_split") = std::vector<double>{})
        .def("encode_mel", &PyAudioTokenizer::encode_mel, py::arg("mel"), py::arg("return_gaps") = false,
             "RVQ codes (T_code, n_codebooks) int32 of one chunk's log-mel (T_mel, n_mels); with return_gaps "
             "also the second-best minus best squared distance of each code")
        .def("encode_mel_stages", &PyAudioTokenizer::encode_mel_stages, py::arg("mel"),
             "Every intermediate stage of one chunk as a dict of arrays, plus tok_codes and tok_code_gaps")
        .def("close", &PyAudioTokenizer::close)
        .def_property_readonly("d_model", [](PyAudioTokenizer & s) { return s.model().hparams().d_model; })
        .def_property_readonly("n_layer", [](PyAudioTokenizer & s) { return s.model().hparams().n_layer; })
        .def_property_readonly("n_head", [](PyAudioTokenizer & s) { return s.model().hparams().n_head; })
        .def_property_readonly("n_mels", [](PyAudioTokenizer & s) { return s.model().hparams().n_mels; })
        .def_property_readonly("n_quantizers", [](PyAudioTokenizer & s) { return s.model().hparams().n_quantizers; })
        .def_property_readonly("n_codebooks", [](PyAudioTokenizer & s) { return s.model().n_codebooks(); })
        .def_property_readonly("codebook_sizes",
                               [](PyAudioTokenizer & s) { return s.model().hparams().codebook_sizes; })
        .def_property_readonly("skip_layer", [](PyAudioTokenizer & s) { return s.model().hparams().skip_layer; })
        .def_property_readonly("bf16_rope", [](PyAudioTokenizer & s) { return s.model().options().bf16_rope; })
        .def_property_readonly("max_mel_frames", [](PyAudioTokenizer &) { return AudioTokenizerSession::kMaxMelFrames; })
        .def_property_readonly("device",
                               [](PyAudioTokenizer & s) { return s.session().weights().backend()->device_name(); })
        .def_property_readonly("n_threads",
                               [](PyAudioTokenizer & s) { return s.session().weights().backend()->n_threads(); })
        .def_property_readonly("weights_bytes", [](PyAudioTokenizer & s) { return s.session().weights().bytes(); });
}

}  // namespace mimo::bindings
