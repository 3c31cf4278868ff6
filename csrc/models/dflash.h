// The DFlash block-diffusion drafter (spec dflash.md): a few Qwen3-style
// layers that see the target's captured hidden states as injected context
// K/V and propose a block of tokens in one non-causal forward. It has no
// embedding table or head of its own: both are the target's (mimo2) tensors.
#pragma once

#include <cstdint>
#include <vector>

#include "core/gguf_file.h"
#include "core/kv_cache.h"
#include "core/weights.h"
#include "ggml.h"

namespace mimo {

class Mimo2Model;

struct DflashHParams {
    int64_t n_layer = 0, n_embd = 0, n_ff = 0, n_head = 0, n_head_kv = 0;
    int64_t head_dim_k = 128, head_dim_v = 128, n_rot = 64, n_ctx_train = 0;
    float rms_eps = 1e-6f, rope_base = 10000.0f, value_scale = 1.0f;
    float backbone_rope_base = 0.0f;  // 0: not in the file (informational, spec §3.4)
    bool causal = false;
    int64_t window_keys = 0;          // keys a query sees, itself included; 0: no window
    int64_t block_size = 8;
    int64_t mask_token_id = -1;
    std::vector<int64_t> target_layers;  // captured target layers, in feature order
    int64_t n_target_features = 0;       // fc input width
    int64_t n_target_layers = 0;         // 0: not in the file

    static DflashHParams from_gguf(const GgufFile & file);
};

struct DflashLayer {
    ggml_tensor * attn_norm = nullptr, * wq = nullptr, * wk = nullptr, * wv = nullptr, * wo = nullptr;
    ggml_tensor * q_norm = nullptr, * k_norm = nullptr, * sinks = nullptr;
    ggml_tensor * ffn_norm = nullptr, * gate = nullptr, * up = nullptr, * down = nullptr;
};

// How one drafter session runs the model (spec dflash.md: defaults from the
// file, each overridable because the sources disagree).
struct DflashRun {
    int64_t window_keys = 0;       // 0: no window
    bool causal = false;
    float rope_base_ctx = 0.0f;    // context keys' RoPE base
    float rope_base_block = 0.0f;  // block queries' and keys' base
};

class DflashModel {
public:
    DflashModel(const GgufFile & file, WeightStore & store);

    const DflashHParams & hparams() const { return hp_; }
    const DflashLayer & layer(int il) const { return layers_[size_t(il)]; }
    ggml_tensor * mask_embd() const { return mask_embd_; }
    // Raises ModelLoad unless this drafter was made for `target` (feature
    // width, captured layer ids, the mask id inside the vocabulary).
    void check_target(const Mimo2Model & target, const std::string & path) const;
    DflashRun default_run() const;

    std::vector<KvLayerShape> kv_shapes(int64_t n_slots) const;
    size_t max_graph_nodes() const { return size_t(64 * hp_.n_layer + 256); }

    // Context injection (spec §3.1): captured target features (F32
    // (n_target_features, m)) become K/V rows of every layer, written at
    // `slots` with RoPE at `positions`.
    void build_inject(ggml_context * ctx, ggml_cgraph * gf, ggml_tensor * features, ggml_tensor * positions,
                      ggml_tensor * slots, const KvCache & kv, const DflashRun & run) const;
    // The block forward (spec §3.2): rows h0 (F32 (H, k + 1)) at `positions`
    // write their K/V at `slots`, attend the first n_kv cache slots under
    // mask (n_kv, k + 1); returns the logits (n_vocab, k) of rows 1..k
    // through the target's head.
    ggml_tensor * build_block(ggml_context * ctx, ggml_cgraph * gf, ggml_tensor * h0, ggml_tensor * positions,
                              ggml_tensor * slots, ggml_tensor * mask, int64_t n_kv, const KvCache & kv,
                              ggml_tensor * head, const DflashRun & run) const;

private:
    DflashHParams hp_;
    ggml_tensor * fc_ = nullptr, * hidden_norm_ = nullptr, * output_norm_ = nullptr, * mask_embd_ = nullptr;
    std::vector<DflashLayer> layers_;
};

}  // namespace mimo
