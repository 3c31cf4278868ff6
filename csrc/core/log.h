// Log bridge: ggml's log lines and our own go to one sink (the Python
// bindings install one that forwards to logging.getLogger("mimo_ggml")).
// Without a sink, logs are dropped: the core is quiet by default.
#pragma once

#include <functional>
#include <string>

#include "ggml.h"

namespace mimo {

// level is a ggml_log_level (DEBUG=1, INFO=2, WARN=3, ERROR=4)
using LogSink = std::function<void(int level, const std::string & line)>;

// Installs the sink and routes ggml's logger through it. An empty sink
// silences everything again.
void set_log_sink(LogSink sink);

void log_message(ggml_log_level level, const char * fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#define MIMO_LOG_DEBUG(...) ::mimo::log_message(GGML_LOG_LEVEL_DEBUG, __VA_ARGS__)
#define MIMO_LOG_INFO(...)  ::mimo::log_message(GGML_LOG_LEVEL_INFO, __VA_ARGS__)
#define MIMO_LOG_WARN(...)  ::mimo::log_message(GGML_LOG_LEVEL_WARN, __VA_ARGS__)

}  // namespace mimo
