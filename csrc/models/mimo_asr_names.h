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

// LM keys the audio adapter reads (besides the Qwen2 decoder)
inline constexpr const char * kKeyLlmHidden = "mimo_asr.llm.hidden_size";
inline constexpr const char * kKeyLlmRopeTheta = "mimo_asr.llm.rope_theta";
inline constexpr const char * kKeyLlmRmsEps = "mimo_asr.llm.rms_norm_eps";

// audio adapter keys (mimo_asr.audio.*)
inline constexpr const char * kKeyAudioChannels = "mimo_asr.audio.channels";
inline constexpr const char * kKeyAudioGroupSize = "mimo_asr.audio.group_size";
inline constexpr const char * kKeyAudioLayers = "mimo_asr.audio.input_layers";
inline constexpr const char * kKeyAudioDim = "mimo_asr.audio.input_dim";
inline constexpr const char * kKeyAudioHeads = "mimo_asr.audio.input_heads";
inline constexpr const char * kKeyAudioHeadDim = "mimo_asr.audio.input_head_dim";
inline constexpr const char * kKeyAudioFfn = "mimo_asr.audio.input_intermediate";
// written by CrispASR's converter but not trusted (the LM hidden size is used)
inline constexpr const char * kKeyAudioOutHidden = "mimo_asr.audio.out_hidden_size";
inline constexpr const char * kKeySpeechVocabFmt = "mimo_asr.audio.speech_vocab.%d";
// our own keys; CrispASR's files lack them (spec defaults apply)
inline constexpr const char * kKeySpeechEmptyFmt = "mimo_asr.audio.speech_zeroemb.%d";
inline constexpr const char * kKeyAudioFullAttention = "mimo_asr.audio.input_full_attention";

// audio adapter tensors (never fused)
inline constexpr const char * kAudioEmbFmt = "audio.emb.%d.weight";  // speech embedding table of channel c
inline constexpr const char * kAudioLayerFmt = "audio.blk.%d.";      // + the block suffixes above
inline constexpr const char * kAudioNorm = "audio.norm.weight";
inline constexpr const char * kAudioGroupProj = "audio.group_proj.weight";

}  // namespace mimo::names::asr
