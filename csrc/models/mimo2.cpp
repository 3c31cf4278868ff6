#include "models/mimo2.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/errors.h"
#include "core/graph.h"
#include "core/log.h"
#include "models/mimo2_names.h"

namespace mimo {

namespace n = names::mimo2;

namespace {

// A per-layer value stored either as an array (one entry per block, MTP
// blocks included) or as a scalar that holds for every layer; each entry in
// [lo, hi]. Returns n_block entries: an array of trunk layers only gives the
// MTP blocks `mtp_fill` (< 0: the value of the last trunk layer).
std::vector<int64_t> per_layer(const GgufFile & f, const char * key, int64_t n_layer, int64_t n_block, int64_t lo,
                               int64_t hi, int64_t mtp_fill = -1) {
    std::vector<int64_t> out;
    if (f.is_array(key)) {
        out = f.int_array(key);
        if (int64_t(out.size()) != n_block && int64_t(out.size()) != n_layer) {
            fail(ErrorKind::ModelLoad, strfmt("%s: metadata key '%s' has %zu entries for %lld blocks", f.path().c_str(),
                                              key, out.size(), (long long) n_block));
        }
        for (size_t i = 0; i < out.size(); ++i) {
            if (out[i] < lo || out[i] > hi) {
                f.fail_key(key, strfmt("entry %zu = %lld is out of range; it must be in [%lld, %lld]", i,
                                       (long long) out[i], (long long) lo, (long long) hi));
            }
        }
        if (int64_t(out.size()) < n_block) out.resize(size_t(n_block), mtp_fill >= 0 ? mtp_fill : out.back());
    } else {
        out.assign(size_t(n_block), f.integer_in(key, lo, hi));
    }
    return out;
}

}  // namespace

Mimo2HParams Mimo2HParams::from_gguf(const GgufFile & f) {
    namespace L = limits;
    const std::string & path = f.path();
    Mimo2HParams hp;
    const int64_t n_block = f.integer_in(n::kKeyBlockCount, 1, L::kMaxLayers);
    const int64_t n_nextn = f.integer_in_or(n::kKeyNextnLayers, 0, 0, n_block - 1);
    hp.n_layer = n_block - n_nextn;
    hp.n_nextn = n_nextn;
    f.check_blocks(n::kKeyBlockCount, hp.n_layer, n::kLayerFmt);  // before anything is sized by it
    hp.n_embd = f.integer_in(n::kKeyEmbd, 1, L::kMaxWidth);
    hp.n_ff = f.integer_in_or(n::kKeyFf, 0, 0, L::kMaxFfn);  // 0: from the tensors
    hp.n_ctx_train = f.integer_in_or(n::kKeyContextLength, 0, 0, L::kMaxContext);
    hp.head_dim_k = f.integer_in_or(n::kKeyKeyLength, 192, 1, L::kMaxHeadDim);
    hp.head_dim_v = f.integer_in_or(n::kKeyValueLength, 128, 1, L::kMaxHeadDim);
    hp.n_rot = f.integer_in_or(n::kKeyRopeDims, 64, 2, hp.head_dim_k);

    hp.n_head = per_layer(f, n::kKeyHeads, hp.n_layer, n_block, 1, L::kMaxHeads);
    hp.n_head_kv = f.has_key(n::kKeyHeadsKv) ? per_layer(f, n::kKeyHeadsKv, hp.n_layer, n_block, 1, L::kMaxHeads)
                                             : hp.n_head;
    if (!f.is_array(n::kKeySwaPattern)) {
        fail(ErrorKind::ModelLoad, strfmt("%s lacks the per-layer array '%s' (1 = sliding-window layer) that every "
                                          "mimo2 file carries%s",
                                          path.c_str(), n::kKeySwaPattern,
                                          f.has_key(n::kKeySwaPattern)
                                              ? strfmt(" (it has one of type %s)",
                                                       f.type_description(n::kKeySwaPattern).c_str()).c_str()
                                              : ""));
    }
    // MTP blocks are sliding-window layers (spec mtp.md §1.3)
    const std::vector<int64_t> pattern = per_layer(f, n::kKeySwaPattern, hp.n_layer, n_block, 0, 1, 1);
    for (int64_t v : pattern) hp.swa.push_back(v != 0 ? 1 : 0);

    hp.rope_base = f.f32_in(n::kKeyRopeBase, 0.0f, L::kMaxRopeTheta);
    hp.rope_base_swa = f.f32_in_or(n::kKeyRopeBaseSwa, hp.rope_base, 0.0f, L::kMaxRopeTheta);
    hp.rms_eps = f.f32_in_or(n::kKeyRmsEps, 1e-5f, 0.0f, L::kMaxNormEps);
    hp.value_scale = f.f32_in_or(n::kKeyValueScale, 1.0f, -1e6f, 1e6f, false);

    hp.n_expert = f.integer_in_or(n::kKeyExperts, 0, 0, L::kMaxExperts);
    hp.n_expert_used = f.integer_in_or(n::kKeyExpertsUsed, 0, 0, L::kMaxExperts);
    hp.n_ff_exp = f.integer_in_or(n::kKeyExpertFf, 0, 0, L::kMaxFfn);
    if (f.has_key(n::kKeyExpertGating) && f.integer(n::kKeyExpertGating) != n::kGatingSigmoid) {
        fail(ErrorKind::UnsupportedModel,
             strfmt("%s: expert_gating_func %lld is not supported; MiMo-V2 routes with sigmoid (%d)", path.c_str(),
                    (long long) f.integer(n::kKeyExpertGating), n::kGatingSigmoid));
    }
    hp.expert_weights_norm = f.boolean_or(n::kKeyExpertNorm, true);
    hp.expert_weights_scale = f.f32_in_or(n::kKeyExpertScale, 1.0f, 0.0f, 1e6f, false);
    if (!(hp.expert_weights_scale > 0.0f)) hp.expert_weights_scale = 1.0f;  // 0 / absent in llama.cpp = unset

    hp.sliding_window = f.integer_in_or(n::kKeySlidingWindow, 128, 0, L::kMaxContext);
    hp.window_keys = f.integer_in_or(n::kKeyWindowKeys, 129, 1, L::kMaxContext);
    hp.leading_dense = f.has_key(n::kKeyLeadingDense) ? f.integer_in(n::kKeyLeadingDense, 0, hp.n_layer) : -1;
    hp.swa_sinks = f.has_key(n::kKeySwaSinks) ? int(f.boolean_or(n::kKeySwaSinks, false)) : -1;
    hp.full_sinks = f.has_key(n::kKeyFullSinks) ? int(f.boolean_or(n::kKeyFullSinks, false)) : -1;
    hp.eos_token_id = f.integer_in_or(n::kKeyEos, -1, -1, L::kMaxVocab - 1);

    // consistency: everything the graph relies on, checked before any tensor is declared
    auto bad = [&](const std::string & what) {
        fail(ErrorKind::ModelLoad, strfmt("%s: inconsistent mimo2 hyper-parameters: %s", path.c_str(), what.c_str()));
    };
    if (hp.n_rot % 2 != 0) {
        bad(strfmt("rope.dimension_count %lld must be even and at most key_length %lld", (long long) hp.n_rot,
                   (long long) hp.head_dim_k));
    }
    for (int64_t il = 0; il < n_block; ++il) {
        const int64_t nh = hp.n_head[size_t(il)], nkv = hp.n_head_kv[size_t(il)];
        if (nh % nkv != 0) {
            bad(strfmt("layer %lld has %lld query heads and %lld KV heads (need a positive multiple)", (long long) il,
                       (long long) nh, (long long) nkv));
        }
    }
    if (hp.value_scale == 0.0f) bad("attention.value_scale must be finite and non-zero");
    return hp;
}

bool Mimo2HParams::any_swa() const {
    for (int64_t il = 0; il < n_layer; ++il)
        if (swa[size_t(il)]) return true;
    return false;
}

bool Mimo2HParams::any_full() const {
    for (int64_t il = 0; il < n_layer; ++il)
        if (!swa[size_t(il)]) return true;
    return false;
}

Mimo2Model::Mimo2Model(const GgufFile & file, WeightStore & store, bool load_mtp)
    : hp_(Mimo2HParams::from_gguf(file)) {
    const int64_t d = hp_.n_embd;
    const Role mm = Role::Matmul, vec = Role::Float;
    const TensorInfo * emb = file.find_tensor(n::kEmbed);
    if (!emb || emb->n_dims != 2 || emb->ne[0] != d) {
        fail(ErrorKind::ModelLoad, strfmt("%s: tensor '%s' is missing or is not (%lld, n_vocab)", file.path().c_str(),
                                          n::kEmbed, (long long) d));
    }
    hp_.n_vocab = emb->ne[1];
    if (hp_.n_vocab < 1 || hp_.n_vocab > limits::kMaxVocab) {
        fail(ErrorKind::ModelLoad, strfmt("%s: tensor '%s' has %lld rows; a vocabulary of 1..%lld ids is expected",
                                          file.path().c_str(), n::kEmbed, (long long) hp_.n_vocab,
                                          (long long) limits::kMaxVocab));
    }
    file.check_vocabulary(hp_.n_vocab);
    if (hp_.eos_token_id >= hp_.n_vocab) {
        fail(ErrorKind::ModelLoad, strfmt("%s: metadata key '%s' = %lld is outside the vocabulary of %lld ids",
                                          file.path().c_str(), n::kKeyEos, (long long) hp_.eos_token_id,
                                          (long long) hp_.n_vocab));
    }
    // row-gathered: host memory, so GPU runs need no get_rows kernel for quantized tables
    tok_embd_ = store.require(n::kEmbed, {d, hp_.n_vocab}, Role::Rows);
    output_norm_ = store.require(n::kOutputNorm, {d}, vec);
    // MiMo's head is untied; a tied export (no output.weight) reuses the embedding rows
    output_ = store.optional(n::kOutput, {d, hp_.n_vocab}, mm);
    if (!output_) output_ = store.require(n::kEmbed, {d, hp_.n_vocab}, mm);

    // MTP blocks follow the trunk (blk.{n_layer + k}); a trunk-only export keeps the key but not the tensors
    const bool mtp = load_mtp && hp_.n_nextn > 0 &&
                     store.file_has(strfmt(n::kLayerFmt, int(hp_.n_layer)) + n::kNextnEhProj);
    layers_.resize(size_t(hp_.n_layer + (mtp ? hp_.n_nextn : 0)));
    store.layer_stack(n::kLayerFmt, int64_t(layers_.size()));  // the MTP blocks go with the last layers
    for (int il = 0; il < int(layers_.size()); ++il) declare_layer(file, store, il);
    if (mtp) {
        if (!file.has_key(n::kKeyNextnQkvLayout)) {
            MIMO_LOG_WARN("mimo-ggml: %s: MTP blocks written by another converter; their fused attn_qkv rows are "
                          "taken as [Q; K; V] unchecked (spec mtp.md section 5)", file.path().c_str());
        }
        for (int k = 0; k < hp_.n_nextn; ++k) {
            const std::string p = strfmt(n::kLayerFmt, int(hp_.n_layer) + k);
            Mimo2NextnLayer m;
            m.enorm = store.require(p + n::kNextnEnorm, {d}, vec);
            m.hnorm = store.require(p + n::kNextnHnorm, {d}, vec);
            m.eh_proj = store.require(p + n::kNextnEhProj, {2 * d, d}, mm);
            m.out_norm = store.require(p + n::kNextnOutNorm, {d}, vec);
            nextn_.push_back(m);
        }
    }
}

void Mimo2Model::declare_layer(const GgufFile & file, WeightStore & store, int il) {
    const int64_t d = hp_.n_embd;
    const Role mm = Role::Matmul, vec = Role::Float;
    const bool trunk = il < hp_.n_layer;
    {
        const std::string p = strfmt(n::kLayerFmt, il);
        Mimo2Layer & L = layers_[size_t(il)];
        const int64_t nh = hp_.n_head[size_t(il)], nkv = hp_.n_head_kv[size_t(il)];
        const int64_t q_rows = nh * hp_.head_dim_k, k_rows = nkv * hp_.head_dim_k, v_rows = nkv * hp_.head_dim_v;
        L.attn_norm = store.require(p + n::kAttnNorm, {d}, vec);
        if (store.file_has(p + n::kQkv)) {
            L.wqkv = store.require(p + n::kQkv, {d, q_rows + k_rows + v_rows}, mm);
        } else {
            L.wq = store.require(p + n::kQ, {d, q_rows}, mm);
            L.wk = store.require(p + n::kK, {d, k_rows}, mm);
            L.wv = store.require(p + n::kV, {d, v_rows}, mm);
        }
        L.wo = store.require(p + n::kO, {nh * hp_.head_dim_v, d}, mm);
        const int sinks_flag = hp_.swa[size_t(il)] ? hp_.swa_sinks : hp_.full_sinks;
        L.sinks = sinks_flag == 1 ? store.require(p + n::kSinks, {nh}, vec) : store.optional(p + n::kSinks, {nh}, vec);
        L.ffn_norm = store.require(p + n::kFfnNorm, {d}, vec);

        // MTP blocks have a dense MLP (spec mtp.md §1.1)
        const bool moe = trunk && (hp_.leading_dense >= 0 ? il >= hp_.leading_dense : store.file_has(p + n::kRouter));
        if (moe) {
            if (hp_.n_expert <= 0 || hp_.n_expert_used <= 0 || hp_.n_expert_used > hp_.n_expert || hp_.n_ff_exp <= 0) {
                fail(ErrorKind::ModelLoad,
                     strfmt("%s: layer %d is MoE but expert_count %lld / expert_used_count %lld / "
                            "expert_feed_forward_length %lld are missing or inconsistent",
                            file.path().c_str(), il, (long long) hp_.n_expert, (long long) hp_.n_expert_used,
                            (long long) hp_.n_ff_exp));
            }
            const int64_t E = hp_.n_expert, I = hp_.n_ff_exp;
            // the router runs in F32 (spec §4) whatever the file stores
            L.router = store.require(p + n::kRouter, {d, E}, vec);
            L.router_bias = store.optional(p + n::kRouterBias, {E}, vec);
            // stacked experts: plain device buffers (ggml's CPU repacking is for 2-D matmuls)
            const Role exps = Role::MatmulExperts;
            L.gate_exps = store.require(p + n::kGateExps, {d, I, E}, exps);
            L.up_exps = store.require(p + n::kUpExps, {d, I, E}, exps);
            L.down_exps = store.require(p + n::kDownExps, {I, d, E}, exps);
        } else {
            int64_t ff = hp_.n_ff;
            if (ff <= 0) {  // feed_forward_length absent: take it from the tensor
                const TensorInfo * t = store.file_tensor(p + n::kGate);
                ff = t && t->n_dims == 2 ? t->ne[1] : 0;
                if (t && (ff < 1 || ff > limits::kMaxFfn)) {
                    fail(ErrorKind::ModelLoad, strfmt("%s: tensor '%s' has %lld rows; 1..%lld expected",
                                                      file.path().c_str(), (p + n::kGate).c_str(), (long long) ff,
                                                      (long long) limits::kMaxFfn));
                }
            }
            L.gate = store.require(p + n::kGate, {d, ff}, mm);
            L.up = store.require(p + n::kUp, {d, ff}, mm);
            L.down = store.require(p + n::kDown, {ff, d}, mm);
        }
    }
}

std::vector<KvLayerShape> Mimo2Model::kv_shapes(int64_t n_ctx, int64_t swa_slots) const {
    std::vector<KvLayerShape> out;
    for (int64_t il = 0; il < hp_.n_layer; ++il) {
        const int64_t nkv = hp_.n_head_kv[size_t(il)];
        out.push_back(KvLayerShape{nkv * hp_.head_dim_k, nkv * hp_.head_dim_v,
                                   std::min(hp_.head_dim_k, hp_.head_dim_v),
                                   hp_.swa[size_t(il)] ? swa_slots : n_ctx, layers_[size_t(il)].wo});
    }
    return out;
}

std::vector<KvLayerShape> Mimo2Model::mtp_kv_shapes(int64_t n_slots) const {
    std::vector<KvLayerShape> out;
    for (int64_t k = 0; k < n_mtp(); ++k) {
        const int64_t nkv = hp_.n_head_kv[size_t(hp_.n_layer + k)];
        out.push_back(KvLayerShape{nkv * hp_.head_dim_k, nkv * hp_.head_dim_v,
                                   std::min(hp_.head_dim_k, hp_.head_dim_v), n_slots,
                                   layers_[size_t(hp_.n_layer + k)].wo});
    }
    return out;
}

ggml_tensor * Mimo2Model::build_mtp(ggml_context * ctx, ggml_cgraph * gf, int k, const DecoderInputs & in,
                                    const KvCache & kv) const {
    const Mimo2NextnLayer & m = nextn_[size_t(k)];
    const int il = int(hp_.n_layer) + k;
    const Mimo2Layer & L = layers_[size_t(il)];
    const int64_t T = in.positions->ne[0];
    ggml_tensor * e = rms_norm(ctx, ggml_get_rows(ctx, tok_embd_, in.tokens), m.enorm, hp_.rms_eps);
    ggml_tensor * g = rms_norm(ctx, in.embeddings, m.hnorm, hp_.rms_eps);
    ggml_tensor * x = linear(ctx, ggml_concat(ctx, e, g, 0), m.eh_proj);  // embedding half first (spec §1.2)
    ggml_tensor * a = attention_block(ctx, gf, rms_norm(ctx, x, L.attn_norm, hp_.rms_eps), il, size_t(k), in, kv);
    // every row's K/V is cached; only the last row's prediction is used
    x = ggml_add(ctx, row_slice(ctx, x, T - 1, 1), row_slice(ctx, a, T - 1, 1));
    x = ggml_add(ctx, x, swiglu_ffn(ctx, rms_norm(ctx, x, L.ffn_norm, hp_.rms_eps), L.gate, L.up, L.down));
    ggml_tensor * logits = ggml_mul_mat(ctx, output_, rms_norm(ctx, x, m.out_norm, hp_.rms_eps));
    ggml_set_output(logits);
    ggml_build_forward_expand(gf, logits);
    return logits;
}

ggml_tensor * Mimo2Model::attention_block(ggml_context * ctx, ggml_cgraph * gf, ggml_tensor * h, int il,
                                          size_t kv_layer, const DecoderInputs & in, const KvCache & kv) const {
    const Mimo2Layer & L = layers_[size_t(il)];
    const bool swa = hp_.swa[size_t(il)] != 0;
    const int64_t dk = hp_.head_dim_k, dv = hp_.head_dim_v, T = in.positions->ne[0];
    const int64_t nh = hp_.n_head[size_t(il)], nkv = hp_.n_head_kv[size_t(il)];
    const int64_t q_rows = nh * dk, k_rows = nkv * dk;
    ggml_tensor *q, *k, *v;
    if (L.wqkv) {
        ggml_tensor * qkv = linear(ctx, h, L.wqkv);  // (q + k + v rows, T), rows global [Q; K; V]
        const size_t es = ggml_element_size(qkv);
        q = ggml_view_3d(ctx, qkv, dk, nh, T, dk * es, qkv->nb[1], 0);
        k = ggml_view_3d(ctx, qkv, dk, nkv, T, dk * es, qkv->nb[1], q_rows * es);
        v = ggml_view_2d(ctx, qkv, nkv * dv, T, qkv->nb[1], (q_rows + k_rows) * es);
    } else {
        q = ggml_reshape_3d(ctx, linear(ctx, h, L.wq), dk, nh, T);
        k = ggml_reshape_3d(ctx, linear(ctx, h, L.wk), dk, nkv, T);
        v = linear(ctx, h, L.wv);
    }
    // partial NeoX RoPE: the first n_rot dims of each 192-wide head rotate, the rest pass through
    const float base = swa ? hp_.rope_base_swa : hp_.rope_base;
    q = rope_neox(ctx, q, in.positions, hp_.n_rot, base);
    k = rope_neox(ctx, k, in.positions, hp_.n_rot, base);
    // V is scaled before caching (spec §3.1), so the cache holds what SGLang/vLLM hold
    if (hp_.value_scale != 1.0f) {
        if (!ggml_is_contiguous(v)) v = ggml_cont(ctx, v);  // a view into the fused qkv rows
        v = ggml_scale(ctx, v, hp_.value_scale);
    }

    ggml_tensor * slots = swa ? in.slots_swa : in.slots_full;
    ggml_tensor * mask = swa ? in.mask_swa : in.mask_full;
    const int64_t n_kv = swa ? in.n_kv_swa : in.n_kv_full;
    ggml_tensor * attn = cached_attention(ctx, gf, kv, kv_layer, q, k, v, slots, n_kv, mask,
                                          1.0f / std::sqrt(float(dk)), L.sinks);
    return linear(ctx, attn, L.wo);
}

// Sigmoid router in F32, top-k on the bias-corrected scores, weights from the
// un-biased scores (renormalised, scaled), experts through mul_mat_id (spec §4).
ggml_tensor * Mimo2Model::moe_block(ggml_context * ctx, ggml_tensor * h, const Mimo2Layer & L) const {
    const int64_t H = hp_.n_embd, E = hp_.n_expert, K = hp_.n_expert_used, T = h->ne[1];
    ggml_tensor * logits = ggml_mul_mat(ctx, L.router, h);  // (E, T), F32 x F32
    ggml_tensor * probs = ggml_sigmoid(ctx, logits);
    ggml_tensor * choice = L.router_bias ? ggml_add(ctx, probs, L.router_bias) : probs;
    ggml_tensor * idx = ggml_argsort_top_k(ctx, choice, int(K));  // (K, T) I32
    ggml_tensor * w = ggml_get_rows(ctx, ggml_reshape_3d(ctx, probs, 1, E, T), idx);  // (1, K, T)
    if (hp_.expert_weights_norm) {
        ggml_tensor * w2 = ggml_reshape_2d(ctx, w, K, T);
        ggml_tensor * sum = ggml_scale_bias(ctx, ggml_sum_rows(ctx, w2), 1.0f, 1e-20f);  // (1, T)
        w = ggml_reshape_3d(ctx, ggml_div(ctx, w2, sum), 1, K, T);
    }
    if (hp_.expert_weights_scale != 1.0f) w = ggml_scale(ctx, w, hp_.expert_weights_scale);

    ggml_tensor * x = ggml_reshape_3d(ctx, h, H, 1, T);
    ggml_tensor * g = ggml_mul_mat_id(ctx, L.gate_exps, x, idx);  // (I, K, T)
    ggml_tensor * u = ggml_mul_mat_id(ctx, L.up_exps, x, idx);
    ggml_tensor * y = ggml_mul_mat_id(ctx, L.down_exps, ggml_swiglu_split(ctx, g, u), idx);  // (H, K, T)
    y = ggml_mul(ctx, y, w);
    ggml_tensor * out = ggml_view_2d(ctx, y, H, T, y->nb[2], 0);
    for (int64_t e = 1; e < K; ++e) {
        out = ggml_add(ctx, out, ggml_view_2d(ctx, y, H, T, y->nb[2], size_t(e) * y->nb[1]));
    }
    return out;
}

DecoderOutputs Mimo2Model::build(ggml_context * ctx, ggml_cgraph * gf, const DecoderInputs & in,
                                 const KvCache & kv) const {
    const int64_t T = in.positions->ne[0];
    const bool capturing = !in.capture.empty();
    std::vector<ggml_tensor *> layer_out(size_t(hp_.n_layer), nullptr);
    ggml_tensor * inputs = decoder_input_rows(ctx, tok_embd_, in);  // (H, T) F32
    ggml_tensor * x = inputs;
    for (int il = 0; il < hp_.n_layer; ++il) {
        const Mimo2Layer & L = layers_[size_t(il)];
        ggml_tensor * h = rms_norm(ctx, x, L.attn_norm, hp_.rms_eps);
        ggml_tensor * a = attention_block(ctx, gf, h, il, size_t(il), in, kv);
        if (il == hp_.n_layer - 1 && in.out_rows) {
            // every row's K/V is cached by now: the last FFN runs only on the rows whose logits are wanted
            // (out_rows is not given when rows are captured: a drafter needs every row of the last layer)
            a = gather_rows(ctx, a, in.out_rows);
            x = gather_rows(ctx, x, in.out_rows);
        }
        x = ggml_add(ctx, x, a);
        h = rms_norm(ctx, x, L.ffn_norm, hp_.rms_eps);
        x = ggml_add(ctx, x, L.moe() ? moe_block(ctx, h, L) : swiglu_ffn(ctx, h, L.gate, L.up, L.down));
        layer_out[size_t(il)] = x;
    }
    ggml_tensor * normed = rms_norm(ctx, x, output_norm_, hp_.rms_eps);
    DecoderOutputs out = decoder_outputs(ctx, gf, in, inputs, normed, output_);
    if (capturing) {
        ggml_tensor * cat = nullptr;
        for (int32_t id : in.capture) {
            ggml_tensor * part = id == kCaptureFinalNorm ? normed : layer_out[size_t(id)];
            cat = cat ? ggml_concat(ctx, cat, part, 0) : part;
        }
        out.captured = cat;
        ggml_set_output(cat);
        ggml_build_forward_expand(gf, cat);
    }
    return out;
}

}  // namespace mimo
