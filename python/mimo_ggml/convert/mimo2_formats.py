"""Per-format weight math for the MiMo-V2 MoE converter (spec/moe.md §6).

This module owns the numbers, nothing else: it turns the tensors that Xiaomi
and the community publish into float32 matrices or into raw ggml block bytes,
with vectorised numpy and no file or GGUF-name knowledge.

* FP8 E4M3FN (§6.1): the 256-entry decode table, 128x128 block dequantisation
  with ``weight_scale_inv`` (a multiplier, despite its name) including partial
  edge tiles, and the fused ``qkv_proj`` rule: the rows are ``tp`` chunks
  ``[Q_c | K_c | V_c]``, each tiled by its own FP8 scale rows, regrouped here
  to the global ``[Q; K; V]`` order.
* compressed-tensors ``pack-quantized`` int4 (AWQ W4A16, §6.2): unpacking of
  the int32 words and of the row-packed zero points, and lossless repacks into
  ggml Q4_0 (symmetric), Q5_0 (asymmetric, or symmetric), Q8_0, plus the
  near-lossless Q4_1.  See :func:`awq_lossless_type` for the fallback rule.
* MXFP4 (§6.3): bit-exact repack of the HF codes + E8M0 scale bytes into
  ggml ``block_mxfp4``.

Every ``*_to_ggml`` / ``awq_to_*`` function returns ``uint8`` arrays whose
last axis is the row's bytes, i.e. PyTorch shape ``[..., N, K]`` becomes
``[..., N, K / block * type_size]``.  That is the form gguf-py's
``GGUFWriter.add_tensor(name, a, raw_dtype=GGMLQuantizationType.X)`` and
``add_tensor_info`` expect; stacking experts as ``[E, N, bytes]`` gives ggml
``ne = {K, N, E}``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf import quants as gguf_quants

from ..errors import InvalidArgumentError, ModelLoadError
from .common import f32_to_bf16 as f32_to_bf16_bits

__all__ = [
    "FP8_E4M3_TABLE",
    "E2M1_TABLE",
    "GGML_TYPES",
    "fp8_e4m3_to_f32",
    "fp8_block_dequant",
    "qkv_chunk_rows",
    "split_fused_qkv",
    "unpack_int4_words",
    "unpack_awq_zero_points",
    "awq_unpack",
    "awq_dequant",
    "scales_fit_f16",
    "awq_to_q4_0",
    "awq_to_q5_0",
    "awq_to_q4_1",
    "awq_to_q8_0",
    "awq_lossless_type",
    "e8m0_to_f32",
    "mxfp4_dequant",
    "mxfp4_to_ggml",
    "f32_to_bf16_bits",
    "float_to_ggml",
    "ggml_row_bytes",
]

# converter type names -> ggml types
GGML_TYPES: dict[str, GGMLQuantizationType] = {
    "f32": GGMLQuantizationType.F32,
    "f16": GGMLQuantizationType.F16,
    "bf16": GGMLQuantizationType.BF16,
    "q4_0": GGMLQuantizationType.Q4_0,
    "q4_1": GGMLQuantizationType.Q4_1,
    "q5_0": GGMLQuantizationType.Q5_0,
    "q8_0": GGMLQuantizationType.Q8_0,
    "mxfp4": GGMLQuantizationType.MXFP4,
}

_QK = 32  # every ggml block type used here covers 32 consecutive inputs


def ggml_row_bytes(type_name: str, n_cols: int) -> int:
    """Bytes of one ggml row of ``n_cols`` elements of the given type."""
    block, size = GGML_QUANT_SIZES[GGML_TYPES[type_name]]
    if n_cols % block:
        raise InvalidArgumentError(f"{type_name} rows need a multiple of {block} elements, got {n_cols}")
    return n_cols // block * size


# --------------------------------------------------------------------------------------------
# FP8 E4M3FN


def _build_e4m3_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    exp = (codes >> 3) & 0xF
    man = (codes & 0x7).astype(np.float64)
    normal = (1.0 + man / 8.0) * np.exp2(exp - 7.0)
    subnormal = (man / 8.0) * 2.0**-6  # exponent field 0: no implicit 1, exponent 1 - bias
    values = sign * np.where(exp == 0, subnormal, normal)
    # E4M3FN has no infinities; only S.1111.111 is NaN (0x7F, 0xFF), so 0x7E = 448 is the max
    values[(exp == 15) & ((codes & 0x7) == 7)] = np.nan
    return values.astype(np.float32)


FP8_E4M3_TABLE: np.ndarray = _build_e4m3_table()
FP8_E4M3_TABLE.setflags(write=False)


def fp8_e4m3_to_f32(codes: np.ndarray) -> np.ndarray:
    """FP8 E4M3FN bytes (uint8, any shape) -> float32, exactly (0x7F/0xFF -> NaN)."""
    return FP8_E4M3_TABLE[np.asarray(codes, dtype=np.uint8)]


def fp8_block_dequant(
    codes: np.ndarray,
    scale_inv: np.ndarray,
    block: Sequence[int] = (128, 128),
    rows_per_chunk: int | None = None,
    what: str = "tensor",
) -> np.ndarray:
    """Block-scaled FP8 ``[N, K]`` -> float32: ``W[r, c] = fp8(W8[r, c]) * S[srow(r), c // bc]``.

    With ``rows_per_chunk = None`` the scale grid is the ordinary one,
    ``S`` of shape ``[ceil(N / br), ceil(K / bc)]``, last tiles possibly partial.
    With ``rows_per_chunk = rpc`` the rows are ``N / rpc`` consecutive chunks,
    each tiled on its own (the TP-sharded fused ``qkv_proj``):
    ``srow(r) = (r // rpc) * ceil(rpc / br) + (r % rpc) // br``.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ModelLoadError(f"{what}: FP8 weight must be 2-D, got shape {codes.shape}")
    n, k = codes.shape
    br, bc = int(block[0]), int(block[1])
    rpc = n if rows_per_chunk is None else int(rows_per_chunk)
    if rpc <= 0 or n % rpc:
        raise ModelLoadError(f"{what}: {n} rows do not split into chunks of {rpc} rows")
    tiles_per_chunk = -(-rpc // br)
    expected = ((n // rpc) * tiles_per_chunk, -(-k // bc))
    scale_inv = np.asarray(scale_inv, dtype=np.float32)
    if scale_inv.shape != expected:
        layout = "per-chunk" if rows_per_chunk is not None else "global"
        raise ModelLoadError(
            f"{what}: FP8 weight_scale_inv has shape {scale_inv.shape}, expected {expected} "
            f"for a [{n}, {k}] weight with {br}x{bc} blocks ({layout} tiling, {rpc} rows per chunk)"
        )
    r = np.arange(n)
    srow = (r // rpc) * tiles_per_chunk + (r % rpc) // br
    scol = np.arange(k) // bc
    return fp8_e4m3_to_f32(codes) * scale_inv[srow[:, None], scol[None, :]]


# --------------------------------------------------------------------------------------------
# fused qkv


def qkv_chunk_rows(nh: int, nkv: int, dqk: int, dv: int, tp: int) -> tuple[int, int, int]:
    """Rows of Q_c, K_c, V_c in one of the ``tp`` chunks of a fused ``qkv_proj``."""
    if tp <= 0 or nh % tp or nkv % tp:
        raise ModelLoadError(
            f"fused qkv_proj: {nh} query heads and {nkv} KV heads do not split over {tp} checkpoint TP ranks"
        )
    return nh // tp * dqk, nkv // tp * dqk, nkv // tp * dv


def split_fused_qkv(
    w: np.ndarray, *, nh: int, nkv: int, dqk: int, dv: int, tp: int, layout: str = "tp_chunked"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split fused qkv rows into head-ordered ``Q [nh*dqk, ...]``, ``K [nkv*dqk, ...]``, ``V [nkv*dv, ...]``.

    ``layout = "tp_chunked"``: rows are ``tp`` chunks ``[Q_c | K_c | V_c]``
    (Xiaomi's releases); chunk ``c`` holds query heads ``c*nh/tp ..`` and KV
    heads ``c*nkv/tp ..``, so concatenating the per-chunk parts in chunk
    order gives the global head order.  ``layout = "global_q_k_v"``: rows are
    already ``[Q; K; V]``.  Works on any dtype (it only moves rows), so raw
    BF16 bits regroup exactly.
    """
    w = np.asarray(w)
    total = nh * dqk + nkv * (dqk + dv)
    if w.shape[0] != total:
        raise ModelLoadError(
            f"fused qkv_proj has {w.shape[0]} rows, expected {total} = {nh}*{dqk} + {nkv}*{dqk} + {nkv}*{dv}"
        )
    if layout == "global_q_k_v":
        a, b = nh * dqk, nh * dqk + nkv * dqk
        return w[:a], w[a:b], w[b:]
    if layout != "tp_chunked":
        raise InvalidArgumentError(f"qkv layout must be 'tp_chunked' or 'global_q_k_v', not {layout!r}")
    qc, kc, vc = qkv_chunk_rows(nh, nkv, dqk, dv, tp)
    chunks = w.reshape(tp, qc + kc + vc, *w.shape[1:])
    q = chunks[:, :qc].reshape(nh * dqk, *w.shape[1:])
    k = chunks[:, qc : qc + kc].reshape(nkv * dqk, *w.shape[1:])
    v = chunks[:, qc + kc :].reshape(nkv * dv, *w.shape[1:])
    return q, k, v


# --------------------------------------------------------------------------------------------
# compressed-tensors pack-quantized int4 (AWQ W4A16)


def unpack_int4_words(packed: np.ndarray, n_cols: int | None = None) -> np.ndarray:
    """int32 words ``[N, ceil(K/8)]`` -> offset codes ``u = q + 8`` (uint8 ``[N, K]``).

    Word ``w`` holds elements ``8w .. 8w+7``, element ``8w+i`` in bits
    ``[4i, 4i+4)``; read as little-endian bytes, byte ``b`` carries element
    ``2b`` in its low nibble and ``2b+1`` in its high nibble.
    """
    packed = np.ascontiguousarray(packed).astype("<i4", copy=False)
    n = packed.shape[0]
    b = packed.view(np.uint8).reshape(n, -1)
    u = np.empty((n, b.shape[1] * 2), dtype=np.uint8)
    u[:, 0::2] = b & 0x0F
    u[:, 1::2] = b >> 4
    return u if n_cols is None else u[:, :n_cols]


def unpack_awq_zero_points(zp: np.ndarray, n_rows: int) -> np.ndarray:
    """Row-packed zero points ``[ceil(N/8), n_groups]`` int32 -> signed ``z`` (int8 ``[N, n_groups]``).

    Packed along dim 0: word ``(r // 8, g)`` holds row ``r`` in bits ``4*(r % 8)``, with the +8 offset.
    """
    zp = np.ascontiguousarray(zp).astype("<i4", copy=False)
    words, groups = zp.shape
    if words * 8 < n_rows:
        raise ModelLoadError(f"weight_zero_point has {words} packed rows, too few for {n_rows} rows")
    shifts = (4 * np.arange(8, dtype=np.uint32))[None, :, None]
    u = (zp.view(np.uint32)[:, None, :] >> shifts) & 0xF  # [words, 8, groups]
    return (u.reshape(words * 8, groups)[:n_rows].astype(np.int16) - 8).astype(np.int8)


def awq_unpack(
    packed: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray | None,
    group_size: int,
    shape: Sequence[int] | None = None,
    what: str = "tensor",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pack-quantized Linear -> ``(q int8 [N,K] in [-8,7], s float32 [N,K/G], z int8 [N,K/G])``.

    ``z`` is all zeros for symmetric checkpoints (``zero_point=None``).
    ``shape`` is ``weight_shape`` (``[N, K]``); without it ``K = 8 * words``.
    """
    packed = np.asarray(packed)
    if packed.ndim != 2:
        raise ModelLoadError(f"{what}: weight_packed must be 2-D, got {packed.shape}")
    n = packed.shape[0]
    k = packed.shape[1] * 8 if shape is None else int(shape[1])
    if shape is not None and (int(shape[0]) != n or k <= 0 or -(-k // 8) != packed.shape[1]):
        raise ModelLoadError(f"{what}: weight_shape {list(shape)} does not match weight_packed {packed.shape}")
    if group_size <= 0 or k % group_size:
        raise ModelLoadError(f"{what}: K = {k} is not a multiple of the group size {group_size}")
    groups = k // group_size
    s = np.asarray(scale, dtype=np.float32)
    if s.shape != (n, groups):
        raise ModelLoadError(f"{what}: weight_scale has shape {s.shape}, expected {(n, groups)}")
    q = (unpack_int4_words(packed, k).astype(np.int16) - 8).astype(np.int8)
    if zero_point is None:
        z = np.zeros((n, groups), dtype=np.int8)
    else:
        zp = np.asarray(zero_point)
        if zp.shape != (-(-n // 8), groups):
            raise ModelLoadError(
                f"{what}: weight_zero_point has shape {zp.shape}, expected {(-(-n // 8), groups)} (packed along rows)"
            )
        z = unpack_awq_zero_points(zp, n)
    return q, s, z


def awq_dequant(q: np.ndarray, s: np.ndarray, z: np.ndarray, group_size: int) -> np.ndarray:
    """``W[r, c] = (q[r, c] - z[r, c // G]) * s[r, c // G]`` in float32 (exact for bf16/f16 scales)."""
    n, k = q.shape
    qg = q.reshape(n, k // group_size, group_size).astype(np.float32)
    return ((qg - z[:, :, None]) * s[:, :, None]).reshape(n, k)


def scales_fit_f16(s: np.ndarray) -> np.ndarray:
    """Elementwise: does the scale survive the round trip to the fp16 ``d`` of a ggml block?"""
    s = np.asarray(s, dtype=np.float32)
    with np.errstate(over="ignore"):
        return s.astype(np.float16).astype(np.float32) == s


def _per_block(a: np.ndarray, group_size: int) -> np.ndarray:
    """Per-group values ``[N, K/G]`` -> per-32-block values ``[N, K/32]`` (needs ``G % 32 == 0``)."""
    if group_size % _QK:
        raise InvalidArgumentError(f"group size {group_size} is not a multiple of {_QK}; no block-wise repack")
    return np.repeat(a, group_size // _QK, axis=1)


def _split_halves(x: np.ndarray) -> np.ndarray:
    """Values 0..15 ``[N, nb, 32]`` -> ggml nibbles ``[N, nb, 16]``: ``qs[j] = x[j] | x[j+16] << 4``."""
    return (x[..., :16] | (x[..., 16:] << 4)).astype(np.uint8)


def _f16_bytes(d: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(d.astype("<f2")).view(np.uint8).reshape(*d.shape, 2)


def awq_to_q4_0(q: np.ndarray, s: np.ndarray, group_size: int) -> np.ndarray:
    """Symmetric int4 -> ggml Q4_0 bytes ``[N, K/32*18]``: ``d = fp16(s)``, nibble ``q + 8``.

    Exact when :func:`scales_fit_f16` holds for every scale (ggml decodes ``(u - 8) * d``).
    """
    n, k = q.shape
    nb = k // _QK
    u = (q.astype(np.int16) + 8).astype(np.uint8).reshape(n, nb, _QK)
    d = _per_block(s, group_size)
    return np.concatenate([_f16_bytes(d), _split_halves(u)], axis=2).reshape(n, nb * 18)


def awq_to_q5_0(q: np.ndarray, s: np.ndarray, z: np.ndarray, group_size: int) -> np.ndarray:
    """int4 with zero points -> ggml Q5_0 bytes ``[N, K/32*22]``: ``x = q - z + 16`` in [1, 31], ``d = fp16(s)``.

    Block layout ``{d f16, qh u32, qs[16]}``; ``qh`` bit ``j`` = bit 4 of
    element ``j``; low nibbles split-halves.  Exact like Q4_0.
    """
    n, k = q.shape
    nb = k // _QK
    zb = _per_block(z, group_size).astype(np.int16)
    x = (q.astype(np.int16).reshape(n, nb, _QK) - zb[:, :, None] + 16).astype(np.uint8)
    bits = ((x >> 4) & 1).astype(np.uint32)
    qh = (bits << np.arange(_QK, dtype=np.uint32)).sum(axis=2, dtype=np.uint32)
    qh_bytes = np.ascontiguousarray(qh.astype("<u4")).view(np.uint8).reshape(n, nb, 4)
    d = _per_block(s, group_size)
    return np.concatenate([_f16_bytes(d), qh_bytes, _split_halves(x & 0x0F)], axis=2).reshape(n, nb * 22)


def awq_to_q4_1(q: np.ndarray, s: np.ndarray, z: np.ndarray, group_size: int) -> np.ndarray:
    """int4 with zero points -> ggml Q4_1 bytes ``[N, K/32*20]`` (near-lossless).

    ``d = fp16(s)``, ``m = fp16(-(z + 8) * s)``, nibble ``q + 8``; only ``m`` is rounded.
    """
    n, k = q.shape
    nb = k // _QK
    u = (q.astype(np.int16) + 8).astype(np.uint8).reshape(n, nb, _QK)
    d = _per_block(s, group_size)
    m = _per_block(-(z.astype(np.float32) + 8.0) * s, group_size)
    return np.concatenate([_f16_bytes(d), _f16_bytes(m), _split_halves(u)], axis=2).reshape(n, nb * 20)


def awq_to_q8_0(q: np.ndarray, s: np.ndarray, z: np.ndarray, group_size: int) -> np.ndarray | None:
    """int4 with zero points -> ggml Q8_0 bytes ``[N, K/32*34]`` if that is exact, else ``None``.

    A 32-block may straddle several groups when ``G % 32 != 0``.  Rule: for
    ``k = 1, 2, 4, 8, 16`` (first that works, per block) take
    ``d = min|s| / k`` over the groups the block touches; the block is exact
    iff ``d`` is an fp16 value and every element ``(q - z) * s / d`` is an
    integer in [-127, 127].
    """
    n, kk = q.shape
    nb = kk // _QK
    col_group = np.arange(kk) // group_size
    s_el = s[:, col_group].reshape(n, nb, _QK).astype(np.float64)
    diff = (q.astype(np.int16) - z[:, col_group].astype(np.int16)).reshape(n, nb, _QK).astype(np.float64)
    nz = np.abs(s_el) > 0
    smin = np.where(nz, np.abs(s_el), np.inf).min(axis=2)
    smin = np.where(np.isfinite(smin), smin, 1.0)  # all-zero block: any d, x = 0
    d_out = np.zeros((n, nb), dtype=np.float64)
    x_out = np.zeros((n, nb, _QK), dtype=np.float64)
    done = np.zeros((n, nb), dtype=bool)
    for k in (1, 2, 4, 8, 16):
        d = smin / k
        mult = s_el / d[:, :, None]
        x = diff * mult
        with np.errstate(over="ignore"):
            d_ok = d.astype(np.float16).astype(np.float64) == d
        ok = (
            ~done
            & d_ok
            & np.all(mult == np.round(mult), axis=2)
            & np.all(np.abs(x) <= 127, axis=2)
        )
        d_out[ok] = d[ok]
        x_out[ok] = x[ok]
        done |= ok
    if not done.all():
        return None
    xs = x_out.astype(np.int8).view(np.uint8)
    return np.concatenate([_f16_bytes(d_out.astype(np.float32)), xs], axis=2).reshape(n, nb * 34)


def awq_lossless_type(
    stack: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], group_size: int, preferred: str
) -> str:
    """The closest lossless ggml type for a stack of AWQ Linears (one ggml tensor).

    Rule, in order: ``preferred`` (``q4_0`` needs all zero points 0, ``q5_0``
    any) when ``G % 32 == 0`` and every scale is an fp16 value; else ``q8_0``
    when :func:`awq_to_q8_0` is exact for every member; else ``f16`` when
    every dequantised value is an fp16 value; else ``f32`` (always exact:
    a bf16 scale times a 5-bit integer fits float32's mantissa).
    ``preferred = "q8_0"`` starts the ladder at Q8_0.
    """
    if preferred not in ("q4_0", "q5_0", "q8_0"):
        raise InvalidArgumentError(f"preferred AWQ type must be q4_0, q5_0 or q8_0, not {preferred!r}")
    if preferred != "q8_0" and group_size % _QK == 0 and all(scales_fit_f16(s).all() for _, s, _ in stack):
        if preferred == "q5_0" or all(not z.any() for _, _, z in stack):
            return preferred
    if all(awq_to_q8_0(q, s, z, group_size) is not None for q, s, z in stack):
        return "q8_0"
    for q, s, z in stack:
        w = awq_dequant(q, s, z, group_size)
        with np.errstate(over="ignore"):
            if not np.array_equal(w.astype(np.float16).astype(np.float32), w):
                return "f32"
    return "f16"


# --------------------------------------------------------------------------------------------
# MXFP4

E2M1_TABLE: np.ndarray = np.array(
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], dtype=np.float32
)
E2M1_TABLE.setflags(write=False)


def e8m0_to_f32(e: np.ndarray) -> np.ndarray:
    """E8M0 scale bytes -> float32 ``2^(e - 127)``; 255 is NaN; 0 is ``2^-127`` (a float32 subnormal)."""
    e = np.asarray(e, dtype=np.uint8).astype(np.float64)
    return np.where(e == 255, np.nan, np.exp2(e - 127.0)).astype(np.float32)


def _mxfp4_codes(packed: np.ndarray) -> np.ndarray:
    """HF bytes ``[N, K/2]`` -> E2M1 codes ``[N, K]`` (element ``2b`` in the low nibble)."""
    packed = np.asarray(packed, dtype=np.uint8)
    codes = np.empty((packed.shape[0], packed.shape[1] * 2), dtype=np.uint8)
    codes[:, 0::2] = packed & 0x0F
    codes[:, 1::2] = packed >> 4
    return codes


def _check_mxfp4(packed: np.ndarray, scales: np.ndarray, what: str) -> tuple[int, int]:
    if packed.ndim != 2 or scales.ndim != 2:
        raise ModelLoadError(f"{what}: MXFP4 weight and weight_scale must be 2-D, got {packed.shape}, {scales.shape}")
    n, k = packed.shape[0], packed.shape[1] * 2
    if k % _QK or scales.shape != (n, k // _QK):
        raise ModelLoadError(
            f"{what}: MXFP4 weight {packed.shape} (K = {k}) needs weight_scale {(n, k // _QK)}, got {scales.shape}"
        )
    return n, k


def mxfp4_dequant(packed: np.ndarray, scales: np.ndarray, what: str = "tensor") -> np.ndarray:
    """``W[r, c] = E2M1(code[r, c]) * 2^(scale[r, c // 32] - 127)`` as float32 ``[N, K]``."""
    n, k = _check_mxfp4(np.asarray(packed), np.asarray(scales), what)
    vals = E2M1_TABLE[_mxfp4_codes(packed)].reshape(n, k // _QK, _QK)
    return (vals * e8m0_to_f32(scales)[:, :, None]).reshape(n, k)


def mxfp4_to_ggml(packed: np.ndarray, scales: np.ndarray, what: str = "tensor") -> np.ndarray:
    """HF MXFP4 (codes ``[N, K/2]`` + E8M0 ``[N, K/32]``) -> ggml MXFP4 bytes ``[N, K/32*17]``, bit-exact.

    Each block is ``{e, qs[16]}`` with the scale byte copied verbatim and
    ``qs[j] = code[j] | code[j + 16] << 4``.
    """
    packed = np.asarray(packed)
    scales = np.asarray(scales, dtype=np.uint8)
    n, k = _check_mxfp4(packed, scales, what)
    nb = k // _QK
    codes = _mxfp4_codes(packed).reshape(n, nb, _QK)
    return np.concatenate([scales[:, :, None], _split_halves(codes)], axis=2).reshape(n, nb * 17)


# --------------------------------------------------------------------------------------------
# float outputs


def float_to_ggml(x: np.ndarray, type_name: str) -> np.ndarray:
    """float32 ``[..., K]`` -> row bytes of ``f32``, ``f16``, ``bf16`` or ``q8_0`` (gguf-py's quantizer)."""
    x = np.asarray(x, dtype=np.float32)
    if type_name == "q8_0":
        ggml_row_bytes(type_name, x.shape[-1])  # rows must be whole blocks
        return np.ascontiguousarray(gguf_quants.quantize(x, GGMLQuantizationType.Q8_0))
    if type_name == "f32":
        out = np.ascontiguousarray(x.astype("<f4"))
    elif type_name == "f16":
        with np.errstate(over="ignore"):
            out = np.ascontiguousarray(x.astype("<f2"))
    elif type_name == "bf16":
        out = np.ascontiguousarray(f32_to_bf16_bits(x).astype("<u2"))
    else:
        raise InvalidArgumentError(f"float type must be f32, f16, bf16 or q8_0, not {type_name!r}")
    return out.view(np.uint8).reshape(*x.shape[:-1], -1)
