// Tensor names and metadata keys of a DFlash drafter GGUF (ik_llama.cpp's
// arch `dflash-draft` naming, spec dflash.md Corrections item 10, plus the
// mask embedding tensor of our converter). One table for the loader;
// python/mimo_ggml/convert/dflash.py writes the same spellings.
#pragma once

namespace mimo::names::dflash {

inline constexpr const char * kArch = "dflash-draft";

inline constexpr const char * kKeyBlockCount = "dflash-draft.block_count";
inline constexpr const char * kKeyEmbd = "dflash-draft.embedding_length";
inline constexpr const char * kKeyFf = "dflash-draft.feed_forward_length";
inline constexpr const char * kKeyContextLength = "dflash-draft.context_length";
inline constexpr const char * kKeyHeads = "dflash-draft.attention.head_count";
inline constexpr const char * kKeyHeadsKv = "dflash-draft.attention.head_count_kv";
inline constexpr const char * kKeyKeyLength = "dflash-draft.attention.key_length";
inline constexpr const char * kKeyValueLength = "dflash-draft.attention.value_length";
inline constexpr const char * kKeyRmsEps = "dflash-draft.attention.layer_norm_rms_epsilon";
inline constexpr const char * kKeyValueScale = "dflash-draft.attention.value_scale";
inline constexpr const char * kKeyCausal = "dflash-draft.attention.causal";
inline constexpr const char * kKeyWindow = "dflash-draft.attention.sliding_window";  // keys incl. the query; 0: none
inline constexpr const char * kKeyRopeDims = "dflash-draft.rope.dimension_count";
inline constexpr const char * kKeyRopeBase = "dflash-draft.rope.freq_base";
inline constexpr const char * kKeyBlockSize = "dflash-draft.dflash.block_size";
inline constexpr const char * kKeyMaskToken = "dflash-draft.dflash.mask_token_id";
inline constexpr const char * kKeyTargetLayers = "dflash-draft.dflash.target_layer_ids";
inline constexpr const char * kKeyTargetFeatures = "dflash-draft.dflash.n_target_features";
inline constexpr const char * kKeyBackboneRopeBase = "dflash-draft.dflash.backbone_rotary_base";
inline constexpr const char * kKeyTargetLayerCount = "dflash-draft.dflash.num_target_layers";

inline constexpr const char * kFc = "dflash_fc.weight";                  // ne {n_target_features, H}
inline constexpr const char * kHiddenNorm = "dflash_hidden_norm.weight";
inline constexpr const char * kMaskEmbd = "dflash_mask_embd.weight";     // F32 {H}; absent: the target's row
inline constexpr const char * kOutputNorm = "output_norm.weight";

inline constexpr const char * kLayerFmt = "blk.%d.";
inline constexpr const char * kAttnNorm = "attn_norm.weight";
inline constexpr const char * kQ = "attn_q.weight";
inline constexpr const char * kK = "attn_k.weight";
inline constexpr const char * kV = "attn_v.weight";
inline constexpr const char * kO = "attn_output.weight";
inline constexpr const char * kQNorm = "attn_q_norm.weight";
inline constexpr const char * kKNorm = "attn_k_norm.weight";
inline constexpr const char * kSinks = "attn_sinks.weight";
inline constexpr const char * kFfnNorm = "ffn_norm.weight";
inline constexpr const char * kGate = "ffn_gate.weight";
inline constexpr const char * kUp = "ffn_up.weight";
inline constexpr const char * kDown = "ffn_down.weight";

}  // namespace mimo::names::dflash
