// The speculative decode loop (spec dflash.md §5), one for every drafter:
// the drafter proposes up to block - 1 tokens after the anchor, the target
// verifies [anchor, drafts] in one pass and returns every row's logits and
// captured rows, the longest agreeing prefix is accepted (greedy) or
// drafts pass a rejection test (sampling, which keeps the target's
// distribution), and both the target KV (a length reset, SWA rings
// included) and the drafter roll back to the committed length.
//
// Tokens come out one per next() call, as from TokenGenerator, with the
// same stop, budget and lazy-feed rules: greedy output is the plain loop's.
#pragma once

#include <deque>
#include <functional>
#include <optional>
#include <vector>

#include "sessions/drafter.h"
#include "sessions/token_generator.h"

namespace mimo {

struct SpeculativeOptions {
    int64_t block = 8;  // tokens per verify pass: the anchor and up to block - 1 drafts
    // Tests and benchmarks: replaces the drafter's proposals after it ran
    // (an oracle or adversarial drafter); gets the drafts and the round's start.
    std::function<void(std::vector<int32_t> & drafts, int64_t start)> override_drafts;
};

struct DraftStats {
    int64_t rounds = 0, proposed = 0, accepted = 0;
    int64_t emitted = 0;                   // tokens the rounds produced (accepted drafts + bonus tokens)
    std::vector<int64_t> proposed_at, accepted_at;  // per draft position 1..block-1
    double draft_s = 0.0, verify_s = 0.0;  // time in the drafter and in verify passes
    double mean_accepted_length() const { return rounds ? double(emitted) / double(rounds) : 0.0; }
};

class SpeculativeGenerator {
public:
    // The target session has evaluated the prompt (rows captured and
    // committed to the drafter); `logits` are its last row's.
    SpeculativeGenerator(DecodeSession & target, Drafter & drafter, std::vector<float> logits,
                         GenerationOptions options, SpeculativeOptions spec);

    std::optional<GeneratedToken> next();
    FinishReason finish_reason() const { return finish_; }
    bool finished() const { return finish_ != FinishReason::None && ready_.empty(); }
    int64_t n_generated() const { return n_generated_; }
    const DraftStats & stats() const { return stats_; }

private:
    // Emits one token chosen from `logits`; false once the run is finished.
    bool emit(int32_t id, const float * logits);
    void round();
    int32_t choose_target(const float * logits);

    DecodeSession & target_;
    Drafter & drafter_;
    std::vector<float> logits_;
    GenerationOptions options_;
    SpeculativeOptions spec_;
    Sampler sampler_;
    FinishReason finish_ = FinishReason::None;
    int64_t n_generated_ = 0;
    bool started_ = false;
    std::optional<int32_t> anchor_;      // chosen, not yet in the target
    std::deque<GeneratedToken> ready_;   // emitted by the last round, not yet returned
    DraftStats stats_;
    std::vector<float> p_, q_;           // scratch distributions
};

}  // namespace mimo
