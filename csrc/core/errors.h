// Typed errors of the native core. Each kind maps to one Python exception
// class in mimo_ggml.errors (see bindings/errors.cpp), so C++ code throws
// mimo::Error and never returns sentinel values.
#pragma once

#include <cstddef>
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

// true if s is well-formed UTF-8 (no overlong forms, no surrogates, nothing
// past U+10FFFF: exactly what Python's strict decoder accepts); bad_at gets
// the offset of the first bad byte
bool valid_utf8(const std::string & s, size_t * bad_at = nullptr);

// A string taken from a file, made fit for a message: invalid UTF-8 and
// control characters are written as \xNN, and anything past max_bytes is cut
// (with "..." appended).
std::string printable(const std::string & s, size_t max_bytes = 200);
// s with only its invalid UTF-8 bytes written as \xNN
std::string utf8_repaired(const std::string & s);

class Error : public std::runtime_error {
public:
    // The message is made valid UTF-8 (bad bytes as \xNN), so the Python
    // side can always decode it.
    Error(ErrorKind kind, const std::string & message);
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
