"""MiMo-V2 MoE converter: per-format math (mimo2_formats) and whole-checkpoint conversion (mimo2).

References are computed here, in the test run, by code that does not share
the converter's paths: torch's float8 cast for E4M3, per-chunk loops for the
FP8 tiling, the fixtures' pre-packing integers for AWQ / MXFP4, and
gguf-py's own dequantisers for reading the GGUF back.
"""

from __future__ import annotations

import json
import logging
import shutil
import zlib
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as QT
from safetensors.torch import load_file, save_file

import moe_fixtures as mf
from mimo_ggml.convert import mimo2_formats as fmt
from mimo_ggml.convert.mimo2 import convert_mimo2
from mimo_ggml.errors import InvalidArgumentError, ModelLoadError, UnsupportedModelError

# ---------------------------------------------------------------------------------------------
# helpers


class G:
    """A GGUF read back with gguf-py: ``kv[key]`` values, ``t[name]`` tensors, ``deq(name)`` float32."""

    def __init__(self, path: Path):
        self.r = gguf.GGUFReader(path)
        self.kv = {k: f.contents() for k, f in self.r.fields.items() if not k.startswith("GGUF.")}
        self.t = {t.name: t for t in self.r.tensors}

    def deq(self, name: str) -> np.ndarray:
        t = self.t[name]
        return np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)

    def ne(self, name: str) -> list[int]:
        return [int(x) for x in self.t[name].shape]

    def type(self, name: str) -> QT:
        return self.t[name].tensor_type


def load_source(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def f32(t: torch.Tensor) -> np.ndarray:
    return t.to(torch.float32).numpy()


def fp8_decode_torch(codes: torch.Tensor) -> np.ndarray:
    return codes.view(torch.float8_e4m3fn).to(torch.float32).numpy()


def fp8_dequant_loop(codes: torch.Tensor, scale: torch.Tensor, rows_per_chunk: int | None = None, b: int = 128):
    """Independent reference: dequantise each chunk with its own ordinary (global) 128x128 grid."""
    w = fp8_decode_torch(codes)
    s = scale.numpy()
    n, k = w.shape
    rpc = rows_per_chunk or n
    tiles = -(-rpc // b)
    out = np.empty_like(w)
    for c in range(n // rpc):
        sc = s[c * tiles : (c + 1) * tiles]
        for i in range(tiles):
            for j in range(-(-k // b)):
                r0, r1 = c * rpc + i * b, min(c * rpc + (i + 1) * b, (c + 1) * rpc)
                out[r0:r1, j * b : (j + 1) * b] = w[r0:r1, j * b : (j + 1) * b] * sc[i, j]
    return out


def regroup_reference(w: np.ndarray, nh: int, nkv: int, tp: int):
    """Independent reference of the TP-chunk -> global [Q;K;V] rule, head by head."""
    dq, dv = mf.HEAD_DIM, mf.V_HEAD_DIM
    rpc = (nh + nkv) // tp * dq + nkv // tp * dv
    q, k, v = [], [], []
    for h in range(nh):
        c, i = divmod(h, nh // tp)
        q.append(w[c * rpc + i * dq : c * rpc + (i + 1) * dq])
    for h in range(nkv):
        c, i = divmod(h, nkv // tp)
        base = c * rpc + nh // tp * dq
        k.append(w[base + i * dq : base + (i + 1) * dq])
        vb = base + nkv // tp * dq
        v.append(w[vb + i * dv : vb + (i + 1) * dv])
    return np.concatenate(q), np.concatenate(k), np.concatenate(v)


def expected_names(g: mf.Geometry, fused: bool = False, mtp: int = 0) -> set[str]:
    names = {"token_embd.weight", "output_norm.weight", "output.weight"}
    for k in range(mtp):  # spec/mtp.md §5: blk.{L+k}, SWA attention with sinks, dense MLP
        b = f"blk.{g.layers + k}"
        names |= {f"{b}.nextn.{n}.weight" for n in ("enorm", "hnorm", "eh_proj")}
        names |= {f"{b}.{n}.weight" for n in ("attn_norm", "attn_output", "attn_sinks", "ffn_norm", "ffn_gate",
                                                "ffn_up", "ffn_down", "layer_output_norm")}
        names |= {f"{b}.attn_qkv.weight"} if fused else {f"{b}.attn_{p}.weight" for p in "qkv"}
    for il in range(g.layers):
        b = f"blk.{il}"
        names |= {f"{b}.attn_norm.weight", f"{b}.attn_output.weight", f"{b}.ffn_norm.weight"}
        names |= {f"{b}.attn_qkv.weight"} if fused else {f"{b}.attn_{p}.weight" for p in "qkv"}
        if g.pattern[il]:
            names.add(f"{b}.attn_sinks.weight")
        if g.moe[il]:
            names |= {f"{b}.ffn_gate_inp.weight", f"{b}.exp_probs_b.bias"}
            names |= {f"{b}.ffn_{p}_exps.weight" for p in ("gate", "up", "down")}
        else:
            names |= {f"{b}.ffn_{p}.weight" for p in ("gate", "up", "down")}
    return names


def stacked(get, il: int, proj: str, n_expert: int) -> np.ndarray:
    """[E, N, K] reference of one stacked expert tensor; ``get(prefix)`` reads one expert."""
    return np.stack([get(f"model.layers.{il}.mlp.experts.{e}.{proj}_proj") for e in range(n_expert)])


def fp8_expert(src):
    return lambda n: fp8_dequant_loop(src[n + ".weight"], src[n + ".weight_scale_inv"])


# ---------------------------------------------------------------------------------------------
# checkpoints and conversions (built once per session)


@pytest.fixture(scope="session")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mimo2")


@pytest.fixture(scope="session")
def bf16_ckpt(root) -> Path:
    return mf.write_bf16_checkpoint(root / "bf16")


@pytest.fixture(scope="session")
def bf16_gguf(bf16_ckpt, root):
    rep = convert_mimo2(bf16_ckpt, root / "bf16.gguf")
    return rep, G(rep.out_path)


@pytest.fixture(scope="session")
def fp8_ckpt(root):
    folder = root / "fp8"
    return folder, mf.write_fp8_checkpoint(folder)


@pytest.fixture(scope="session")
def fp8_f32_gguf(fp8_ckpt, root):
    rep = convert_mimo2(fp8_ckpt[0], root / "fp8_f32.gguf", dtype="f32")
    return rep, G(rep.out_path)


@pytest.fixture(scope="session")
def mxfp4_ckpt(root):
    folder = root / "mxfp4"
    return folder, mf.write_mxfp4_checkpoint(folder)


# ---------------------------------------------------------------------------------------------
# FP8 math


def test_e4m3_table_matches_torch():
    codes = torch.arange(256, dtype=torch.uint8)
    ref = fp8_decode_torch(codes)
    ours = fmt.fp8_e4m3_to_f32(np.arange(256, dtype=np.uint8))
    assert np.array_equal(np.isnan(ours), np.isnan(ref))
    assert np.flatnonzero(np.isnan(ours)).tolist() == [0x7F, 0xFF]
    ok = ~np.isnan(ref)
    assert np.array_equal(ours[ok], ref[ok])
    assert ours[0x7E] == 448.0 and ours[0x01] == 2.0**-9  # max normal, smallest subnormal


def test_fp8_block_dequant_partial_edge_tiles():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, size=(300, 200)).astype(np.uint8)
    codes[(codes & 0x7F) == 0x7F] = 0x10  # no NaN codes
    scale = rng.uniform(0.5, 2.0, size=(3, 2)).astype(np.float32)
    got = fmt.fp8_block_dequant(codes, scale)
    ref = fp8_dequant_loop(torch.from_numpy(codes), torch.from_numpy(scale))
    assert np.array_equal(got, ref)


def test_fp8_per_chunk_tiling_differs_from_global_grid():
    rng = np.random.default_rng(1)
    rpc, chunks = 200, 3  # 200 rows = 1.5 tiles: chunk c owns scale rows 2c, 2c+1
    codes = rng.integers(0, 0x7E, size=(rpc * chunks, 160)).astype(np.uint8)
    scale = rng.uniform(0.5, 2.0, size=(chunks * 2, 2)).astype(np.float32)
    got = fmt.fp8_block_dequant(codes, scale, rows_per_chunk=rpc)
    ref = fp8_dequant_loop(torch.from_numpy(codes), torch.from_numpy(scale), rows_per_chunk=rpc)
    assert np.array_equal(got, ref)
    # the same scales read as one continuous grid would corrupt chunks >= 1 (and do not even fit)
    with pytest.raises(ModelLoadError, match="weight_scale_inv has shape"):
        fmt.fp8_block_dequant(codes, scale)


def test_split_fused_qkv_tp_chunked_and_global():
    nh, nkv, tp = 8, 4, 2
    rows = nh * 192 + nkv * 320
    w = np.arange(rows, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    q, k, v = fmt.split_fused_qkv(w, nh=nh, nkv=nkv, dqk=192, dv=128, tp=tp)
    rq, rk, rv = regroup_reference(w, nh, nkv, tp)
    assert np.array_equal(q, rq) and np.array_equal(k, rk) and np.array_equal(v, rv)
    gq, gk, gv = fmt.split_fused_qkv(w, nh=nh, nkv=nkv, dqk=192, dv=128, tp=tp, layout="global_q_k_v")
    assert np.array_equal(np.concatenate([gq, gk, gv]), w) and gq.shape[0] == nh * 192
    with pytest.raises(ModelLoadError):
        fmt.split_fused_qkv(w, nh=nh, nkv=nkv, dqk=192, dv=128, tp=3)


# ---------------------------------------------------------------------------------------------
# AWQ math


def _awq_case(rng, n, k, g, sym):
    q = rng.integers(-8, 8, size=(n, k)).astype(np.int8)
    s = mf.bf16_round(rng.uniform(1e-3, 5e-2, size=(n, k // g)))
    z = np.zeros((n, k // g), np.int8) if sym else rng.integers(-8, 8, size=(n, k // g)).astype(np.int8)
    ref = ((q.astype(np.float64) - np.repeat(z, g, 1)) * np.repeat(s, g, 1)).astype(np.float32)
    return q, s, z, ref


def test_awq_unpack_matches_independent_packer():
    rng = np.random.default_rng(2)
    n, k, g = 13, 64, 32  # 13 rows: zero points pad the last packed word
    q, s, z, ref = _awq_case(rng, n, k, g, sym=False)
    packed = mf.pack_int4_rows((q + 8).astype(np.uint8))
    zp = mf.pack_int4_cols((z + 8).astype(np.uint8))
    uq, us, uz = fmt.awq_unpack(packed, s, zp, g, (n, k))
    assert np.array_equal(uq, q) and np.array_equal(uz, z) and np.array_equal(us, s)
    assert np.array_equal(fmt.awq_dequant(uq, us, uz, g), ref)


@pytest.mark.parametrize(
    "target,sym,g",
    [("q4_0", True, 32), ("q4_0", True, 128), ("q5_0", False, 32), ("q5_0", False, 128), ("q5_0", True, 64),
     ("q8_0", False, 128), ("q8_0", True, 32)],
)
def test_awq_repack_is_lossless(target, sym, g):
    rng = np.random.default_rng(3)
    q, s, z, ref = _awq_case(rng, 24, 256, g, sym)
    if target == "q4_0":
        b = fmt.awq_to_q4_0(q, s, g)
    elif target == "q5_0":
        b = fmt.awq_to_q5_0(q, s, z, g)
    else:
        b = fmt.awq_to_q8_0(q, s, z, g)
    assert b.dtype == np.uint8 and b.shape == (24, fmt.ggml_row_bytes(target, 256))
    got = gguf.quants.dequantize(b, fmt.GGML_TYPES[target])
    assert got.shape == ref.shape and np.array_equal(got, ref)


def test_awq_q4_1_is_near_lossless():
    rng = np.random.default_rng(4)
    q, s, z, ref = _awq_case(rng, 24, 256, 128, sym=False)
    got = gguf.quants.dequantize(fmt.awq_to_q4_1(q, s, z, 128), QT.Q4_1)
    err_in_steps = np.abs(got - ref) / np.repeat(s, 128, 1)
    assert err_in_steps.max() < 0.01  # spec §6.2: only m is rounded, <~0.8 % of a step


def test_awq_fallback_ladder():
    rng = np.random.default_rng(5)
    n, k, g = 8, 64, 16  # G = 16: every 32-block straddles two groups
    q = rng.integers(-8, 8, size=(n, k)).astype(np.int8)
    z = rng.integers(-8, 8, size=(n, k // g)).astype(np.int8)
    base = mf.bf16_round(rng.uniform(1e-3, 5e-2, size=(n, k // 32)))
    paired = np.stack([base, 4 * base], axis=2).reshape(n, k // g)  # second group = 4x the first
    b = fmt.awq_to_q8_0(q, paired, z, g)
    assert b is not None
    assert np.array_equal(gguf.quants.dequantize(b, QT.Q8_0), fmt.awq_dequant(q, paired, z, g))
    assert fmt.awq_lossless_type([(q, paired, z)], g, "q5_0") == "q8_0"
    # 3x the first: |q - z| * 3 can exceed 127 only if ... it cannot (15 * 3 = 45) -> still Q8_0
    assert fmt.awq_to_q8_0(q, np.stack([base, 3 * base], 2).reshape(n, -1), z, g) is not None
    # unrelated scales: no common Q8_0 step -> f16 or f32, whichever is exact
    rand = mf.bf16_round(rng.uniform(1e-3, 5e-2, size=(n, k // g)))
    assert fmt.awq_to_q8_0(q, rand, z, g) is None
    assert fmt.awq_lossless_type([(q, rand, z)], g, "q5_0") in ("f16", "f32")
    # G = 32 but scales below fp16's normal range lose bits in d: not q4_0
    tiny = mf.bf16_round(rng.uniform(1e-9, 3e-9, size=(n, k // 32))) * np.float32(1.0078125)
    assert not fmt.scales_fit_f16(tiny).all()
    t = fmt.awq_lossless_type([(q, tiny, np.zeros_like(tiny, np.int8))], 32, "q4_0")
    assert t == "f32"  # (q - z) * tiny is not an fp16 value either


# ---------------------------------------------------------------------------------------------
# MXFP4 math


def test_mxfp4_repack_bit_exact():
    rng = np.random.default_rng(6)
    n, k = 5, 96
    codes = rng.integers(0, 16, size=(n, k)).astype(np.uint8)
    # E8M0 range up to 252: 6 * 2^(253-127) would overflow float32 itself (255 is NaN)
    e = rng.integers(0, 253, size=(n, k // 32)).astype(np.uint8)
    e[0, 0], e[0, 1] = 0, 252
    packed = mf.pack_mxfp4(codes)
    b = fmt.mxfp4_to_ggml(packed, e)
    assert b.shape == (n, k // 32 * 17)
    blk = b.reshape(n, k // 32, 17)
    assert np.array_equal(blk[:, :, 0], e)
    c = codes.reshape(n, k // 32, 32)
    assert np.array_equal(blk[:, :, 1:], c[:, :, :16] | (c[:, :, 16:] << 4))
    mag = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6])
    ref = np.where(codes >= 8, -1, 1) * mag[codes & 7] * np.repeat(2.0 ** (e.astype(np.float64) - 127), 32, 1)
    assert np.array_equal(fmt.mxfp4_dequant(packed, e), ref.astype(np.float32))
    assert np.array_equal(gguf.quants.dequantize(b, QT.MXFP4), ref.astype(np.float32))


def test_bf16_rounding_matches_torch():
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal(10000).astype(np.float32) * 10.0 ** rng.integers(-30, 30, 10000),
                        np.array([0.0, -0.0, np.inf, -np.inf, 3.4e38, 1e-40], np.float32)]).astype(np.float32)
    ref = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(fmt.f32_to_bf16_bits(x), ref)
    assert np.isnan(mf.bf16_round(np.array([np.nan], np.float32)))[0]
    assert (fmt.f32_to_bf16_bits(np.array([np.nan], np.float32))[0] & 0x7FC0) == 0x7FC0


# ---------------------------------------------------------------------------------------------
# BF16 checkpoint (a)


def test_bf16_metadata(bf16_gguf):
    rep, g = bf16_gguf
    kv = g.kv
    assert kv["general.architecture"] == "mimo2"
    assert kv["general.file_type"] == int(gguf.LlamaFileType.MOSTLY_BF16)
    expect = {
        "mimo2.block_count": 6, "mimo2.context_length": 512, "mimo2.embedding_length": 64,
        "mimo2.feed_forward_length": 64, "mimo2.vocab_size": 300, "mimo2.attention.head_count": 4,
        "mimo2.attention.head_count_kv": [1, 2, 2, 2, 2, 1], "mimo2.attention.key_length": 192,
        "mimo2.attention.value_length": 128, "mimo2.rope.dimension_count": 64,
        "mimo2.rope.freq_base": 5e6, "mimo2.rope.freq_base_swa": 1e4, "mimo2.attention.sliding_window": 128,
        "mimo2.attention.sliding_window_pattern": [0, 1, 1, 1, 1, 0], "mimo2.expert_count": 8,
        "mimo2.expert_used_count": 2, "mimo2.expert_feed_forward_length": 32, "mimo2.expert_gating_func": 2,
        "mimo2.expert_weights_norm": True, "mimo2.expert_weights_scale": 1.0,
        "mimo2.leading_dense_block_count": 1, "mimo2.attention.sliding_window_keys": 129,
        "mimo2.attention.swa_sinks": True, "mimo2.attention.full_sinks": False,
    }
    for key, val in expect.items():
        assert kv[key] == val, key
    assert kv["mimo2.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-5)
    assert kv["mimo2.attention.value_scale"] == pytest.approx(0.707)
    # tokenizer fields from tokenizer.json
    assert kv["tokenizer.ggml.model"] == "gpt2"
    toks = kv["tokenizer.ggml.tokens"]
    assert len(toks) == 300 and toks[282] == "<|im_end|>" and toks[299] == "[PAD299]"
    assert kv["tokenizer.ggml.eos_token_id"] == 282 and kv["tokenizer.ggml.padding_token_id"] == 280
    types = kv["tokenizer.ggml.token_type"]
    assert types[0] == 1 and types[280] == 3 and types[299] == 5
    assert kv["tokenizer.ggml.merges"][0] == "h e"
    assert rep.tokenizer_written and rep.skipped == {} and rep.ignored == [] and rep.warnings == []


def test_bf16_tensors_exact(bf16_ckpt, bf16_gguf):
    _, g = bf16_gguf
    geo = mf.Geometry()
    src = {k: f32(v) for k, v in load_source(bf16_ckpt).items()}
    assert set(g.t) == expected_names(geo)

    def same(name, hf, ggml_type):
        assert g.type(name) == ggml_type, name
        got = g.deq(name)
        assert np.array_equal(got, src[hf]), name
        assert g.ne(name) == list(src[hf].shape[::-1]), name

    same("token_embd.weight", "model.embed_tokens.weight", QT.BF16)
    same("output.weight", "lm_head.weight", QT.BF16)
    same("output_norm.weight", "model.norm.weight", QT.F32)
    for il in range(geo.layers):
        lp, b = f"model.layers.{il}", f"blk.{il}"
        same(f"{b}.attn_norm.weight", f"{lp}.input_layernorm.weight", QT.F32)
        same(f"{b}.ffn_norm.weight", f"{lp}.post_attention_layernorm.weight", QT.F32)
        for p in "qkv":
            same(f"{b}.attn_{p}.weight", f"{lp}.self_attn.{p}_proj.weight", QT.BF16)
        same(f"{b}.attn_output.weight", f"{lp}.self_attn.o_proj.weight", QT.BF16)
        if geo.pattern[il]:
            same(f"{b}.attn_sinks.weight", f"{lp}.self_attn.attention_sink_bias", QT.F32)
        if not geo.moe[il]:
            for p in ("gate", "up", "down"):
                same(f"{b}.ffn_{p}.weight", f"{lp}.mlp.{p}_proj.weight", QT.BF16)
            continue
        same(f"{b}.ffn_gate_inp.weight", f"{lp}.mlp.gate.weight", QT.F32)
        same(f"{b}.exp_probs_b.bias", f"{lp}.mlp.gate.e_score_correction_bias", QT.F32)
        for p in ("gate", "up", "down"):
            name = f"{b}.ffn_{p}_exps.weight"
            ref = stacked(lambda n: src[n + ".weight"], il, p, geo.experts)
            assert g.type(name) == QT.BF16
            assert g.ne(name) == [ref.shape[2], ref.shape[1], geo.experts]  # ne {K, N, E}
            assert np.array_equal(g.deq(name), ref)


def test_bf16_fixture_is_a_transformers_reference(bf16_ckpt):
    from transformers import MiMoV2FlashForCausalLM

    model, info = MiMoV2FlashForCausalLM.from_pretrained(str(bf16_ckpt), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.config.sliding_window == 129 and model.config.layer_types[5] == "full_attention"
    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3, 4, 5]])).logits
    assert logits.shape == (1, 5, 300) and torch.isfinite(logits).all()


def test_transformers_spelled_config_gives_same_gguf(bf16_ckpt, bf16_gguf, root):
    folder = root / "bf16_tf_config"
    folder.mkdir()
    for f in bf16_ckpt.glob("*.safetensors"):
        (folder / f.name).symlink_to(f)
    shutil.copy(bf16_ckpt / "config.transformers.json", folder / "config.json")
    rep = convert_mimo2(folder, root / "bf16_tf.gguf")
    g2, g1 = G(rep.out_path), bf16_gguf[1]
    for key, val in g1.kv.items():
        if key.startswith("mimo2."):
            assert g2.kv[key] == pytest.approx(val) if isinstance(val, float) else g2.kv[key] == val, key
    assert set(g2.t) == set(g1.t)
    assert np.array_equal(g2.deq("blk.3.attn_k.weight"), g1.deq("blk.3.attn_k.weight"))


def test_bf16_output_modes(bf16_ckpt, bf16_gguf, root):
    src = {k: f32(v) for k, v in load_source(bf16_ckpt).items()}
    rep = convert_mimo2(bf16_ckpt, root / "bf16_as_f32.gguf", dtype="f32", swa_window_keys=128, fuse_qkv=True)
    g = G(rep.out_path)
    assert g.kv["mimo2.attention.sliding_window_keys"] == 128
    assert g.kv["general.file_type"] == int(gguf.LlamaFileType.ALL_F32)
    assert set(g.t) == expected_names(mf.Geometry(), fused=True)
    lp = "model.layers.2.self_attn"
    ref = np.concatenate([src[f"{lp}.{p}_proj.weight"] for p in "qkv"])
    assert g.type("blk.2.attn_qkv.weight") == QT.F32 and np.array_equal(g.deq("blk.2.attn_qkv.weight"), ref)
    assert np.array_equal(g.deq("blk.1.ffn_up_exps.weight")[3], src["model.layers.1.mlp.experts.3.up_proj.weight"])
    # F16: bf16 values with small exponents are F16 values; measured max relative error is reported
    rep16 = convert_mimo2(bf16_ckpt, root / "bf16_as_f16.gguf", dtype="f16")
    g16 = G(rep16.out_path)
    w = src["model.embed_tokens.weight"]
    rel = np.abs(g16.deq("token_embd.weight") - w).max() / np.abs(w).max()
    assert g16.type("token_embd.weight") == QT.F16 and rel <= 2.0**-11


# ---------------------------------------------------------------------------------------------
# FP8 checkpoint (b)


def test_fp8_to_f32_is_exact_and_regrouped(fp8_ckpt, fp8_f32_gguf):
    folder, truth = fp8_ckpt
    _, g = fp8_f32_gguf
    geo = mf.FP8_GEOMETRY
    src = load_source(folder)
    tp = geo.kv_full
    assert set(g.t) == expected_names(geo, mtp=3)
    for il in range(geo.layers):
        lp, b, nkv = f"model.layers.{il}", f"blk.{il}", geo.kv(il)
        codes = src[f"{lp}.self_attn.qkv_proj.weight"]
        scale = src[f"{lp}.self_attn.qkv_proj.weight_scale_inv"]
        rpc = codes.shape[0] // tp
        w = fp8_dequant_loop(codes, scale, rows_per_chunk=rpc)
        refs = regroup_reference(w, geo.heads, nkv, tp)
        for part, ref, orig in zip("qkv", refs, (truth[f"{lp}.{x}"] for x in "qkv")):
            got = g.deq(f"{b}.attn_{part}.weight")
            assert g.type(f"{b}.attn_{part}.weight") == QT.F32
            assert np.array_equal(got, ref), (il, part)
            # and it is the projection the fixture started from, up to E4M3 rounding (2^-4 relative)
            assert np.abs(got - orig).max() <= 2.0**-4 * np.abs(orig).max(), (il, part)
        if geo.moe[il]:
            for p in ("gate", "up", "down"):
                ref = stacked(fp8_expert(src), il, p, geo.experts)
                assert np.array_equal(g.deq(f"{b}.ffn_{p}_exps.weight"), ref)
        else:
            for p in ("gate", "up", "down"):
                n = f"{lp}.mlp.{p}_proj"
                assert np.array_equal(g.deq(f"{b}.ffn_{p}.weight"), fp8_expert(src)(n))
        # bf16 o_proj stays exact in F32 mode
        assert np.array_equal(g.deq(f"{b}.attn_output.weight"), f32(src[f"{lp}.self_attn.o_proj.weight"]))
    assert g.kv["mimo2.attention.head_count_kv"] == [2, 4, 4, 4, 4, 2] + [4] * 3  # MTP blocks: SWA heads
    assert g.kv["mimo2.rope.freq_base"] == 1e7


def test_fp8_default_is_bf16_with_measured_error(fp8_ckpt, fp8_f32_gguf, root, caplog):
    folder, _ = fp8_ckpt
    with caplog.at_level(logging.INFO, logger="mimo_ggml"):
        rep = convert_mimo2(folder, root / "fp8_default.gguf")
    g, ref = G(rep.out_path), fp8_f32_gguf[1]
    assert rep.dtype == "bf16"
    worst = 0.0
    for name in ("blk.0.attn_q.weight", "blk.1.attn_k.weight", "blk.0.ffn_down.weight", "blk.2.ffn_gate_exps.weight"):
        assert g.type(name) == QT.BF16
        exact = ref.deq(name)
        rel = np.abs(g.deq(name) - exact) / np.maximum(np.abs(exact), np.finfo(np.float32).tiny)
        worst = max(worst, float(rel.max()))
    print(f"FP8 -> BF16 max relative error vs exact F32 dequant: {worst:.3e} (bf16 unit roundoff 2^-8 = {2**-8:.3e})")
    assert 0 < worst <= 2.0**-8
    # the omni towers are skipped and reported (MTP is exported); no tokenizer.json is logged
    assert rep.skipped == {"visual.": 1, "audio_encoder.": 1, "speech_embeddings.": 1} and rep.mtp_layers == 3
    assert rep.ignored == [] and not rep.tokenizer_written
    assert any("no tokenizer.json" in r.getMessage() for r in caplog.records)
    assert "tokenizer.ggml.model" not in g.kv


def test_fp8_global_layout_flag_is_checked_against_scales(fp8_ckpt, root):
    # 704-row chunks = 5.5 tiles: the per-chunk grid has 12 scale rows, a global grid would have 11
    with pytest.raises(ModelLoadError, match=r"qkv_proj\.weight_scale_inv has shape \[12, 2\], expected \[11, 2\]"):
        convert_mimo2(fp8_ckpt[0], root / "never.gguf", qkv_layout="global_q_k_v")
    assert not (root / "never.gguf").exists() and not (root / "never.gguf.part").exists()


def test_fp8_fused_output(fp8_ckpt, fp8_f32_gguf, root):
    rep = convert_mimo2(fp8_ckpt[0], root / "fp8_fused.gguf", dtype="f32", fuse_qkv=True)
    g, ref = G(rep.out_path), fp8_f32_gguf[1]
    for il in (0, 1):
        qkv = np.concatenate([ref.deq(f"blk.{il}.attn_{p}.weight") for p in "qkv"])
        assert np.array_equal(g.deq(f"blk.{il}.attn_qkv.weight"), qkv)


@pytest.mark.parametrize("fused", [False, True])
def test_fp8_split_and_global_fused_qkv(fused, root):
    """V2-Flash-style split FP8 q/k/v, and a fused qkv already in global [Q;K;V] order: ordinary tiling."""
    folder = root / f"fp8_global_{fused}"
    geo = mf.FP8_GEOMETRY.replace(experts=2)
    mf.write_synthetic_checkpoint(
        folder, geo, model_type="mimo_v2_flash", linear="fp8", experts="bf16", fused_qkv=fused,
        qkv_layout="global_q_k_v", extras=False, seed=11,
    )
    g = G(convert_mimo2(folder, root / f"fp8_global_{fused}.gguf", dtype="f32").out_path)
    src = load_source(folder)
    for il in (0, 1):
        lp, nkv = f"model.layers.{il}.self_attn", geo.kv(il)
        if fused:
            w = fp8_dequant_loop(src[f"{lp}.qkv_proj.weight"], src[f"{lp}.qkv_proj.weight_scale_inv"])
            a, b = geo.heads * 192, geo.heads * 192 + nkv * 192
            refs = (w[:a], w[a:b], w[b:])
        else:
            refs = [fp8_expert(src)(f"{lp}.{p}_proj") for p in "qkv"]
        for p, ref in zip("qkv", refs):
            assert np.array_equal(g.deq(f"blk.{il}.attn_{p}.weight"), ref), (il, p)


def test_fp8_wrong_tp_is_caught(fp8_ckpt, root):
    with pytest.raises(ModelLoadError, match="weight_scale_inv has shape"):
        convert_mimo2(fp8_ckpt[0], root / "tp1.gguf", qkv_tp=1)
    with pytest.raises(ModelLoadError, match="do not split over 3"):
        convert_mimo2(fp8_ckpt[0], root / "tp3.gguf", qkv_tp=3)


# ---------------------------------------------------------------------------------------------
# bf16 fused qkv: TP-chunked and the global_q_k_v escape (§6.4)


@pytest.mark.parametrize("layout", ["tp_chunked", "global_q_k_v"])
def test_bf16_fused_qkv_layouts(layout, root):
    folder = root / f"fused_bf16_{layout}"
    geo = mf.FP8_GEOMETRY.replace(hidden=64)
    truth = mf.write_synthetic_checkpoint(
        folder, geo, linear="bf16", experts="bf16", fused_qkv=True, qkv_layout=layout, extras=False, seed=9
    )
    rep = convert_mimo2(folder, root / f"fused_bf16_{layout}.gguf")
    g = G(rep.out_path)
    for il in range(geo.layers):
        for p in "qkv":
            assert np.array_equal(g.deq(f"blk.{il}.attn_{p}.weight"), mf.bf16_round(truth[f"model.layers.{il}.{p}"]))
    # reading the file with the other layout scrambles the heads: the flag matters
    other = "tp_chunked" if layout == "global_q_k_v" else "global_q_k_v"
    g2 = G(convert_mimo2(folder, root / f"fused_bf16_{layout}_x.gguf", qkv_layout=other).out_path)
    assert not np.array_equal(g2.deq("blk.0.attn_q.weight"), g.deq("blk.0.attn_q.weight"))


# ---------------------------------------------------------------------------------------------
# AWQ checkpoints (c)


AWQ_CASES = {
    "sym": (True, 32, mf.Geometry(), QT.Q4_0),
    "asym": (False, 128, mf.Geometry(hidden=128, moe_ffn=128), QT.Q5_0),
}


@pytest.fixture(scope="session")
def awq_converted(root):
    out = {}
    for case, (sym, group, geo, _) in AWQ_CASES.items():
        folder = root / f"awq_{case}"
        truth = mf.write_awq_checkpoint(folder, geo, symmetric=sym, group_size=group)
        out[case] = (folder, truth, convert_mimo2(folder, root / f"awq_{case}.gguf"))
    return out


@pytest.mark.parametrize("case", list(AWQ_CASES))
def test_awq_experts_lossless(case, awq_converted, root):
    sym, group, geo, want = AWQ_CASES[case]
    folder, truth, rep = awq_converted[case]
    g = G(rep.out_path)
    src = {k: f32(v) for k, v in load_source(folder).items() if v.is_floating_point()}
    assert g.kv["general.file_type"] == int(gguf.LlamaFileType.MOSTLY_Q4_0 if sym else gguf.LlamaFileType.MOSTLY_Q5_0)
    for il in range(1, geo.layers):
        for p in ("gate", "up", "down"):
            name = f"blk.{il}.ffn_{p}_exps.weight"
            ref = stacked(truth.__getitem__, il, p, geo.experts)
            assert g.type(name) == want and g.ne(name) == [ref.shape[2], ref.shape[1], geo.experts]
            assert np.array_equal(g.deq(name), ref), name
    # everything else is the checkpoint's bf16, unchanged
    assert np.array_equal(g.deq("blk.2.attn_q.weight"), src["model.layers.2.self_attn.q_proj.weight"])
    assert rep.warnings == []
    # other lossless targets
    g8 = G(convert_mimo2(folder, root / f"awq_{case}_q8.gguf", expert_type="q8_0").out_path)
    assert g8.type("blk.1.ffn_up_exps.weight") == QT.Q8_0
    assert np.array_equal(g8.deq("blk.1.ffn_up_exps.weight"), stacked(truth.__getitem__, 1, "up", geo.experts))
    g32 = G(convert_mimo2(folder, root / f"awq_{case}_f32.gguf", expert_type="f32").out_path)
    assert np.array_equal(g32.deq("blk.4.ffn_down_exps.weight"), stacked(truth.__getitem__, 4, "down", geo.experts))
    if not sym:
        with pytest.raises(InvalidArgumentError, match="q4_0 holds symmetric"):
            convert_mimo2(folder, root / "x.gguf", expert_type="q4_0")
        g41 = G(convert_mimo2(folder, root / "awq_q41.gguf", expert_type="q4_1").out_path)
        ref = stacked(truth.__getitem__, 1, "gate", geo.experts)
        assert g41.type("blk.1.ffn_gate_exps.weight") == QT.Q4_1
        assert np.abs(g41.deq("blk.1.ffn_gate_exps.weight") - ref).max() < 0.01 * 5e-2


def test_awq_fallbacks_warn_and_stay_exact(root):
    geo = mf.Geometry(experts=2)
    # G = 16 with each 32-block's two scales in ratio 1:2 -> exact as Q8_0
    def paired(name, shape):
        rng = np.random.default_rng(zlib.crc32(name.encode()))  # deterministic per tensor
        base = mf.bf16_round(rng.uniform(1e-3, 5e-2, (shape[0], shape[1] // 2)))
        return np.stack([base, 2 * base], 2).reshape(shape)

    folder = root / "awq_g16"
    truth = mf.write_awq_checkpoint(folder, geo, symmetric=False, group_size=16, awq_scales=paired)
    rep = convert_mimo2(folder, root / "awq_g16.gguf")
    g = G(rep.out_path)
    assert g.type("blk.1.ffn_gate_exps.weight") == QT.Q8_0
    assert np.array_equal(g.deq("blk.1.ffn_gate_exps.weight"), stacked(truth.__getitem__, 1, "gate", 2))
    assert any("would not be lossless" in w and "wrote q8_0" in w for w in rep.warnings)

    # G = 32 but scales fp16 cannot hold -> falls to an exact float type
    def tiny(name, shape):
        # bf16 values with a full 8-bit significand below fp16's normal range: fp16 would drop bits
        return mf.bf16_round(np.random.default_rng(1).uniform(1e-9, 3e-9, shape) * 1.0078125)

    folder = root / "awq_tiny"
    truth = mf.write_awq_checkpoint(folder, geo, symmetric=True, group_size=32, awq_scales=tiny)
    rep = convert_mimo2(folder, root / "awq_tiny.gguf")
    g = G(rep.out_path)
    t = g.type("blk.2.ffn_down_exps.weight")
    assert t in (QT.F16, QT.F32)
    assert np.array_equal(g.deq("blk.2.ffn_down_exps.weight"), stacked(truth.__getitem__, 2, "down", 2))
    assert rep.warnings


# ---------------------------------------------------------------------------------------------
# MXFP4 checkpoint (d)


@pytest.fixture(scope="session")
def mxfp4_gguf(mxfp4_ckpt, root):
    return convert_mimo2(mxfp4_ckpt[0], root / "mxfp4.gguf")


def test_mxfp4_experts_bit_exact(mxfp4_ckpt, mxfp4_gguf, root):
    folder, truth = mxfp4_ckpt
    geo = mf.PRO_GEOMETRY
    g = G(mxfp4_gguf.out_path)
    src = load_source(folder)
    assert g.kv["general.file_type"] == int(gguf.LlamaFileType.MOSTLY_MXFP4_MOE)
    assert g.kv["mimo2.attention.head_count_kv"] == [2] * (6 + 3)
    for il in range(1, geo.layers):
        for p in ("gate", "up", "down"):
            name = f"blk.{il}.ffn_{p}_exps.weight"
            ref = stacked(truth.__getitem__, il, p, geo.experts)
            assert g.type(name) == QT.MXFP4 and g.ne(name) == [ref.shape[2], ref.shape[1], geo.experts]
            assert np.array_equal(g.deq(name), ref), name
            # the scale byte of every block is copied verbatim
            e0 = src[f"model.layers.{il}.mlp.experts.0.{p}_proj.weight_scale"].numpy()
            assert np.array_equal(g.t[name].data[0].reshape(ref.shape[1], -1, 17)[:, :, 0], e0)
        router = f32(src[f"model.layers.{il}.mlp.gate.weight"])  # bf16 in this release, F32 in the GGUF
        assert g.type(f"blk.{il}.ffn_gate_inp.weight") == QT.F32
        assert np.array_equal(g.deq(f"blk.{il}.ffn_gate_inp.weight"), router)
    # FP8 fused qkv of the Pro geometry (nkv 2 in every layer, 704-row chunks)
    codes = src["model.layers.3.self_attn.qkv_proj.weight"]
    scale = src["model.layers.3.self_attn.qkv_proj.weight_scale_inv"]
    q, _, _ = regroup_reference(fp8_dequant_loop(codes, scale, rows_per_chunk=codes.shape[0] // 2), 4, 2, 2)
    assert np.abs(g.deq("blk.3.attn_q.weight") - q).max() <= 2.0**-8 * np.abs(q).max()
    gf = G(convert_mimo2(folder, root / "mxfp4_f32.gguf", expert_type="f32").out_path)
    assert np.array_equal(gf.deq("blk.5.ffn_up_exps.weight"), stacked(truth.__getitem__, 5, "up", geo.experts))


# ---------------------------------------------------------------------------------------------
# MTP layers (spec/mtp.md §1.1, §5, §7.5)

# V2.5-like: 4 checkpoint TP ranks (num_key_value_heads), 8 SWA KV heads -> 2 per chunk, 1024-row chunks
# (whole 128-row tiles, as V2.5's 3712); Pro-like: 2 ranks, 2 SWA KV heads -> 1 per chunk, 704-row chunks
# (5.5 tiles: per-chunk tiling matters, as Pro's 3392)
MTP_CASES = {
    "v25": mf.Geometry(hidden=64, heads=8, kv_full=4, kv_swa=8, experts=2),
    "pro": mf.PRO_GEOMETRY.replace(experts=2),
}


@pytest.fixture(scope="session")
def mtp_converted(root):
    out = {}
    for case, geo in MTP_CASES.items():
        folder = root / f"mtp_{case}"
        truth = mf.write_synthetic_checkpoint(folder, geo, linear="fp8", experts="bf16", extras=False,
                                              mtp_layers=3, seed=21)
        out[case] = (folder, truth, convert_mimo2(folder, root / f"mtp_{case}.gguf", dtype="f32"))
    return out


@pytest.mark.parametrize("case", list(MTP_CASES))
def test_mtp_qkv_is_dechunked_with_swa_geometry(case, mtp_converted, root):
    geo = MTP_CASES[case]
    folder, truth, rep = mtp_converted[case]
    g, src = G(rep.out_path), load_source(folder)
    tp = geo.kv_full  # ckpt_tp = num_key_value_heads, although the MTP layer has kv_swa heads
    assert geo.kv_swa // tp == {"v25": 2, "pro": 1}[case]
    fused = G(convert_mimo2(folder, root / f"mtp_{case}_fused.gguf", dtype="f32", fuse_qkv=True).out_path)
    for k in range(3):
        mp, b = f"model.mtp.layers.{k}", f"blk.{geo.layers + k}"
        codes = src[f"{mp}.self_attn.qkv_proj.weight"]
        scale = src[f"{mp}.self_attn.qkv_proj.weight_scale_inv"]
        rpc = codes.shape[0] // tp
        assert rpc == (geo.heads // tp) * 192 + (geo.kv_swa // tp) * 320
        refs = regroup_reference(fp8_dequant_loop(codes, scale, rows_per_chunk=rpc), geo.heads, geo.kv_swa, tp)
        for part, ref in zip("qkv", refs):
            assert np.array_equal(g.deq(f"{b}.attn_{part}.weight"), ref), (k, part)
            orig = truth[f"{mp}.{part}"]  # and it is the projection the fixture started from (E4M3 rounding)
            assert np.abs(ref - orig).max() <= 2.0**-4 * np.abs(orig).max(), (k, part)
        assert np.array_equal(fused.deq(f"{b}.attn_qkv.weight"), np.concatenate(refs)), k
        assert fused.ne(f"{b}.attn_qkv.weight") == [geo.hidden, geo.heads * 192 + geo.kv_swa * 320]


def test_mtp_blocks_metadata_and_names(mtp_converted):
    geo = MTP_CASES["v25"]
    folder, _, rep = mtp_converted["v25"]
    g, src = G(rep.out_path), load_source(folder)
    L, H = geo.layers, geo.hidden
    kv = g.kv
    assert kv["mimo2.block_count"] == L + 3 and kv["mimo2.nextn_predict_layers"] == 3
    assert kv["mimo2.attention.head_count_kv"] == [geo.kv(il) for il in range(L)] + [geo.kv_swa] * 3
    assert kv["mimo2.attention.sliding_window_pattern"] == list(geo.pattern) + [1, 1, 1]
    assert kv["mimo2.attention.head_count"] == geo.heads  # one count for both kinds (swa heads = heads)
    assert kv["mimo2.nextn.qkv_layout"] == "global"
    assert set(g.t) == expected_names(geo, mtp=3) and rep.mtp_layers == 3
    assert rep.skipped == {} and rep.ignored == [] and rep.warnings == []
    for k in range(3):
        mp, b = f"model.mtp.layers.{k}", f"blk.{L + k}"
        for gguf_name, hf in (("nextn.enorm", "enorm"), ("nextn.hnorm", "hnorm"), ("attn_norm", "input_layernorm"),
                              ("ffn_norm", "pre_mlp_layernorm"), ("layer_output_norm", "final_layernorm")):
            assert g.type(f"{b}.{gguf_name}.weight") == QT.F32
            assert np.array_equal(g.deq(f"{b}.{gguf_name}.weight"), f32(src[f"{mp}.{hf}.weight"])), gguf_name
        assert g.ne(f"{b}.nextn.eh_proj.weight") == [2 * H, H]  # embedding half = first H inputs
        assert np.array_equal(g.deq(f"{b}.nextn.eh_proj.weight"), f32(src[f"{mp}.eh_proj.weight"]))
        assert np.array_equal(g.deq(f"{b}.attn_output.weight"), f32(src[f"{mp}.self_attn.o_proj.weight"]))
        assert g.type(f"{b}.attn_sinks.weight") == QT.F32
        assert np.array_equal(g.deq(f"{b}.attn_sinks.weight"), f32(src[f"{mp}.self_attn.attention_sink_bias"]))
        for p in ("gate", "up", "down"):  # dense FP8, decoded as the trunk's dense layer 0
            assert np.array_equal(g.deq(f"{b}.ffn_{p}.weight"), fp8_expert(src)(f"{mp}.mlp.{p}_proj")), p


def test_mtp_split_qkv_bf16(root):
    """V2-Flash ships split q/k/v for its MTP layers; a bf16 copy converts exactly."""
    folder = root / "mtp_split"
    geo = mf.Geometry(experts=2)
    truth = mf.write_synthetic_checkpoint(folder, geo, model_type="mimo_v2_flash", linear="bf16", experts="bf16",
                                          fused_qkv=False, extras=False, mtp_layers=2, seed=22)
    g = G(convert_mimo2(folder, root / "mtp_split.gguf").out_path)
    assert g.kv["mimo2.block_count"] == geo.layers + 2 and g.kv["mimo2.nextn_predict_layers"] == 2
    assert set(g.t) == expected_names(geo, mtp=2)
    for k in range(2):
        for p in "qkv":
            got = g.deq(f"blk.{geo.layers + k}.attn_{p}.weight")
            assert g.type(f"blk.{geo.layers + k}.attn_{p}.weight") == QT.BF16
            assert np.array_equal(got, mf.bf16_round(truth[f"model.mtp.layers.{k}.{p}"])), (k, p)
    assert g.ne(f"blk.{geo.layers}.attn_k.weight") == [geo.hidden, geo.kv_swa * 192]


def test_no_mtp_skips_them(mtp_converted, root, capsys):
    folder, _, with_mtp = mtp_converted["pro"]
    geo = MTP_CASES["pro"]
    rep = convert_mimo2(folder, root / "no_mtp.gguf", dtype="f32", mtp=False)
    g = G(rep.out_path)
    assert g.kv["mimo2.block_count"] == geo.layers and "mimo2.nextn_predict_layers" not in g.kv
    assert "mimo2.nextn.qkv_layout" not in g.kv and g.kv["mimo2.attention.head_count_kv"] == [2] * geo.layers
    assert set(g.t) == expected_names(geo) and rep.mtp_layers == 0
    assert rep.skipped == {"model.mtp.": 3 * 16}  # 16 tensors per FP8 MTP layer (spec/mtp.md §1.1)
    # the trunk is the same file either way
    g_mtp = G(with_mtp.out_path)
    assert all(np.array_equal(g.deq(n), g_mtp.deq(n)) for n in ("blk.3.attn_q.weight", "output.weight"))

    from mimo_ggml.cli import main

    out = root / "cli-no-mtp.gguf"
    assert main(["convert", "mimo2", str(folder), str(out), "--no-mtp"]) == 0
    assert int(gguf.GGUFReader(out).fields["mimo2.block_count"].contents()) == geo.layers
    out = root / "cli-mtp.gguf"
    assert main(["convert", "mimo2", str(folder), str(out)]) == 0
    assert int(gguf.GGUFReader(out).fields["mimo2.nextn_predict_layers"].contents()) == 3


def test_mtp_missing_tensor_and_numbering_are_named(root):
    folder = root / "mtp_broken"
    geo = mf.PRO_GEOMETRY.replace(experts=2)
    mf.write_synthetic_checkpoint(folder, geo, linear="bf16", experts="bf16", extras=False, mtp_layers=2)
    f = folder / "model_mtp.safetensors"
    t = load_file(str(f))
    del t["model.mtp.layers.1.final_layernorm.weight"]
    save_file(t, str(f), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=r"missing tensor model\.mtp\.layers\.1\.final_layernorm\.weight"):
        convert_mimo2(folder, root / "mtp_broken.gguf")
    t = {n.replace("layers.1.", "layers.2."): v for n, v in t.items()}
    save_file(t, str(f), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=r"MTP layers \[0, 2\] are not numbered 0..1"):
        convert_mimo2(folder, root / "mtp_broken.gguf")
    assert not (root / "mtp_broken.gguf").exists()


# ---------------------------------------------------------------------------------------------
# ggml's own C reader and dequantisers (the library the runtime links) agree with gguf-py


def _ggml_base():
    import ctypes

    libggml = pytest.importorskip("libggml")
    # the PyPI wheel installs into lib64; a wheel built from the sdist on Debian into lib
    root = Path(libggml.__file__).parent
    lib = ctypes.CDLL(str(next(p for p in (root / "lib64" / "libggml-base.so", root / "lib" / "libggml-base.so")
                               if p.exists())))

    class Params(ctypes.Structure):
        _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]

    to_float_t = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64)

    class Traits(ctypes.Structure):  # struct ggml_type_traits (ggml.h)
        _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                    ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t),
                    ("is_quantized", ctypes.c_bool), ("to_float", to_float_t), ("from_float_ref", ctypes.c_void_p)]

    sigs = {
        "gguf_init_from_file": (ctypes.c_void_p, [ctypes.c_char_p, Params]),
        "gguf_free": (None, [ctypes.c_void_p]),
        "gguf_get_n_tensors": (ctypes.c_int64, [ctypes.c_void_p]),
        "gguf_get_tensor_name": (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int64]),
        "gguf_get_tensor_type": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int64]),
        "gguf_get_tensor_ne": (ctypes.POINTER(ctypes.c_int64), [ctypes.c_void_p, ctypes.c_int64]),
        "gguf_get_tensor_offset": (ctypes.c_size_t, [ctypes.c_void_p, ctypes.c_int64]),
        "gguf_get_tensor_size": (ctypes.c_size_t, [ctypes.c_void_p, ctypes.c_int64]),
        "gguf_get_data_offset": (ctypes.c_size_t, [ctypes.c_void_p]),
        "ggml_get_type_traits": (ctypes.POINTER(Traits), [ctypes.c_int]),
    }
    for name, (res, args) in sigs.items():
        getattr(lib, name).restype, getattr(lib, name).argtypes = res, args
    return lib, Params, ctypes


def test_ggml_c_reader_decodes_like_gguf_py(mxfp4_gguf, awq_converted, bf16_gguf):
    lib, Params, ctypes = _ggml_base()
    files = [mxfp4_gguf.out_path, awq_converted["sym"][2].out_path, awq_converted["asym"][2].out_path,
             bf16_gguf[0].out_path]
    seen = set()
    for path in files:
        ctx = lib.gguf_init_from_file(str(path).encode(), Params(True, None))
        assert ctx, f"ggml's gguf reader rejected {path}"
        try:
            g = G(path)
            data0 = lib.gguf_get_data_offset(ctx)
            for i in range(lib.gguf_get_n_tensors(ctx)):
                name = lib.gguf_get_tensor_name(ctx, i).decode()
                ne = lib.gguf_get_tensor_ne(ctx, i)
                n_dims = len(g.ne(name))
                assert [ne[d] for d in range(n_dims)] == g.ne(name), name
                t = lib.gguf_get_tensor_type(ctx, i)
                assert t == int(g.type(name)), name
                size = lib.gguf_get_tensor_size(ctx, i)
                raw = np.fromfile(path, np.uint8, count=size, offset=data0 + lib.gguf_get_tensor_offset(ctx, i))
                n = int(np.prod(g.ne(name)))
                to_float = lib.ggml_get_type_traits(t).contents.to_float
                if t == int(QT.F32):  # F32 has no to_float (nothing to convert)
                    out = raw.view(np.float32)
                else:
                    assert to_float, name
                    out = np.empty(n, np.float32)
                    to_float(raw.ctypes.data, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), n)
                assert np.array_equal(out, g.deq(name).reshape(-1)), name
                seen.add(QT(t).name)
        finally:
            lib.gguf_free(ctx)
    assert {"MXFP4", "Q4_0", "Q5_0", "BF16", "F32"} <= seen


# ---------------------------------------------------------------------------------------------
# errors


@pytest.fixture()
def small_ckpt(root, request):
    folder = root / f"err_{request.node.name}"
    geo = mf.PRO_GEOMETRY.replace(experts=2)
    mf.write_synthetic_checkpoint(folder, geo, linear="bf16", experts="bf16", extras=False)
    return folder


def _edit_config(folder: Path, **changes) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


def _edit_tensors(folder: Path, drop: tuple[str, ...] = (), replace: dict | None = None) -> None:
    f = folder / "model_pp0_ep0_shard0.safetensors"
    t = load_file(str(f))
    for n in drop:
        del t[n]
    t.update(replace or {})
    save_file(t, str(f), metadata={"format": "pt"})


def test_missing_and_ill_shaped_tensors_are_named(small_ckpt, root):
    _edit_tensors(
        small_ckpt,
        drop=("model.layers.2.mlp.experts.1.up_proj.weight", "model.layers.0.mlp.down_proj.weight"),
        replace={"model.layers.3.self_attn.attention_sink_bias": torch.zeros(5, dtype=torch.bfloat16)},
    )
    out = root / "err.gguf"
    with pytest.raises(ModelLoadError) as ei:
        convert_mimo2(small_ckpt, out)
    msg = str(ei.value)
    assert "missing tensor model.layers.2.mlp.experts.1.up_proj.weight" in msg
    assert "missing tensor model.layers.0.mlp.down_proj.weight" in msg
    assert "model.layers.3.self_attn.attention_sink_bias has shape [5], expected [4]" in msg
    assert not out.exists()


@pytest.mark.parametrize(
    "changes,match",
    [
        (
            {"quantization_config": {"quant_method": "gptq", "bits": 4}},
            "quant_method 'gptq' is not supported; supported: .*compressed-tensors",
        ),
        (
            {"quantization_config": {"quant_method": "compressed-tensors", "format": "float-quantized",
                                     "config_groups": {"g": {"weights": {"num_bits": 8, "type": "float"}}}}},
            "supported: ",
        ),
        ({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}, "not a MiMo-V2 checkpoint"),
        ({"swa_head_dim": 128}, "swa_head_dim"),
        ({"topk_method": "greedy"}, "only noaux_tc"),
        ({"n_shared_experts": 1}, "shared experts"),
    ],
)
def test_unsupported_configs(small_ckpt, root, changes, match):
    _edit_config(small_ckpt, **changes)
    with pytest.raises(UnsupportedModelError, match=match):
        convert_mimo2(small_ckpt, root / "unsupported.gguf")


def test_bad_arguments(small_ckpt, root):
    with pytest.raises(InvalidArgumentError):
        convert_mimo2(small_ckpt, root / "a.gguf", dtype="q8_0")
    with pytest.raises(InvalidArgumentError):
        convert_mimo2(small_ckpt, root / "a.gguf", expert_type="q4_0")  # bf16 experts: no requantising here
    with pytest.raises(InvalidArgumentError):
        convert_mimo2(small_ckpt, root / "a.gguf", qkv_layout="interleaved")
    with pytest.raises(ModelLoadError, match="not found"):
        convert_mimo2(root / "nowhere", root / "a.gguf")
    assert not (root / "a.gguf").exists()


def test_nested_text_config_and_tied_embeddings(small_ckpt, root):
    cfg = json.loads((small_ckpt / "config.json").read_text())
    text = {k: cfg.pop(k) for k in list(cfg) if k not in ("architectures", "model_type", "quantization_config")}
    text["tie_word_embeddings"] = True
    cfg["text_config"] = text
    (small_ckpt / "config.json").write_text(json.dumps(cfg))
    _edit_tensors(small_ckpt, drop=("lm_head.weight",))
    g = G(convert_mimo2(small_ckpt, root / "tied.gguf").out_path)
    assert "output.weight" not in g.t and "token_embd.weight" in g.t  # llama.cpp falls back to token_embd
    assert g.kv["mimo2.attention.head_count_kv"] == [2] * 6


def test_cli_convert_mimo2_options(small_ckpt, root, capsys):
    from mimo_ggml.cli import main

    out = root / "cli-f32-fused.gguf"
    assert main(["convert", "mimo2", str(small_ckpt), str(out), "--dtype", "f32", "--fuse-qkv",
                 "--swa-window-keys", "128"]) == 0
    r = gguf.GGUFReader(out)
    types = {t.name: t.tensor_type.name for t in r.tensors}
    assert types["blk.1.attn_qkv.weight"] == "F32" and "blk.1.attn_q.weight" not in types
    assert int(r.fields["mimo2.attention.sliding_window_keys"].contents()) == 128
    default = root / "cli-default.gguf"
    assert main(["convert", "mimo2", str(small_ckpt), str(default)]) == 0  # keeps the checkpoint's BF16
    assert {t.tensor_type.name for t in gguf.GGUFReader(default).tensors if t.name.endswith("attn_q.weight")} == {"BF16"}
    assert main(["convert", "mimo2", str(small_ckpt), str(root / "bad.gguf"), "--expert-type", "q4_0"]) == 2
    assert "error" in capsys.readouterr().err
