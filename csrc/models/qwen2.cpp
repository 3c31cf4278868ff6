#include "models/qwen2.h"

#include <cmath>

#include "core/errors.h"
#include "core/graph.h"
#include "models/mimo_asr_names.h"

namespace mimo {

namespace n = names::asr;

Qwen2HParams Qwen2HParams::from_gguf(const GgufFile & f, const std::string & p) {
    namespace L = limits;
    Qwen2HParams hp;
    hp.n_embd = f.integer_in(p + "hidden_size", 1, L::kMaxWidth);
    hp.n_layer = f.integer_in(p + "num_layers", 1, L::kMaxLayers);
    f.check_blocks(p + "num_layers", hp.n_layer, n::kLayerFmt);  // before anything is sized by it
    hp.n_head = f.integer_in(p + "num_heads", 1, L::kMaxHeads);
    hp.n_head_kv = f.integer_in(p + "num_kv_heads", 1, L::kMaxHeads);
    hp.n_ff = f.integer_in(p + "intermediate_size", 1, L::kMaxFfn);
    hp.n_vocab = f.integer_in(p + "vocab_size", 1, L::kMaxVocab);
    f.check_vocabulary(hp.n_vocab);
    hp.n_ctx_train = f.integer_in_or(p + "max_position_embeddings", 8192, 1, L::kMaxContext);
    hp.rope_theta = f.f32_in(p + "rope_theta", 0.0f, L::kMaxRopeTheta);
    hp.rms_eps = f.f32_in_or(p + "rms_norm_eps", 1e-6f, 0.0f, L::kMaxNormEps);
    if (hp.n_embd % hp.n_head != 0 || hp.n_head % hp.n_head_kv != 0) {
        fail(ErrorKind::ModelLoad,
             strfmt("%s: inconsistent LM hyper-parameters (hidden %lld, heads %lld, kv heads %lld): the hidden size "
                    "must split into the heads and the heads into KV groups",
                    f.path().c_str(), (long long) hp.n_embd, (long long) hp.n_head, (long long) hp.n_head_kv));
    }
    hp.head_dim = f.integer_in_or(p + "head_dim", hp.n_embd / hp.n_head, 2, L::kMaxHeadDim);
    if (hp.head_dim % 2 != 0) f.fail_key(p + "head_dim", strfmt("= %lld must be even (RoPE rotates pairs)", (long long) hp.head_dim));
    return hp;
}

Qwen2Model::Qwen2Model(const GgufFile & file, WeightStore & store, const std::string & key_prefix)
    : hp_(Qwen2HParams::from_gguf(file, key_prefix)) {
    const int64_t d = hp_.n_embd, q_rows = hp_.n_head * hp_.head_dim, kv_rows = hp_.n_head_kv * hp_.head_dim;
    const Role mm = Role::Matmul, vec = Role::Float;
    // The embedding table is row-gathered: keep it in host memory so GPU
    // runs need no get_rows kernel for quantized types.
    tok_embd_ = store.require(n::kEmbed, {d, hp_.n_vocab}, Role::Rows);
    final_norm_ = store.require(n::kFinalNorm, {d}, vec);
    lm_head_ = store.require(n::kLmHead, {d, hp_.n_vocab}, mm);
    layers_.resize(size_t(hp_.n_layer));
    store.layer_stack(n::kLayerFmt, hp_.n_layer);
    char prefix[64];
    for (int il = 0; il < hp_.n_layer; ++il) {
        std::snprintf(prefix, sizeof(prefix), n::kLayerFmt, il);
        const std::string p = prefix;
        Qwen2Layer & L = layers_[size_t(il)];
        L.attn_norm = store.require(p + n::kAttnNorm, {d}, vec);
        if (store.file_has(p + n::kQkvW)) {
            L.wqkv = store.require(p + n::kQkvW, {d, q_rows + 2 * kv_rows}, mm);
            L.bqkv = store.require(p + n::kQkvB, {q_rows + 2 * kv_rows}, vec);
        } else {
            L.wq = store.require(p + n::kQW, {d, q_rows}, mm);
            L.bq = store.require(p + n::kQB, {q_rows}, vec);
            L.wk = store.require(p + n::kKW, {d, kv_rows}, mm);
            L.bk = store.require(p + n::kKB, {kv_rows}, vec);
            L.wv = store.require(p + n::kVW, {d, kv_rows}, mm);
            L.bv = store.require(p + n::kVB, {kv_rows}, vec);
        }
        L.wo = store.require(p + n::kOW, {q_rows, d}, mm);
        L.ffn_norm = store.require(p + n::kFfnNorm, {d}, vec);
        L.gate = store.require(p + n::kGate, {d, hp_.n_ff}, mm);
        L.up = store.require(p + n::kUp, {d, hp_.n_ff}, mm);
        L.down = store.require(p + n::kDown, {hp_.n_ff, d}, mm);
    }
}

std::vector<KvLayerShape> Qwen2Model::kv_shapes(int64_t n_ctx, int64_t) const {
    const int64_t w = hp_.n_head_kv * hp_.head_dim;
    std::vector<KvLayerShape> out;
    for (const Qwen2Layer & L : layers_) out.push_back(KvLayerShape{w, w, hp_.head_dim, n_ctx, L.wo});
    return out;
}

DecoderOutputs Qwen2Model::build(ggml_context * ctx, ggml_cgraph * gf, const DecoderInputs & in,
                                 const KvCache & kv) const {
    const int64_t hd = hp_.head_dim, T = in.positions->ne[0];
    const int64_t q_rows = hp_.n_head * hd, kv_rows = hp_.n_head_kv * hd;
    const float scale = 1.0f / std::sqrt(float(hd));
    if (!in.capture.empty()) fail(ErrorKind::UnsupportedModel, "layer capture (speculative drafting) needs a mimo2 model");

    ggml_tensor * inputs = decoder_input_rows(ctx, tok_embd_, in);
    ggml_tensor * x = inputs;
    for (int il = 0; il < hp_.n_layer; ++il) {
        const Qwen2Layer & L = layers_[size_t(il)];
        ggml_tensor * h = rms_norm(ctx, x, L.attn_norm, hp_.rms_eps);
        ggml_tensor *q, *k, *v;
        if (L.wqkv) {
            ggml_tensor * qkv = linear(ctx, h, L.wqkv, L.bqkv);  // (q + 2 kv, T)
            const size_t es = ggml_element_size(qkv);
            q = ggml_view_3d(ctx, qkv, hd, hp_.n_head, T, hd * es, qkv->nb[1], 0);
            k = ggml_view_3d(ctx, qkv, hd, hp_.n_head_kv, T, hd * es, qkv->nb[1], q_rows * es);
            v = ggml_view_2d(ctx, qkv, kv_rows, T, qkv->nb[1], (q_rows + kv_rows) * es);
        } else {
            q = ggml_reshape_3d(ctx, linear(ctx, h, L.wq, L.bq), hd, hp_.n_head, T);
            k = ggml_reshape_3d(ctx, linear(ctx, h, L.wk, L.bk), hd, hp_.n_head_kv, T);
            v = linear(ctx, h, L.wv, L.bv);
        }
        q = rope_neox(ctx, q, in.positions, hd, hp_.rope_theta);
        k = rope_neox(ctx, k, in.positions, hd, hp_.rope_theta);
        ggml_tensor * mask = in.mask_full;
        if (il == hp_.n_layer - 1 && in.out_rows) {
            // every row's K/V is cached by this layer; past it only the rows whose outputs are wanted
            // matter, so the last layer's attention, projection and FFN run on those alone
            q = ggml_reshape_3d(ctx, gather_rows(ctx, ggml_reshape_2d(ctx, q, hd * hp_.n_head, T), in.out_rows), hd,
                                hp_.n_head, in.n_out);
            mask = ggml_cast(ctx, gather_rows(ctx, in.mask_full, in.out_rows), GGML_TYPE_F16);  // attention takes F16
            x = gather_rows(ctx, x, in.out_rows);
        }
        ggml_tensor * attn =
            cached_attention(ctx, gf, kv, size_t(il), q, k, v, in.slots_full, in.n_kv_full, mask, scale);
        x = ggml_add(ctx, x, linear(ctx, attn, L.wo));
        h = rms_norm(ctx, x, L.ffn_norm, hp_.rms_eps);
        x = ggml_add(ctx, x, swiglu_ffn(ctx, h, L.gate, L.up, L.down));
    }
    // Only the positions that need logits go through the final norm and head.
    return decoder_outputs(ctx, gf, in, inputs, rms_norm(ctx, x, final_norm_, hp_.rms_eps), lm_head_);
}

}  // namespace mimo
