#include "models/asr_adapter.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/errors.h"
#include "core/graph.h"
#include "ggml-backend.h"
#include "models/mimo_asr_names.h"

namespace mimo {

namespace n = names::asr;

namespace {

std::string fmt_name(const char * pattern, int64_t i) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), pattern, int(i));
    return buf;
}

// spec asr.md §8.1: the per-channel empty ids of the real model
constexpr int64_t kSpecEmptyIds[8] = {1024, 1024, 128, 128, 128, 128, 128, 128};

}  // namespace

AsrAdapterHParams AsrAdapterHParams::from_gguf(const GgufFile & f) {
    const std::string & path = f.path();
    if (!f.find_tensor(fmt_name(n::kAudioEmbFmt, 0)) && !f.has_key(n::kKeyAudioChannels)) {
        fail(ErrorKind::ModelLoad,
             strfmt("%s has no audio adapter (no '%s' tensor and no %s key): it is a language-model-only file. "
                    "Speech recognition needs the full MiMo-V2.5-ASR GGUF (LM + audio adapter), e.g. CrispASR's "
                    "mimo-asr-*.gguf or `mimo-ggml convert` of the whole checkpoint",
                    path.c_str(), fmt_name(n::kAudioEmbFmt, 0).c_str(), n::kKeyAudioChannels));
    }
    namespace L = limits;
    AsrAdapterHParams hp;
    hp.n_channels = f.integer_in_or(n::kKeyAudioChannels, 8, 1, 64);
    hp.group_size = f.integer_in_or(n::kKeyAudioGroupSize, 4, 1, 64);
    hp.n_layer = f.integer_in_or(n::kKeyAudioLayers, 6, 1, L::kMaxLayers);
    f.check_blocks(n::kKeyAudioLayers, hp.n_layer, n::kAudioLayerFmt);  // before anything is sized by it
    hp.d = f.integer_in_or(n::kKeyAudioDim, 1024, 1, L::kMaxWidth);
    hp.n_head = f.integer_in_or(n::kKeyAudioHeads, 64, 1, L::kMaxHeads);
    hp.head_dim = f.integer_in_or(n::kKeyAudioHeadDim, std::max<int64_t>(hp.d / hp.n_head, 2), 2, L::kMaxHeadDim);
    hp.n_ff = f.integer_in_or(n::kKeyAudioFfn, 4096, 1, L::kMaxFfn);
    hp.n_embd = f.integer_in(n::kKeyLlmHidden, 1, L::kMaxWidth);  // not audio.out_hidden_size (spec gguf-compat §1.1)
    hp.rope_theta = f.f32_in(n::kKeyLlmRopeTheta, 0.0f, L::kMaxRopeTheta);
    hp.rms_eps = f.f32_in_or(n::kKeyLlmRmsEps, 1e-6f, 0.0f, L::kMaxNormEps);
    hp.full_attention = f.boolean_or(n::kKeyAudioFullAttention, true);
    if (hp.head_dim % 2 != 0) {
        fail(ErrorKind::ModelLoad, strfmt("%s: audio-adapter head_dim %lld must be even (RoPE rotates pairs)",
                                          path.c_str(), (long long) hp.head_dim));
    }
    for (int64_t c = 0; c < hp.n_channels; ++c) {
        // the table's row count when the key is absent; require() then checks the shape
        const TensorInfo * t = f.find_tensor(fmt_name(n::kAudioEmbFmt, c));
        if (!t) {
            fail(ErrorKind::ModelLoad, strfmt("%s lacks the tensor '%s' (speech embeddings of audio channel %lld of "
                                              "%lld)",
                                              path.c_str(), fmt_name(n::kAudioEmbFmt, c).c_str(), (long long) c,
                                              (long long) hp.n_channels));
        }
        const int64_t rows = t->n_dims == 2 ? t->ne[1] : 0;
        const int64_t vocab = f.integer_in_or(fmt_name(n::kKeySpeechVocabFmt, c), rows, 1, L::kMaxVocab);
        const int64_t fallback = c < 8 ? kSpecEmptyIds[c] : vocab - 1;
        const int64_t empty = f.integer_or(fmt_name(n::kKeySpeechEmptyFmt, c), fallback);
        if (vocab < 1 || vocab > L::kMaxVocab || empty < 0 || empty >= vocab) {
            fail(ErrorKind::ModelLoad,
                 strfmt("%s: audio channel %lld has speech vocabulary %lld and empty id %lld; the empty id must be "
                        "a row of the table",
                        path.c_str(), (long long) c, (long long) vocab, (long long) empty));
        }
        hp.speech_vocab.push_back(vocab);
        hp.empty_ids.push_back(empty);
    }
    return hp;
}

AsrAdapterModel::AsrAdapterModel(const GgufFile & file, WeightStore & store)
    : hp_(AsrAdapterHParams::from_gguf(file)), path_(file.path()) {
    const int64_t d = hp_.d, q_rows = hp_.n_head * hp_.head_dim;
    const Role mm = Role::Matmul, vec = Role::Float;
    // row-gathered tables stay in host memory (no get_rows kernel needed on
    // GPUs for quantized types; spec gguf-compat §1.5)
    for (int64_t c = 0; c < hp_.n_channels; ++c) {
        emb_.push_back(store.require(fmt_name(n::kAudioEmbFmt, c), {d, hp_.speech_vocab[size_t(c)]}, Role::Rows));
    }
    layers_.resize(size_t(hp_.n_layer));
    store.layer_stack(n::kAudioLayerFmt, hp_.n_layer);
    for (int64_t il = 0; il < hp_.n_layer; ++il) {
        const std::string p = fmt_name(n::kAudioLayerFmt, il);
        AsrAdapterLayer & L = layers_[size_t(il)];
        L.attn_norm = store.require(p + n::kAttnNorm, {d}, vec);
        L.wq = store.require(p + n::kQW, {d, q_rows}, mm);
        L.bq = store.require(p + n::kQB, {q_rows}, vec);
        L.wk = store.require(p + n::kKW, {d, q_rows}, mm);
        L.bk = store.require(p + n::kKB, {q_rows}, vec);
        L.wv = store.require(p + n::kVW, {d, q_rows}, mm);
        L.bv = store.require(p + n::kVB, {q_rows}, vec);
        L.wo = store.require(p + n::kOW, {q_rows, d}, mm);
        L.ffn_norm = store.require(p + n::kFfnNorm, {d}, vec);
        L.gate = store.require(p + n::kGate, {d, hp_.n_ff}, mm);
        L.up = store.require(p + n::kUp, {d, hp_.n_ff}, mm);
        L.down = store.require(p + n::kDown, {hp_.n_ff, d}, mm);
    }
    norm_ = store.require(n::kAudioNorm, {d}, vec);
    group_proj_ = store.require(n::kAudioGroupProj, {hp_.group_size * d, hp_.n_embd}, mm);
}

void AsrAdapterModel::finish_load() {
    std::vector<float> check(static_cast<size_t>(hp_.d));
    for (int64_t c = 0; c < hp_.n_channels; ++c) {
        ggml_tensor * t = emb_[size_t(c)];
        const size_t row = t->nb[1], off = size_t(hp_.empty_ids[size_t(c)]) * row;
        std::vector<uint8_t> zeros(row, 0);
        ggml_backend_tensor_set(t, zeros.data(), off, row);
        // every ggml type decodes an all-zero block to zeros; make sure
        if (t->type != GGML_TYPE_F32) {
            const auto * traits = ggml_get_type_traits(t->type);
            if (!traits->to_float) {
                fail(ErrorKind::ModelLoad, strfmt("%s: speech embedding table %lld has type %s, which cannot be "
                                                  "read",
                                                  path_.c_str(), (long long) c, ggml_type_name(t->type)));
            }
            traits->to_float(zeros.data(), check.data(), hp_.d);
            for (float v : check) {
                if (v != 0.0f) {
                    fail(ErrorKind::ModelLoad, strfmt("%s: speech embedding table %lld has type %s, whose zero "
                                                      "block is not zero; convert it to another type",
                                                      path_.c_str(), (long long) c, ggml_type_name(t->type)));
                }
            }
        }
    }
}

namespace {

// Softmax attention within each group. q, k, v: (head_dim, n_head, S, G)
// with S the group length; mask: (S, S) or nullptr. Returns
// (head_dim · n_head, S · G). Plain mul_mat + soft_max (every backend runs
// these for any head size; flash-attention kernels skip small ones).
ggml_tensor * group_attention(ggml_context * ctx, ggml_tensor * q, ggml_tensor * k, ggml_tensor * v,
                              ggml_tensor * mask, float scale) {
    const int64_t hd = q->ne[0], nh = q->ne[1], S = q->ne[2], G = q->ne[3];
    ggml_tensor * qp = ggml_permute(ctx, q, 0, 2, 1, 3);                    // (hd, S_q, nh, G)
    ggml_tensor * kp = ggml_permute(ctx, k, 0, 2, 1, 3);                    // (hd, S_k, nh, G)
    ggml_tensor * kq = ggml_mul_mat(ctx, kp, qp);                           // (S_k, S_q, nh, G)
    kq = ggml_soft_max_ext(ctx, kq, mask, scale, 0.0f);
    ggml_tensor * vt = ggml_cont(ctx, ggml_permute(ctx, v, 1, 2, 0, 3));     // (S_k, hd, nh, G)
    ggml_tensor * kqv = ggml_mul_mat(ctx, vt, kq);                          // (hd, S_q, nh, G)
    ggml_tensor * out = ggml_cont(ctx, ggml_permute(ctx, kqv, 0, 2, 1, 3));  // (hd, nh, S_q, G)
    return ggml_reshape_2d(ctx, out, hd * nh, S * G);
}

}  // namespace

AsrAdapterGraph AsrAdapterModel::build(ggml_context * ctx, ggml_cgraph * gf, int64_t n_groups) const {
    const int64_t d = hp_.d, hd = hp_.head_dim, nh = hp_.n_head, S = hp_.group_size, G = n_groups, N = S * G;
    AsrAdapterGraph g;
    g.n_groups = G;
    g.codes = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, N * hp_.n_channels);
    ggml_set_name(g.codes, "adapter.codes");
    ggml_set_input(g.codes);
    g.positions = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, N);
    ggml_set_name(g.positions, "adapter.positions");
    ggml_set_input(g.positions);
    if (!hp_.full_attention) {
        g.mask = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, S, S);
        ggml_set_name(g.mask, "adapter.mask");
        ggml_set_input(g.mask);
    }

    // §9 step 3: S[frame] = Σ_c E_c[code_c]; each table's empty-id row is
    // zero (finish_load), which masks those codes exactly
    ggml_tensor * x = nullptr;
    for (int64_t c = 0; c < hp_.n_channels; ++c) {
        ggml_tensor * ids = ggml_view_1d(ctx, g.codes, N, size_t(c * N) * sizeof(int32_t));
        ggml_tensor * rows = ggml_get_rows(ctx, emb_[size_t(c)], ids);  // (d, N) F32
        x = x ? ggml_add(ctx, x, rows) : rows;
    }
    if (x->type != GGML_TYPE_F32) x = ggml_cast(ctx, x, GGML_TYPE_F32);
    ggml_set_name(x, "adapter.ilt_input");
    ggml_set_output(x);
    g.ilt_input = x;

    // §10: pre-norm Qwen2 blocks on sequences of S frames, NeoX RoPE over
    // all head dims at positions 0..S-1, scale 1/sqrt(head_dim)
    const float scale = 1.0f / std::sqrt(float(hd));
    for (int64_t il = 0; il < hp_.n_layer; ++il) {
        const AsrAdapterLayer & L = layers_[size_t(il)];
        ggml_tensor * h = rms_norm(ctx, x, L.attn_norm, hp_.rms_eps);
        ggml_tensor * q = ggml_reshape_3d(ctx, linear(ctx, h, L.wq, L.bq), hd, nh, N);
        ggml_tensor * k = ggml_reshape_3d(ctx, linear(ctx, h, L.wk, L.bk), hd, nh, N);
        ggml_tensor * v = ggml_reshape_4d(ctx, linear(ctx, h, L.wv, L.bv), hd, nh, S, G);
        q = rope_neox(ctx, q, g.positions, hd, hp_.rope_theta);
        k = rope_neox(ctx, k, g.positions, hd, hp_.rope_theta);
        q = ggml_reshape_4d(ctx, q, hd, nh, S, G);
        k = ggml_reshape_4d(ctx, k, hd, nh, S, G);
        ggml_tensor * attn = group_attention(ctx, q, k, v, g.mask, scale);
        x = ggml_add(ctx, x, linear(ctx, attn, L.wo));
        h = rms_norm(ctx, x, L.ffn_norm, hp_.rms_eps);
        x = ggml_add(ctx, x, swiglu_ffn(ctx, h, L.gate, L.up, L.down));
    }
    x = rms_norm(ctx, x, norm_, hp_.rms_eps);
    ggml_set_name(x, "adapter.ilt_output");
    ggml_set_output(x);
    g.ilt_output = x;

    // §9 step 5: the S frames of a group side by side, frame-major
    // (element d·f + j), then the downcast without bias
    ggml_tensor * y = ggml_mul_mat(ctx, group_proj_, ggml_reshape_2d(ctx, x, S * d, G));  // (n_embd, G)
    ggml_set_name(y, "adapter.features");
    ggml_set_output(y);
    g.features = y;
    ggml_build_forward_expand(gf, y);
    ggml_build_forward_expand(gf, g.ilt_input);
    return g;
}

}  // namespace mimo
