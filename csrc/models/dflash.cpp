#include "models/dflash.h"

#include <cmath>

#include "core/errors.h"
#include "core/graph.h"
#include "models/dflash_names.h"
#include "models/mimo2.h"

namespace mimo {

namespace n = names::dflash;

DflashHParams DflashHParams::from_gguf(const GgufFile & f) {
    namespace L = limits;
    DflashHParams hp;
    hp.n_layer = f.integer_in(n::kKeyBlockCount, 1, L::kMaxLayers);
    f.check_blocks(n::kKeyBlockCount, hp.n_layer, n::kLayerFmt);
    hp.n_embd = f.integer_in(n::kKeyEmbd, 1, L::kMaxWidth);
    hp.n_ff = f.integer_in(n::kKeyFf, 1, L::kMaxFfn);
    hp.n_ctx_train = f.integer_in_or(n::kKeyContextLength, 0, 0, L::kMaxContext);
    hp.n_head = f.integer_in(n::kKeyHeads, 1, L::kMaxHeads);
    hp.n_head_kv = f.integer_in_or(n::kKeyHeadsKv, hp.n_head, 1, L::kMaxHeads);
    hp.head_dim_k = f.integer_in_or(n::kKeyKeyLength, hp.n_embd / hp.n_head, 1, L::kMaxHeadDim);
    hp.head_dim_v = f.integer_in_or(n::kKeyValueLength, hp.head_dim_k, 1, L::kMaxHeadDim);
    hp.n_rot = f.integer_in_or(n::kKeyRopeDims, hp.head_dim_k, 2, hp.head_dim_k);
    hp.rms_eps = f.f32_in_or(n::kKeyRmsEps, 1e-6f, 0.0f, L::kMaxNormEps);
    hp.rope_base = f.f32_in_or(n::kKeyRopeBase, 10000.0f, 0.0f, L::kMaxRopeTheta);
    hp.backbone_rope_base = f.f32_in_or(n::kKeyBackboneRopeBase, 0.0f, 0.0f, L::kMaxRopeTheta, false);
    hp.value_scale = f.f32_in_or(n::kKeyValueScale, 1.0f, -1e6f, 1e6f, false);
    hp.causal = f.boolean_or(n::kKeyCausal, false);
    hp.window_keys = f.integer_in_or(n::kKeyWindow, 0, 0, L::kMaxContext);
    hp.block_size = f.integer_in_or(n::kKeyBlockSize, 8, 2, 64);
    hp.mask_token_id = f.integer_in(n::kKeyMaskToken, 0, L::kMaxVocab - 1);
    hp.target_layers = f.int_array(n::kKeyTargetLayers);
    hp.n_target_layers = f.integer_in_or(n::kKeyTargetLayerCount, 0, 0, L::kMaxLayers);
    auto bad = [&](const std::string & what) {
        fail(ErrorKind::ModelLoad, strfmt("%s: inconsistent DFlash drafter: %s", f.path().c_str(), what.c_str()));
    };
    if (hp.target_layers.empty()) bad(strfmt("'%s' is empty", n::kKeyTargetLayers));
    for (int64_t id : hp.target_layers) {
        if (id < 0 || id >= L::kMaxLayers) bad(strfmt("captured target layer %lld is out of range", (long long) id));
    }
    hp.n_target_features = f.integer_in_or(n::kKeyTargetFeatures, 0, 0, L::kMaxWidth * 64);
    if (hp.n_head % hp.n_head_kv != 0) {
        bad(strfmt("%lld query heads are not a multiple of %lld KV heads", (long long) hp.n_head,
                   (long long) hp.n_head_kv));
    }
    if (hp.n_rot % 2 != 0) bad(strfmt("rope.dimension_count %lld must be even", (long long) hp.n_rot));
    if (hp.value_scale == 0.0f) bad("attention.value_scale must be finite and non-zero");
    return hp;
}

DflashModel::DflashModel(const GgufFile & file, WeightStore & store) : hp_(DflashHParams::from_gguf(file)) {
    const int64_t d = hp_.n_embd, hd = hp_.head_dim_k, hdv = hp_.head_dim_v;
    const Role mm = Role::Matmul, vec = Role::Float;
    const TensorInfo * fc = file.find_tensor(n::kFc);
    if (!fc || fc->n_dims != 2 || fc->ne[1] != d) {
        fail(ErrorKind::ModelLoad, strfmt("%s: tensor '%s' is missing or is not (n_target_features, %lld)",
                                          file.path().c_str(), n::kFc, (long long) d));
    }
    // ik_llama.cpp's files may count the feature width differently: the tensor is the authority
    hp_.n_target_features = fc->ne[0];
    fc_ = store.require(n::kFc, {hp_.n_target_features, d}, mm);
    hidden_norm_ = store.require(n::kHiddenNorm, {d}, vec);
    output_norm_ = store.require(n::kOutputNorm, {d}, vec);
    mask_embd_ = store.optional(n::kMaskEmbd, {d}, vec);
    layers_.resize(size_t(hp_.n_layer));
    store.layer_stack(n::kLayerFmt, hp_.n_layer);
    for (int il = 0; il < int(hp_.n_layer); ++il) {
        const std::string p = strfmt(n::kLayerFmt, il);
        DflashLayer & L = layers_[size_t(il)];
        L.attn_norm = store.require(p + n::kAttnNorm, {d}, vec);
        L.wq = store.require(p + n::kQ, {d, hp_.n_head * hd}, mm);
        L.wk = store.require(p + n::kK, {d, hp_.n_head_kv * hd}, mm);
        L.wv = store.require(p + n::kV, {d, hp_.n_head_kv * hdv}, mm);
        L.wo = store.require(p + n::kO, {hp_.n_head * hdv, d}, mm);
        L.q_norm = store.require(p + n::kQNorm, {hd}, vec);
        L.k_norm = store.require(p + n::kKNorm, {hd}, vec);
        L.sinks = store.optional(p + n::kSinks, {hp_.n_head}, vec);
        L.ffn_norm = store.require(p + n::kFfnNorm, {d}, vec);
        L.gate = store.require(p + n::kGate, {d, hp_.n_ff}, mm);
        L.up = store.require(p + n::kUp, {d, hp_.n_ff}, mm);
        L.down = store.require(p + n::kDown, {hp_.n_ff, d}, mm);
    }
}

void DflashModel::check_target(const Mimo2Model & target, const std::string & path) const {
    const Mimo2HParams & t = target.hparams();
    auto bad = [&](const std::string & what) {
        fail(ErrorKind::ModelLoad, strfmt("%s does not fit this target model: %s", path.c_str(), what.c_str()));
    };
    if (hp_.n_embd != t.n_embd) {
        bad(strfmt("its width is %lld, the target's %lld", (long long) hp_.n_embd, (long long) t.n_embd));
    }
    const int64_t want = int64_t(hp_.target_layers.size()) * t.n_embd;
    if (hp_.n_target_features != want) {
        bad(strfmt("fc takes %lld features; %zu captured layers of width %lld give %lld",
                   (long long) hp_.n_target_features, hp_.target_layers.size(), (long long) t.n_embd,
                   (long long) want));
    }
    for (int64_t id : hp_.target_layers) {
        if (id >= t.n_layer) {
            bad(strfmt("it captures target layer %lld; the target has %lld layers", (long long) id,
                       (long long) t.n_layer));
        }
    }
    if (hp_.n_target_layers > 0 && hp_.n_target_layers != t.n_layer) {
        bad(strfmt("it was trained on a target of %lld layers; this one has %lld", (long long) hp_.n_target_layers,
                   (long long) t.n_layer));
    }
    if (hp_.mask_token_id >= t.n_vocab) {
        bad(strfmt("its mask token %lld is outside the target's vocabulary of %lld", (long long) hp_.mask_token_id,
                   (long long) t.n_vocab));
    }
}

DflashRun DflashModel::default_run() const {
    DflashRun r;
    r.window_keys = hp_.window_keys;
    r.causal = hp_.causal;
    r.rope_base_ctx = hp_.rope_base;  // SGLang / vLLM (spec Corrections 4); backbone_rope_base is the other claim
    r.rope_base_block = hp_.rope_base;
    return r;
}

std::vector<KvLayerShape> DflashModel::kv_shapes(int64_t n_slots) const {
    std::vector<KvLayerShape> out;
    for (int64_t il = 0; il < hp_.n_layer; ++il) {
        out.push_back(KvLayerShape{hp_.n_head_kv * hp_.head_dim_k, hp_.n_head_kv * hp_.head_dim_v,
                                   std::min(hp_.head_dim_k, hp_.head_dim_v), n_slots, layers_[size_t(il)].wo});
    }
    return out;
}

void DflashModel::build_inject(ggml_context * ctx, ggml_cgraph * gf, ggml_tensor * features, ggml_tensor * positions,
                               ggml_tensor * slots, const KvCache & kv, const DflashRun & run) const {
    const int64_t m = features->ne[1];
    // one projected vector per context token, shared by every layer; no input norm on it (spec §3.1)
    ggml_tensor * c = rms_norm(ctx, linear(ctx, features, fc_), hidden_norm_, hp_.rms_eps);
    for (int il = 0; il < int(hp_.n_layer); ++il) {
        const DflashLayer & L = layers_[size_t(il)];
        ggml_tensor * k = ggml_reshape_3d(ctx, linear(ctx, c, L.wk), hp_.head_dim_k, hp_.n_head_kv, m);
        k = rope_neox(ctx, rms_norm(ctx, k, L.k_norm, hp_.rms_eps), positions, hp_.n_rot, run.rope_base_ctx);
        ggml_tensor * v = linear(ctx, c, L.wv);
        if (hp_.value_scale != 1.0f) v = ggml_scale(ctx, v, hp_.value_scale);
        cache_write(ctx, gf, kv, size_t(il), k, v, slots);
    }
}

ggml_tensor * DflashModel::build_block(ggml_context * ctx, ggml_cgraph * gf, ggml_tensor * h0, ggml_tensor * positions,
                                       ggml_tensor * slots, ggml_tensor * mask, int64_t n_kv, const KvCache & kv,
                                       ggml_tensor * head, const DflashRun & run) const {
    const int64_t T = h0->ne[1], hd = hp_.head_dim_k;
    const float scale = 1.0f / std::sqrt(float(hd));
    ggml_tensor * x = h0;
    for (int il = 0; il < int(hp_.n_layer); ++il) {
        const DflashLayer & L = layers_[size_t(il)];
        ggml_tensor * h = rms_norm(ctx, x, L.attn_norm, hp_.rms_eps);
        ggml_tensor * q = ggml_reshape_3d(ctx, linear(ctx, h, L.wq), hd, hp_.n_head, T);
        ggml_tensor * k = ggml_reshape_3d(ctx, linear(ctx, h, L.wk), hd, hp_.n_head_kv, T);
        q = rope_neox(ctx, rms_norm(ctx, q, L.q_norm, hp_.rms_eps), positions, hp_.n_rot, run.rope_base_block);
        k = rope_neox(ctx, rms_norm(ctx, k, L.k_norm, hp_.rms_eps), positions, hp_.n_rot, run.rope_base_block);
        ggml_tensor * v = linear(ctx, h, L.wv);
        if (hp_.value_scale != 1.0f) v = ggml_scale(ctx, v, hp_.value_scale);
        ggml_tensor * a = linear(ctx, cached_attention(ctx, gf, kv, size_t(il), q, k, v, slots, n_kv, mask, scale,
                                                       L.sinks),
                                 L.wo);
        if (il == int(hp_.n_layer) - 1) {  // past the last attention only the proposal rows 1..k matter
            a = row_slice(ctx, a, 1, T - 1);
            x = row_slice(ctx, x, 1, T - 1);
        }
        x = ggml_add(ctx, x, a);
        x = ggml_add(ctx, x, swiglu_ffn(ctx, rms_norm(ctx, x, L.ffn_norm, hp_.rms_eps), L.gate, L.up, L.down));
    }
    // the target's head on the drafter's own final norm; no target norm on top (spec §3.2)
    ggml_tensor * logits = ggml_mul_mat(ctx, head, rms_norm(ctx, x, output_norm_, hp_.rms_eps));
    ggml_set_output(logits);
    ggml_build_forward_expand(gf, logits);
    return logits;
}

}  // namespace mimo
