"""DFlash block-diffusion drafter (the ``dflash/`` folder of MiMo-V2.5(-Pro)-DFlash) -> GGUF.

Input (spec/dflash.md §1): ``config.json`` with a nested ``dflash_config``,
the BF16 safetensors (one file or an index), and ``mask_embedding.pt`` (a
torch zip-pickle, read without torch by :mod:`.torch_zip`).  The drafter has
no token embedding and no head: at run time it borrows the target's.

Output: architecture ``dflash-draft`` (ik_llama.cpp's name for MiMo
drafters).  :class:`Key` lists every metadata key and :data:`GLOBAL_TENSORS` /
:data:`LAYER_TENSORS` every tensor name; they are the contract with the C++
loader.  Matrices take ``dtype`` (default bf16, the source precision); norms,
sinks and the mask embedding are always F32.  ggml ``ne`` is the PyTorch
shape reversed, so ``dflash_fc`` [H, n_cap*H_target] has ne {n_cap*H_target, H}
with its input columns in ``target_layer_ids`` order, exactly as stored.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np

from ..errors import InvalidArgumentError, ModelLoadError, UnsupportedModelError
from .common import Checkpoint, PlannedTensor, write_gguf
from .mimo2_formats import float_to_ggml, ggml_row_bytes
from .torch_zip import load_torch_zip

__all__ = [
    "ARCH", "Key", "GLOBAL_TENSORS", "LAYER_TENSORS", "MASK_EMBD_TENSOR", "DFlashHParams",
    "DFlashConversionReport", "read_dflash_hparams", "read_mask_embedding", "convert_dflash", "main",
]

log = logging.getLogger(__name__)

ARCH = "dflash-draft"
DTYPES = ("bf16", "f16", "f32", "q8_0")
MASK_EMBEDDING_FILE = "mask_embedding.pt"


class Key:
    """GGUF metadata keys written for a drafter (types in brackets)."""

    BLOCK_COUNT = f"{ARCH}.block_count"  # [u32] drafter layers
    CONTEXT_LENGTH = f"{ARCH}.context_length"  # [u32] max_position_embeddings
    EMBEDDING_LENGTH = f"{ARCH}.embedding_length"  # [u32] H
    FEED_FORWARD_LENGTH = f"{ARCH}.feed_forward_length"  # [u32]
    VOCAB_SIZE = f"{ARCH}.vocab_size"  # [u32] only with target_vocab: rows of the borrowed head
    HEAD_COUNT = f"{ARCH}.attention.head_count"  # [u32]
    HEAD_COUNT_KV = f"{ARCH}.attention.head_count_kv"  # [u32]
    KEY_LENGTH = f"{ARCH}.attention.key_length"  # [u32] head_dim
    VALUE_LENGTH = f"{ARCH}.attention.value_length"  # [u32] v_head_dim (or head_dim)
    RMS_EPS = f"{ARCH}.attention.layer_norm_rms_epsilon"  # [f32]
    VALUE_SCALE = f"{ARCH}.attention.value_scale"  # [f32] on context and block V
    CAUSAL = f"{ARCH}.attention.causal"  # [bool] false: the block attends bidirectionally
    SLIDING_WINDOW = f"{ARCH}.attention.sliding_window"  # [u32] keys a query sees incl. itself; 0 = none
    ROPE_DIMENSION_COUNT = f"{ARCH}.rope.dimension_count"  # [u32] NeoX-rotated dims per head
    ROPE_FREQ_BASE = f"{ARCH}.rope.freq_base"  # [f32] rope_theta
    BLOCK_SIZE = f"{ARCH}.dflash.block_size"  # [u32]
    MASK_TOKEN_ID = f"{ARCH}.dflash.mask_token_id"  # [u32]
    TARGET_LAYER_IDS = f"{ARCH}.dflash.target_layer_ids"  # [i32 array] captured target layers, fc order
    N_TARGET_FEATURES = f"{ARCH}.dflash.n_target_features"  # [u32] fc input width
    BACKBONE_ROTARY_BASE = f"{ARCH}.dflash.backbone_rotary_base"  # [f32] only if in config
    NUM_TARGET_LAYERS = f"{ARCH}.dflash.num_target_layers"  # [u32] only if in config


# (HF name, GGUF name); HF names carry no "model." prefix in the official folder
GLOBAL_TENSORS = (
    ("fc.weight", "dflash_fc.weight"),
    ("hidden_norm.weight", "dflash_hidden_norm.weight"),
    ("norm.weight", "output_norm.weight"),
)
# (HF name under "layers.{i}.", GGUF name under "blk.{i}.")
LAYER_TENSORS = (
    ("input_layernorm.weight", "attn_norm.weight"),
    ("self_attn.q_proj.weight", "attn_q.weight"),
    ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.v_proj.weight", "attn_v.weight"),
    ("self_attn.o_proj.weight", "attn_output.weight"),
    ("self_attn.q_norm.weight", "attn_q_norm.weight"),
    ("self_attn.k_norm.weight", "attn_k_norm.weight"),
    ("self_attn.attention_sink_bias", "attn_sinks.weight"),
    ("post_attention_layernorm.weight", "ffn_norm.weight"),
    ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"),
    ("mlp.down_proj.weight", "ffn_down.weight"),
)
SINKS_HF = "self_attn.attention_sink_bias"
MASK_EMBD_TENSOR = "dflash_mask_embd.weight"  # F32 [H], from mask_embedding.pt

_FILE_TYPES = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "bf16": gguf.LlamaFileType.MOSTLY_BF16,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
}


# ---------------------------------------------------------------------------------------------
# config


@dataclass
class DFlashHParams:
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    v_head_dim: int
    rms_eps: float
    n_rot: int
    rope_theta: float
    value_scale: float
    sliding_window: int  # keys a query sees including itself (HF convention); 0 = no window
    n_ctx_train: int
    block_size: int
    mask_token_id: int | None  # dflash_config's; mask_embedding.pt may carry one too
    target_layer_ids: list[int]
    target_hidden: int
    sinks: bool
    backbone_rotary_base: float | None = None
    num_target_layers: int | None = None

    @property
    def n_target_features(self) -> int:
        return len(self.target_layer_ids) * self.target_hidden


def _req(cfg: dict, key: str, where: str = "config.json"):
    if cfg.get(key) is None:
        raise ModelLoadError(f"{where} has no {key!r}, which a DFlash drafter config must carry")
    return cfg[key]


def _one_of(cfg: dict, dc: dict, key: str):
    """A key that may sit in dflash_config, at the top level, or both (then they must agree)."""
    inner, outer = dc.get(key), cfg.get(key)
    if inner is not None and outer is not None and inner != outer:
        raise ModelLoadError(f"dflash_config.{key} = {inner!r} but the top-level {key} = {outer!r}")
    return inner if inner is not None else outer


def read_dflash_hparams(cfg: dict) -> DFlashHParams:
    """Read and check a drafter ``config.json`` (spec/dflash.md §1 table)."""
    archs = cfg.get("architectures") or []
    dc = cfg.get("dflash_config")
    if "DFlashDraftModel" not in archs and not isinstance(dc, dict):
        raise UnsupportedModelError(
            f"not a DFlash drafter config (architectures {archs}, no dflash_config); "
            "expected architectures ['DFlashDraftModel'] with a nested dflash_config"
        )
    if not isinstance(dc, dict):
        raise ModelLoadError("config.json has no 'dflash_config' object (target_layer_ids, mask_token_id, ...)")

    if cfg.get("attention_bias"):
        raise UnsupportedModelError("attention_bias = true is not supported (DFlash projections have no bias)")
    if cfg.get("hidden_act", "silu") != "silu":
        raise UnsupportedModelError(f"hidden_act {cfg['hidden_act']!r} is not supported; the drafter MLP is SwiGLU (silu)")
    rs = cfg.get("rope_scaling")
    if isinstance(rs, dict) and rs.get("rope_type", rs.get("type", "default")) not in ("default", None):
        raise UnsupportedModelError(f"rope scaling {rs} is not supported; the drafter uses plain RoPE")
    emb_scale = _one_of(cfg, dc, "input_embedding_scale")
    if emb_scale is not None and float(emb_scale) != 1.0:
        raise UnsupportedModelError(f"input_embedding_scale {emb_scale} is not supported (only 1.0)")

    H = int(_req(cfg, "hidden_size"))
    nh = int(_req(cfg, "num_attention_heads"))
    nkv = int(cfg.get("num_key_value_heads") or nh)
    head_dim = int(cfg.get("head_dim") or H // nh)
    v_head_dim = int(cfg.get("v_head_dim") or head_dim)
    if nh % nkv:
        raise ModelLoadError(f"num_attention_heads {nh} is not a multiple of num_key_value_heads {nkv}")
    prf = float(cfg.get("partial_rotary_factor", 1.0))
    n_rot = int(head_dim * prf)
    if n_rot <= 0 or n_rot % 2 or n_rot > head_dim:
        raise UnsupportedModelError(f"partial_rotary_factor {prf} gives an invalid rotary width {n_rot}")

    use_swa = bool(dc.get("use_swa", cfg.get("use_sliding_window", False)))
    layer_types = cfg.get("layer_types")
    if layer_types is not None:
        kinds = set(layer_types)
        if len(kinds) > 1:
            raise UnsupportedModelError(
                f"layer_types mixes {sorted(kinds)}; the dflash-draft GGUF has one attention kind for all layers"
            )
        if kinds and kinds != {"sliding_attention" if use_swa else "full_attention"}:
            raise ModelLoadError(f"layer_types {sorted(kinds)} contradicts dflash_config.use_swa = {use_swa}")
    window = 0
    if use_swa:
        window = dc.get("swa_window_size", cfg.get("sliding_window"))
        if window is None or int(window) < 1:
            raise ModelLoadError("dflash_config.use_swa is true but there is no swa_window_size / sliding_window")
        window = int(window)

    ids = dc.get("target_layer_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and i >= 0 for i in ids):
        raise ModelLoadError(f"dflash_config.target_layer_ids must be a non-empty list of layer indices, got {ids!r}")
    if len(set(ids)) != len(ids):
        raise ModelLoadError(f"dflash_config.target_layer_ids {ids} repeats a layer")
    n_target = _one_of(cfg, dc, "num_target_layers")
    if n_target is not None and max(ids) >= int(n_target):
        raise ModelLoadError(f"target_layer_ids {ids} reach past num_target_layers {n_target}")

    block = _one_of(cfg, dc, "block_size")
    if block is None or int(block) < 2:
        raise ModelLoadError(f"block_size must be >= 2 (anchor + at least one mask slot), got {block!r}")
    mask_id = dc.get("mask_token_id")
    rotary_base = _one_of(cfg, dc, "backbone_rotary_base")
    value_scale = dc.get("attention_value_scale")
    eps = cfg.get("rms_norm_eps")
    if eps is None:
        raise ModelLoadError("config.json has no 'rms_norm_eps'")

    return DFlashHParams(
        n_layer=int(_req(cfg, "num_hidden_layers")),
        n_embd=H,
        n_ff=int(_req(cfg, "intermediate_size")),
        n_head=nh,
        n_head_kv=nkv,
        head_dim=head_dim,
        v_head_dim=v_head_dim,
        rms_eps=float(eps),
        n_rot=n_rot,
        rope_theta=float(cfg.get("rope_theta", 10000.0)),
        value_scale=1.0 if value_scale is None else float(value_scale),
        sliding_window=window,
        n_ctx_train=int(cfg.get("max_position_embeddings") or 0),
        block_size=int(block),
        mask_token_id=None if mask_id is None else int(mask_id),
        target_layer_ids=[int(i) for i in ids],
        target_hidden=int(_one_of(cfg, dc, "target_hidden_size") or H),
        sinks=bool(dc.get("attention_sink_bias", False)),
        backbone_rotary_base=None if rotary_base is None else float(rotary_base),
        num_target_layers=None if n_target is None else int(n_target),
    )


def expected_shapes(hp: DFlashHParams) -> dict[str, tuple[int, ...]]:
    """HF tensor name -> PyTorch shape, for every tensor the folder must hold."""
    H, F, hd, vd = hp.n_embd, hp.n_ff, hp.head_dim, hp.v_head_dim
    out: dict[str, tuple[int, ...]] = {"fc.weight": (H, hp.n_target_features), "hidden_norm.weight": (H,),
                                       "norm.weight": (H,)}
    per_layer = {
        "input_layernorm.weight": (H,),
        "self_attn.q_proj.weight": (hp.n_head * hd, H),
        "self_attn.k_proj.weight": (hp.n_head_kv * hd, H),
        "self_attn.v_proj.weight": (hp.n_head_kv * vd, H),
        "self_attn.o_proj.weight": (H, hp.n_head * vd),
        "self_attn.q_norm.weight": (hd,),
        "self_attn.k_norm.weight": (hd,),
        SINKS_HF: (hp.n_head,),
        "post_attention_layernorm.weight": (H,),
        "mlp.gate_proj.weight": (F, H),
        "mlp.up_proj.weight": (F, H),
        "mlp.down_proj.weight": (H, F),
    }
    for il in range(hp.n_layer):
        for name, shape in per_layer.items():
            if name != SINKS_HF or hp.sinks:
                out[f"layers.{il}.{name}"] = shape
    return out


# ---------------------------------------------------------------------------------------------
# mask_embedding.pt

MASK_KEYS = ("mask_token_id", "embedding")


def read_mask_embedding(path: str | Path, hidden: int) -> tuple[np.ndarray, int | None]:
    """(embedding float32 [hidden], its mask_token_id or None) from ``mask_embedding.pt``.

    Accepted forms (spec/dflash.md §1): a dict ``{"mask_token_id": int,
    "embedding": tensor [H]}`` or a bare tensor ``[H]``.  A ``per_position``
    variant, other keys or any other shape raise UnsupportedModelError.
    """
    obj = load_torch_zip(path)
    mask_id = None
    if isinstance(obj, dict):
        if "per_position" in obj:
            raise UnsupportedModelError(
                f"{path} is a per_position mask embedding (one vector per block slot); only a single shared "
                f"mask embedding [{hidden}] is supported"
            )
        extra = sorted(str(k) for k in obj if k not in MASK_KEYS)
        if extra or "embedding" not in obj:
            raise UnsupportedModelError(
                f"{path} holds keys {sorted(map(str, obj))}; expected {list(MASK_KEYS)} (or a bare tensor [{hidden}])"
            )
        if obj.get("mask_token_id") is not None:
            mask_id = obj["mask_token_id"]
            if isinstance(mask_id, bool) or not isinstance(mask_id, int) or mask_id < 0:
                raise ModelLoadError(f"{path}: mask_token_id must be a non-negative int, got {mask_id!r}")
        obj = obj["embedding"]
    if not isinstance(obj, np.ndarray):
        raise UnsupportedModelError(f"{path} holds a {type(obj).__name__}; expected a tensor [{hidden}] or a dict")
    if obj.shape != (hidden,):
        raise UnsupportedModelError(
            f"{path}: mask embedding has shape {list(obj.shape)}, expected [{hidden}] (hidden_size)"
        )
    return obj, mask_id


# ---------------------------------------------------------------------------------------------
# conversion


@dataclass
class DFlashConversionReport:
    out_path: Path
    n_tensors: int
    dtype: str
    mask_token_id: int
    tensor_types: dict[str, str] = field(default_factory=dict)


def _hf_name(name: str) -> str:
    return name[len("model."):] if name.startswith("model.") else name  # tolerate re-saves with a prefix


def _gguf_name(hf: str) -> str:
    for src, dst in GLOBAL_TENSORS:
        if hf == src:
            return dst
    _, il, rest = hf.split(".", 2)  # layers.{i}.<rest>
    return f"blk.{il}." + dict(LAYER_TENSORS)[rest]


def convert_dflash(
    src_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    dtype: str = "bf16",
    target_vocab: int | None = None,
) -> DFlashConversionReport:
    """Convert a DFlash drafter folder to a ``dflash-draft`` GGUF.

    dtype: type of the matrices (bf16 default = the source precision, f16,
        f32, q8_0); norms, sinks and the mask embedding are always F32.
    target_vocab: rows of the target head the drafter borrows; checked
        against the mask token id and written as ``dflash-draft.vocab_size``
        (the drafter config's own vocab_size is informational and not written).

    Raises ModelLoadError naming every missing, unknown or ill-shaped tensor
    (with the expected shape), UnsupportedModelError for configs or mask
    embeddings outside spec/dflash.md, InvalidArgumentError for bad
    arguments.  Nothing is left at ``out_path`` on failure.
    """
    if dtype not in DTYPES:
        raise InvalidArgumentError(f"dtype must be one of {DTYPES}, not {dtype!r}")
    ckpt = Checkpoint(src_dir)
    hp = read_dflash_hparams(ckpt.config)

    mask_path = ckpt.folder / MASK_EMBEDDING_FILE
    if not mask_path.is_file():
        raise ModelLoadError(f"{ckpt.folder} has no {MASK_EMBEDDING_FILE} (the drafter's mask-slot embedding)")
    mask_vec, pt_mask_id = read_mask_embedding(mask_path, hp.n_embd)
    if pt_mask_id is not None and hp.mask_token_id is not None and pt_mask_id != hp.mask_token_id:
        raise ModelLoadError(
            f"{MASK_EMBEDDING_FILE} says mask_token_id {pt_mask_id} but dflash_config.mask_token_id is "
            f"{hp.mask_token_id}; expected the same id in both"
        )
    mask_id = pt_mask_id if pt_mask_id is not None else hp.mask_token_id
    if mask_id is None:
        raise ModelLoadError(f"no mask_token_id in dflash_config nor in {MASK_EMBEDDING_FILE}")
    if target_vocab is not None and not 0 <= mask_id < int(target_vocab):
        raise InvalidArgumentError(f"mask_token_id {mask_id} is outside the target vocabulary of {target_vocab} tokens")

    # check the inventory against the config: all problems at once
    want = expected_shapes(hp)
    found = {_hf_name(n): n for n in ckpt.names()}
    problems = []
    for hf, shape in want.items():
        if hf not in found:
            problems.append(f"missing tensor {hf} (expected shape {list(shape)})")
            continue
        got, dt = ckpt.shape(found[hf]), ckpt.dtype(found[hf])
        if got != shape:
            problems.append(f"{hf} has shape {list(got)}, expected {list(shape)}")
        if dt not in ("BF16", "F16", "F32"):
            problems.append(f"{hf} has dtype {dt}, expected BF16, F16 or F32")
    for hf in sorted(set(found) - set(want)):
        if hf.endswith(SINKS_HF) and not hp.sinks:
            problems.append(f"unexpected tensor {hf}: dflash_config.attention_sink_bias is not true")
        else:
            problems.append(f"unknown tensor {hf} (a DFlash drafter holds fc, hidden_norm, norm and layers.*)")
    if problems:
        shown = "\n  ".join(problems[:25])
        more = f"\n  ... and {len(problems) - 25} more" if len(problems) > 25 else ""
        raise ModelLoadError(f"DFlash checkpoint {ckpt.folder} cannot be converted:\n  {shown}{more}")

    plan: list[PlannedTensor] = []

    def add(name: str, shape: tuple[int, ...], produce) -> None:
        t = dtype if len(shape) == 2 else "f32"
        try:
            byte_shape = (*shape[:-1], ggml_row_bytes(t, shape[-1]))
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"{name} [{', '.join(map(str, shape))}] cannot be written as {t}: {exc}") from None
        plan.append(PlannedTensor(name, byte_shape, t, lambda: float_to_ggml(produce(), t), raw=True))

    for hf, shape in want.items():
        add(_gguf_name(hf), shape, lambda n=found[hf]: ckpt.tensor(n))
    add(MASK_EMBD_TENSOR, (hp.n_embd,), lambda: mask_vec)

    def metadata(w: gguf.GGUFWriter) -> None:
        w.add_name(ckpt.config.get("_name_or_path") or ckpt.folder.name)
        w.add_file_type(int(_FILE_TYPES[dtype]))
        if dtype == "q8_0":
            w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        w.add_uint32(Key.BLOCK_COUNT, hp.n_layer)
        w.add_uint32(Key.CONTEXT_LENGTH, hp.n_ctx_train)
        w.add_uint32(Key.EMBEDDING_LENGTH, hp.n_embd)
        w.add_uint32(Key.FEED_FORWARD_LENGTH, hp.n_ff)
        if target_vocab is not None:
            w.add_uint32(Key.VOCAB_SIZE, int(target_vocab))
        w.add_uint32(Key.HEAD_COUNT, hp.n_head)
        w.add_uint32(Key.HEAD_COUNT_KV, hp.n_head_kv)
        w.add_uint32(Key.KEY_LENGTH, hp.head_dim)
        w.add_uint32(Key.VALUE_LENGTH, hp.v_head_dim)
        w.add_float32(Key.RMS_EPS, hp.rms_eps)
        w.add_float32(Key.VALUE_SCALE, hp.value_scale)
        w.add_bool(Key.CAUSAL, False)  # spec Corrections 2: every implementation is non-causal in the block
        w.add_uint32(Key.SLIDING_WINDOW, hp.sliding_window)
        w.add_uint32(Key.ROPE_DIMENSION_COUNT, hp.n_rot)
        w.add_float32(Key.ROPE_FREQ_BASE, hp.rope_theta)
        w.add_uint32(Key.BLOCK_SIZE, hp.block_size)
        w.add_uint32(Key.MASK_TOKEN_ID, mask_id)
        w.add_array(Key.TARGET_LAYER_IDS, list(hp.target_layer_ids))  # gguf-py types int lists INT32
        w.add_uint32(Key.N_TARGET_FEATURES, hp.n_target_features)
        if hp.backbone_rotary_base is not None:
            w.add_float32(Key.BACKBONE_ROTARY_BASE, hp.backbone_rotary_base)
        if hp.num_target_layers is not None:
            w.add_uint32(Key.NUM_TARGET_LAYERS, hp.num_target_layers)

    out_path = write_gguf(out_path, ARCH, metadata, plan)
    log.info("wrote %s: %d tensors, dtype %s, mask token %d", out_path, len(plan), dtype, mask_id)
    return DFlashConversionReport(out_path, len(plan), dtype, mask_id, {t.name: t.ggml_type for t in plan})


def main(argv: list[str] | None = None) -> int:
    """``python -m mimo_ggml.convert.dflash SRC OUT [--dtype ..] [--target-vocab N]``"""
    ap = argparse.ArgumentParser(description="Convert a DFlash drafter folder to a dflash-draft GGUF")
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--dtype", choices=DTYPES, default="bf16")
    ap.add_argument("--target-vocab", type=int)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    convert_dflash(a.src, a.out, dtype=a.dtype, target_vocab=a.target_vocab)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
