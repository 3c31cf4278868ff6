// Tensor names and metadata keys of the `mimo2` GGUF layout (llama.cpp's
// names, spec moe.md §7, plus mimo-ggml's own keys that llama.cpp ignores).
// One table, so the loader and python/mimo_ggml/convert/mimo2.py agree on a
// single spelling.
#pragma once

namespace mimo::names::mimo2 {

inline constexpr const char * kArch = "mimo2";

// metadata keys
inline constexpr const char * kKeyBlockCount = "mimo2.block_count";
inline constexpr const char * kKeyNextnLayers = "mimo2.nextn_predict_layers";  // MTP blocks at the end (skipped)
inline constexpr const char * kKeyContextLength = "mimo2.context_length";
inline constexpr const char * kKeyEmbd = "mimo2.embedding_length";
inline constexpr const char * kKeyFf = "mimo2.feed_forward_length";
inline constexpr const char * kKeyVocab = "mimo2.vocab_size";
inline constexpr const char * kKeyHeads = "mimo2.attention.head_count";        // scalar or per-layer array
inline constexpr const char * kKeyHeadsKv = "mimo2.attention.head_count_kv";   // per-layer array (or scalar)
inline constexpr const char * kKeyKeyLength = "mimo2.attention.key_length";    // 192
inline constexpr const char * kKeyValueLength = "mimo2.attention.value_length";  // 128
inline constexpr const char * kKeyRmsEps = "mimo2.attention.layer_norm_rms_epsilon";
inline constexpr const char * kKeySlidingWindow = "mimo2.attention.sliding_window";          // 128 (previous tokens)
inline constexpr const char * kKeySwaPattern = "mimo2.attention.sliding_window_pattern";     // per layer, 1 = SWA
inline constexpr const char * kKeyValueScale = "mimo2.attention.value_scale";
inline constexpr const char * kKeyRopeDims = "mimo2.rope.dimension_count";
inline constexpr const char * kKeyRopeBase = "mimo2.rope.freq_base";
inline constexpr const char * kKeyRopeBaseSwa = "mimo2.rope.freq_base_swa";
inline constexpr const char * kKeyExperts = "mimo2.expert_count";
inline constexpr const char * kKeyExpertsUsed = "mimo2.expert_used_count";
inline constexpr const char * kKeyExpertFf = "mimo2.expert_feed_forward_length";
inline constexpr const char * kKeyExpertGating = "mimo2.expert_gating_func";  // 2 = sigmoid
inline constexpr const char * kKeyExpertNorm = "mimo2.expert_weights_norm";
inline constexpr const char * kKeyExpertScale = "mimo2.expert_weights_scale";
inline constexpr const char * kKeyLeadingDense = "mimo2.leading_dense_block_count";
// mimo-ggml's own keys
inline constexpr const char * kKeyWindowKeys = "mimo2.attention.sliding_window_keys";  // keys incl. the query
inline constexpr const char * kKeySwaSinks = "mimo2.attention.swa_sinks";
inline constexpr const char * kKeyFullSinks = "mimo2.attention.full_sinks";
// "global": MTP attn_qkv rows de-chunked to [Q; K; V] by our converter (spec mtp.md §5)
inline constexpr const char * kKeyNextnQkvLayout = "mimo2.nextn.qkv_layout";
// tokenizer
inline constexpr const char * kKeyEos = "tokenizer.ggml.eos_token_id";

// gating function ids (llama.cpp's llama_expert_gating_func_type)
inline constexpr int kGatingSigmoid = 2;

// global tensors
inline constexpr const char * kEmbed = "token_embd.weight";
inline constexpr const char * kOutputNorm = "output_norm.weight";
inline constexpr const char * kOutput = "output.weight";

// per block: "blk.%d." + suffix
inline constexpr const char * kLayerFmt = "blk.%d.";
inline constexpr const char * kAttnNorm = "attn_norm.weight";
inline constexpr const char * kQkv = "attn_qkv.weight";  // fused, rows global [Q; K; V]
inline constexpr const char * kQ = "attn_q.weight";
inline constexpr const char * kK = "attn_k.weight";
inline constexpr const char * kV = "attn_v.weight";
inline constexpr const char * kO = "attn_output.weight";
inline constexpr const char * kSinks = "attn_sinks.weight";  // F32 [n_head]
inline constexpr const char * kFfnNorm = "ffn_norm.weight";
inline constexpr const char * kGate = "ffn_gate.weight";  // dense MLP
inline constexpr const char * kUp = "ffn_up.weight";
inline constexpr const char * kDown = "ffn_down.weight";
inline constexpr const char * kRouter = "ffn_gate_inp.weight";  // [E, H]
inline constexpr const char * kRouterBias = "exp_probs_b.bias";  // [E], selection only
inline constexpr const char * kGateExps = "ffn_gate_exps.weight";  // ne {H, I, E}
inline constexpr const char * kUpExps = "ffn_up_exps.weight";
inline constexpr const char * kDownExps = "ffn_down_exps.weight";  // ne {I, H, E}
// MTP blocks (blk.{n_layer + k}, spec mtp.md §1.1): the block tensors above plus
inline constexpr const char * kNextnEnorm = "nextn.enorm.weight";      // RMSNorm on the token embedding
inline constexpr const char * kNextnHnorm = "nextn.hnorm.weight";      // RMSNorm on the target hidden
inline constexpr const char * kNextnEhProj = "nextn.eh_proj.weight";   // ne {2H, H}, embedding half first
inline constexpr const char * kNextnOutNorm = "layer_output_norm.weight";  // before the shared head

}  // namespace mimo::names::mimo2
