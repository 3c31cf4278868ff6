// The audio adapter of MiMo-V2.5-ASR (spec asr.md §9–§10): per-channel
// speech embeddings summed per code frame, the "input local transformer"
// (a small bidirectional Qwen2 stack run on each group of 4 frames) and the
// group downcast to the LM width. Hyper-parameters come from the
// mimo_asr.audio.* keys (spec defaults where CrispASR's files lack a key),
// the RMSNorm eps and RoPE base from mimo_asr.llm.*, tensors from the
// audio.* names of the mimo_asr table.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/gguf_file.h"
#include "core/weights.h"
#include "ggml.h"

namespace mimo {

struct AsrAdapterHParams {
    int64_t n_channels = 8;
    int64_t group_size = 4;     // code frames per LM position
    int64_t n_layer = 6;        // input local transformer layers
    int64_t d = 1024;           // input local transformer width
    int64_t n_head = 64;
    int64_t head_dim = 16;
    int64_t n_ff = 4096;
    int64_t n_embd = 4096;      // LM hidden size (the downcast's output)
    float rms_eps = 1e-6f;      // the LM's
    float rope_theta = 640000.0f;  // the LM's
    bool full_attention = true;    // bidirectional inside a group (false: causal)
    std::vector<int64_t> speech_vocab;  // rows of each channel's table
    std::vector<int64_t> empty_ids;     // each channel's "no code" id

    static AsrAdapterHParams from_gguf(const GgufFile & file);
};

struct AsrAdapterLayer {
    ggml_tensor * attn_norm = nullptr;
    ggml_tensor * wq = nullptr, * bq = nullptr;
    ggml_tensor * wk = nullptr, * bk = nullptr;
    ggml_tensor * wv = nullptr, * bv = nullptr;
    ggml_tensor * wo = nullptr;  // no bias
    ggml_tensor * ffn_norm = nullptr;
    ggml_tensor * gate = nullptr, * up = nullptr, * down = nullptr;
};

// Nodes of one adapter graph over G groups (N = group_size · G frames).
struct AsrAdapterGraph {
    int64_t n_groups = 0;
    ggml_tensor * codes = nullptr;      // input I32 (N · channels): channel-major, frame index fastest
    ggml_tensor * positions = nullptr;  // input I32 (N): 0..group_size-1 repeated
    ggml_tensor * mask = nullptr;       // input F32 (group_size, group_size) or nullptr (bidirectional)
    ggml_tensor * ilt_input = nullptr;  // (d, N): summed speech embeddings
    ggml_tensor * ilt_output = nullptr; // (d, N): after the final RMSNorm
    ggml_tensor * features = nullptr;   // (n_embd, G)
};

class AsrAdapterModel {
public:
    // Registers every adapter tensor with the store (loading happens in
    // store.load()); call finish_load() afterwards. A file without the
    // adapter (an LM-only conversion) raises ModelLoadError.
    AsrAdapterModel(const GgufFile & file, WeightStore & store);

    // After the weights are loaded: zero each table's row at its empty id,
    // so a gather of that id contributes nothing (spec §9 step 3 masks it).
    void finish_load();

    const AsrAdapterHParams & hparams() const { return hp_; }

    AsrAdapterGraph build(ggml_context * ctx, ggml_cgraph * gf, int64_t n_groups) const;

    // graph nodes per ILT layer, for sizing graph contexts
    static constexpr size_t kNodesPerLayer = 48;
    size_t max_nodes() const { return size_t(hp_.n_layer) * kNodesPerLayer + size_t(hp_.n_channels) * 4 + 64; }

private:
    AsrAdapterHParams hp_;
    std::string path_;
    std::vector<ggml_tensor *> emb_;  // (d, speech_vocab_c), host memory
    std::vector<AsrAdapterLayer> layers_;
    ggml_tensor * norm_ = nullptr;
    ggml_tensor * group_proj_ = nullptr;  // (group_size · d, n_embd)
};

}  // namespace mimo
