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
    // Starts from the next-token logits of what the session already holds
    // (the prompt's last row).
    TokenGenerator(DecodeSession & session, std::vector<float> logits, GenerationOptions options);

    // The next token, or nothing once finished. The token sampled last is
    // fed to the session lazily, at the start of the next call, so a caller
    // that stops early (a stop string) pays no extra step.
    std::optional<GeneratedToken> next();
    FinishReason finish_reason() const { return finish_; }
    bool finished() const { return finish_ != FinishReason::None; }
    int64_t n_generated() const { return n_generated_; }

private:
    DecodeSession & session_;
    std::vector<float> logits_;
    GenerationOptions options_;
    Sampler sampler_;
    FinishReason finish_ = FinishReason::None;
    int64_t n_generated_ = 0;
    std::optional<int32_t> pending_;  // sampled, not yet in the context
};

// log-softmax of logits[id] over the n_vocab logits
float token_logprob(const float * logits, int64_t n_vocab, int32_t id);

}  // namespace mimo
