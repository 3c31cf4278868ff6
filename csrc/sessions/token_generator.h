// The decode loop, written once for every decoder session: sample a token
// from the last logits (the shared Sampler, banned ids), stop on a stop id,
// after max_tokens tokens or when the context is full, otherwise feed the
// token back. Each token comes with its log-probability under the model
// (log-softmax of the raw logits, before temperature or bans).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/sampling.h"
#include "sessions/decode_session.h"

namespace mimo {

struct GenerationOptions {
    SamplerParams sampler;
    std::vector<int32_t> stop_ids;  // end the generation (reported, marked is_stop)
    std::vector<int32_t> banned;    // never sampled
    int64_t max_tokens = 0;         // tokens other than a final stop id
};

struct GeneratedToken {
    int32_t id = 0;
    float logprob = 0.0f;
    bool is_stop = false;
};

enum class FinishReason { None, Stop, Length };
const char * finish_reason_name(FinishReason r);  // "stop", "length", "" while running

class TokenGenerator {
public:
    // Starts from the next-token logits of what sequence `seq` of the
    // session already holds (the prompt's last row).
    TokenGenerator(DecodeSession & session, std::vector<float> logits, GenerationOptions options, int64_t seq = 0);

    // The next token, or nothing once finished. The token sampled last is
    // fed to the session lazily, at the start of the next call, so a caller
    // that stops early (a stop string) pays no extra step.
    std::optional<GeneratedToken> next();
    FinishReason finish_reason() const { return finish_; }
    bool finished() const { return finish_ != FinishReason::None; }
    int64_t n_generated() const { return n_generated_; }
    int64_t seq() const { return seq_; }

    // Advances several generators of one session by a token each, feeding
    // their sampled tokens back in one graph (batched decoding); the result
    // of generator i (nothing once it is finished) is at index i. Equal, per
    // generator, to calling next() on each.
    static std::vector<std::optional<GeneratedToken>> next_together(DecodeSession & session,
                                                                    const std::vector<TokenGenerator *> & generators);

private:
    bool needs_feed();                 // a pending token to feed; finishes the run when there is no room
    std::optional<GeneratedToken> sample();  // from fresh logits

    DecodeSession & session_;
    std::vector<float> logits_;
    GenerationOptions options_;
    Sampler sampler_;
    int64_t seq_ = 0;
    FinishReason finish_ = FinishReason::None;
    int64_t n_generated_ = 0;
    std::optional<int32_t> pending_;  // sampled, not yet in the context
};

// log-softmax of logits[id] over the n_vocab logits
float token_logprob(const float * logits, int64_t n_vocab, int32_t id);

}  // namespace mimo
