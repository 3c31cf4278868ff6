#include "core/log.h"

#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <vector>

namespace mimo {
namespace {

std::mutex g_mutex;
LogSink g_sink;
std::string g_pending;  // ggml sends lines in pieces (GGML_LOG_LEVEL_CONT)
int g_pending_level = GGML_LOG_LEVEL_INFO;

void emit_locked(int level, std::string text) {
    if (!g_sink) {
        return;
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
        text.pop_back();
    }
    if (!text.empty()) {
        g_sink(level, text);
    }
}

void on_ggml_log(ggml_log_level level, const char * text, void *) {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (level != GGML_LOG_LEVEL_CONT) {
        g_pending_level = level;
    }
    g_pending += text ? text : "";
    size_t nl;
    while ((nl = g_pending.find('\n')) != std::string::npos) {
        emit_locked(g_pending_level, g_pending.substr(0, nl));
        g_pending.erase(0, nl + 1);
    }
}

}  // namespace

void set_log_sink(LogSink sink) {
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        g_sink = std::move(sink);
        g_pending.clear();
    }
    ggml_log_set(on_ggml_log, nullptr);
}

void log_message(ggml_log_level level, const char * fmt, ...) {
    va_list args;
    va_start(args, fmt);
    char buf[1024];
    std::vsnprintf(buf, sizeof(buf), fmt, args);
    va_end(args);
    std::lock_guard<std::mutex> lock(g_mutex);
    emit_locked(level, buf);
}

}  // namespace mimo
