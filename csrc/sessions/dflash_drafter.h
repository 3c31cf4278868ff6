// A DFlash drafter loaded beside a mimo2 target (DflashWeights, on the
// target's backend so that its graphs read the target's token_embd and
// output tensors in place) and its per-session state (DflashDrafter):
// the persistent context K/V of every committed target position inside the
// drafter window, kept in a ring, plus room for one temporary block.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/kv_cache.h"
#include "core/kv_ring.h"
#include "core/loaded_model.h"
#include "models/dflash.h"
#include "sessions/drafter.h"
#include "sessions/text_model.h"

namespace mimo {

class DflashWeights : public LoadedModel<DflashModel> {
public:
    // Loads the drafter GGUF at `path` for `target` (checked to fit it).
    DflashWeights(const std::string & path, std::shared_ptr<const TextWeights> target);
    const std::shared_ptr<const TextWeights> & target() const { return target_; }

private:
    std::shared_ptr<const TextWeights> target_;
};

class DflashDrafter : public Drafter {
public:
    // n_ctx: the target session's context; kv_type: the drafter cache's type.
    DflashDrafter(std::shared_ptr<const DflashWeights> weights, int64_t n_ctx, ggml_type kv_type,
                  const DflashRun & run);
    ~DflashDrafter() override;

    std::vector<int32_t> capture() const override;
    int64_t max_drafts() const override { return block_ - 1; }
    void commit(int64_t p0, const int32_t * tokens, const float * features, int64_t n) override;
    Draft propose(int32_t anchor, int64_t start, int64_t k, const DraftChooser & choose) override;
    int64_t n_committed() const override { return committed_; }
    bool can_truncate(int64_t n) const override;
    void truncate(int64_t n) override;
    void reset() override;

    const DflashRun & run() const { return run_; }
    int64_t block_size() const { return block_; }
    int64_t ring_slots() const { return ring_.n_slots(); }

private:
    struct Graph;
    // One graph: n_inject context rows (features given), then, when
    // n_block > 0, a block of n_block rows; builds or reuses the kept graph.
    Graph & prepare(int64_t n_inject, int64_t n_block, int64_t n_kv);
    void inject_pending();  // the pending context rows through an inject-only graph

    std::shared_ptr<const DflashWeights> weights_;
    const DflashModel & model_;
    DflashRun run_;
    int64_t block_ = 8;
    int64_t n_ctx_ = 0;
    std::unique_ptr<KvCache> kv_;   // ring slots plus one trash slot for padding rows
    KvRing ring_;
    std::unique_ptr<Scheduler> sched_;
    std::unique_ptr<Graph> graph_;
    int64_t committed_ = 0;
    std::vector<float> pending_;    // committed rows not yet injected, n_target_features each
    int64_t pending_from_ = 0;      // position of the first pending row
    std::vector<uint16_t> mask_;
};

}  // namespace mimo
