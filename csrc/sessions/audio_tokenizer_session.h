// The audio tokenizer as a loaded, immutable object (AudioTokenizerWeights)
// and the per-caller runner over it (AudioTokenizerSession: schedulers and
// the reusable encoder graph). One call encodes one 30 s chunk's log-mel
// (computed by the Python front-end) into RVQ codes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/gguf_file.h"
#include "core/loaded_model.h"
#include "core/weights.h"
#include "models/audio_tokenizer.h"

namespace mimo {

class AudioTokenizerWeights : public LoadedModel<AudioTokenizerModel> {
public:
    AudioTokenizerWeights(const std::string & path, std::shared_ptr<Backend> backend,
                          const AudioTokenizerOptions & options = {});
    size_t bytes() const { return store_->bytes() + model_->derived_bytes(); }
    // the derived tables live on the first device
    std::map<std::string, size_t> bytes_by_device() const {
        auto out = store_->bytes_by_device();
        if (model_->derived_bytes()) out[ggml_backend_dev_name(backend_->device())] += model_->derived_bytes();
        return out;
    }
};

// One intermediate result: rows × cols floats, row-major ([T, d] for the
// encoder stages).
struct TokenizerStage {
    std::string name;
    int64_t rows = 0, cols = 0;
    std::vector<float> data;
};

struct TokenizerResult {
    int64_t n_frames = 0;     // T_code
    int64_t n_codebooks = 0;  // RVQ stages
    std::vector<int32_t> codes;  // n_frames × n_codebooks, row-major
    // second-smallest minus smallest squared distance of every code (how
    // close the choice was to a tie); n_frames × n_codebooks
    std::vector<float> gaps;
    std::vector<TokenizerStage> stages;  // only when asked for
};

class AudioTokenizerSession {
public:
    explicit AudioTokenizerSession(std::shared_ptr<const AudioTokenizerWeights> weights);
    ~AudioTokenizerSession();
    AudioTokenizerSession(const AudioTokenizerSession &) = delete;
    AudioTokenizerSession & operator=(const AudioTokenizerSession &) = delete;

    // mel: t_mel rows of n_mels floats (time-major, as mimo_ggml.audio.log_mel
    // returns). keep_stages also returns conv1/conv2/every layer/xfmr/pool
    // outputs (more memory: nothing is overwritten in place).
    TokenizerResult encode_mel(const float * mel, int64_t t_mel, bool keep_stages);

    const AudioTokenizerWeights & weights() const { return *weights_; }

    // 60 s of mel frames (the older MiMo-Audio segment length) plus slack;
    // the 30 s chunking of spec §3 gives at most 3004.
    static constexpr int64_t kMaxMelFrames = 6100;

private:
    struct Graph;
    Graph & prepare(int64_t t_mel, bool keep_stages);
    void quantize(const std::vector<float> & pooled, int64_t t_code, TokenizerResult & out);

    std::shared_ptr<const AudioTokenizerWeights> weights_;
    std::unique_ptr<Scheduler> sched_enc_;
    std::unique_ptr<Scheduler> sched_rvq_;
    std::unique_ptr<Graph> graph_;  // the last encoder graph, kept for reuse
};

}  // namespace mimo
