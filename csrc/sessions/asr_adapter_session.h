// The runner of the ASR audio adapter (AsrAdapterSession: its scheduler and
// the reusable graph) over the adapter part of a loaded mimo_asr file
// (AsrLmWeights, sessions/asr_model.h). One call turns the codes of G audio
// groups into G LM input rows.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "models/asr_adapter.h"

namespace mimo {

class AsrLmWeights;

struct AsrAdapterResult {
    int64_t n_groups = 0;
    std::vector<float> features;    // n_groups rows of n_embd
    std::vector<float> ilt_input;   // n_groups · group_size rows of d (only with keep_stages)
    std::vector<float> ilt_output;  // same, after the final norm, before any is_speech masking
};

class AsrAdapterSession {
public:
    explicit AsrAdapterSession(std::shared_ptr<const AsrLmWeights> weights);
    ~AsrAdapterSession();
    AsrAdapterSession(const AsrAdapterSession &) = delete;
    AsrAdapterSession & operator=(const AsrAdapterSession &) = delete;

    // codes: n_frames rows of n_channels ids, row-major ([4·G, 8] in time
    // order); n_frames must be a multiple of group_size. Every id must be in
    // [0, speech_vocab_c); ids equal to the channel's empty id contribute
    // nothing. Raises InvalidArgument otherwise.
    AsrAdapterResult run(const int32_t * codes, int64_t n_frames, bool keep_stages);

    const AsrAdapterModel & model() const { return model_; }

    // groups per graph: bounds the activation memory of very long inputs
    static constexpr int64_t kMaxGroupsPerGraph = 256;

private:
    struct Graph;
    Graph & prepare(int64_t n_groups);
    void run_chunk(const int32_t * codes, int64_t n_groups, bool keep_stages, AsrAdapterResult & out);

    std::shared_ptr<const AsrLmWeights> weights_;
    const AsrAdapterModel & model_;
    std::unique_ptr<Scheduler> sched_;
    std::unique_ptr<Graph> graph_;  // the last graph, kept for reuse
};

}  // namespace mimo
