// The ASR audio adapter as a loaded, immutable object (AsrAdapterWeights,
// read from the same mimo_asr GGUF as the LM: only the audio.* tensors) and
// the runner over it (AsrAdapterSession: scheduler and the reusable graph).
// One call turns the codes of G audio groups into G LM input rows.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/gguf_file.h"
#include "core/loaded_model.h"
#include "core/weights.h"
#include "models/asr_adapter.h"

namespace mimo {

class AsrAdapterWeights : public LoadedModel<AsrAdapterModel> {
public:
    AsrAdapterWeights(const std::string & path, std::shared_ptr<Backend> backend);
};

struct AsrAdapterResult {
    int64_t n_groups = 0;
    std::vector<float> features;    // n_groups rows of n_embd
    std::vector<float> ilt_input;   // n_groups · group_size rows of d (only with keep_stages)
    std::vector<float> ilt_output;  // same, after the final norm, before any is_speech masking
};

class AsrAdapterSession {
public:
    explicit AsrAdapterSession(std::shared_ptr<const AsrAdapterWeights> weights);
    ~AsrAdapterSession();
    AsrAdapterSession(const AsrAdapterSession &) = delete;
    AsrAdapterSession & operator=(const AsrAdapterSession &) = delete;

    // codes: n_frames rows of n_channels ids, row-major ([4·G, 8] in time
    // order); n_frames must be a multiple of group_size. Every id must be in
    // [0, speech_vocab_c); ids equal to the channel's empty id contribute
    // nothing. Raises InvalidArgument otherwise.
    AsrAdapterResult run(const int32_t * codes, int64_t n_frames, bool keep_stages);

    const AsrAdapterWeights & weights() const { return *weights_; }

    // groups per graph: bounds the activation memory of very long inputs
    static constexpr int64_t kMaxGroupsPerGraph = 256;

private:
    struct Graph;
    Graph & prepare(int64_t n_groups);
    void run_chunk(const int32_t * codes, int64_t n_groups, bool keep_stages, AsrAdapterResult & out);

    std::shared_ptr<const AsrAdapterWeights> weights_;
    ggml_backend_sched_t sched_ = nullptr;
    std::unique_ptr<Graph> graph_;  // the last graph, kept for reuse
};

}  // namespace mimo
