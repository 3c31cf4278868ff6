// The Qwen2 decoder of MiMo-V2.5-ASR (spec asr.md §11): hyper-parameters
// from GGUF keys, tensors by the mimo_asr name table (fused or separate QKV,
// decided per layer), and the forward graph over a KV cache.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
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

// Inputs of one forward graph, created by the session in the graph context.
struct LmGraphInputs {
    ggml_tensor * tokens = nullptr;      // I32 (T) — or:
    ggml_tensor * embeddings = nullptr;  // F32 (n_embd, T)
    ggml_tensor * positions = nullptr;   // I32 (T)
    ggml_tensor * slots = nullptr;       // I64 (T): KV rows written
    ggml_tensor * mask = nullptr;        // F16 (n_kv, T)
    int64_t n_kv = 0;                    // cache rows the graph reads
    int64_t n_out = 1;                   // last n_out positions get logits
};

struct LmGraphOutputs {
    ggml_tensor * logits = nullptr;  // (n_vocab, n_out)
    ggml_tensor * hidden = nullptr;  // (n_embd, n_out), after the final norm
};

class Qwen2Model {
public:
    // Registers every LM tensor with the store (loading happens in store.load()).
    Qwen2Model(const GgufFile & file, WeightStore & store, const std::string & key_prefix);

    const Qwen2HParams & hparams() const { return hp_; }
    bool fused_qkv(int layer) const { return layers_[size_t(layer)].wqkv != nullptr; }
    std::vector<KvLayerShape> kv_shapes(int64_t n_ctx) const;

    ggml_tensor * embed_tokens(ggml_context * ctx, ggml_tensor * ids) const;
    LmGraphOutputs build(ggml_context * ctx, ggml_cgraph * gf, const LmGraphInputs & in, const KvCache & kv) const;

private:
    Qwen2HParams hp_;
    ggml_tensor * tok_embd_ = nullptr;
    ggml_tensor * final_norm_ = nullptr;
    ggml_tensor * lm_head_ = nullptr;
    std::vector<Qwen2Layer> layers_;
};

}  // namespace mimo
