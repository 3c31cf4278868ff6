#include "sessions/speculative.h"

#include <algorithm>
#include <chrono>

#include "core/errors.h"

namespace mimo {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

SpeculativeGenerator::SpeculativeGenerator(DecodeSession & target, Drafter & drafter, std::vector<float> logits,
                                           GenerationOptions options, SpeculativeOptions spec)
    : target_(target), drafter_(drafter), logits_(std::move(logits)), options_(std::move(options)),
      spec_(std::move(spec)), sampler_(options_.sampler) {
    // the plain loop's argument rules, checked once
    TokenGenerator check(target_, logits_, options_);
    if (spec_.block < 2 || spec_.block > 64) {
        fail(ErrorKind::InvalidArgument,
             strfmt("draft_block must be between 2 and 64 tokens per verify pass, got %lld", (long long) spec_.block));
    }
    spec_.block = std::min(spec_.block, drafter_.max_drafts() + 1);
    stats_.proposed_at.assign(size_t(spec_.block - 1), 0);
    stats_.accepted_at.assign(size_t(spec_.block - 1), 0);
    if (drafter_.n_committed() != target_.n_past()) {
        fail(ErrorKind::Generic, "internal: the drafter and the target session hold different contexts");
    }
    if (options_.max_tokens == 0) finish_ = FinishReason::Length;
}

int32_t SpeculativeGenerator::choose_target(const float * logits) {
    return sampler_.sample(logits, target_.model().n_vocab(), options_.banned);
}

bool SpeculativeGenerator::emit(int32_t id, const float * logits) {
    GeneratedToken t;
    t.id = id;
    t.logprob = token_logprob(logits, target_.model().n_vocab(), id);
    t.is_stop = std::find(options_.stop_ids.begin(), options_.stop_ids.end(), id) != options_.stop_ids.end();
    ready_.push_back(t);
    if (t.is_stop) {
        finish_ = FinishReason::Stop;
        return false;
    }
    if (++n_generated_ >= options_.max_tokens) {
        finish_ = FinishReason::Length;
        return false;
    }
    return true;
}

std::optional<GeneratedToken> SpeculativeGenerator::next() {
    if (!started_) {
        started_ = true;
        if (finish_ == FinishReason::None) {
            const int32_t id = choose_target(logits_.data());
            if (emit(id, logits_.data())) anchor_ = id;
        }
    } else if (ready_.empty() && finish_ == FinishReason::None) {
        round();
    }
    if (ready_.empty()) return std::nullopt;
    GeneratedToken t = ready_.front();
    ready_.pop_front();
    return t;
}

void SpeculativeGenerator::round() {
    const int64_t n_vocab = target_.model().n_vocab();
    const int64_t start = target_.n_past();
    if (start >= target_.n_ctx()) {  // no room to feed the anchor
        finish_ = FinishReason::Length;
        return;
    }
    const int32_t anchor = *anchor_;
    // never more drafts than the budget can emit or the context can verify
    const int64_t k = std::min({spec_.block - 1, options_.max_tokens - n_generated_ - 1, target_.n_ctx() - start - 1});
    Draft draft;
    if (k > 0) {
        const auto t0 = std::chrono::steady_clock::now();
        DraftChooser choose = [&](const float * row) {
            return sampler_.greedy() ? argmax(row, n_vocab, options_.banned)
                                     : sampler_.sample(row, n_vocab, options_.banned);
        };
        draft = drafter_.propose(anchor, start, k, choose);
        stats_.draft_s += seconds_since(t0);
        if (spec_.override_drafts) {
            spec_.override_drafts(draft.tokens, start);
            if (int64_t(draft.tokens.size()) != k) fail(ErrorKind::InvalidArgument, "a draft override changed the count");
            for (int32_t id : draft.tokens) {
                if (id < 0 || id >= n_vocab) fail(ErrorKind::InvalidArgument, "a draft override gave an id outside the vocabulary");
            }
            // overridden drafts were not drawn from the drafter's distribution (even where they equal its
            // samples): the test min(1, P/Q) would bias them; as point masses, accepting with P(d) is exact
            draft.logits.clear();
        }
    }
    std::vector<int32_t> rows{anchor};
    rows.insert(rows.end(), draft.tokens.begin(), draft.tokens.end());
    const auto t1 = std::chrono::steady_clock::now();
    DecodeRows in;
    in.tokens = rows.data();
    DecodeOutput out = target_.eval(in, k + 1, k + 1);
    stats_.verify_s += seconds_since(t1);
    auto L = [&](int64_t r) { return out.logits.data() + r * n_vocab; };

    // acceptance (spec dflash.md §5.1 / §5.2): a drafts kept, then the bonus token
    int64_t a = 0;
    int32_t bonus = -1;
    for (; a < k; ++a) {
        const int32_t d = draft.tokens[size_t(a)];
        if (sampler_.greedy()) {
            const int32_t p = argmax(L(a), n_vocab, options_.banned);
            if (p != d) {
                bonus = p;
                break;
            }
            continue;
        }
        sampler_.distribution(L(a), n_vocab, options_.banned, p_);
        if (draft.logits.empty()) {  // a point-mass draft: accept with P(d)
            q_.assign(size_t(n_vocab), 0.0f);
            q_[size_t(d)] = 1.0f;
        } else {
            sampler_.distribution(draft.logits.data() + a * n_vocab, n_vocab, options_.banned, q_);
        }
        if (sampler_.uniform() * double(q_[size_t(d)]) < double(p_[size_t(d)])) continue;
        // rejected: the replacement comes from the residual max(P - Q, 0), or P when that is empty
        bool any = false;
        for (int64_t i = 0; i < n_vocab; ++i) {
            q_[size_t(i)] = std::max(0.0f, p_[size_t(i)] - q_[size_t(i)]);
            any = any || q_[size_t(i)] > 0.0f;
        }
        bonus = sampler_.draw(any ? q_ : p_);
        break;
    }
    if (bonus < 0) bonus = choose_target(L(k));  // every draft kept: the bonus from the last row
    stats_.rounds += 1;
    stats_.proposed += k;
    stats_.accepted += a;
    stats_.emitted += a + 1;
    for (int64_t i = 0; i < k; ++i) {
        stats_.proposed_at[size_t(i)] += 1;
        if (i < a) stats_.accepted_at[size_t(i)] += 1;
    }

    // emit d_1..d_a, bonus; a stop id or the budget may end the run inside them
    int64_t m = 0;  // index of the last emitted token
    bool more = true;
    for (int64_t j = 0; j <= a && more; ++j) {
        m = j;
        more = emit(j < a ? draft.tokens[size_t(j)] : bonus, L(j));
    }
    // the target keeps the anchor and the emitted tokens before the last one (that one is fed
    // next round, or never): start + 1 + m positions
    const int64_t keep = start + 1 + m;
    if (keep < target_.n_past()) target_.truncate(keep);
    drafter_.commit(start, rows.data(), out.captured.data(), m + 1);
    anchor_ = more ? std::optional<int32_t>(bonus) : std::nullopt;
}

}  // namespace mimo
