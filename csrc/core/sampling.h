// Token selection from a logits row: greedy (temperature 0, ties to the
// lowest id) or seeded temperature / top-k / top-p sampling. Banned ids
// (e.g. <|empty|> in ASR, vocabulary padding rows) are never chosen.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace mimo {

struct SamplerParams {
    float temperature = 0.0f;  // 0: greedy
    int top_k = 0;             // 0: no limit
    float top_p = 1.0f;        // 1: no nucleus cut
    uint64_t seed = 0;
};

class Sampler {
public:
    explicit Sampler(const SamplerParams & params);
    int32_t sample(const float * logits, int64_t n_vocab, const std::vector<int32_t> & banned);
    // The distribution sample() draws from, dense over the n_vocab ids
    // (temperature 0: a point mass on the argmax); speculative decoding's
    // acceptance test compares the target's and the drafter's.
    void distribution(const float * logits, int64_t n_vocab, const std::vector<int32_t> & banned,
                      std::vector<float> & out);
    // A draw from non-negative weights (not necessarily normalized).
    int32_t draw(const std::vector<float> & weights);
    double uniform();  // U[0, 1) from this sampler's seeded stream
    const SamplerParams & params() const { return params_; }
    bool greedy() const { return params_.temperature == 0.0f; }

private:
    // The ids sampling may pick (scratch_, best first) and their unnormalized weights.
    void keep(const float * logits, int64_t n_vocab, const std::vector<int32_t> & banned);

    SamplerParams params_;
    std::mt19937_64 rng_;
    std::vector<std::pair<float, int32_t>> scratch_;
    std::vector<double> weights_;
    double weight_sum_ = 0.0;
};

int32_t argmax(const float * logits, int64_t n, const std::vector<int32_t> & banned);

}  // namespace mimo
