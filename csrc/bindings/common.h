// Shared declarations of the binding files: one bind_* function per file,
// called once from module.cpp.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace py = pybind11;

namespace mimo::bindings {

void bind_errors(py::module_ & m);
void bind_system(py::module_ & m);
void bind_language_model(py::module_ & m);
void bind_quantize(py::module_ & m);
void bind_gguf_metadata(py::module_ & m);
void bind_audio_tokenizer(py::module_ & m);
void bind_asr_adapter(py::module_ & m);
void bind_text_model(py::module_ & m);

}  // namespace mimo::bindings
