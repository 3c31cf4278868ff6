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

TokenGenerator::TokenGenerator(DecodeSession & session, std::vector<float> logits, GenerationOptions options,
                               int64_t seq)
    : session_(session), logits_(std::move(logits)), options_(std::move(options)), sampler_(options_.sampler),
      seq_(seq) {
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

bool TokenGenerator::needs_feed() {
    if (finished() || !pending_) return false;
    if (session_.n_past(seq_) >= session_.n_ctx()) {  // no room to feed it back
        finish_ = FinishReason::Length;
        pending_.reset();
        return false;
    }
    return true;
}

std::optional<GeneratedToken> TokenGenerator::next() {
    if (needs_feed()) {
        const int32_t id = *pending_;
        pending_.reset();
        logits_ = session_.eval_tokens(&id, 1);
    }
    return sample();
}

std::vector<std::optional<GeneratedToken>> TokenGenerator::next_together(
    DecodeSession & session, const std::vector<TokenGenerator *> & generators) {
    std::vector<SeqRows> parts;
    std::vector<TokenGenerator *> fed;
    std::vector<int32_t> ids(generators.size());
    for (size_t i = 0; i < generators.size(); ++i) {
        TokenGenerator * g = generators[i];
        if (&g->session_ != &session) fail(ErrorKind::Generic, "internal: generators of another session");
        if (!g->needs_feed()) continue;
        ids[i] = *g->pending_;
        g->pending_.reset();
        SeqRows p;
        p.seq = g->seq_;
        p.rows.tokens = &ids[i];
        p.n = 1;
        parts.push_back(p);
        fed.push_back(g);
    }
    if (!parts.empty()) {
        std::vector<std::vector<float>> logits = session.eval_batch(parts);
        for (size_t k = 0; k < fed.size(); ++k) fed[k]->logits_ = std::move(logits[k]);
    }
    std::vector<std::optional<GeneratedToken>> out;
    for (TokenGenerator * g : generators) out.push_back(g->sample());
    return out;
}

std::optional<GeneratedToken> TokenGenerator::sample() {
    if (finished()) return std::nullopt;
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
