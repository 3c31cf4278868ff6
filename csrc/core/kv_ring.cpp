#include "core/kv_ring.h"

#include <algorithm>
#include <cmath>

#include "ggml.h"

namespace mimo {

int64_t KvRing::put(int64_t pos) {
    const int64_t s = slot(pos);
    pos_[size_t(s)] = pos;
    return s;
}

bool KvRing::holds_range(int64_t lo, int64_t hi) const {
    for (int64_t p = std::max<int64_t>(0, lo); p < hi; ++p)
        if (!holds(p)) return false;
    return true;
}

void KvRing::forget_from(int64_t n) {
    for (int64_t & p : pos_)
        if (p >= n) p = -1;
}

void KvRing::clear() { std::fill(pos_.begin(), pos_.end(), -1); }

void KvRing::mask_row(uint16_t * row, int64_t n_kv, int64_t query_pos, int64_t last_visible,
                      int64_t window_keys) const {
    const uint16_t zero = ggml_fp32_to_fp16(0.0f), minus_inf = ggml_fp32_to_fp16(-INFINITY);
    const int64_t n = std::min(n_kv, n_slots());
    for (int64_t s = 0; s < n_kv; ++s) row[s] = minus_inf;
    for (int64_t s = 0; s < n; ++s) {
        const int64_t kp = pos_[size_t(s)];
        if (kp >= 0 && kp <= last_visible && (window_keys <= 0 || query_pos - kp < window_keys)) row[s] = zero;
    }
}

}  // namespace mimo
