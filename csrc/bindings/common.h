// Shared declarations of the binding files: one bind_* function per file,
// called once from module.cpp.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/gguf_file.h"
#include "core/sampling.h"
#include "sessions/decode_session.h"
#include "sessions/drafter.h"

namespace py = pybind11;

namespace mimo::bindings {

// A 1-D sequence of token ids as int32, read through int64 so that no value
// wraps before it is range-checked (the vocabulary check is the session's).
inline std::vector<int32_t> token_ids(py::handle tokens) {
    auto a = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(tokens);
    if (!a || a.ndim() != 1) fail(ErrorKind::InvalidArgument, "tokens must be a 1-D sequence of token ids");
    std::vector<int32_t> ids(size_t(a.shape(0)));
    for (py::ssize_t i = 0; i < a.shape(0); ++i) {
        const int64_t v = a.data()[i];
        if (v < INT32_MIN || v > INT32_MAX) {
            fail(ErrorKind::InvalidArgument,
                 strfmt("token id %lld at index %lld is out of range", (long long) v, (long long) i));
        }
        ids[size_t(i)] = int32_t(v);
    }
    return ids;
}

// A float32 array of the given shape holding a copy of v.
inline py::array_t<float> float_array(const std::vector<float> & v, std::vector<py::ssize_t> shape) {
    py::array_t<float> a(shape);
    if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(float));
    return a;
}

// Hands the C heap's free memory back to the system after a model or session
// is freed (glibc keeps it otherwise, and a process that opens and closes
// sessions again and again would grow).
inline void release_free_heap() {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

// An int32 array of the given shape holding a copy of v.
inline py::array_t<int32_t> int_array(const std::vector<int32_t> & v, std::vector<py::ssize_t> shape) {
    py::array_t<int32_t> a(shape);
    if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(int32_t));
    return a;
}

// A low-level handle as Python holds it: loaded weights, one runner over
// them, and the lock that keeps Python threads from running it at once.
template <class Weights, class Runner>
struct RunnerHandle {
    std::shared_ptr<Weights> weights;
    std::unique_ptr<Runner> runner;
    std::mutex mutex;
    Runner & get(const char * what) {
        if (!runner) fail(ErrorKind::InvalidArgument, strfmt("this %s is closed", what));
        return *runner;
    }
    void close() {
        {
            std::lock_guard<std::mutex> lock(mutex);
            runner.reset();
            weights.reset();
        }
        release_free_heap();
    }
};

// A decode session as Python holds it: the native session, the lock that
// keeps two Python threads from running it at once, its KV type name, and
// an optional speculative drafter that follows every committed row.
// Bound as _core.DecodeSession (bindings/decode_session.cpp).
struct PyDecodeState {
    std::unique_ptr<Drafter> drafter;  // declared first: destroyed after the session
    std::unique_ptr<DecodeSession> session;
    std::mutex mutex;
    std::string kv_type;
    std::string draft_kind;     // "", "dflash" or "mtp"
    int64_t draft_block = 0;    // default tokens per verify pass
    DecodeSession & get() {
        if (!session) fail(ErrorKind::InvalidArgument, "this session is closed");
        return *session;
    }
};
// Makes the Python object of a new decode session (GIL held); with a
// drafter, the session captures the rows it reads.
py::object make_decode_session(std::unique_ptr<DecodeSession> session, const std::string & kv_type,
                               std::unique_ptr<Drafter> drafter = nullptr, const std::string & draft_kind = "",
                               int64_t draft_block = 0);

// The string-array metadata values of an open GGUF (absent keys left out),
// read with the GIL held.
inline py::dict gguf_string_arrays(const GgufFile & file, const std::vector<std::string> & keys) {
    py::dict out;
    for (const auto & k : keys) {
        if (file.has_key(k)) out[py::str(k)] = file.str_array(k);
    }
    return out;
}

// SamplerParams from Python arguments, with typed errors naming each parameter.
SamplerParams sampler_params(double temperature, int64_t top_k, double top_p, py::object seed);

void bind_errors(py::module_ & m);
void bind_system(py::module_ & m);
void bind_rpc(py::module_ & m);
void bind_language_model(py::module_ & m);
void bind_quantize(py::module_ & m);
void bind_gguf_metadata(py::module_ & m);
void bind_audio_tokenizer(py::module_ & m);
void bind_asr_adapter(py::module_ & m);
void bind_text_model(py::module_ & m);  // _core.TextModel and _core.DraftModel
void bind_decode_session(py::module_ & m);
void bind_asr_model(py::module_ & m);

}  // namespace mimo::bindings
