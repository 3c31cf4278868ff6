"""MiMo-V2.5-ASR Hugging Face checkpoint -> CrispASR-compatible ``mimo_asr`` GGUF.

Writes exactly the layout of spec gguf-compat.md §1 (names, ne order, keys),
so files are interchangeable with CrispASR's. The LM trunk is required; the
audio adapter and the TTS-side modules are written when the checkpoint has
them, so a plain Qwen2 LM folder converts to an LM-only file (what the
low-level :class:`mimo_ggml.LanguageModel` needs).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..errors import InvalidArgumentError, ModelLoadError
from .common import Checkpoint, PlannedTensor, write_gguf

log = logging.getLogger("mimo_ggml")

ARCH = "mimo_asr"
DEFAULT_SPEECH_VOCAB = [1025, 1025, 129, 129, 129, 129, 129, 129]
DEFAULT_EMPTY_IDS = [1024, 1024, 128, 128, 128, 128, 128, 128]

# HF sub-module suffix -> GGUF suffix, shared by the LM layers and the two
# local transformers (same Qwen2 block structure)
_BLOCK_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn.q.weight",
    "self_attn.q_proj.bias": "attn.q.bias",
    "self_attn.k_proj.weight": "attn.k.weight",
    "self_attn.k_proj.bias": "attn.k.bias",
    "self_attn.v_proj.weight": "attn.v.weight",
    "self_attn.v_proj.bias": "attn.v.bias",
    "self_attn.o_proj.weight": "attn.o.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn.gate.weight",
    "mlp.up_proj.weight": "ffn.up.weight",
    "mlp.down_proj.weight": "ffn.down.weight",
}


def _int_list(value, n: int, default: list[int]) -> list[int]:
    """MiMo configs spell per-channel lists either as JSON lists or as
    dash-joined strings ("1025-1025-129-...")."""
    if value is None:
        return list(default)
    if isinstance(value, str):
        value = [int(v) for v in value.split("-")]
    value = [int(v) for v in value]
    if len(value) != n:
        raise ModelLoadError(f"expected {n} per-channel values, got {value}")
    return value


def _audio_config(cfg: dict) -> dict:
    """Audio keys may sit at the top level or inside ``audio_config``."""
    merged = dict(cfg)
    merged.update(cfg.get("audio_config") or {})
    return merged


def convert_asr(
    src_dir: str | Path,
    out_path: str | Path,
    *,
    dtype: str = "f16",
    fuse_qkv: bool = True,
    include_tts: bool = True,
) -> Path:
    """Convert a MiMo-V2.5-ASR (or plain Qwen2 LM) checkpoint folder.

    dtype: "f32" or "f16" for matrices (1-D tensors are always F32).
    fuse_qkv: write one ``attn.qkv`` tensor per LM layer (CrispASR's current
    default) instead of separate q/k/v.
    include_tts: also write the TTS-side modules (unused for ASR, kept for
    file compatibility).
    """
    if dtype not in ("f32", "f16"):
        raise InvalidArgumentError(f"dtype must be 'f32' or 'f16', got {dtype!r}; use `mimo-ggml quantize` for others")
    ck = Checkpoint(src_dir)
    cfg = ck.config
    acfg = _audio_config(cfg)
    try:
        n_layer = int(cfg["num_hidden_layers"])
        hidden = int(cfg["hidden_size"])
        n_head = int(cfg["num_attention_heads"])
        n_head_kv = int(cfg.get("num_key_value_heads", n_head))
        n_ff = int(cfg["intermediate_size"])
        vocab = int(cfg["vocab_size"])
    except KeyError as exc:
        raise ModelLoadError(f"{ck.folder}/config.json lacks {exc.args[0]!r}") from None
    if cfg.get("tie_word_embeddings") and "lm_head.weight" not in ck:
        raise ModelLoadError("tied embeddings are not supported: MiMo-V2.5-ASR has a separate lm_head")

    tensors: list[PlannedTensor] = []

    def mat(hf_name: str, gguf_name: str, kind: str = dtype) -> None:
        shape = ck.shape(hf_name)
        out_type = "f32" if len(shape) <= 1 else kind
        tensors.append(PlannedTensor(gguf_name, shape, out_type, lambda n=hf_name: ck.tensor(n)))

    def block(hf_prefix: str, gguf_prefix: str, fuse: bool) -> None:
        if fuse:
            q, k, v = (f"{hf_prefix}self_attn.{p}_proj" for p in "qkv")
            rows = ck.shape(q + ".weight")[0] + ck.shape(k + ".weight")[0] + ck.shape(v + ".weight")[0]
            tensors.append(PlannedTensor(
                gguf_prefix + "attn.qkv.weight", (rows, ck.shape(q + ".weight")[1]), dtype,
                lambda: np.concatenate([ck.tensor(f"{p}.weight") for p in (q, k, v)], axis=0)))
            tensors.append(PlannedTensor(
                gguf_prefix + "attn.qkv.bias", (rows,), "f32",
                lambda: np.concatenate([ck.tensor(f"{p}.bias") for p in (q, k, v)], axis=0)))
        for hf_suffix, gguf_suffix in _BLOCK_NAMES.items():
            if fuse and hf_suffix.startswith("self_attn.") and not hf_suffix.startswith("self_attn.o_proj"):
                continue
            mat(hf_prefix + hf_suffix, gguf_prefix + gguf_suffix)

    # LM trunk (the layers keep CrispASR's "model.layers." prefix)
    mat("model.embed_tokens.weight", "llm.embed.weight")
    for i in range(n_layer):
        block(f"model.layers.{i}.", f"model.layers.{i}.", fuse_qkv)
    mat("model.norm.weight", "llm.final_norm.weight")
    mat("lm_head.weight", "llm.lm_head.weight")

    # audio adapter (never fused)
    has_audio = "speech_embeddings.0.weight" in ck
    channels = int(acfg.get("audio_channels", 8))
    speech_vocab = _int_list(acfg.get("speech_vocab_size"), channels, DEFAULT_SPEECH_VOCAB)
    empty_ids = _int_list(acfg.get("speech_zeroemb_idx"), channels, DEFAULT_EMPTY_IDS)
    n_ilt = int(acfg.get("input_local_layers", 6))
    if has_audio:
        for c in range(channels):
            mat(f"speech_embeddings.{c}.weight", f"audio.emb.{c}.weight")
        for layer in range(n_ilt):
            block(f"input_local_transformer.layers.{layer}.", f"audio.blk.{layer}.", False)
        mat("input_local_transformer.norm.weight", "audio.norm.weight")
        mat("speech_group_downcast.weight", "audio.group_proj.weight")
        if include_tts and "hidden_states_downcast.weight" in ck:
            mat("hidden_states_downcast.weight", "audio.hidden_proj.weight")
            n_local = len({n.split(".")[2] for n in ck.items("local_transformer.layers.")})
            for layer in range(n_local):
                block(f"local_transformer.layers.{layer}.", f"llm.blk.{layer}.", False)
            mat("local_transformer.norm.weight", "llm.norm.weight")
            for c in range(channels):
                mat(f"local_transformer_lm_heads.{c}.weight", f"llm.codebook_head.{c}.weight")
    else:
        log.info("mimo-ggml convert: %s has no audio adapter; writing an LM-only file", ck.folder)

    tokens, merges = _tokenizer_fields(Path(src_dir), vocab)

    def metadata(w) -> None:
        p = "mimo_asr.llm."
        w.add_string("general.name", str(cfg.get("_name_or_path") or "MiMo-V2.5-ASR").split("/")[-1] or "MiMo-V2.5-ASR")
        w.add_uint32(p + "hidden_size", hidden)
        w.add_uint32(p + "num_layers", n_layer)
        w.add_uint32(p + "num_heads", n_head)
        w.add_uint32(p + "num_kv_heads", n_head_kv)
        w.add_uint32(p + "intermediate_size", n_ff)
        w.add_uint32(p + "vocab_size", vocab)
        w.add_uint32(p + "max_position_embeddings", int(cfg.get("max_position_embeddings", 8192)))
        w.add_float32(p + "rope_theta", float(cfg.get("rope_theta", (cfg.get("rope_parameters") or {}).get("rope_theta", 640000.0))))
        w.add_float32(p + "rms_norm_eps", float(cfg.get("rms_norm_eps", 1e-6)))
        if has_audio:
            a = "mimo_asr.audio."
            w.add_uint32(a + "channels", channels)
            w.add_uint32(a + "group_size", int(acfg.get("group_size", 4)))
            w.add_uint32(a + "input_layers", n_ilt)
            w.add_uint32(a + "input_dim", int(acfg.get("input_local_dim", 1024)))
            w.add_uint32(a + "input_heads", int(acfg.get("input_local_attn_heads", 64)))
            w.add_uint32(a + "input_head_dim", int(acfg.get("input_local_head_dim", 16)))
            w.add_uint32(a + "input_intermediate", int(acfg.get("input_local_intermediate_size", 4096)))
            w.add_uint32(a + "out_hidden_size", hidden)
            for c in range(channels):
                w.add_uint32(f"{a}speech_vocab.{c}", speech_vocab[c])
                # our own keys (CrispASR hard-codes these values and ignores the keys)
                w.add_uint32(f"{a}speech_zeroemb.{c}", empty_ids[c])
            w.add_bool(a + "input_full_attention", bool(acfg.get("input_full_attention", True)))
        if tokens is not None:
            w.add_string("tokenizer.ggml.model", "gpt2")
            w.add_array("tokenizer.ggml.tokens", tokens)
            w.add_array("tokenizer.ggml.merges", merges)

    return write_gguf(out_path, ARCH, metadata, tensors)


def _tokenizer_fields(folder: Path, vocab_size: int) -> tuple[list[str] | None, list[str] | None]:
    """Tokens (padded to vocab_size with [PAD<id>] placeholders) and merges
    from the checkpoint's tokenizer.json, or (None, None) without one."""
    tj = folder / "tokenizer.json"
    if not tj.is_file():
        log.info("mimo-ggml convert: %s has no tokenizer.json; the GGUF gets no tokenizer fields", folder)
        return None, None
    data = json.loads(tj.read_text(encoding="utf-8"))
    model = data.get("model", {})
    if model.get("type") != "BPE":
        raise ModelLoadError(f"{tj}: expected a byte-level BPE tokenizer, found {model.get('type')!r}")
    by_id: dict[int, str] = {int(i): s for s, i in model["vocab"].items()}
    for added in data.get("added_tokens", []):
        by_id[int(added["id"])] = added["content"]
    if max(by_id) >= vocab_size:
        raise ModelLoadError(f"{tj}: token id {max(by_id)} does not fit vocab_size {vocab_size}")
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(vocab_size)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return tokens, merges
