// MiMo-V2.5-ASR as one loaded model shared by many sessions.
//
// AsrLmWeights: a mimo_asr GGUF opened once, with the audio adapter and the
// Qwen2 LM declared in one weight store (either part may be left out for the
// low-level handles). AsrModel: those plus the audio tokenizer, on one
// Backend; immutable after loading and safe to share between threads.
// AsrSession: the per-request state on an AsrModel (the tokenizer and
// adapter runners, the LM's decode session) and the whole clip pipeline in
// one call: log-mel chunks -> codes -> adapter features -> one prefill whose
// rows join the prompt's text embeddings with the features inside the graph
// -> the decode loop. Python keeps the edges (audio, mel, prompt strings,
// text); codes, features and logits stay here.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/loaded_model.h"
#include "models/asr_adapter.h"
#include "models/qwen2.h"
#include "sessions/asr_adapter_session.h"
#include "sessions/audio_tokenizer_session.h"
#include "sessions/decode_session.h"
#include "sessions/token_generator.h"

namespace mimo {

struct AsrLmParts {
    std::unique_ptr<AsrAdapterModel> adapter;  // null when not loaded
    std::unique_ptr<Qwen2Model> lm;            // null when not loaded
};

class AsrLmWeights : public LoadedModel<AsrLmParts> {
public:
    AsrLmWeights(const std::string & path, std::shared_ptr<Backend> backend, bool with_adapter, bool with_lm);
    const AsrAdapterModel & adapter() const;  // InvalidArgument when not loaded
    const Qwen2Model & lm() const;
    bool has_adapter() const { return model_->adapter != nullptr; }
};

class AsrModel {
public:
    AsrModel(const std::string & model_path, const std::string & tokenizer_path, std::shared_ptr<Backend> backend,
             const AudioTokenizerOptions & tokenizer_options = {});

    const std::shared_ptr<Backend> & backend() const { return backend_; }
    const std::shared_ptr<const AsrLmWeights> & lm_weights() const { return lm_; }
    const std::shared_ptr<const AudioTokenizerWeights> & tokenizer() const { return tokenizer_; }
    const AsrAdapterHParams & adapter_hparams() const { return lm_->adapter().hparams(); }
    const Qwen2HParams & lm_hparams() const { return lm_->lm().hparams(); }
    size_t bytes() const { return lm_->bytes() + tokenizer_->bytes(); }
    std::map<std::string, size_t> bytes_by_device() const {
        auto out = lm_->bytes_by_device();
        for (const auto & kv : tokenizer_->bytes_by_device()) out[kv.first] += kv.second;
        return out;
    }

private:
    std::shared_ptr<Backend> backend_;
    std::shared_ptr<const AsrLmWeights> lm_;
    std::shared_ptr<const AudioTokenizerWeights> tokenizer_;
};

// One tokenizer chunk's log-mel: t_mel rows of n_mels floats, time-major.
struct MelChunk {
    const float * data = nullptr;
    int64_t t_mel = 0;
};

struct AsrClipRequest {
    std::vector<MelChunk> mels;     // the clip's independent 30 s tokenizer chunks, in order
    std::vector<int32_t> prefix;    // prompt ids before the audio groups
    std::vector<int32_t> suffix;    // prompt ids after them
    GenerationOptions generation;   // max_tokens is capped by the context left after the prompt
};

struct AsrClipResult {
    int64_t n_frames = 0;            // code frames (before padding to whole groups)
    int64_t n_groups = 0;            // audio groups (LM positions of the audio)
    int64_t n_prompt = 0;            // LM positions of the whole prompt
    std::vector<int32_t> codes;      // n_frames x channels
    std::vector<int32_t> tokens;     // generated ids, without a final stop id
    std::vector<float> logprobs;     // one per sampled id, the stop id's included
    FinishReason finish = FinishReason::None;
    double encode_s = 0, prefill_s = 0, decode_s = 0;
};

struct AsrClipStages {
    std::vector<int32_t> codes;       // padded codes, n_groups * group_size x channels
    AsrAdapterResult adapter;         // ilt_input, ilt_output, features
    std::vector<float> inputs;        // every prompt row's LM input, n_prompt x n_embd
    std::vector<float> last_hidden;   // n_embd
    std::vector<float> logits;        // n_vocab: the first step's
    int64_t n_groups = 0, n_prompt = 0;
};

// Called between pipeline stages (token < 0) and after every sampled token;
// returning false cancels (GenerationCancelled). May throw to abort.
using AsrProgress = std::function<bool(int32_t token)>;
// The same for batched transcription, naming the clip (its index in the request list).
using AsrBatchProgress = std::function<bool(int64_t clip, int32_t token)>;
struct AsrClipResult;
// Called as each clip of a batch finishes (in finishing order).
using AsrClipDone = std::function<void(int64_t clip, const AsrClipResult & result)>;

class AsrSession {
public:
    AsrSession(std::shared_ptr<const AsrModel> model, int64_t n_ctx, ggml_type kv_type);

    AsrClipResult transcribe(const AsrClipRequest & request, const AsrProgress & progress = nullptr);
    AsrClipStages stages(const AsrClipRequest & request);
    // Several clips decoded together: up to batch_size sequences share every
    // LM step (each with n_ctx_seq positions), prompts of newly admitted
    // clips are prefilled in one graph, and a finished clip's place goes to
    // the next waiting one (continuous batching). Results in request order;
    // each clip's phase times are its share of the batch's.
    std::vector<AsrClipResult> transcribe_batch(const std::vector<AsrClipRequest> & requests, int64_t batch_size,
                                                int64_t n_ctx_seq, const AsrBatchProgress & progress = nullptr,
                                                const AsrClipDone & done = nullptr);

    const AsrModel & model() const { return *model_; }
    const DecodeSession & lm() const { return lm_; }

private:
    // codes of the chunks, padded to whole groups by repeating the last frame (spec asr §7)
    std::vector<int32_t> encode(const std::vector<MelChunk> & mels, int64_t & n_frames, const AsrProgress & progress);
    std::vector<int32_t> prompt_rows(const AsrClipRequest & request, int64_t n_groups) const;
    // codes and adapter features of a clip, with its result's codes and sizes filled in
    AsrAdapterResult encode_clip(const AsrClipRequest & request, AsrClipResult & out, const AsrProgress & progress);
    GenerationOptions generation_for(const AsrClipRequest & request, const AsrClipResult & clip, int64_t n_ctx) const;

    std::shared_ptr<const AsrModel> model_;
    AudioTokenizerSession tokenizer_;
    AsrAdapterSession adapter_;
    DecodeSession lm_;
    std::unique_ptr<DecodeSession> batch_lm_;  // made on first batched use, grown when a batch needs more
};

}  // namespace mimo
