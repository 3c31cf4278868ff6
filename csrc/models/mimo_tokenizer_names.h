// Tensor names and metadata keys of the MiMo audio-tokenizer GGUF layout
// (CrispASR's published files; spec gguf-compat.md §2). One table, so the
// loader and the Python converter agree on a single spelling.
#pragma once

namespace mimo::names::tok {

inline constexpr const char * kArch = "mimo_tokenizer";

// metadata keys (mimo_tok.*)
inline constexpr const char * kKeyDModel = "mimo_tok.d_model";
inline constexpr const char * kKeyLayers = "mimo_tok.encoder_layers";
inline constexpr const char * kKeyHeads = "mimo_tok.encoder_heads";
inline constexpr const char * kKeyFfn = "mimo_tok.encoder_ffn_dim";
inline constexpr const char * kKeyNumQuantizers = "mimo_tok.num_quantizers";
inline constexpr const char * kKeySampleRate = "mimo_tok.sampling_rate";
inline constexpr const char * kKeyHop = "mimo_tok.hop_length";
inline constexpr const char * kKeyStride = "mimo_tok.stride_size";
inline constexpr const char * kKeyAvgPooler = "mimo_tok.avg_pooler";
inline constexpr const char * kKeyKernel = "mimo_tok.kernel_size";
inline constexpr const char * kKeyCodebookSizeFmt = "mimo_tok.codebook_size.%d";
// keys CrispASR's files lack (defaults in AudioTokenizerHParams)
inline constexpr const char * kKeyNMels = "mimo_tok.n_mels";
inline constexpr const char * kKeyNfft = "mimo_tok.nfft";
inline constexpr const char * kKeyWindow = "mimo_tok.window_size";
inline constexpr const char * kKeySkipLayer = "mimo_tok.encoder_skip_layer_id";
inline constexpr const char * kKeyRopeTheta = "mimo_tok.rope_theta";
inline constexpr const char * kKeyLnEps = "mimo_tok.layer_norm_eps";

// conv stem
inline constexpr const char * kConv1W = "encoder.conv1.weight";
inline constexpr const char * kConv1B = "encoder.conv1.bias";
inline constexpr const char * kConv2W = "encoder.conv2.weight";
inline constexpr const char * kConv2B = "encoder.conv2.bias";

// encoder layers
inline constexpr const char * kLayerFmt = "enc.blk.%d.";  // + one of the suffixes below
inline constexpr const char * kAttnNormW = "attn_norm.weight";
inline constexpr const char * kAttnNormB = "attn_norm.bias";
inline constexpr const char * kQW = "attn.q.weight";
inline constexpr const char * kQB = "attn.q.bias";
inline constexpr const char * kKW = "attn.k.weight";  // the key projection has no bias
inline constexpr const char * kVW = "attn.v.weight";
inline constexpr const char * kVB = "attn.v.bias";
inline constexpr const char * kOW = "attn.o.weight";
inline constexpr const char * kOB = "attn.o.bias";
inline constexpr const char * kFfnNormW = "ffn_norm.weight";
inline constexpr const char * kFfnNormB = "ffn_norm.bias";
inline constexpr const char * kFc1W = "fc1.weight";
inline constexpr const char * kFc1B = "fc1.bias";
inline constexpr const char * kFc2W = "fc2.weight";
inline constexpr const char * kFc2B = "fc2.bias";

// after the layers
inline constexpr const char * kNormW = "enc.norm.weight";
inline constexpr const char * kNormB = "enc.norm.bias";
inline constexpr const char * kDownW = "encoder.down_sample_layer.0.weight";  // no bias
inline constexpr const char * kDownNormW = "encoder.down_sample_norm.weight";
inline constexpr const char * kDownNormB = "encoder.down_sample_norm.bias";

// RVQ centroids, ne (d_model, K_s); embed_avg / cluster_size / inited are
// training state and never loaded
inline constexpr const char * kCodebookFmt = "encoder.quant.vq.layers.%d._codebook.embed";

}  // namespace mimo::names::tok
