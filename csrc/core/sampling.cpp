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

void Sampler::keep(const float * logits, int64_t n, const std::vector<int32_t> & banned) {
    scratch_.clear();
    scratch_.reserve(size_t(n));
    for (int64_t i = 0; i < n; ++i) {
        if (!banned.empty() && is_banned(int32_t(i), banned)) continue;
        if (std::isfinite(logits[i])) scratch_.emplace_back(logits[i], int32_t(i));
    }
    if (scratch_.empty()) fail(ErrorKind::InvalidArgument, "no token can be sampled: every logit is banned or -inf");
    // order by logit (desc), ties by id (asc), so results are reproducible
    auto by_logit = [](const auto & a, const auto & b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
    size_t kept = scratch_.size();
    if (params_.top_k > 0 && size_t(params_.top_k) < kept) {
        kept = size_t(params_.top_k);
        std::partial_sort(scratch_.begin(), scratch_.begin() + kept, scratch_.end(), by_logit);
    } else {
        std::sort(scratch_.begin(), scratch_.end(), by_logit);
    }
    scratch_.resize(kept);
    const float inv_t = 1.0f / params_.temperature;
    const float top = scratch_[0].first;
    weights_.assign(kept, 0.0);
    weight_sum_ = 0.0;
    for (size_t i = 0; i < kept; ++i) {
        weights_[i] = std::exp(double(scratch_[i].first - top) * inv_t);
        weight_sum_ += weights_[i];
    }
    if (params_.top_p < 1.0f) {
        double cum = 0.0;
        size_t cut = kept;
        for (size_t i = 0; i < kept; ++i) {
            cum += weights_[i] / weight_sum_;
            if (cum >= params_.top_p) {
                cut = i + 1;
                break;
            }
        }
        weights_.resize(cut);
        scratch_.resize(cut);
        weight_sum_ = 0.0;
        for (double w : weights_) weight_sum_ += w;
    }
}

int32_t Sampler::sample(const float * logits, int64_t n, const std::vector<int32_t> & banned) {
    if (params_.temperature == 0.0f) return argmax(logits, n, banned);
    keep(logits, n, banned);
    std::uniform_real_distribution<double> uni(0.0, weight_sum_);
    double r = uni(rng_);
    for (size_t i = 0; i < weights_.size(); ++i) {
        r -= weights_[i];
        if (r <= 0.0) return scratch_[i].second;
    }
    return scratch_.back().second;
}

void Sampler::distribution(const float * logits, int64_t n, const std::vector<int32_t> & banned,
                           std::vector<float> & out) {
    out.assign(size_t(n), 0.0f);
    if (params_.temperature == 0.0f) {
        out[size_t(argmax(logits, n, banned))] = 1.0f;
        return;
    }
    keep(logits, n, banned);
    for (size_t i = 0; i < weights_.size(); ++i) out[size_t(scratch_[i].second)] = float(weights_[i] / weight_sum_);
}

int32_t Sampler::draw(const std::vector<float> & weights) {
    double sum = 0.0;
    int32_t last = -1;
    for (size_t i = 0; i < weights.size(); ++i) {
        if (weights[i] > 0.0f) {
            sum += weights[i];
            last = int32_t(i);
        }
    }
    if (last < 0) fail(ErrorKind::Generic, "internal: a draw from an all-zero distribution");
    std::uniform_real_distribution<double> uni(0.0, sum);
    double r = uni(rng_);
    for (size_t i = 0; i < weights.size(); ++i) {
        if (weights[i] <= 0.0f) continue;
        r -= weights[i];
        if (r <= 0.0) return int32_t(i);
    }
    return last;
}

double Sampler::uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

}  // namespace mimo
