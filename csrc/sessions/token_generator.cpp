#include "sessions/token_generator.h"

#include <algorithm>
#include <cmath>

#include "core/errors.h"

namespace mimo {

const char * finish_reason_name(FinishReason r) {
    switch (r) {
        case FinishReason::Stop: return "stop";
        case FinishReason::Length: return "length";
        case FinishReason::None: break;
    }
    return "";
}

float token_logprob(const float * logits, int64_t n_vocab, int32_t id) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n_vocab; ++i) mx = std::max(mx, logits[i]);
    double sum = 0.0;
    for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(double(logits[i] - mx));
    return float(double(logits[id] - mx) - std::log(sum));
}

TokenGenerator::TokenGenerator(DecodeSession & session, std::vector<float> logits, GenerationOptions options)
    : session_(session), logits_(std::move(logits)), options_(std::move(options)), sampler_(options_.sampler) {
    const int64_t n_vocab = session_.model().n_vocab();
    if (int64_t(logits_.size()) != n_vocab) fail(ErrorKind::Generic, "internal: generator needs one logits row");
    if (options_.max_tokens < 0) {
        fail(ErrorKind::InvalidArgument,
             strfmt("max_tokens must be a non-negative integer, got %lld", (long long) options_.max_tokens));
    }
    for (const auto * list : {&options_.stop_ids, &options_.banned}) {
        for (int32_t id : *list) {
            if (id < 0 || id >= n_vocab) {
                fail(ErrorKind::InvalidArgument,
                     strfmt("token id %d (a stop or banned id) is outside the vocabulary [0, %lld)", id,
                            (long long) n_vocab));
            }
        }
    }
    if (options_.max_tokens == 0) finish_ = FinishReason::Length;
}

std::optional<GeneratedToken> TokenGenerator::next() {
    if (finished()) return std::nullopt;
    if (pending_) {
        if (session_.n_past() >= session_.n_ctx()) {  // no room to feed it back
            finish_ = FinishReason::Length;
            return std::nullopt;
        }
        const int32_t id = *pending_;
        pending_.reset();
        logits_ = session_.eval_tokens(&id, 1);
    }
    const int64_t n_vocab = session_.model().n_vocab();
    GeneratedToken t;
    t.id = sampler_.sample(logits_.data(), n_vocab, options_.banned);
    t.logprob = token_logprob(logits_.data(), n_vocab, t.id);
    t.is_stop = std::find(options_.stop_ids.begin(), options_.stop_ids.end(), t.id) != options_.stop_ids.end();
    if (t.is_stop) {
        finish_ = FinishReason::Stop;
        return t;
    }
    if (++n_generated_ >= options_.max_tokens) {
        finish_ = FinishReason::Length;
    } else {
        pending_ = t.id;
    }
    return t;
}

}  // namespace mimo
