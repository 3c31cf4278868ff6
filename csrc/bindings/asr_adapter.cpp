// Python class _core.AsrAdapter: the MiMo-ASR audio adapter (speech
// embeddings + input local transformer + group downcast) read from a
// mimo_asr GGUF. It takes padded codes [4·G, channels] and returns the LM
// input rows [G, n_embd] of those audio groups; the Python wrapper
// (mimo_ggml.adapter) and the ASR session own prompts and masking. Calls
// release the GIL; a per-object mutex keeps concurrent Python threads apart.
#include <cstring>
#include <limits>
#include <mutex>

#include "bindings/common.h"
#include "core/errors.h"
#include "sessions/asr_model.h"

namespace mimo::bindings {
namespace {

class PyAsrAdapter {
public:
    PyAsrAdapter(const std::string & path, const std::string & device, std::optional<int64_t> n_threads, const std::vector<std::string> & devices, const std::vector<double> & layer_split) {
        py::gil_scoped_release nogil;
        auto backend = make_backend(device, devices, layer_split, n_threads);
        h_.weights = std::make_shared<AsrLmWeights>(path, backend, true, false);
        h_.runner = std::make_unique<AsrAdapterSession>(h_.weights);
    }

    AsrAdapterSession & session() { return h_.get("AsrAdapter"); }
    const std::shared_ptr<AsrLmWeights> & weights() {
        session();
        return h_.weights;
    }
    const AsrAdapterHParams & hp() { return session().model().hparams(); }

    AsrAdapterResult run(py::object codes_obj, bool keep_stages) {
        const int64_t C = hp().n_channels, S = hp().group_size;
        const std::string want = strfmt("an integer array of shape (%lld·G, %lld): G groups of %lld code frames, "
                                        "one column per audio channel",
                                        (long long) S, (long long) C, (long long) S);
        py::array arr = py::array::ensure(codes_obj);
        if (!arr) fail(ErrorKind::InvalidArgument, "codes must be " + want);
        const char kind = arr.dtype().kind();
        if (arr.ndim() != 2 || arr.shape(1) != C || (kind != 'i' && kind != 'u' && !(kind == 'f' && arr.size() == 0))) {
            std::string got = "shape (";
            for (py::ssize_t i = 0; i < arr.ndim(); ++i) got += (i ? ", " : "") + std::to_string(arr.shape(i));
            got += std::string(arr.ndim() == 1 ? ",)" : ")") + " dtype " + std::string(py::str(arr.dtype()));
            fail(ErrorKind::InvalidArgument, "codes must be " + want + "; got " + got);
        }
        // widen to int64 first so that no value wraps before the range check
        auto wide = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(arr);
        if (!wide) fail(ErrorKind::InvalidArgument, "codes must be " + want);
        const int64_t n = wide.shape(0);
        std::vector<int32_t> codes(static_cast<size_t>(n * C));
        const int64_t * src = wide.data();
        for (int64_t i = 0; i < n * C; ++i) {
            const int64_t v = src[i];
            if (v < 0 || v > std::numeric_limits<int32_t>::max()) {
                fail(ErrorKind::InvalidArgument,
                     strfmt("code %lld at frame %lld, channel %lld is outside [0, %lld), the speech vocabulary of "
                            "that channel",
                            (long long) v, (long long) (i / C), (long long) (i % C),
                            (long long) hp().speech_vocab[size_t(i % C)]));
            }
            codes[size_t(i)] = int32_t(v);
        }
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(h_.mutex);
        return session().run(codes.data(), n, keep_stages);
    }

    py::array_t<float> features(py::object codes) {
        AsrAdapterResult r = run(codes, false);
        return float_array(r.features, {r.n_groups, hp().n_embd});
    }

    py::dict stages(py::object codes) {
        AsrAdapterResult r = run(codes, true);
        const int64_t S = hp().group_size, d = hp().d;
        py::dict out;
        out["ilt_input"] = float_array(r.ilt_input, {r.n_groups, S, d});
        out["ilt_output"] = float_array(r.ilt_output, {r.n_groups, S, d});
        out["audio_features"] = float_array(r.features, {r.n_groups, hp().n_embd});
        return out;
    }

    void close() { h_.close(); }

private:
    RunnerHandle<AsrLmWeights, AsrAdapterSession> h_;
};

}  // namespace

void bind_asr_adapter(py::module_ & m) {
    py::class_<PyAsrAdapter>(m, "AsrAdapter")
        .def(py::init<const std::string &, const std::string &, std::optional<int64_t>, const std::vector<std::string> &, const std::vector<double> &>(), py::arg("path"),
             py::arg("device") = "auto", py::arg("n_threads") = py::none(), py::arg("devices") = std::vector<std::string>{}, py::arg("layer_split") = std::vector<double>{})
        .def("features", &PyAsrAdapter::features, py::arg("codes"),
             "LM input rows (G, n_embd) float32 of G audio groups; codes is (group_size·G, channels), time-major")
        .def("stages", &PyAsrAdapter::stages, py::arg("codes"),
             "ilt_input / ilt_output (G, group_size, d) and audio_features (G, n_embd), for parity tests")
        .def("close", &PyAsrAdapter::close)
        .def_property_readonly("channels", [](PyAsrAdapter & s) { return s.hp().n_channels; })
        .def_property_readonly("group_size", [](PyAsrAdapter & s) { return s.hp().group_size; })
        .def_property_readonly("empty_ids", [](PyAsrAdapter & s) { return s.hp().empty_ids; })
        .def_property_readonly("speech_vocab", [](PyAsrAdapter & s) { return s.hp().speech_vocab; })
        .def_property_readonly("n_embd", [](PyAsrAdapter & s) { return s.hp().n_embd; })
        .def_property_readonly("input_dim", [](PyAsrAdapter & s) { return s.hp().d; })
        .def_property_readonly("n_layer", [](PyAsrAdapter & s) { return s.hp().n_layer; })
        .def_property_readonly("n_head", [](PyAsrAdapter & s) { return s.hp().n_head; })
        .def_property_readonly("head_dim", [](PyAsrAdapter & s) { return s.hp().head_dim; })
        .def_property_readonly("full_attention", [](PyAsrAdapter & s) { return s.hp().full_attention; })
        .def_property_readonly("max_groups_per_graph",
                               [](PyAsrAdapter &) { return AsrAdapterSession::kMaxGroupsPerGraph; })
        .def_property_readonly("device",
                               [](PyAsrAdapter & s) { return s.weights()->backend()->device_name(); })
        .def_property_readonly("n_threads",
                               [](PyAsrAdapter & s) { return s.weights()->backend()->n_threads(); })
        .def_property_readonly("weights_bytes", [](PyAsrAdapter & s) { return s.weights()->bytes(); });
}

}  // namespace mimo::bindings
