// The MiMo-V2 MoE text backbone (MiMo-V2-Flash, V2.5, V2.5-Pro; llama.cpp
// arch `mimo2`, spec moe.md): hyper-parameters from the mimo2 keys, tensors
// by llama.cpp's names (fused or separate QKV per layer, optional sinks,
// dense or MoE MLP per layer), and the forward graph over a KV cache whose
// full-attention layers and sliding-window layers are addressed separately
// (a SWA layer's cache is a ring; the session owns the slot bookkeeping).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/decoder.h"
#include "core/gguf_file.h"
#include "core/kv_cache.h"
#include "core/weights.h"
#include "ggml.h"

namespace mimo {

struct Mimo2HParams {
    int64_t n_layer = 0;        // decoder blocks run (MTP blocks excluded)
    int64_t n_nextn = 0;        // MTP blocks after them (mimo2.nextn_predict_layers)
    int64_t n_embd = 0;
    int64_t n_vocab = 0;
    int64_t n_ff = 0;           // dense MLP width
    int64_t n_ff_exp = 0;       // per-expert width
    int64_t n_expert = 0;
    int64_t n_expert_used = 0;
    int64_t n_ctx_train = 0;
    int64_t head_dim_k = 192;   // q/k head dim
    int64_t head_dim_v = 128;
    int64_t n_rot = 64;         // rotated dims of each q/k head (NeoX, partial)
    std::vector<int64_t> n_head;     // per block (trunk layers, then MTP blocks)
    std::vector<int64_t> n_head_kv;  // per block
    std::vector<uint8_t> swa;        // per block: 1 = sliding-window attention
    float rope_base = 0.0f;          // full layers
    float rope_base_swa = 0.0f;      // SWA layers
    float rms_eps = 1e-5f;
    float value_scale = 1.0f;        // multiplies V (spec §3.1)
    bool expert_weights_norm = true;
    float expert_weights_scale = 1.0f;
    int64_t sliding_window = 128;    // file key: previous tokens (informational)
    int64_t window_keys = 129;       // keys a SWA query sees, itself included (spec §3.3)
    int64_t leading_dense = -1;      // -1: not in the file (decided from the tensors)
    int swa_sinks = -1;              // -1 absent, else 0/1: SWA layers must carry attn_sinks
    int full_sinks = -1;
    int64_t eos_token_id = -1;

    static Mimo2HParams from_gguf(const GgufFile & file);
    bool any_swa() const;
    bool any_full() const;
};

struct Mimo2Layer {
    ggml_tensor * attn_norm = nullptr;
    ggml_tensor * wqkv = nullptr;  // fused (n_embd, q + k + v rows) or nullptr
    ggml_tensor * wq = nullptr, * wk = nullptr, * wv = nullptr;
    ggml_tensor * wo = nullptr;
    ggml_tensor * sinks = nullptr;  // F32 (n_head) or nullptr
    ggml_tensor * ffn_norm = nullptr;
    // dense MLP
    ggml_tensor * gate = nullptr, * up = nullptr, * down = nullptr;
    // MoE
    ggml_tensor * router = nullptr;       // F32 (n_embd, n_expert)
    ggml_tensor * router_bias = nullptr;  // F32 (n_expert), selection only
    ggml_tensor * gate_exps = nullptr, * up_exps = nullptr, * down_exps = nullptr;
    bool moe() const { return router != nullptr; }
};

// What an MTP block has beyond a dense decoder block (spec mtp.md §1.2).
struct Mimo2NextnLayer {
    ggml_tensor * enorm = nullptr, * hnorm = nullptr;
    ggml_tensor * eh_proj = nullptr;   // (2H, H): [enorm(embedding); hnorm(hidden)] -> H
    ggml_tensor * out_norm = nullptr;  // before the shared head
};

class Mimo2Model : public DecoderModel {
public:
    // Declares every tensor with the store (loading happens in store.load());
    // the MTP blocks too when the file has them and load_mtp is set.
    Mimo2Model(const GgufFile & file, WeightStore & store, bool load_mtp = true);

    const Mimo2HParams & hparams() const { return hp_; }
    const Mimo2Layer & layer(int il) const { return layers_[size_t(il)]; }

    int64_t n_vocab() const override { return hp_.n_vocab; }
    int64_t n_embd() const override { return hp_.n_embd; }
    int64_t n_ctx_train() const override { return hp_.n_ctx_train; }
    int64_t n_layer() const override { return hp_.n_layer; }
    bool has_full_layers() const override { return hp_.any_full(); }
    bool has_swa_layers() const override { return hp_.any_swa(); }
    int64_t default_window_keys() const override { return hp_.window_keys; }
    bool is_swa_layer(size_t il) const override { return hp_.swa[il] != 0; }
    // KV layout: full layers hold n_ctx positions, SWA layers a ring of swa_slots.
    std::vector<KvLayerShape> kv_shapes(int64_t n_ctx, int64_t swa_slots) const override;
    size_t max_graph_nodes() const override { return size_t(160 * hp_.n_layer + 512); }
    DecoderOutputs build(ggml_context * ctx, ggml_cgraph * gf, const DecoderInputs & in,
                         const KvCache & kv) const override;

    // MTP blocks loaded (0: none in the file, or not asked for).
    int64_t n_mtp() const { return int64_t(nextn_.size()); }
    // Their caches, n_slots positions each (layer k of the cache = MTP block k).
    std::vector<KvLayerShape> mtp_kv_shapes(int64_t n_slots) const;
    // MTP block k over rows (target hidden, token): in.embeddings holds the
    // hidden rows (H, T), in.tokens the tokens, and positions / slots_swa /
    // mask_swa / n_kv_swa address layer k of kv as a sliding-window layer.
    // Returns the logits (n_vocab, 1) of the last row.
    ggml_tensor * build_mtp(ggml_context * ctx, ggml_cgraph * gf, int k, const DecoderInputs & in,
                            const KvCache & kv) const;
    // The tensors a drafter borrows from the target (spec dflash.md §4).
    ggml_tensor * token_embd() const { return tok_embd_; }
    ggml_tensor * output() const { return output_; }

private:
    void declare_layer(const GgufFile & file, WeightStore & store, int il);
    // block il's attention; its K/V go to layer kv_layer of kv
    ggml_tensor * attention_block(ggml_context * ctx, ggml_cgraph * gf, ggml_tensor * h, int il, size_t kv_layer,
                                  const DecoderInputs & in, const KvCache & kv) const;
    ggml_tensor * moe_block(ggml_context * ctx, ggml_tensor * h, const Mimo2Layer & L) const;

    Mimo2HParams hp_;
    ggml_tensor * tok_embd_ = nullptr;
    ggml_tensor * output_norm_ = nullptr;
    ggml_tensor * output_ = nullptr;
    std::vector<Mimo2Layer> layers_;  // trunk layers, then the MTP blocks' decoder parts
    std::vector<Mimo2NextnLayer> nextn_;
};

}  // namespace mimo
