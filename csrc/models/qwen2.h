// The Qwen2 decoder of MiMo-V2.5-ASR (spec asr.md §11): hyper-parameters
// from GGUF keys, tensors by the mimo_asr name table (fused or separate QKV,
// decided per layer), and the forward graph over a KV cache.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/decoder.h"
#include "core/gguf_file.h"
#include "core/kv_cache.h"
#include "core/weights.h"
#include "ggml.h"

namespace mimo {

struct Qwen2HParams {
    int64_t n_embd = 0;
    int64_t n_layer = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t head_dim = 0;
    int64_t n_ff = 0;
    int64_t n_vocab = 0;
    int64_t n_ctx_train = 0;
    float rope_theta = 0.0f;
    float rms_eps = 0.0f;

    static Qwen2HParams from_gguf(const GgufFile & file, const std::string & key_prefix);
};

struct Qwen2Layer {
    ggml_tensor * attn_norm = nullptr;
    ggml_tensor * wqkv = nullptr;  // fused (n_embd, q + k + v rows) or nullptr
    ggml_tensor * bqkv = nullptr;
    ggml_tensor * wq = nullptr, * bq = nullptr;
    ggml_tensor * wk = nullptr, * bk = nullptr;
    ggml_tensor * wv = nullptr, * bv = nullptr;
    ggml_tensor * wo = nullptr;
    ggml_tensor * ffn_norm = nullptr;
    ggml_tensor * gate = nullptr, * up = nullptr, * down = nullptr;
};

// Full causal attention in every layer (no sliding window).
class Qwen2Model : public DecoderModel {
public:
    // Registers every LM tensor with the store (loading happens in store.load()).
    Qwen2Model(const GgufFile & file, WeightStore & store, const std::string & key_prefix);

    const Qwen2HParams & hparams() const { return hp_; }
    bool fused_qkv(int layer) const { return layers_[size_t(layer)].wqkv != nullptr; }

    int64_t n_vocab() const override { return hp_.n_vocab; }
    int64_t n_embd() const override { return hp_.n_embd; }
    int64_t n_ctx_train() const override { return hp_.n_ctx_train; }
    int64_t n_layer() const override { return hp_.n_layer; }
    bool has_full_layers() const override { return true; }
    bool has_swa_layers() const override { return false; }
    bool is_swa_layer(size_t) const override { return false; }
    std::vector<KvLayerShape> kv_shapes(int64_t n_ctx, int64_t swa_slots) const override;
    size_t max_graph_nodes() const override { return size_t(64 * hp_.n_layer + 512); }
    DecoderOutputs build(ggml_context * ctx, ggml_cgraph * gf, const DecoderInputs & in,
                         const KvCache & kv) const override;

private:
    Qwen2HParams hp_;
    ggml_tensor * tok_embd_ = nullptr;
    ggml_tensor * final_norm_ = nullptr;
    ggml_tensor * lm_head_ = nullptr;
    std::vector<Qwen2Layer> layers_;
};

}  // namespace mimo
