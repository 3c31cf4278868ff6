#include "core/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/errors.h"

namespace mimo {

namespace {
bool is_banned(int32_t id, const std::vector<int32_t> & banned) {
    return std::find(banned.begin(), banned.end(), id) != banned.end();
}
}  // namespace

int32_t argmax(const float * logits, int64_t n, const std::vector<int32_t> & banned) {
    int32_t best = -1;
    float best_v = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; ++i) {
        const float v = logits[i];
        if (best < 0 || v > best_v) {  // strict: ties keep the lowest id
            if (!banned.empty() && is_banned(int32_t(i), banned)) continue;
            best = int32_t(i);
            best_v = v;
        }
    }
    if (best < 0) fail(ErrorKind::InvalidArgument, "no token can be sampled: every id is banned");
    return best;
}

Sampler::Sampler(const SamplerParams & p) : params_(p), rng_(p.seed) {
    if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature)) {
        fail(ErrorKind::InvalidArgument, strfmt("temperature must be >= 0 (0 = greedy), got %g", p.temperature));
    }
    if (p.top_k < 0) fail(ErrorKind::InvalidArgument, strfmt("top_k must be >= 0 (0 = off), got %d", p.top_k));
    if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
        fail(ErrorKind::InvalidArgument, strfmt("top_p must be in (0, 1], got %g", p.top_p));
    }
}

int32_t Sampler::sample(const float * logits, int64_t n, const std::vector<int32_t> & banned) {
    if (params_.temperature == 0.0f) return argmax(logits, n, banned);
    scratch_.clear();
    scratch_.reserve(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
        if (!banned.empty() && is_banned(int32_t(i), banned)) continue;
        if (std::isfinite(logits[i])) scratch_.emplace_back(logits[i], int32_t(i));
    }
    if (scratch_.empty()) fail(ErrorKind::InvalidArgument, "no token can be sampled: every logit is banned or -inf");
    // order by logit (desc), ties by id (asc), so results are reproducible
    auto by_logit = [](const auto & a, const auto & b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
    size_t keep = scratch_.size();
    if (params_.top_k > 0 && size_t(params_.top_k) < keep) {
        keep = size_t(params_.top_k);
        std::partial_sort(scratch_.begin(), scratch_.begin() + keep, scratch_.end(), by_logit);
    } else {
        std::sort(scratch_.begin(), scratch_.end(), by_logit);
    }
    scratch_.resize(keep);
    const float inv_t = 1.0f / params_.temperature;
    const float top = scratch_[0].first;
    double sum = 0.0;
    std::vector<double> probs(keep);
    for (size_t i = 0; i < keep; ++i) {
        probs[i] = std::exp(double(scratch_[i].first - top) * inv_t);
        sum += probs[i];
    }
    if (params_.top_p < 1.0f) {
        double cum = 0.0;
        size_t cut = keep;
        for (size_t i = 0; i < keep; ++i) {
            cum += probs[i] / sum;
            if (cum >= params_.top_p) {
                cut = i + 1;
                break;
            }
        }
        keep = cut;
        sum = 0.0;
        for (size_t i = 0; i < keep; ++i) sum += probs[i];
    }
    std::uniform_real_distribution<double> uni(0.0, sum);
    double r = uni(rng_);
    for (size_t i = 0; i < keep; ++i) {
        r -= probs[i];
        if (r <= 0.0) return scratch_[i].second;
    }
    return scratch_[keep - 1].second;
}

}  // namespace mimo
