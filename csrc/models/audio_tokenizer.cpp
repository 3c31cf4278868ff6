#include "models/audio_tokenizer.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/errors.h"
#include "core/graph.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "models/mimo_tokenizer_names.h"

namespace mimo {

namespace n = names::tok;

namespace {

std::string fmt_name(const char * pattern, int64_t i) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), pattern, int(i));
    return buf;
}

float round_to_bf16(float x) {
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof(bits));
    if ((bits & 0x7f800000u) != 0x7f800000u) {  // finite: round to nearest, ties to even
        bits += 0x7fffu + ((bits >> 16) & 1u);
    }
    bits &= 0xffff0000u;
    float y;
    std::memcpy(&y, &bits, sizeof(y));
    return y;
}

// Conv1d over time. x is (T_in, C_in) — time-fastest, the layout ggml_im2col
// reads — and w is (K, C_in, C_out) as PyTorch stores Conv1d weights.
// Returns (C_out, T_out), channel-fastest. The im2col columns stay F32 so an
// F32 kernel gives an exact F32 convolution.
ggml_tensor * conv1d(ggml_context * ctx, ggml_tensor * x_tc, ggml_tensor * w, ggml_tensor * b, int stride,
                     int pad) {
    ggml_tensor * cols = ggml_im2col(ctx, w, x_tc, stride, 0, pad, 0, 1, 0, false, GGML_TYPE_F32);  // (C_in*K, T_out)
    cols = ggml_reshape_2d(ctx, cols, cols->ne[0], cols->ne[1] * cols->ne[2]);
    ggml_tensor * w2 = ggml_reshape_2d(ctx, w, w->ne[0] * w->ne[1], w->ne[2]);
    ggml_tensor * y = ggml_mul_mat(ctx, w2, cols);  // (C_out, T_out)
    return b ? ggml_add(ctx, y, b) : y;
}

ggml_tensor * time_fastest(ggml_context * ctx, ggml_tensor * x) { return ggml_cont(ctx, ggml_transpose(ctx, x)); }

}  // namespace

std::vector<float> tokenizer_rope_inv_freq(int64_t head_dim, float theta, bool bf16) {
    std::vector<float> f(size_t(head_dim / 2));
    for (int64_t i = 0; i < head_dim / 2; ++i) {
        // upstream: 1 / theta ** (arange(0, hd, 2).float() / hd), in float32
        const float e = float(2 * i) / float(head_dim);
        float v = 1.0f / std::pow(theta, e);
        f[size_t(i)] = bf16 ? round_to_bf16(v) : v;
    }
    return f;
}

AudioTokenizerHParams AudioTokenizerHParams::from_gguf(const GgufFile & f, int64_t n_codebooks) {
    namespace L = limits;
    AudioTokenizerHParams hp;
    hp.d_model = f.integer_in(n::kKeyDModel, 1, L::kMaxWidth);
    hp.n_layer = f.integer_in(n::kKeyLayers, 1, L::kMaxLayers);
    f.check_blocks(n::kKeyLayers, hp.n_layer, n::kLayerFmt);  // before anything is sized by it
    hp.n_head = f.integer_in(n::kKeyHeads, 1, L::kMaxHeads);
    hp.n_ff = f.integer_in(n::kKeyFfn, 1, L::kMaxFfn);
    hp.n_quantizers = f.integer_in(n::kKeyNumQuantizers, 1, 1024);
    hp.sample_rate = f.integer_in_or(n::kKeySampleRate, 24000, 1, 1 << 20);
    hp.hop_length = f.integer_in_or(n::kKeyHop, 240, 1, 1 << 20);
    hp.stride = f.integer_in_or(n::kKeyStride, 2, 1, 16);
    hp.avg_pooler = f.integer_in_or(n::kKeyAvgPooler, 2, 1, 16);
    hp.kernel_size = f.integer_in_or(n::kKeyKernel, 3, 1, 1 << 10);
    hp.n_mels = f.integer_in_or(n::kKeyNMels, 128, 1, 1 << 10);
    hp.skip_layer = f.integer_in_or(n::kKeySkipLayer, 3, 0, hp.n_layer);
    hp.rope_theta = f.f32_in_or(n::kKeyRopeTheta, 10000.0f, 0.0f, L::kMaxRopeTheta);
    hp.ln_eps = f.f32_in_or(n::kKeyLnEps, 1e-5f, 0.0f, L::kMaxNormEps);
    const std::string & path = f.path();

    if (hp.d_model % hp.n_head != 0 || (hp.d_model / hp.n_head) % 2 != 0) {
        fail(ErrorKind::ModelLoad,
             strfmt("%s: inconsistent tokenizer hyper-parameters (d_model %lld, heads %lld); d_model must split "
                    "into heads of an even size",
                    path.c_str(), (long long) hp.d_model, (long long) hp.n_head));
    }
    hp.head_dim = hp.d_model / hp.n_head;
    // what the Python front-end (24 kHz, 960/240 STFT, 128 mels) and the
    // fixed conv padding of upstream can feed
    auto unsupported = [&](const char * what, long long got, long long want) {
        fail(ErrorKind::UnsupportedModel, strfmt("%s: tokenizer has %s = %lld; only %lld is supported", path.c_str(),
                                                 what, got, want));
    };
    if (hp.sample_rate != 24000) unsupported("sampling_rate", hp.sample_rate, 24000);
    if (hp.hop_length != 240) unsupported("hop_length", hp.hop_length, 240);
    if (hp.n_mels != 128) unsupported("n_mels", hp.n_mels, 128);
    if (hp.kernel_size != 3) unsupported("kernel_size", hp.kernel_size, 3);
    if (f.has_key(n::kKeyNfft) && f.u32(n::kKeyNfft) != 960) unsupported("nfft", f.u32(n::kKeyNfft), 960);
    if (f.has_key(n::kKeyWindow) && f.u32(n::kKeyWindow) != 960) unsupported("window_size", f.u32(n::kKeyWindow), 960);
    if (hp.stride < 1 || hp.stride > 16) unsupported("stride_size", hp.stride, 2);
    if (hp.avg_pooler < 1 || hp.avg_pooler > 16) unsupported("avg_pooler", hp.avg_pooler, 2);

    if (n_codebooks < 1) fail(ErrorKind::InvalidArgument, "at least one RVQ stage must be computed");
    if (hp.n_quantizers < n_codebooks) {
        fail(ErrorKind::ModelLoad, strfmt("%s holds %lld RVQ codebooks; %lld are needed", path.c_str(),
                                          (long long) hp.n_quantizers, (long long) n_codebooks));
    }
    for (int64_t s = 0; s < n_codebooks; ++s) {
        const TensorInfo * t = f.find_tensor(fmt_name(n::kCodebookFmt, s));
        const int64_t from_tensor = (t && t->n_dims == 2) ? t->ne[1] : 0;
        // 0 when the tensor is missing: require() names it
        const int64_t k = t ? f.integer_in_or(fmt_name(n::kKeyCodebookSizeFmt, s), from_tensor, 1, L::kMaxVocab) : 0;
        if (t && (k < 1 || k > L::kMaxVocab)) {
            fail(ErrorKind::ModelLoad, strfmt("%s: codebook %lld has no usable size (%lld rows)", path.c_str(),
                                              (long long) s, (long long) k));
        }
        hp.codebook_sizes.push_back(k);
    }
    return hp;
}

AudioTokenizerModel::AudioTokenizerModel(const GgufFile & file, WeightStore & store, const AudioTokenizerOptions & opt)
    : hp_(AudioTokenizerHParams::from_gguf(file, opt.n_codebooks)), opt_(opt) {
    const int64_t d = hp_.d_model, ff = hp_.n_ff, k = hp_.kernel_size;
    const Role mm = Role::Matmul, vec = Role::Float;
    // conv kernels are multiplied as (K·C_in, C_out) matrices: float types only (Role::Conv)
    const Role conv = Role::Conv;
    conv1_w_ = store.require(n::kConv1W, {k, hp_.n_mels, d}, conv);
    conv1_b_ = store.require(n::kConv1B, {d}, vec);
    conv2_w_ = store.require(n::kConv2W, {k, d, d}, conv);
    conv2_b_ = store.require(n::kConv2B, {d}, vec);
    layers_.resize(size_t(hp_.n_layer));
    store.layer_stack(n::kLayerFmt, hp_.n_layer);
    for (int64_t il = 0; il < hp_.n_layer; ++il) {
        const std::string p = fmt_name(n::kLayerFmt, il);
        AudioTokenizerLayer & L = layers_[size_t(il)];
        L.attn_norm_w = store.require(p + n::kAttnNormW, {d}, vec);
        L.attn_norm_b = store.require(p + n::kAttnNormB, {d}, vec);
        L.wq = store.require(p + n::kQW, {d, d}, mm);
        L.bq = store.require(p + n::kQB, {d}, vec);
        L.wk = store.require(p + n::kKW, {d, d}, mm);
        L.wv = store.require(p + n::kVW, {d, d}, mm);
        L.bv = store.require(p + n::kVB, {d}, vec);
        L.wo = store.require(p + n::kOW, {d, d}, mm);
        L.bo = store.require(p + n::kOB, {d}, vec);
        L.ffn_norm_w = store.require(p + n::kFfnNormW, {d}, vec);
        L.ffn_norm_b = store.require(p + n::kFfnNormB, {d}, vec);
        L.fc1_w = store.require(p + n::kFc1W, {d, ff}, mm);
        L.fc1_b = store.require(p + n::kFc1B, {ff}, vec);
        L.fc2_w = store.require(p + n::kFc2W, {ff, d}, mm);
        L.fc2_b = store.require(p + n::kFc2B, {d}, vec);
    }
    norm_w_ = store.require(n::kNormW, {d}, vec);
    norm_b_ = store.require(n::kNormB, {d}, vec);
    if (hp_.avg_pooler > 1) {
        down_w_ = store.require(n::kDownW, {hp_.avg_pooler, d, d}, conv);
        down_norm_w_ = store.require(n::kDownNormW, {d}, vec);
        down_norm_b_ = store.require(n::kDownNormB, {d}, vec);
    }
    // centroids in F32 whatever the file stores (F16 in CrispASR's files):
    // the distances and the residual are computed in float32 (spec §6)
    const Role cb = Role::Float;
    for (int64_t s = 0; s < opt_.n_codebooks; ++s) {
        codebooks_.push_back(store.require(fmt_name(n::kCodebookFmt, s), {d, hp_.codebook_sizes[size_t(s)]}, cb));
    }
}

AudioTokenizerModel::~AudioTokenizerModel() {
    if (derived_buf_) ggml_backend_buffer_free(derived_buf_);
    if (derived_ctx_) ggml_free(derived_ctx_);
}

void AudioTokenizerModel::finish_load(Backend & backend) {
    const int64_t d = hp_.d_model, n_cb = n_codebooks();
    ggml_init_params params{ggml_tensor_overhead() * size_t(n_cb + 4), nullptr, true};
    derived_ctx_ = ggml_init(params);
    if (!derived_ctx_) fail(ErrorKind::Backend, "out of memory creating the tokenizer's derived tensors");
    rope_factors_ = ggml_new_tensor_1d(derived_ctx_, GGML_TYPE_F32, hp_.head_dim / 2);
    ggml_set_name(rope_factors_, "tok.rope_freq_factors");
    for (int64_t s = 0; s < n_cb; ++s) {
        ggml_tensor * t = ggml_new_tensor_1d(derived_ctx_, GGML_TYPE_F32, hp_.codebook_sizes[size_t(s)]);
        ggml_set_name(t, fmt_name("tok.codebook_norm.%d", s).c_str());
        codebook_norms_.push_back(t);
    }
    derived_buf_ = ggml_backend_alloc_ctx_tensors_from_buft(derived_ctx_, backend.weight_buffer_type());
    if (!derived_buf_) fail(ErrorKind::Backend, "out of memory allocating the tokenizer's derived tensors");

    // ggml_rope_ext rotates dimension pair i by p·θ_ggml(i)/factor_i, where
    // θ_ggml(i) is θ^(−2/hd) raised step by step; the factors make that the
    // upstream θ_i (bf16-rounded by default).
    const std::vector<float> target = tokenizer_rope_inv_freq(hp_.head_dim, hp_.rope_theta, opt_.bf16_rope);
    const float step = std::pow(hp_.rope_theta, -2.0f / float(hp_.head_dim));
    std::vector<float> factors(target.size());
    float th = 1.0f;
    for (size_t i = 0; i < target.size(); ++i) {
        factors[i] = th / target[i];
        th *= step;
    }
    ggml_backend_tensor_set(rope_factors_, factors.data(), 0, factors.size() * sizeof(float));

    codebook_host_.resize(size_t(n_cb));
    for (int64_t s = 0; s < n_cb; ++s) {
        const int64_t k = hp_.codebook_sizes[size_t(s)];
        std::vector<float> & host = codebook_host_[size_t(s)];
        host.resize(size_t(k * d));
        ggml_backend_tensor_get(codebooks_[size_t(s)], host.data(), 0, host.size() * sizeof(float));
        std::vector<float> norms(static_cast<size_t>(k));
        for (int64_t j = 0; j < k; ++j) {
            const float * e = host.data() + j * d;
            double acc = 0.0;
            for (int64_t c = 0; c < d; ++c) acc += double(e[c]) * double(e[c]);
            if (!std::isfinite(acc)) {
                fail(ErrorKind::ModelLoad, strfmt("RVQ codebook %lld holds non-finite values (centroid %lld)",
                                                  (long long) s, (long long) j));
            }
            norms[size_t(j)] = float(acc);
        }
        ggml_backend_tensor_set(codebook_norms_[size_t(s)], norms.data(), 0, norms.size() * sizeof(float));
    }
}

size_t AudioTokenizerModel::derived_bytes() const {
    size_t n = derived_buf_ ? ggml_backend_buffer_get_size(derived_buf_) : 0;
    for (const auto & h : codebook_host_) n += h.size() * sizeof(float);
    return n;
}

AudioEncoderGraph AudioTokenizerModel::build_encoder(ggml_context * ctx, ggml_cgraph * gf, int64_t t_mel,
                                                      bool keep_stages) const {
    const int64_t d = hp_.d_model, hd = hp_.head_dim, nh = hp_.n_head;
    AudioEncoderGraph g;
    g.t_mel = t_mel;
    g.t_enc = hp_.enc_frames(t_mel);
    g.t_code = hp_.code_frames(t_mel);
    const int64_t T = g.t_enc;
    auto keep = [&](ggml_tensor * t, const char * name) {
        if (keep_stages) {
            ggml_set_name(t, name);
            ggml_set_output(t);
        }
        return t;
    };

    g.mel = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, t_mel, hp_.n_mels);
    ggml_set_name(g.mel, "tok.mel");
    ggml_set_input(g.mel);
    g.positions = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, T);
    ggml_set_name(g.positions, "tok.positions");
    ggml_set_input(g.positions);

    // conv stem: (k3 s1 p1) + GELU, (k3 s2 p1) + GELU; GELU is the erf form
    ggml_tensor * x = ggml_gelu_erf(ctx, conv1d(ctx, g.mel, conv1_w_, conv1_b_, 1, 1));
    g.conv1 = keep(x, "tok.conv1_out");
    x = ggml_gelu_erf(ctx, conv1d(ctx, time_fastest(ctx, x), conv2_w_, conv2_b_, int(hp_.stride), 1));
    g.conv2 = keep(x, "tok.conv2_out");

    const float scale = 1.0f / std::sqrt(float(hd));
    ggml_tensor * skip = nullptr;
    for (int64_t il = 0; il < hp_.n_layer; ++il) {
        const AudioTokenizerLayer & L = layers_[size_t(il)];
        ggml_tensor * h = layer_norm(ctx, x, L.attn_norm_w, L.attn_norm_b, hp_.ln_eps);
        ggml_tensor * q = ggml_reshape_3d(ctx, linear(ctx, h, L.wq, L.bq), hd, nh, T);
        ggml_tensor * k = ggml_reshape_3d(ctx, linear(ctx, h, L.wk), hd, nh, T);
        ggml_tensor * v = ggml_reshape_3d(ctx, linear(ctx, h, L.wv, L.bv), hd, nh, T);
        // NeoX ("rotate-half") pairing over all head dims
        q = rope_neox(ctx, q, g.positions, hd, hp_.rope_theta, rope_factors_);
        k = rope_neox(ctx, k, g.positions, hd, hp_.rope_theta, rope_factors_);
        // full bidirectional attention within the chunk: no mask. K and V are copied head-major first
        // (an exact copy): ggml's tiled CPU flash attention is several times faster on contiguous heads
        // than on strided views, which makes the whole encoder ~20% faster on 30 s chunks
        ggml_tensor * kh = ggml_cont(ctx, ggml_permute(ctx, k, 0, 2, 1, 3));  // (hd, T, nh)
        ggml_tensor * vh = ggml_cont(ctx, ggml_permute(ctx, v, 0, 2, 1, 3));
        ggml_tensor * attn = attention(ctx, q, kh, vh, nullptr, scale);
        x = ggml_add(ctx, x, linear(ctx, attn, L.wo, L.bo));
        h = layer_norm(ctx, x, L.ffn_norm_w, L.ffn_norm_b, hp_.ln_eps);
        h = ggml_gelu_erf(ctx, linear(ctx, h, L.fc1_w, L.fc1_b));
        x = ggml_add(ctx, x, linear(ctx, h, L.fc2_w, L.fc2_b));
        if (keep_stages) {
            char name[48];
            std::snprintf(name, sizeof(name), "tok.layer%d_out", int(il));
            g.layers.push_back(keep(x, name));
        }
        if (hp_.skip_layer > 0 && il == hp_.skip_layer - 1) skip = x;
    }
    if (skip) x = ggml_add(ctx, x, skip);
    x = layer_norm(ctx, x, norm_w_, norm_b_, hp_.ln_eps);
    g.xfmr = keep(x, "tok.xfmr_out");

    if (hp_.avg_pooler > 1) {
        const int64_t p = hp_.avg_pooler;
        const int64_t extra = (p - T % p) % p;
        if (extra) x = ggml_pad(ctx, x, 0, int(extra), 0, 0);  // zero frames after the final norm
        x = ggml_gelu_erf(ctx, conv1d(ctx, time_fastest(ctx, x), down_w_, nullptr, int(p), 0));
        x = layer_norm(ctx, x, down_norm_w_, down_norm_b_, hp_.ln_eps);
    }
    ggml_set_name(x, "tok.pool_out");
    ggml_set_output(x);
    g.pooled = x;
    if (x->ne[0] != d || x->ne[1] != g.t_code) {
        fail(ErrorKind::Generic, strfmt("internal: pooled frames %lld, expected %lld", (long long) x->ne[1],
                                        (long long) g.t_code));
    }
    ggml_build_forward_expand(gf, x);
    if (keep_stages) {  // stages are outputs even where nothing downstream reads them
        ggml_build_forward_expand(gf, g.conv1);
        ggml_build_forward_expand(gf, g.conv2);
        for (ggml_tensor * t : g.layers) ggml_build_forward_expand(gf, t);
        ggml_build_forward_expand(gf, g.xfmr);
    }
    return g;
}

ggml_tensor * AudioTokenizerModel::build_distances(ggml_context * ctx, ggml_tensor * r, int64_t stage) const {
    ggml_tensor * dots = ggml_mul_mat(ctx, codebooks_[size_t(stage)], r);  // (K, T): e_k · r
    return ggml_add(ctx, ggml_scale(ctx, dots, -2.0f), codebook_norms_[size_t(stage)]);
}

}  // namespace mimo
