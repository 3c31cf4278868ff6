// Typed errors of the native core. Each kind maps to one Python exception
// class in mimo_ggml.errors (see bindings/errors.cpp), so C++ code throws
// mimo::Error and never returns sentinel values.
#pragma once

#include <stdexcept>
#include <string>

namespace mimo {

enum class ErrorKind {
    Generic,           // MimoError
    ModelLoad,         // ModelLoadError: file exists but is unusable
    ModelNotFound,     // ModelNotFoundError (a FileNotFoundError)
    UnsupportedModel,  // UnsupportedModelError: valid file, wrong architecture/version
    Backend,           // BackendError: device selection / allocation / compute failure
    Audio,             // AudioError
    InvalidArgument,   // InvalidArgumentError (a ValueError)
    Cancelled,         // GenerationCancelled: a callback asked to stop
};

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string & message) : std::runtime_error(message), kind_(kind) {}
    ErrorKind kind() const { return kind_; }

private:
    ErrorKind kind_;
};

// printf-style message formatting for error texts
std::string strfmt(const char * fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

[[noreturn]] inline void fail(ErrorKind kind, const std::string & message) { throw Error(kind, message); }

}  // namespace mimo
