#include "core/errors.h"

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace mimo {

namespace {

// Length of the well-formed UTF-8 sequence at s[i], or 0 if it is not one.
size_t utf8_seq(const unsigned char * s, size_t n, size_t i) {
    const unsigned char c = s[i];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;  // continuation byte, overlong lead (C0, C1) or F5..FF
    }
    if (i + len > n) return 0;
    for (size_t k = 1; k < len; ++k) {
        const unsigned char cc = s[i + k];
        if ((cc & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (cc & 0x3F);
    }
    if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;  // overlong, surrogate
    if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
    return len;
}

}  // namespace

bool valid_utf8(const std::string & str, size_t * bad_at) {
    const auto * s = reinterpret_cast<const unsigned char *>(str.data());
    const size_t n = str.size();
    for (size_t i = 0; i < n;) {
        const size_t len = utf8_seq(s, n, i);
        if (len == 0) {
            if (bad_at) *bad_at = i;
            return false;
        }
        i += len;
    }
    return true;
}

static std::string repair(const std::string & str, size_t max_bytes, bool escape_controls) {
    const auto * s = reinterpret_cast<const unsigned char *>(str.data());
    const size_t n = str.size();
    std::string out;
    out.reserve(n < max_bytes ? n : max_bytes);
    char hex[8];
    for (size_t i = 0; i < n;) {
        if (out.size() >= max_bytes) {
            out += "...";
            break;
        }
        const size_t len = utf8_seq(s, n, i);
        if (len == 0 || (escape_controls && len == 1 && (s[i] < 0x20 || s[i] == 0x7F))) {
            std::snprintf(hex, sizeof(hex), "\\x%02X", unsigned(s[i]));
            out += hex;
            i += 1;
        } else {
            out.append(str, i, len);
            i += len;
        }
    }
    return out;
}

std::string printable(const std::string & s, size_t max_bytes) { return repair(s, max_bytes, true); }

std::string utf8_repaired(const std::string & s) { return valid_utf8(s) ? s : repair(s, SIZE_MAX, false); }

Error::Error(ErrorKind kind, const std::string & message)
    : std::runtime_error(utf8_repaired(message)), kind_(kind) {}

std::string strfmt(const char * fmt, ...) {
    va_list args;
    va_start(args, fmt);
    va_list copy;
    va_copy(copy, args);
    const int n = std::vsnprintf(nullptr, 0, fmt, copy);
    va_end(copy);
    std::string out;
    if (n > 0) {
        std::vector<char> buf(size_t(n) + 1);
        std::vsnprintf(buf.data(), buf.size(), fmt, args);
        out.assign(buf.data(), size_t(n));
    }
    va_end(args);
    return out;
}

}  // namespace mimo
