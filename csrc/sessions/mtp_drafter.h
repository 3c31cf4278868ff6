// Drafting with the checkpoint's own MTP blocks (spec mtp.md §2.1, §2.5):
// block k reads the target's hidden h_i with the token t_{i+k+1} at RoPE
// position i and predicts t_{i+k+2}; draft j comes from block j's row s-1,
// fed the tokens drafted before it. No hidden state is chained between the
// blocks. Each block has its own small KV ring; the rows that used a draft
// token are recomputed in the next round, so every cache stays exact.
#pragma once

#include <deque>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "core/kv_cache.h"
#include "core/kv_ring.h"
#include "sessions/drafter.h"
#include "sessions/text_model.h"

namespace mimo {

struct MtpRun {
    int64_t n_used = 0;          // MTP blocks drafted with per round (0: all the model has)
    bool pre_norm_hidden = false;  // feed the last layer's output before the final norm (spec §3)
};

class MtpDrafter : public Drafter {
public:
    // window_keys: the target session's sliding window (MTP blocks are SWA layers).
    MtpDrafter(std::shared_ptr<const TextWeights> weights, int64_t window_keys, ggml_type kv_type, const MtpRun & run);
    ~MtpDrafter() override;

    std::vector<int32_t> capture() const override;
    int64_t max_drafts() const override { return n_used_; }
    void commit(int64_t p0, const int32_t * tokens, const float * features, int64_t n) override;
    Draft propose(int32_t anchor, int64_t start, int64_t k, const DraftChooser & choose) override;
    int64_t n_committed() const override { return int64_t(tokens_.size()); }
    bool can_truncate(int64_t n) const override;
    void truncate(int64_t n) override;
    void reset() override;

    // Block j's cache holds exact rows for positions < exact_rows(j) (tests).
    int64_t exact_rows(int64_t j) const { return exact_[size_t(j)]; }

private:
    struct Graph;
    Graph & prepare(int j, int64_t m);
    const float * hidden_row(int64_t i) const;

    std::shared_ptr<const TextWeights> weights_;
    const Mimo2Model & model_;
    MtpRun run_;
    int64_t n_used_ = 0, window_keys_ = 0;
    std::unique_ptr<KvCache> kv_;
    std::vector<KvRing> rings_;
    std::unique_ptr<Scheduler> sched_;
    std::unique_ptr<Graph> graph_;
    std::vector<int32_t> tokens_;   // committed tokens, t_0 .. t_{s-1}
    std::deque<float> hidden_;      // target hidden rows from position hidden_from_ on
    int64_t hidden_from_ = 0;
    std::vector<int64_t> exact_;    // per block: rows below this are exact in its cache (X_k, spec §2.5)
    std::vector<uint16_t> mask_;
};

}  // namespace mimo
