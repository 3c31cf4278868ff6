// The MiMo audio-tokenizer encoder and residual vector quantiser (spec
// asr.md §5–§6): hyper-parameters from the mimo_tok.* GGUF keys (with the
// spec's defaults for keys CrispASR's files lack), tensors by the
// mimo_tokenizer name table, and the graph builders for one 30 s chunk:
// log-mel -> conv stem -> pre-LN transformer -> skip + final norm ->
// down-sampler (the "pooled" frames), and per RVQ stage the distance matrix
// to that stage's centroids.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/gguf_file.h"
#include "core/weights.h"
#include "ggml.h"

namespace mimo {

struct AudioTokenizerHParams {
    int64_t d_model = 0;
    int64_t n_layer = 0;
    int64_t n_head = 0;
    int64_t head_dim = 0;
    int64_t n_ff = 0;
    int64_t n_quantizers = 0;       // codebooks stored in the file
    int64_t n_mels = 128;
    int64_t kernel_size = 3;        // conv1 / conv2 kernel (padding 1)
    int64_t stride = 2;             // conv2 stride
    int64_t avg_pooler = 2;         // down-sampler kernel = stride (1: none)
    int64_t skip_layer = 3;         // output of layer skip-1 is added after the last layer; 0: no skip
    int64_t sample_rate = 24000;
    int64_t hop_length = 240;
    float rope_theta = 10000.0f;
    float ln_eps = 1e-5f;
    std::vector<int64_t> codebook_sizes;  // K_s of the stages that are loaded

    static AudioTokenizerHParams from_gguf(const GgufFile & file, int64_t n_codebooks);

    // frame counts of one chunk
    int64_t enc_frames(int64_t t_mel) const { return (t_mel + 2 - kernel_size) / stride + 1; }
    int64_t code_frames(int64_t t_mel) const {
        const int64_t t = enc_frames(t_mel);
        return avg_pooler > 1 ? (t + avg_pooler - 1) / avg_pooler : t;
    }
};

struct AudioTokenizerOptions {
    bool bf16_rope = true;    // round the RoPE inverse frequencies to bfloat16 (spec §5 numerics note)
    int64_t n_codebooks = 8;  // RVQ stages computed (ASR uses the first 8)
};

struct AudioTokenizerLayer {
    ggml_tensor * attn_norm_w = nullptr, * attn_norm_b = nullptr;
    ggml_tensor * wq = nullptr, * bq = nullptr;
    ggml_tensor * wk = nullptr;  // no bias
    ggml_tensor * wv = nullptr, * bv = nullptr;
    ggml_tensor * wo = nullptr, * bo = nullptr;
    ggml_tensor * ffn_norm_w = nullptr, * ffn_norm_b = nullptr;
    ggml_tensor * fc1_w = nullptr, * fc1_b = nullptr;
    ggml_tensor * fc2_w = nullptr, * fc2_b = nullptr;
};

// Nodes of one encoder graph. The stage nodes other than `pooled` are only
// kept (marked as outputs) when the graph was built with keep_stages.
struct AudioEncoderGraph {
    ggml_tensor * mel = nullptr;        // input F32 (T_mel, n_mels): time-fastest
    ggml_tensor * positions = nullptr;  // input I32 (T_enc)
    ggml_tensor * conv1 = nullptr;      // (d, T_mel)
    ggml_tensor * conv2 = nullptr;      // (d, T_enc)
    std::vector<ggml_tensor *> layers;  // (d, T_enc) each
    ggml_tensor * xfmr = nullptr;       // (d, T_enc) after skip-add and final norm
    ggml_tensor * pooled = nullptr;     // (d, T_code)
    int64_t t_mel = 0, t_enc = 0, t_code = 0;
};

class AudioTokenizerModel {
public:
    // Registers every tensor with the store (loading happens in store.load());
    // call finish_load() afterwards.
    AudioTokenizerModel(const GgufFile & file, WeightStore & store, const AudioTokenizerOptions & opt);
    ~AudioTokenizerModel();
    AudioTokenizerModel(const AudioTokenizerModel &) = delete;
    AudioTokenizerModel & operator=(const AudioTokenizerModel &) = delete;

    // After the weights are loaded: host copies of the centroids, their
    // squared norms and the RoPE frequency factors (small device tensors).
    void finish_load(Backend & backend);

    const AudioTokenizerHParams & hparams() const { return hp_; }
    const AudioTokenizerOptions & options() const { return opt_; }
    int64_t n_codebooks() const { return int64_t(codebooks_.size()); }
    const std::vector<float> & codebook_host(int64_t s) const { return codebook_host_[size_t(s)]; }
    size_t derived_bytes() const;

    AudioEncoderGraph build_encoder(ggml_context * ctx, ggml_cgraph * gf, int64_t t_mel, bool keep_stages) const;
    // ‖e_k‖² − 2 e_k·r for every centroid k of stage s and frame of r:
    // r is F32 (d, T); returns (K_s, T). Adding ‖r‖² gives the squared distance.
    ggml_tensor * build_distances(ggml_context * ctx, ggml_tensor * r, int64_t stage) const;

    // graph nodes per encoder layer, for sizing graph contexts
    static constexpr size_t kNodesPerLayer = 64;

private:
    AudioTokenizerHParams hp_;
    AudioTokenizerOptions opt_;
    ggml_tensor * conv1_w_ = nullptr, * conv1_b_ = nullptr;
    ggml_tensor * conv2_w_ = nullptr, * conv2_b_ = nullptr;
    std::vector<AudioTokenizerLayer> layers_;
    ggml_tensor * norm_w_ = nullptr, * norm_b_ = nullptr;
    ggml_tensor * down_w_ = nullptr, * down_norm_w_ = nullptr, * down_norm_b_ = nullptr;
    std::vector<ggml_tensor *> codebooks_;  // F32 (d, K_s)

    // derived at load
    ggml_context * derived_ctx_ = nullptr;
    ggml_backend_buffer_t derived_buf_ = nullptr;
    ggml_tensor * rope_factors_ = nullptr;        // F32 (head_dim / 2)
    std::vector<ggml_tensor *> codebook_norms_;   // F32 (K_s)
    std::vector<std::vector<float>> codebook_host_;
};

// The RoPE inverse frequencies θ_i = θ^(−2i/head_dim) as upstream computes
// them in float32, optionally rounded to bfloat16 (round to nearest even).
std::vector<float> tokenizer_rope_inv_freq(int64_t head_dim, float theta, bool bf16);

}  // namespace mimo
