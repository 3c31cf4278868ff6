// Bookkeeping of a KV-cache layer addressed as a ring: which absolute
// position each slot holds, and the attention mask rows built from that.
// Used by the sliding-window layers of a decode session and by the
// speculative drafters' caches (DFlash context, MTP layers), whose memory
// stays fixed however long the context grows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mimo {

class KvRing {
public:
    explicit KvRing(int64_t n_slots = 0) : pos_(size_t(n_slots), -1) {}

    int64_t n_slots() const { return int64_t(pos_.size()); }
    int64_t slot(int64_t pos) const { return pos % n_slots(); }
    // Records that the slot of `pos` now holds it; returns that slot.
    int64_t put(int64_t pos);
    int64_t held(int64_t slot) const { return pos_[size_t(slot)]; }
    bool holds(int64_t pos) const { return pos >= 0 && pos_[size_t(slot(pos))] == pos; }
    // Every position in [lo, hi) still held.
    bool holds_range(int64_t lo, int64_t hi) const;
    void forget_from(int64_t n);  // positions >= n are gone
    void clear();

    // One F16 mask row over the first n_kv slots for a query at `query_pos`:
    // 0 for a held key position kp with kp <= last_visible and, when
    // window_keys > 0, query_pos - kp < window_keys; -inf otherwise.
    void mask_row(uint16_t * row, int64_t n_kv, int64_t query_pos, int64_t last_visible, int64_t window_keys) const;

private:
    std::vector<int64_t> pos_;  // -1: empty
};

}  // namespace mimo
