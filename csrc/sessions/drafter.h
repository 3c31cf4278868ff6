// What the speculative loop (sessions/speculative.h) needs from a drafter:
// it is told which target rows are committed, with their captured hidden
// states, and proposes tokens after an anchor; rollback is a truncation.
// Implemented by the DFlash block drafter and the checkpoint's MTP blocks.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace mimo {

// Picks a draft token from one of the drafter's logits rows (greedy, or a
// sample of the target's sampling distribution).
using DraftChooser = std::function<int32_t(const float * logits)>;

struct Draft {
    std::vector<int32_t> tokens;
    std::vector<float> logits;  // one row of n_vocab per token, the row it was chosen from
};

class Drafter {
public:
    virtual ~Drafter() = default;
    // The target layers whose rows the drafter reads (DecodeSession::set_capture).
    virtual std::vector<int32_t> capture() const = 0;
    // Most tokens one proposal may hold.
    virtual int64_t max_drafts() const = 0;
    // Target positions [p0, p0 + n) are committed: their tokens and their
    // captured rows (n rows of the capture's width). p0 is the committed length.
    virtual void commit(int64_t p0, const int32_t * tokens, const float * features, int64_t n) = 0;
    // k tokens to follow `anchor`, the token at position `start` (the
    // committed length) that the target has not processed yet.
    virtual Draft propose(int32_t anchor, int64_t start, int64_t k, const DraftChooser & choose) = 0;
    virtual int64_t n_committed() const = 0;
    virtual bool can_truncate(int64_t n) const = 0;
    virtual void truncate(int64_t n) = 0;  // forget positions >= n
    virtual void reset() = 0;
};

}  // namespace mimo
