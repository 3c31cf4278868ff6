// Shared declarations of the binding files: one bind_* function per file,
// called once from module.cpp.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <vector>

#include "core/errors.h"

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

void bind_errors(py::module_ & m);
void bind_system(py::module_ & m);
void bind_language_model(py::module_ & m);
void bind_quantize(py::module_ & m);
void bind_gguf_metadata(py::module_ & m);
void bind_audio_tokenizer(py::module_ & m);
void bind_asr_adapter(py::module_ & m);
void bind_text_model(py::module_ & m);

}  // namespace mimo::bindings
