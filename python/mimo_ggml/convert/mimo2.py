"""MiMo-V2 MoE text backbone (MiMo-V2-Flash, V2.5, V2.5-Pro) -> GGUF in llama.cpp's ``mimo2`` layout.

This file owns the mapping from a Hugging Face checkpoint folder to the GGUF
that our C++ ``mimo2`` model (and llama.cpp) loads: reading ``config.json``
(both ``mimo_v2_flash`` and ``mimo_v2``), choosing per-tensor output types,
naming tensors and metadata keys (spec/moe.md §7), and streaming the file out
one tensor at a time so that a 300 GB checkpoint never has to fit in memory.
The number formats themselves live in :mod:`.mimo2_formats`.

Metadata written (``{a}`` = ``mimo2``)::

    general.architecture = mimo2, general.name, general.file_type
    {a}.block_count, .context_length, .embedding_length, .feed_forward_length, .vocab_size
    {a}.attention.head_count            scalar nh
    {a}.attention.head_count_kv         per-layer array (nkv or swa nkv), INT32 like gguf-py's add_array
    {a}.attention.key_length / value_length            192 / 128
    {a}.attention.sliding_window        window from config (128)
    {a}.attention.sliding_window_pattern per-layer array, 1 = SWA (INT32)
    {a}.attention.layer_norm_rms_epsilon
    {a}.attention.value_scale           attention_value_scale (weights are NOT pre-scaled)
    {a}.rope.dimension_count, .rope.freq_base (full layers), .rope.freq_base_swa
    {a}.expert_count, .expert_used_count, .expert_feed_forward_length
    {a}.expert_gating_func = 2 (sigmoid), .expert_weights_norm, .expert_weights_scale,
    {a}.leading_dense_block_count
    {a}.nextn_predict_layers            MTP layers exported (only when there are any, spec/mtp.md §5)
  mimo-ggml's own keys (llama.cpp ignores them):
    {a}.attention.sliding_window_keys   keys a SWA query sees, current token included (default: the
                                        config's window + 1, 129 for the releases, §3.3)
    {a}.attention.swa_sinks / .full_sinks   bools: which layer kinds carry attn_sinks
    {a}.nextn.qkv_layout = "global"     MTP q/k/v rows de-chunked to [Q; K; V] (tells our files
                                        from llama.cpp's, whose MTP attn_qkv may stay TP-chunked)
    tokenizer.ggml.* (gpt2 BPE) when the folder has a tokenizer.json

Tensors: ``token_embd``, ``output_norm``, ``output``, and per block ``attn_norm``,
``attn_q/k/v`` (or ``attn_qkv`` with ``fuse_qkv=True``; rows global [Q;K;V]),
``attn_output``, ``attn_sinks`` (F32 [nh]), ``ffn_norm``, dense ``ffn_gate/up/down``,
``ffn_gate_inp`` (F32), ``exp_probs_b.bias`` (F32), ``ffn_{gate,up,down}_exps``
(3-D, ggml ne {K, N, E}).  Norms are F32.

MTP layers ``model.mtp.layers.{k}`` become blocks ``blk.{L+k}`` (spec/mtp.md
§5): ``block_count`` = L + n_mtp, the per-layer arrays get SWA entries for
them, and each carries ``nextn.enorm``, ``nextn.hnorm``, ``nextn.eh_proj``
(ne {2H, H}, embedding half first), ``attn_norm``, ``attn_qkv`` or
``attn_q/k/v`` (as the trunk: SWA geometry, a TP-chunked fused qkv
de-chunked with ``ckpt_tp = num_key_value_heads``), ``attn_output``,
``attn_sinks``, ``ffn_norm`` (pre_mlp_layernorm), dense ``ffn_gate/up/down``
and ``layer_output_norm`` (final_layernorm).  ``mtp=False`` leaves them out.
The omni towers are skipped and reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import gguf
import numpy as np

from ..errors import InvalidArgumentError, ModelLoadError, UnsupportedModelError
from .common import Checkpoint, PlannedTensor, write_gguf
from . import mimo2_formats as fmt

__all__ = ["convert_mimo2", "Mimo2HParams", "Mimo2ConversionReport", "read_mimo2_hparams", "main"]

log = logging.getLogger(__name__)

ARCH = "mimo2"
KEY_WINDOW_KEYS = f"{ARCH}.attention.sliding_window_keys"
KEY_SWA_SINKS = f"{ARCH}.attention.swa_sinks"
KEY_FULL_SINKS = f"{ARCH}.attention.full_sinks"
KEY_VALUE_SCALE = f"{ARCH}.attention.value_scale"
KEY_NEXTN_QKV_LAYOUT = f"{ARCH}.nextn.qkv_layout"
NEXTN_QKV_LAYOUT = "global"  # our MTP q/k/v rows are global [Q; K; V], never TP-chunked
MTP_PREFIX = "model.mtp."

SKIPPED_PREFIXES = (MTP_PREFIX, "visual.", "audio_encoder.", "speech_embeddings.")  # MTP: only with mtp=False
SUPPORTED_MODEL_TYPES = ("mimo_v2_flash", "mimo_v2")
SUPPORTED_ARCHITECTURES = ("MiMoV2FlashForCausalLM", "MiMoV2ForCausalLM")
FLOAT_TYPES = ("bf16", "f16", "f32")
SUPPORTED_QUANT = (
    "no quantization_config (bf16/f16/f32 weights); "
    "quant_method 'fp8' (fmt e4m3, weight_block_size [br, bc]; optional store_dtype 'mxfp4' "
    "with mxfp4_block_size 32 for MXFP4 experts); "
    "quant_method 'compressed-tensors' with format 'pack-quantized', 4-bit int 'group' strategy weights"
)


# ---------------------------------------------------------------------------------------------
# config


@dataclass
class Mimo2HParams:
    """Everything the GGUF needs from config.json (text backbone only)."""

    model_type: str
    n_layer: int
    n_embd: int
    n_vocab: int
    n_ff: int
    n_ff_exp: int
    n_expert: int
    n_expert_used: int
    n_head: int
    n_head_kv_full: int
    n_head_kv_swa: int
    head_dim: int
    v_head_dim: int
    n_rot: int
    rope_theta: float
    rope_theta_swa: float
    n_ctx_train: int
    sliding_window: int
    swa_pattern: list[int]
    moe_pattern: list[int]
    rms_eps: float
    value_scale: float
    swa_sinks: bool
    full_sinks: bool
    norm_topk_prob: bool
    routed_scaling_factor: float
    fused_qkv: bool
    qkv_layout_hint: str | None
    tie_word_embeddings: bool

    def n_head_kv(self, layer: int) -> int:
        return self.n_head_kv_swa if self.swa_pattern[layer] else self.n_head_kv_full


def _text_config(cfg: dict) -> dict:
    # omni configs may nest the backbone; top-level keys win where both exist
    if "hidden_size" not in cfg and isinstance(cfg.get("text_config"), dict):
        merged = dict(cfg["text_config"])
        merged.update({k: v for k, v in cfg.items() if k != "text_config"})
        return merged
    return cfg


def _req(cfg: dict, key: str):
    if cfg.get(key) is None:
        raise ModelLoadError(f"config.json has no {key!r}, which a MiMo-V2 checkpoint must carry")
    return cfg[key]


def read_mimo2_hparams(cfg: dict, ckpt: Checkpoint | None = None) -> Mimo2HParams:
    """Read and check the keys of spec/moe.md §1 (hub spelling first, transformers' spelling as fallback)."""
    cfg = _text_config(cfg)
    model_type = cfg.get("model_type")
    archs = cfg.get("architectures") or []
    if model_type not in SUPPORTED_MODEL_TYPES and not set(archs) & set(SUPPORTED_ARCHITECTURES):
        raise UnsupportedModelError(
            f"not a MiMo-V2 checkpoint (model_type {model_type!r}, architectures {archs}); "
            f"supported: model_type {SUPPORTED_MODEL_TYPES} / {SUPPORTED_ARCHITECTURES}"
        )
    n_layer = int(_req(cfg, "num_hidden_layers"))
    nh = int(_req(cfg, "num_attention_heads"))
    head_dim = int(cfg.get("head_dim") or 192)
    v_head_dim = int(cfg.get("v_head_dim") or head_dim)

    # §7: llama.cpp's mimo2 has one head count and one pair of head dims for both layer kinds
    for swa_key, plain in (
        ("swa_num_attention_heads", nh),
        ("swa_head_dim", head_dim),
        ("swa_v_head_dim", v_head_dim),
    ):
        if cfg.get(swa_key) is not None and int(cfg[swa_key]) != plain:
            raise UnsupportedModelError(
                f"{swa_key} = {cfg[swa_key]} differs from the full-attention value {plain}; "
                "the mimo2 GGUF layout supports equal values only"
            )

    if cfg.get("hybrid_layer_pattern") is not None:
        swa_pattern = [int(bool(x)) for x in cfg["hybrid_layer_pattern"]]
        hub_style = True
    elif cfg.get("layer_types") is not None:  # transformers' spelling
        swa_pattern = [int(t == "sliding_attention") for t in cfg["layer_types"]]
        hub_style = False
    else:
        raise ModelLoadError("config.json has neither 'hybrid_layer_pattern' nor 'layer_types'")
    if cfg.get("moe_layer_freq") is not None:
        moe_pattern = [int(bool(x)) for x in cfg["moe_layer_freq"]]
    elif cfg.get("mlp_layer_types") is not None:
        moe_pattern = [int(t == "sparse") for t in cfg["mlp_layer_types"]]
    else:
        moe_pattern = [0] + [1] * (n_layer - 1)
        log.info("config.json has no moe_layer_freq; assuming layer 0 dense, the rest MoE")
    for name, pat in (("hybrid_layer_pattern", swa_pattern), ("moe_layer_freq", moe_pattern)):
        if len(pat) != n_layer:
            raise ModelLoadError(f"{name} has {len(pat)} entries for {n_layer} layers")

    nkv = int(_req(cfg, "num_key_value_heads"))
    nkv_swa = cfg.get("swa_num_key_value_heads")
    if nkv_swa is None:
        nkv_swa = _infer_swa_kv_heads(ckpt, swa_pattern, nh, head_dim, v_head_dim) if ckpt else None
        if nkv_swa is None:
            raise ModelLoadError("config.json has no 'swa_num_key_value_heads' and the checkpoint does not show it")
    nkv_swa = int(nkv_swa)

    eps = cfg.get("layernorm_epsilon", cfg.get("rms_norm_eps"))
    if eps is None:
        raise ModelLoadError("config.json has no 'layernorm_epsilon'")

    rope_params = cfg.get("rope_parameters") if isinstance(cfg.get("rope_parameters"), dict) else {}
    full_rp = rope_params.get("full_attention") or {}
    swa_rp = rope_params.get("sliding_attention") or {}
    for rp in (cfg.get("rope_scaling"), full_rp, swa_rp, rope_params if "rope_type" in rope_params else None):
        if isinstance(rp, dict) and rp.get("rope_type", rp.get("type", "default")) not in ("default", None):
            raise UnsupportedModelError(
                f"rope scaling {rp} is not supported; MiMo-V2 uses plain RoPE (rope_type 'default')"
            )
    theta = cfg.get("rope_theta", full_rp.get("rope_theta"))
    theta_swa = cfg.get("swa_rope_theta", swa_rp.get("rope_theta"))
    if theta is None or theta_swa is None:
        raise ModelLoadError("config.json lacks 'rope_theta' / 'swa_rope_theta'")
    prf = cfg.get("partial_rotary_factor", full_rp.get("partial_rotary_factor", 1.0))
    n_rot = int(head_dim * float(prf))
    if n_rot <= 0 or n_rot % 2 or n_rot > head_dim:
        raise UnsupportedModelError(f"partial_rotary_factor {prf} gives an invalid rotary width {n_rot}")

    # SWA window: the hub keys hold 128 (previous tokens); transformers' 'sliding_window' holds 129 keys
    if cfg.get("sliding_window_size") is not None:
        window = int(cfg["sliding_window_size"])
    elif cfg.get("sliding_window") is not None:
        window = int(cfg["sliding_window"]) - (0 if hub_style else 1)
    else:
        raise ModelLoadError("config.json has no 'sliding_window' / 'sliding_window_size'")

    if cfg.get("attention_bias"):
        raise UnsupportedModelError("attention_bias = true is not supported (MiMo-V2 projections have no bias)")
    if cfg.get("hidden_act", "silu") != "silu":
        raise UnsupportedModelError(f"hidden_act {cfg['hidden_act']!r} is not supported; MiMo-V2 uses silu")
    if cfg.get("scoring_func", "sigmoid") != "sigmoid":
        raise UnsupportedModelError(f"scoring_func {cfg['scoring_func']!r} is not supported; only sigmoid routing")
    if cfg.get("topk_method", "noaux_tc") != "noaux_tc":
        raise UnsupportedModelError(f"topk_method {cfg['topk_method']!r} is not supported; only noaux_tc")
    n_group, topk_group = int(cfg.get("n_group") or 1), int(cfg.get("topk_group") or 1)
    if n_group > 1 and topk_group < n_group:
        raise UnsupportedModelError(f"grouped routing (n_group {n_group}, topk_group {topk_group}) is not supported")
    if cfg.get("n_shared_experts"):
        raise UnsupportedModelError("shared experts are not supported (MiMo-V2 has none)")
    if cfg.get("norm_topk_prob", True) is not True:
        raise UnsupportedModelError("norm_topk_prob = false is not supported; the mimo2 graph always renormalises")
    rsf = cfg.get("routed_scaling_factor")
    layout = cfg.get("attention_projection_layout")
    conv = cfg.get("conversion_metadata") if isinstance(cfg.get("conversion_metadata"), dict) else {}
    value_scale = cfg.get("attention_value_scale")

    return Mimo2HParams(
        model_type=str(model_type),
        n_layer=n_layer,
        n_embd=int(_req(cfg, "hidden_size")),
        n_vocab=int(_req(cfg, "vocab_size")),
        n_ff=int(_req(cfg, "intermediate_size")),
        n_ff_exp=int(_req(cfg, "moe_intermediate_size")),
        n_expert=int(_req(cfg, "n_routed_experts")),
        n_expert_used=int(_req(cfg, "num_experts_per_tok")),
        n_head=nh,
        n_head_kv_full=nkv,
        n_head_kv_swa=nkv_swa,
        head_dim=head_dim,
        v_head_dim=v_head_dim,
        n_rot=n_rot,
        rope_theta=float(theta),
        rope_theta_swa=float(theta_swa),
        n_ctx_train=int(cfg.get("max_position_embeddings") or 0),
        sliding_window=window,
        swa_pattern=swa_pattern,
        moe_pattern=moe_pattern,
        rms_eps=float(eps),
        value_scale=1.0 if value_scale is None else float(value_scale),
        swa_sinks=cfg.get("add_swa_attention_sink_bias"),  # None = decide from the tensors
        full_sinks=cfg.get("add_full_attention_sink_bias"),
        norm_topk_prob=True,
        routed_scaling_factor=1.0 if rsf is None else float(rsf),
        fused_qkv=layout == "fused_qkv",
        qkv_layout_hint="global_q_k_v" if conv.get("qkv_layout") == "global_q_k_v" else None,
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
    )


def _infer_swa_kv_heads(ckpt: Checkpoint, pattern: list[int], nh: int, dqk: int, dv: int) -> int | None:
    """transformers-style configs omit swa_num_key_value_heads; read it off the first SWA layer's shapes."""
    if 1 not in pattern:
        return 0
    base = f"model.layers.{pattern.index(1)}.self_attn"
    for name, per_head, offset in ((f"{base}.k_proj", dqk, 0), (f"{base}.qkv_proj", dqk + dv, nh * dqk)):
        for suffix in (".weight", ".weight_packed"):
            if name + suffix in ckpt:
                rows = ckpt.shape(name + suffix)[0] - offset
                if rows > 0 and rows % per_head == 0:
                    return rows // per_head
    return None


# ---------------------------------------------------------------------------------------------
# checkpoint formats


@dataclass
class _Scheme:
    kind: str = "none"  # none | fp8 | awq
    fp8_block: tuple[int, int] = (128, 128)
    mxfp4_experts: bool = False
    awq_group: int = 0
    awq_symmetric: bool = True


def _read_scheme(cfg: dict) -> _Scheme:
    qc = _text_config(cfg).get("quantization_config")
    if not qc:
        return _Scheme()
    method = qc.get("quant_method")
    if method == "fp8":
        if qc.get("fmt", "e4m3") != "e4m3":
            raise UnsupportedModelError(f"FP8 format {qc.get('fmt')!r} is not supported; supported: {SUPPORTED_QUANT}")
        block = qc.get("weight_block_size")
        if not (isinstance(block, (list, tuple)) and len(block) == 2):
            raise UnsupportedModelError(
                f"FP8 without a 2-D weight_block_size (got {block!r}) is not supported; supported: {SUPPORTED_QUANT}"
            )
        store = qc.get("store_dtype")
        if store not in (None, "fp8", "mxfp4"):
            raise UnsupportedModelError(f"store_dtype {store!r} is not supported; supported: {SUPPORTED_QUANT}")
        if store == "mxfp4" and int(qc.get("mxfp4_block_size", 32)) != 32:
            raise UnsupportedModelError(f"mxfp4_block_size {qc.get('mxfp4_block_size')} is not supported (only 32)")
        return _Scheme("fp8", (int(block[0]), int(block[1])), store == "mxfp4")
    if method == "compressed-tensors":
        groups = qc.get("config_groups") or {}
        weights = [g.get("weights") for g in groups.values() if isinstance(g, dict) and g.get("weights")]
        formats = {g.get("format", qc.get("format")) for g in groups.values() if isinstance(g, dict)}
        formats.add(qc.get("format"))
        formats.discard(None)
        ok = bool(weights) and formats == {"pack-quantized"}
        for w in weights:
            ok = ok and w.get("num_bits") == 4 and w.get("type", "int") == "int" and w.get("strategy") == "group"
        if ok:
            sizes = {int(w.get("group_size") or 0) for w in weights}
            syms = {bool(w.get("symmetric", True)) for w in weights}
            ok = len(sizes) == 1 and len(syms) == 1 and min(sizes) > 0
        if not ok:
            raise UnsupportedModelError(
                f"compressed-tensors config {json.dumps(groups)[:300]} (format {sorted(formats)}) is not supported; "
                f"supported: {SUPPORTED_QUANT}"
            )
        return _Scheme("awq", awq_group=sizes.pop(), awq_symmetric=syms.pop())
    raise UnsupportedModelError(f"quant_method {method!r} is not supported; supported: {SUPPORTED_QUANT}")


class _Source:
    """Reads one Linear's weight in whatever form the checkpoint stores it, and records what was used."""

    def __init__(self, ckpt: Checkpoint, scheme: _Scheme):
        self.ckpt = ckpt
        self.scheme = scheme
        self.used: set[str] = set()

    def kind(self, prefix: str) -> str | None:
        c = self.ckpt
        if prefix + ".weight_packed" in c:
            return "awq"
        w = prefix + ".weight"
        if w not in c:
            return None
        dt = c.dtype(w)
        if dt == "F8_E4M3":
            return "fp8"
        if dt == "U8" and prefix + ".weight_scale" in c:
            return "mxfp4"
        if dt in ("BF16", "F16", "F32", "F64"):
            return "float"
        return "unknown:" + dt

    def shape(self, prefix: str, kind: str) -> tuple[int, ...]:
        c = self.ckpt
        if kind == "awq":
            if prefix + ".weight_shape" in c:
                s = np.asarray(c.tensor(prefix + ".weight_shape")).reshape(-1)
                return int(s[0]), int(s[1])
            n, words = c.shape(prefix + ".weight_packed")
            return n, words * 8
        wshape = c.shape(prefix + ".weight")
        if len(wshape) != 2:
            return tuple(wshape)  # reported as ill-shaped by check()
        n, k = wshape
        return (n, k * 2) if kind == "mxfp4" else (n, k)  # MXFP4 packs two codes per byte

    def check(
        self, prefix: str, shape: tuple[int, int], problems: list[str], rows_per_chunk: int | None = None
    ) -> str | None:
        """Validate presence, logical shape and companion shapes; mark the tensors used. Returns the kind."""
        kind = self.kind(prefix)
        if kind is None:
            problems.append(f"missing tensor {prefix}.weight")
            return None
        if kind.startswith("unknown:"):
            problems.append(f"{prefix}.weight has unsupported dtype {kind[8:]}")
            return None
        c = self.ckpt
        try:
            got = self.shape(prefix, kind)
        except (IndexError, ValueError):
            got = None
        if got != tuple(shape):
            problems.append(f"{prefix} has shape {list(got) if got else '?'}, expected {list(shape)}")
            return None
        n, k = shape
        if kind == "fp8":
            if self.scheme.kind != "fp8":
                problems.append(f"{prefix}.weight is FP8 but quantization_config is not 'fp8'")
                return None
            sname = prefix + ".weight_scale_inv"
            br, bc = self.scheme.fp8_block
            rpc = n if rows_per_chunk is None else rows_per_chunk
            want = (n // rpc * -(-rpc // br), -(-k // bc)) if rpc and n % rpc == 0 else None
            if sname not in c:
                problems.append(f"missing tensor {sname}")
            elif want is None or c.shape(sname) != want:
                problems.append(f"{sname} has shape {list(c.shape(sname))}, expected {list(want) if want else '?'}")
            self.used.update({prefix + ".weight", sname})
        elif kind == "awq":
            if self.scheme.kind != "awq":
                problems.append(f"{prefix} is pack-quantized but quantization_config is not compressed-tensors")
                return None
            g = self.scheme.awq_group
            if k % g:
                problems.append(f"{prefix}: K = {k} is not a multiple of group_size {g}")
            names = [prefix + s for s in (".weight_packed", ".weight_scale", ".weight_shape", ".weight_zero_point")]
            if prefix + ".weight_g_idx" in c:
                raise UnsupportedModelError(
                    f"{prefix}.weight_g_idx: activation-ordered (actorder 'group') AWQ is not supported"
                )
            if names[1] not in c:
                problems.append(f"missing tensor {names[1]}")
            elif c.shape(names[1]) != (n, k // g):
                problems.append(f"{names[1]} has shape {list(c.shape(names[1]))}, expected {[n, k // g]}")
            if not self.scheme.awq_symmetric:
                if names[3] not in c:
                    problems.append(f"missing tensor {names[3]} (asymmetric AWQ)")
                elif c.shape(names[3]) != (-(-n // 8), k // g):
                    problems.append(f"{names[3]} has shape {list(c.shape(names[3]))}, expected {[-(-n // 8), k // g]}")
            self.used.update(x for x in names if x in c)
        elif kind == "mxfp4":
            sname = prefix + ".weight_scale"
            if k % 32 or c.shape(sname) != (n, k // 32):
                problems.append(f"{sname} has shape {list(c.shape(sname))}, expected {[n, k // 32]}")
            self.used.update({prefix + ".weight", sname})
        else:
            self.used.add(prefix + ".weight")
        return kind

    def float_matrix(self, prefix: str, rows_per_chunk: int | None = None) -> np.ndarray:
        kind = self.kind(prefix)
        c = self.ckpt
        if kind == "float":
            return c.tensor(prefix + ".weight").astype(np.float32, copy=False)
        if kind == "fp8":
            return fmt.fp8_block_dequant(
                c.raw(prefix + ".weight"), c.tensor(prefix + ".weight_scale_inv"),
                self.scheme.fp8_block, rows_per_chunk, what=prefix,
            )
        if kind == "awq":
            return fmt.awq_dequant(*self.awq(prefix), self.scheme.awq_group)
        if kind == "mxfp4":
            return fmt.mxfp4_dequant(c.raw(prefix + ".weight"), c.raw(prefix + ".weight_scale"), what=prefix)
        raise ModelLoadError(f"cannot read {prefix} (kind {kind})")

    def awq_scales(self, prefix: str) -> tuple[np.ndarray, np.ndarray | None]:
        c = self.ckpt
        s = c.tensor(prefix + ".weight_scale").astype(np.float32, copy=False)
        zname = prefix + ".weight_zero_point"
        z = fmt.unpack_awq_zero_points(c.raw(zname), s.shape[0]) if zname in c else None
        return s, z

    def awq(self, prefix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = self.ckpt
        zname = prefix + ".weight_zero_point"
        return fmt.awq_unpack(
            c.raw(prefix + ".weight_packed"),
            c.tensor(prefix + ".weight_scale"),
            c.raw(zname) if zname in c else None,
            self.scheme.awq_group,
            self.shape(prefix, "awq"),
            what=prefix,
        )

    def vector(self, name: str) -> np.ndarray:
        self.used.add(name)
        return np.asarray(self.ckpt.tensor(name), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# plan + write


@dataclass
class _Planned:
    name: str
    shape: tuple[int, ...]  # PyTorch order; ggml ne is the reverse
    type_name: str
    produce: Callable[[], np.ndarray]  # -> uint8 row bytes [..., row_bytes]


@dataclass
class Mimo2ConversionReport:
    """What a conversion did; also logged."""

    out_path: Path
    n_tensors: int
    dtype: str
    tensor_types: dict[str, str]
    skipped: dict[str, int]
    ignored: list[str]
    tokenizer_written: bool
    warnings: list[str] = field(default_factory=list)
    mtp_layers: int = 0  # MTP blocks written after the trunk


_FILE_TYPES = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "bf16": gguf.LlamaFileType.MOSTLY_BF16,
    "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
    "q4_1": gguf.LlamaFileType.MOSTLY_Q4_1,
    "q5_0": gguf.LlamaFileType.MOSTLY_Q5_0,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    "mxfp4": gguf.LlamaFileType.MOSTLY_MXFP4_MOE,
}
_EXPERT_TYPES = FLOAT_TYPES + ("mxfp4", "q4_0", "q5_0", "q4_1", "q8_0")


class _Converter:
    """One conversion: config + formats -> a validated plan of tensors -> a streamed GGUF."""

    def __init__(self, src_dir, dtype, expert_type, swa_window_keys, qkv_layout, fuse_qkv, qkv_tp, mtp=True):
        self.ckpt = Checkpoint(src_dir)
        self.hp = read_mimo2_hparams(self.ckpt.config, self.ckpt)
        self.scheme = _read_scheme(self.ckpt.config)
        self.src = _Source(self.ckpt, self.scheme)
        self.fuse_qkv = bool(fuse_qkv)
        self.warnings: list[str] = []
        self.problems: list[str] = []
        self.plan: list[_Planned] = []
        self._memo: dict[str, dict[str, np.ndarray]] = {}

        if dtype is None:
            embd = "model.embed_tokens.weight"
            stored = self.ckpt.dtype(embd) if embd in self.ckpt else "BF16"
            dtype = {"F32": "f32", "F16": "f16"}.get(stored, "bf16")  # FP8 releases store embeddings in bf16
        if dtype not in FLOAT_TYPES:
            raise InvalidArgumentError(f"dtype must be one of {FLOAT_TYPES}, not {dtype!r}")
        self.dtype = dtype
        if expert_type is not None and expert_type not in _EXPERT_TYPES:
            raise InvalidArgumentError(f"expert_type must be None or one of {_EXPERT_TYPES}, not {expert_type!r}")
        self.expert_type = expert_type
        if swa_window_keys is None:
            # the checkpoint's own window: sliding_window previous tokens plus the query itself
            swa_window_keys = self.hp.sliding_window + 1
        if int(swa_window_keys) < 1:
            raise InvalidArgumentError(f"swa_window_keys must be >= 1, got {swa_window_keys}")
        self.window_keys = int(swa_window_keys)

        if qkv_layout is None:
            qkv_layout = self.hp.qkv_layout_hint or "tp_chunked"
        if qkv_layout not in ("tp_chunked", "global_q_k_v"):
            raise InvalidArgumentError(f"qkv_layout must be None, 'tp_chunked' or 'global_q_k_v', not {qkv_layout!r}")
        self.qkv_layout = qkv_layout
        self.qkv_tp = self._resolve_tp(qkv_tp)
        # spec/mtp.md §1.1: the MTP qkv_proj is chunked over num_key_value_heads ranks (vLLM's ckpt_tp)
        self.mtp_qkv_tp = int(qkv_tp) if qkv_tp is not None else self.hp.n_head_kv_full
        self.n_mtp = self._count_mtp_layers() if mtp else 0

    def _count_mtp_layers(self) -> int:
        found = set()
        for name in self.ckpt.items(MTP_PREFIX + "layers."):
            idx = name[len(MTP_PREFIX + "layers."):].split(".", 1)[0]
            if not idx.isdigit():
                raise ModelLoadError(f"cannot read the MTP layer index of {name}")
            found.add(int(idx))
        if found and found != set(range(len(found))):
            raise ModelLoadError(f"MTP layers {sorted(found)} are not numbered 0..{len(found) - 1}")
        return len(found)

    def _resolve_tp(self, qkv_tp) -> int:
        if qkv_tp is not None:
            return int(qkv_tp)
        tp = self.hp.n_head_kv_full
        index = self.ckpt.folder / "model.safetensors.index.json"
        if index.is_file():
            meta = json.loads(index.read_text(encoding="utf-8")).get("metadata") or {}
            if meta.get("tp_size") is not None and int(meta["tp_size"]) != tp:
                self._warn(
                    f"index metadata tp_size {meta['tp_size']} differs from num_key_value_heads {tp}; "
                    f"using tp_size for the fused qkv chunks (override with qkv_tp)"
                )
                tp = int(meta["tp_size"])
        return tp

    def _warn(self, msg: str) -> None:
        self.warnings.append(msg)
        log.warning("%s", msg)

    # -- planning helpers ----------------------------------------------------------------------

    def _add(self, name, shape, type_name, produce) -> None:
        self.plan.append(_Planned(name, tuple(int(s) for s in shape), type_name, produce))

    def _vector(self, gguf_name: str, hf_name: str, length: int) -> None:
        if hf_name not in self.ckpt:
            self.problems.append(f"missing tensor {hf_name}")
            return
        if self.ckpt.shape(hf_name) != (length,):
            self.problems.append(f"{hf_name} has shape {list(self.ckpt.shape(hf_name))}, expected [{length}]")
            return
        self.src.used.add(hf_name)
        self._add(gguf_name, (length,), "f32", lambda: fmt.float_to_ggml(self.src.vector(hf_name), "f32"))

    def _matrix(self, gguf_name: str, prefix: str, shape, type_name: str | None = None) -> None:
        t = type_name or self.dtype
        if self.src.check(prefix, shape, self.problems) is None:
            return
        self._add(gguf_name, shape, t, lambda: fmt.float_to_ggml(self.src.float_matrix(prefix), t))

    def _plan_attention(self, base: str, blk: str, nkv: int, tp: int) -> None:
        """q/k/v of one block: ``base`` is the HF ``...self_attn`` prefix, ``nkv`` its KV heads,
        ``tp`` the checkpoint TP ranks a chunked fused ``qkv_proj`` was split over."""
        hp = self.hp
        nh, dqk, dv, H = hp.n_head, hp.head_dim, hp.v_head_dim, hp.n_embd
        shapes = {"q": (nh * dqk, H), "k": (nkv * dqk, H), "v": (nkv * dv, H)}
        fused = f"{base}.qkv_proj"
        if self.src.kind(fused) is not None:
            rows = nh * dqk + nkv * (dqk + dv)
            rpc = None
            if self.qkv_layout == "tp_chunked":
                try:
                    rpc = sum(fmt.qkv_chunk_rows(nh, nkv, dqk, dv, tp))
                except ModelLoadError as exc:
                    self.problems.append(f"{fused}: {exc}")
                    return
            kind = self.src.check(fused, (rows, H), self.problems, rows_per_chunk=rpc)
            if kind is None:
                return

            def parts():
                if blk not in self._memo:
                    w = self.src.float_matrix(fused, rpc if kind == "fp8" else None)
                    q, k, v = fmt.split_fused_qkv(w, nh=nh, nkv=nkv, dqk=dqk, dv=dv, tp=tp, layout=self.qkv_layout)
                    self._memo[blk] = {"q": q, "k": k, "v": v}
                return self._memo[blk]

            def one(part):
                arr = parts()[part]
                if part == "v":  # the last of the three to be written
                    self._memo.pop(blk, None)
                return fmt.float_to_ggml(arr, self.dtype)

            if self.fuse_qkv:
                def fused_out():
                    p = parts()
                    self._memo.pop(blk, None)
                    return fmt.float_to_ggml(np.concatenate([p["q"], p["k"], p["v"]]), self.dtype)

                self._add(f"{blk}.attn_qkv.weight", (rows, H), self.dtype, fused_out)
            else:
                for part in ("q", "k", "v"):
                    self._add(f"{blk}.attn_{part}.weight", shapes[part], self.dtype, lambda part=part: one(part))
            return

        ok = all(self.src.check(f"{base}.{p}_proj", shapes[p], self.problems) for p in ("q", "k", "v"))
        if not ok:
            return
        if self.fuse_qkv:
            rows = sum(s[0] for s in shapes.values())
            self._add(
                f"{blk}.attn_qkv.weight", (rows, H), self.dtype,
                lambda: fmt.float_to_ggml(
                    np.concatenate([self.src.float_matrix(f"{base}.{p}_proj") for p in ("q", "k", "v")]), self.dtype
                ),
            )
        else:
            for p in ("q", "k", "v"):
                self._matrix(f"{blk}.attn_{p}.weight", f"{base}.{p}_proj", shapes[p])

    def _plan_sinks(self, hf_name: str, blk: str, wanted: bool) -> None:
        if wanted:
            self._vector(f"{blk}.attn_sinks.weight", hf_name, self.hp.n_head)
        elif hf_name in self.ckpt:
            self._warn(f"{hf_name} present but the config disables sinks for this layer kind; not written")

    def _plan_dense_mlp(self, mlp: str, blk: str) -> None:
        hp, H = self.hp, self.hp.n_embd
        for p, shape in (("gate", (hp.n_ff, H)), ("up", (hp.n_ff, H)), ("down", (H, hp.n_ff))):
            self._matrix(f"{blk}.ffn_{p}.weight", f"{mlp}.{p}_proj", shape)

    def _plan_mtp(self, k: int) -> None:
        """MTP layer k -> blk.{L+k} (spec/mtp.md §1.1 / §5): an SWA block with a dense MLP."""
        hp, H = self.hp, self.hp.n_embd
        mp, blk = f"{MTP_PREFIX}layers.{k}", f"blk.{hp.n_layer + k}"
        if hp.n_head_kv_swa <= 0:
            self.problems.append(f"{mp}: MTP layers are SWA layers but the config gives no swa_num_key_value_heads")
            return
        self._vector(f"{blk}.nextn.enorm.weight", f"{mp}.enorm.weight", H)
        self._vector(f"{blk}.nextn.hnorm.weight", f"{mp}.hnorm.weight", H)
        self._matrix(f"{blk}.nextn.eh_proj.weight", f"{mp}.eh_proj", (H, 2 * H))  # ne {2H, H}
        self._vector(f"{blk}.attn_norm.weight", f"{mp}.input_layernorm.weight", H)
        self._plan_attention(f"{mp}.self_attn", blk, hp.n_head_kv_swa, self.mtp_qkv_tp)
        self._matrix(f"{blk}.attn_output.weight", f"{mp}.self_attn.o_proj", (H, hp.n_head * hp.v_head_dim))
        self._plan_sinks(f"{mp}.self_attn.attention_sink_bias", blk, hp.swa_sinks)
        self._vector(f"{blk}.ffn_norm.weight", f"{mp}.pre_mlp_layernorm.weight", H)
        self._plan_dense_mlp(f"{mp}.mlp", blk)
        self._vector(f"{blk}.layer_output_norm.weight", f"{mp}.final_layernorm.weight", H)

    def _plan_experts(self, il: int) -> None:
        hp = self.hp
        E, I, H = hp.n_expert, hp.n_ff_exp, hp.n_embd
        for proj, shape in (("gate", (I, H)), ("up", (I, H)), ("down", (H, I))):
            gguf_name = f"blk.{il}.ffn_{proj}_exps.weight"
            prefixes = [f"model.layers.{il}.mlp.experts.{e}.{proj}_proj" for e in range(E)]
            kinds = {self.src.check(p, shape, self.problems) for p in prefixes}
            if None in kinds:
                continue
            if len(kinds) != 1:
                self.problems.append(f"experts of {gguf_name} are stored in mixed formats {sorted(kinds)}")
                continue
            kind = kinds.pop()
            t = self._expert_type_for(kind, prefixes, gguf_name)
            self._add(gguf_name, (E, *shape), t, lambda ps=prefixes, t=t, kind=kind: self._stack(ps, kind, t))

    def _expert_type_for(self, kind: str, prefixes: list[str], gguf_name: str) -> str:
        want = self.expert_type
        if kind == "mxfp4":
            want = want or "mxfp4"
            if want not in FLOAT_TYPES + ("mxfp4",):
                raise InvalidArgumentError(f"MXFP4 experts convert to mxfp4 (lossless) or {FLOAT_TYPES}, not {want!r}")
            return want
        if kind in ("float", "fp8"):
            want = want or self.dtype
            if want not in FLOAT_TYPES:
                raise InvalidArgumentError(
                    f"{kind} experts convert to {FLOAT_TYPES}; requantising to {want!r} is not this converter's job"
                )
            return want
        # awq
        g = self.scheme.awq_group
        want = want or ("q4_0" if self.scheme.awq_symmetric else "q5_0")
        if want in FLOAT_TYPES:
            return want
        if want == "mxfp4":
            raise InvalidArgumentError("AWQ int4 experts cannot be written as mxfp4")
        if want == "q4_1":
            if g % 32:
                raise InvalidArgumentError(f"q4_1 needs group_size a multiple of 32, got {g}")
            return want
        if want == "q4_0" and not self.scheme.awq_symmetric:
            raise InvalidArgumentError("q4_0 holds symmetric AWQ only; use q5_0 (exact) or q4_1 for asymmetric")
        if want in ("q4_0", "q5_0") and g % 32 == 0:
            # cheap check on scales (and zero points) only; the full ladder reads the codes
            fine = True
            for p in prefixes:
                s, z = self.src.awq_scales(p)
                if not fmt.scales_fit_f16(s).all() or (want == "q4_0" and z is not None and z.any()):
                    fine = False
                    break
            if fine:
                return want
        stack = [self.src.awq(p) for p in prefixes]
        got = fmt.awq_lossless_type(stack, g, want)
        if got != want:
            self._warn(
                f"{gguf_name}: {want} would not be lossless (group_size {g}, or scales that fp16 cannot hold); "
                f"wrote {got} instead"
            )
        return got

    def _stack(self, prefixes: list[str], kind: str, t: str) -> np.ndarray:
        out = None
        for e, p in enumerate(prefixes):
            if kind == "mxfp4" and t == "mxfp4":
                c = self.ckpt
                b = fmt.mxfp4_to_ggml(c.raw(p + ".weight"), c.raw(p + ".weight_scale"), what=p)
            elif kind == "awq" and t not in FLOAT_TYPES:
                q, s, z = self.src.awq(p)
                g = self.scheme.awq_group
                if t == "q4_0":
                    b = fmt.awq_to_q4_0(q, s, g)
                elif t == "q5_0":
                    b = fmt.awq_to_q5_0(q, s, z, g)
                elif t == "q4_1":
                    b = fmt.awq_to_q4_1(q, s, z, g)
                else:
                    b = fmt.awq_to_q8_0(q, s, z, g)
                    if b is None:  # the plan checked this already
                        raise ModelLoadError(f"{p}: q8_0 repack is not exact")
            else:
                b = fmt.float_to_ggml(self.src.float_matrix(p), t)
            if out is None:
                out = np.empty((len(prefixes), *b.shape), dtype=np.uint8)
            out[e] = b
        return out

    def build_plan(self) -> None:
        hp, ck = self.hp, self.ckpt
        H, V = hp.n_embd, hp.n_vocab
        self._matrix("token_embd.weight", "model.embed_tokens", (V, H))
        for il in range(hp.n_layer):
            lp, blk = f"model.layers.{il}", f"blk.{il}"
            self._vector(f"{blk}.attn_norm.weight", f"{lp}.input_layernorm.weight", H)
            self._plan_attention(f"{lp}.self_attn", blk, hp.n_head_kv(il), self.qkv_tp)
            self._matrix(f"{blk}.attn_output.weight", f"{lp}.self_attn.o_proj", (H, hp.n_head * hp.v_head_dim))
            self._plan_sinks(f"{lp}.self_attn.attention_sink_bias", blk,
                             hp.swa_sinks if hp.swa_pattern[il] else hp.full_sinks)
            self._vector(f"{blk}.ffn_norm.weight", f"{lp}.post_attention_layernorm.weight", H)
            if hp.moe_pattern[il]:
                # router in F32 (§4: the routing GEMM runs in fp32)
                self._matrix(f"{blk}.ffn_gate_inp.weight", f"{lp}.mlp.gate", (hp.n_expert, H), "f32")
                self._vector(f"{blk}.exp_probs_b.bias", f"{lp}.mlp.gate.e_score_correction_bias", hp.n_expert)
                self._plan_experts(il)
            else:
                self._plan_dense_mlp(f"{lp}.mlp", blk)
        for k in range(self.n_mtp):
            self._plan_mtp(k)
        self._vector("output_norm.weight", "model.norm.weight", H)
        if "lm_head.weight" in ck or not hp.tie_word_embeddings:
            self._matrix("output.weight", "lm_head", (V, H))
        if self.problems:
            shown = "\n  ".join(self.problems[:25])
            more = f"\n  ... and {len(self.problems) - 25} more" if len(self.problems) > 25 else ""
            raise ModelLoadError(f"checkpoint {ck.folder} cannot be converted:\n  {shown}{more}")

    def _resolve_sinks(self) -> None:
        hp = self.hp
        for attr, kind in (("swa_sinks", 1), ("full_sinks", 0)):
            if getattr(hp, attr) is None:  # config silent: follow the tensors
                present = any(
                    f"model.layers.{il}.self_attn.attention_sink_bias" in self.ckpt
                    for il in range(hp.n_layer)
                    if hp.swa_pattern[il] == kind
                )
                setattr(hp, attr, present)
            setattr(hp, attr, bool(getattr(hp, attr)))

    # -- metadata -----------------------------------------------------------------------------

    def write_kv(self, w: gguf.GGUFWriter) -> None:
        hp = self.hp
        w.add_name(self.ckpt.config.get("_name_or_path") or self.ckpt.folder.name)
        types = {p.type_name for p in self.plan if p.name.endswith("_exps.weight")}
        main_type = next((t for t in ("mxfp4", "q4_0", "q5_0", "q4_1", "q8_0") if t in types), self.dtype)
        w.add_file_type(int(_FILE_TYPES[main_type]))
        if main_type not in FLOAT_TYPES:
            w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        w.add_vocab_size(hp.n_vocab)
        w.add_block_count(hp.n_layer + self.n_mtp)
        if self.n_mtp:
            w.add_nextn_predict_layers(self.n_mtp)
            w.add_string(KEY_NEXTN_QKV_LAYOUT, NEXTN_QKV_LAYOUT)
        w.add_context_length(hp.n_ctx_train)
        w.add_embedding_length(hp.n_embd)
        w.add_feed_forward_length(hp.n_ff)
        w.add_head_count(hp.n_head)
        # MTP blocks are SWA layers (spec/mtp.md §1.3): their entries follow the trunk's
        w.add_head_count_kv([hp.n_head_kv(il) for il in range(hp.n_layer)] + [hp.n_head_kv_swa] * self.n_mtp)
        w.add_key_length(hp.head_dim)
        w.add_value_length(hp.v_head_dim)
        w.add_rope_dimension_count(hp.n_rot)
        w.add_rope_freq_base(hp.rope_theta)
        w.add_rope_freq_base_swa(hp.rope_theta_swa)
        w.add_sliding_window(hp.sliding_window)
        w.add_sliding_window_pattern([int(x) for x in hp.swa_pattern] + [1] * self.n_mtp)
        w.add_layer_norm_rms_eps(hp.rms_eps)
        w.add_float32(KEY_VALUE_SCALE, hp.value_scale)
        w.add_expert_count(hp.n_expert)
        w.add_expert_used_count(hp.n_expert_used)
        w.add_expert_feed_forward_length(hp.n_ff_exp)
        w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
        w.add_expert_weights_norm(hp.norm_topk_prob)
        w.add_expert_weights_scale(hp.routed_scaling_factor)
        lead = next((i for i, m in enumerate(hp.moe_pattern) if m), hp.n_layer)
        if all(hp.moe_pattern[lead:]):
            w.add_leading_dense_block_count(lead)
        w.add_uint32(KEY_WINDOW_KEYS, self.window_keys)
        w.add_bool(KEY_SWA_SINKS, hp.swa_sinks)
        w.add_bool(KEY_FULL_SINKS, hp.full_sinks)
        if hp.routed_scaling_factor != 1.0:
            self._warn(f"routed_scaling_factor {hp.routed_scaling_factor} != 1 (written as expert_weights_scale)")

    def write_tokenizer(self, w: gguf.GGUFWriter) -> bool:
        folder = self.ckpt.folder
        path = folder / "tokenizer.json"
        if not path.is_file():
            log.info("%s has no tokenizer.json: the GGUF carries no tokenizer fields", folder)
            return False
        tok = json.loads(path.read_text(encoding="utf-8"))
        model = tok.get("model") or {}
        if model.get("type") != "BPE":
            self._warn(f"tokenizer.json model type {model.get('type')!r} is not BPE; no tokenizer fields written")
            return False
        vocab: dict[str, int] = model.get("vocab") or {}
        added = tok.get("added_tokens") or []
        ids = list(vocab.values()) + [int(a["id"]) for a in added]
        n = max(self.hp.n_vocab, max(ids) + 1 if ids else 0)
        if n > self.hp.n_vocab:
            raise ModelLoadError(
                f"tokenizer.json has ids up to {n - 1} but the embedding has only {self.hp.n_vocab} rows"
            )
        tokens = [f"[PAD{i}]" for i in range(n)]
        types = [gguf.TokenType.UNUSED] * n  # embedding rows the tokenizer never produces
        for t, i in vocab.items():
            tokens[i], types[i] = t, gguf.TokenType.NORMAL
        for a in added:
            i = int(a["id"])
            tokens[i] = a["content"]
            types[i] = gguf.TokenType.CONTROL if a.get("special") else gguf.TokenType.USER_DEFINED
        merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("qwen2")  # MiMo's tokenizer is Qwen2's byte-level BPE
        w.add_token_list(tokens)
        w.add_token_types([int(t) for t in types])
        if merges:
            w.add_token_merges(merges)

        tcfg_path = folder / "tokenizer_config.json"
        tcfg = json.loads(tcfg_path.read_text(encoding="utf-8")) if tcfg_path.is_file() else {}
        lookup = {t: i for i, t in enumerate(tokens)}
        cfg = _text_config(self.ckpt.config)

        def special(kind: str) -> int | None:
            v = cfg.get(f"{kind}_token_id")
            if isinstance(v, list):
                v = v[0] if v else None
            if v is None:
                s = tcfg.get(f"{kind}_token")
                s = s.get("content") if isinstance(s, dict) else s
                v = lookup.get(s) if s else None
            return int(v) if v is not None and 0 <= int(v) < n else None

        for kind, add in (("bos", w.add_bos_token_id), ("eos", w.add_eos_token_id), ("pad", w.add_pad_token_id)):
            v = special(kind)
            if v is not None:
                add(v)
        if "add_bos_token" in tcfg:
            w.add_add_bos_token(bool(tcfg["add_bos_token"]))
        if isinstance(tcfg.get("chat_template"), str):
            w.add_chat_template(tcfg["chat_template"])
        return True

    # -- output -------------------------------------------------------------------------------

    def write(self, out_path: Path) -> Mimo2ConversionReport:
        out_path = Path(out_path)
        has_tok = [False]

        def metadata(w) -> None:
            self.write_kv(w)
            has_tok[0] = self.write_tokenizer(w)

        def planned(p: _Planned) -> PlannedTensor:
            byte_shape = (*p.shape[:-1], fmt.ggml_row_bytes(p.type_name, p.shape[-1]))
            return PlannedTensor(p.name, byte_shape, p.type_name, p.produce, raw=True)

        write_gguf(out_path, ARCH, metadata, [planned(p) for p in self.plan])
        has_tok = has_tok[0]
        skipped: dict[str, int] = {}
        ignored: list[str] = []
        for name in self.ckpt.names():
            if name in self.src.used:
                continue
            pre = next((p for p in SKIPPED_PREFIXES if name.startswith(p) and not (p == MTP_PREFIX and self.n_mtp)),
                       None)
            if pre:
                skipped[pre] = skipped.get(pre, 0) + 1
            else:
                ignored.append(name)
        for pre, n in skipped.items():
            log.info("skipped %d tensors under %s (not part of the text backbone)", n, pre)
        if ignored:
            self._warn(f"{len(ignored)} checkpoint tensors were not used: {', '.join(sorted(ignored)[:10])}")
        return Mimo2ConversionReport(
            out_path=out_path,
            n_tensors=len(self.plan),
            dtype=self.dtype,
            tensor_types={p.name: p.type_name for p in self.plan},
            skipped=skipped,
            ignored=sorted(ignored),
            tokenizer_written=has_tok,
            warnings=self.warnings,
            mtp_layers=self.n_mtp,
        )


def convert_mimo2(
    src_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    dtype: str | None = None,
    expert_type: str | None = None,
    swa_window_keys: int | None = None,
    qkv_layout: str | None = None,
    fuse_qkv: bool = False,
    qkv_tp: int | None = None,
    mtp: bool = True,
) -> Mimo2ConversionReport:
    """Convert a MiMo-V2 Hugging Face folder to a ``mimo2`` GGUF.

    dtype: type of the non-expert matrices, ``"bf16" | "f16" | "f32"``;
        ``None`` keeps the checkpoint's precision class (BF16 source -> BF16,
        FP8 source -> BF16 after dequantisation, F32 -> F32).  Norms, sinks,
        the router and its bias are always F32.
    expert_type: ``None`` = lossless default (MXFP4 -> ``mxfp4``, symmetric AWQ
        -> ``q4_0``, asymmetric AWQ -> ``q5_0``, float/FP8 -> ``dtype``); or
        one of bf16/f16/f32 (dequantise), mxfp4, q4_0, q5_0, q8_0 (lossless
        repacks, with the fallback of :func:`.mimo2_formats.awq_lossless_type`
        and a warning when not exact), q4_1 (AWQ, near-lossless).
    swa_window_keys: keys a SWA query sees including itself, stored as
        ``mimo2.attention.sliding_window_keys``; None (default) takes the
        checkpoint's own window (``sliding_window_size`` previous tokens + 1,
        i.e. transformers' ``sliding_window``: 129 for the releases, as
        SGLang/transformers); 128 = vLLM/llama.cpp.
    qkv_layout: for a fused ``qkv_proj``: ``"tp_chunked"`` (Xiaomi's releases),
        ``"global_q_k_v"`` (some re-exports); ``None`` reads
        ``conversion_metadata.qkv_layout`` and defaults to ``"tp_chunked"``.
    fuse_qkv: write ``attn_qkv`` (global [Q;K;V] rows) instead of ``attn_q/k/v``.
    qkv_tp: checkpoint TP ranks of a chunked ``qkv_proj``; default the index's
        ``tp_size`` if present, else ``num_key_value_heads`` (MTP layers:
        always ``num_key_value_heads`` unless given, spec/mtp.md §1.1).
    mtp: export the checkpoint's ``model.mtp.layers.*`` as blocks after the
        trunk (default); False skips them (block_count = L, no nextn keys).

    Raises ModelLoadError naming missing or ill-shaped tensors (all of them),
    UnsupportedModelError for configs outside spec/moe.md (naming what is
    supported) and InvalidArgumentError for bad arguments.  Nothing is left at
    ``out_path`` on failure.
    """
    conv = _Converter(src_dir, dtype, expert_type, swa_window_keys, qkv_layout, fuse_qkv, qkv_tp, mtp)
    conv._resolve_sinks()
    conv.build_plan()
    report = conv.write(Path(out_path))
    log.info(
        "wrote %s: %d tensors, dtype %s, experts %s, %d MTP layers%s",
        report.out_path, report.n_tensors, report.dtype,
        sorted({t for n, t in report.tensor_types.items() if n.endswith("_exps.weight")}) or "-",
        report.mtp_layers, "" if report.tokenizer_written else ", no tokenizer",
    )
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m mimo_ggml.convert.mimo2 SRC OUT [--dtype ..] [--expert-type ..] ...``"""
    ap = argparse.ArgumentParser(description="Convert a MiMo-V2 MoE checkpoint to a mimo2 GGUF")
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--dtype", choices=FLOAT_TYPES)
    ap.add_argument("--expert-type", choices=_EXPERT_TYPES)
    ap.add_argument("--swa-window-keys", type=int, default=None)
    ap.add_argument("--qkv-layout", choices=("tp_chunked", "global_q_k_v"))
    ap.add_argument("--qkv-tp", type=int)
    ap.add_argument("--fuse-qkv", action="store_true")
    ap.add_argument("--no-mtp", action="store_true", help="leave out the MTP layers")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    convert_mimo2(
        a.src, a.out, dtype=a.dtype, expert_type=a.expert_type, swa_window_keys=a.swa_window_keys,
        qkv_layout=a.qkv_layout, fuse_qkv=a.fuse_qkv, qkv_tp=a.qkv_tp, mtp=not a.no_mtp,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
