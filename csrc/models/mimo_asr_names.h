// Tensor names and metadata keys of the MiMo-ASR LM GGUF layout (CrispASR's
// published files; spec gguf-compat.md §1). One table, so loaders and the
// Python converter agree on a single spelling.
#pragma once

namespace mimo::names::asr {

inline constexpr const char * kArch = "mimo_asr";
inline constexpr const char * kLlmKeyPrefix = "mimo_asr.llm.";
inline constexpr const char * kAudioKeyPrefix = "mimo_asr.audio.";

// LM trunk
inline constexpr const char * kEmbed = "llm.embed.weight";
inline constexpr const char * kFinalNorm = "llm.final_norm.weight";
inline constexpr const char * kLmHead = "llm.lm_head.weight";
inline constexpr const char * kLayerFmt = "model.layers.%d.";  // + one of the suffixes below
inline constexpr const char * kAttnNorm = "attn_norm.weight";
inline constexpr const char * kQkvW = "attn.qkv.weight";
inline constexpr const char * kQkvB = "attn.qkv.bias";
inline constexpr const char * kQW = "attn.q.weight";
inline constexpr const char * kQB = "attn.q.bias";
inline constexpr const char * kKW = "attn.k.weight";
inline constexpr const char * kKB = "attn.k.bias";
inline constexpr const char * kVW = "attn.v.weight";
inline constexpr const char * kVB = "attn.v.bias";
inline constexpr const char * kOW = "attn.o.weight";
inline constexpr const char * kFfnNorm = "ffn_norm.weight";
inline constexpr const char * kGate = "ffn.gate.weight";
inline constexpr const char * kUp = "ffn.up.weight";
inline constexpr const char * kDown = "ffn.down.weight";

}  // namespace mimo::names::asr
