// Translates mimo::Error into the Python classes of mimo_ggml.errors (looked
// up by name, so Python owns the hierarchy).
#include "bindings/common.h"
#include "core/errors.h"

namespace mimo::bindings {
namespace {

const char * class_name(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::ModelLoad: return "ModelLoadError";
        case ErrorKind::ModelNotFound: return "ModelNotFoundError";
        case ErrorKind::UnsupportedModel: return "UnsupportedModelError";
        case ErrorKind::Backend: return "BackendError";
        case ErrorKind::Audio: return "AudioError";
        case ErrorKind::InvalidArgument: return "InvalidArgumentError";
        case ErrorKind::Cancelled: return "GenerationCancelled";
        case ErrorKind::Generic: break;
    }
    return "MimoError";
}

}  // namespace

void bind_errors(py::module_ & m) {
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const Error & e) {
            py::object errors = py::module_::import("mimo_ggml.errors");
            py::object cls = errors.attr(class_name(e.kind()));
            PyErr_SetString(cls.ptr(), e.what());
        }
    });
}

}  // namespace mimo::bindings
