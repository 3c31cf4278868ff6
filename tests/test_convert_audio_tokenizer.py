"""The audio-tokenizer converter against gguf-compat §2, plus sanity checks of the
tiny fixture and the torch reference the ggml encoder will be compared with."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType
from safetensors.numpy import load_file, save_file

from mimo_ggml.convert.audio_tokenizer import convert_audio_tokenizer
from mimo_ggml.errors import InvalidArgumentError, ModelLoadError, UnsupportedModelError
from reference.audio_tokenizer_ref import ReferenceTokenizer, chunk_bounds_ref, run_reference
from tokenizer_fixtures import make_tiny_tokenizer_checkpoint

D, LAYERS, HEADS, FFN, NQ = 64, 4, 4, 128, 20
SIZES = [1024, 1024] + [128] * 18


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_tiny_tokenizer_checkpoint(
        tmp_path_factory.mktemp("tok"), d_model=D, layers=LAYERS, heads=HEADS, ffn=FFN, n_quantizers=NQ, seed=7
    )


@pytest.fixture(scope="module")
def gguf_f16(ckpt, tmp_path_factory):
    return GGUFReader(convert_audio_tokenizer(ckpt, tmp_path_factory.mktemp("out") / "tok-f16.gguf"))


@pytest.fixture(scope="module")
def gguf_f32(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "tok-f32.gguf"
    return GGUFReader(convert_audio_tokenizer(ckpt, out, dtype="f32", codebook_dtype="f32"))


def expected_layout() -> dict[str, tuple[tuple[int, ...], str, str]]:
    """gguf-compat §2.2 written out: GGUF name -> (ne, kind, HF source name)."""
    t = {
        "encoder.conv1.weight": ((3, 128, D), "conv", "encoder.conv1.weight"),
        "encoder.conv1.bias": ((D,), "vec", "encoder.conv1.bias"),
        "encoder.conv2.weight": ((3, D, D), "conv", "encoder.conv2.weight"),
        "encoder.conv2.bias": ((D,), "vec", "encoder.conv2.bias"),
        "enc.norm.weight": ((D,), "vec", "encoder.layer_norm.weight"),
        "enc.norm.bias": ((D,), "vec", "encoder.layer_norm.bias"),
        "encoder.down_sample_layer.0.weight": ((2, D, D), "conv", "encoder.down_sample_layer.0.weight"),
        "encoder.down_sample_norm.weight": ((D,), "vec", "encoder.down_sample_norm.weight"),
        "encoder.down_sample_norm.bias": ((D,), "vec", "encoder.down_sample_norm.bias"),
    }
    for i in range(LAYERS):
        hf = f"encoder.layers.{i}."
        g = f"enc.blk.{i}."
        t[g + "attn_norm.weight"] = ((D,), "vec", hf + "self_attn_layer_norm.weight")
        t[g + "attn_norm.bias"] = ((D,), "vec", hf + "self_attn_layer_norm.bias")
        for short, long in [("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "out_proj")]:
            t[g + f"attn.{short}.weight"] = ((D, D), "mat", hf + f"self_attn.{long}.weight")
            if short != "k":  # the key projection has no bias
                t[g + f"attn.{short}.bias"] = ((D,), "vec", hf + f"self_attn.{long}.bias")
        t[g + "ffn_norm.weight"] = ((D,), "vec", hf + "final_layer_norm.weight")
        t[g + "ffn_norm.bias"] = ((D,), "vec", hf + "final_layer_norm.bias")
        t[g + "fc1.weight"] = ((D, FFN), "mat", hf + "fc1.weight")
        t[g + "fc1.bias"] = ((FFN,), "vec", hf + "fc1.bias")
        t[g + "fc2.weight"] = ((FFN, D), "mat", hf + "fc2.weight")
        t[g + "fc2.bias"] = ((D,), "vec", hf + "fc2.bias")
    for s, k in enumerate(SIZES):
        g = f"encoder.quant.vq.layers.{s}._codebook."
        hf = f"encoder.quantizer.vq.layers.{s}._codebook."
        t[g + "embed"] = ((D, k), "codebook", hf + "embed")
        t[g + "embed_avg"] = ((D, k), "codebook", hf + "embed_avg")
        t[g + "cluster_size"] = ((k,), "vec", hf + "cluster_size")
        t[g + "inited"] = ((1,), "vec", hf + "inited")
    return t


def _field(reader: GGUFReader, key: str):
    f = reader.fields.get(key)
    assert f is not None, f"missing key {key}"
    return f.types[0], f.contents()


def test_metadata(gguf_f16):
    U32, F32, STR = GGUFValueType.UINT32, GGUFValueType.FLOAT32, GGUFValueType.STRING
    want = {
        "general.architecture": (STR, "mimo_tokenizer"),
        "general.name": (STR, "MiMo-Audio-Tokenizer"),
        "mimo_tok.d_model": (U32, D),
        "mimo_tok.encoder_layers": (U32, LAYERS),
        "mimo_tok.encoder_heads": (U32, HEADS),
        "mimo_tok.encoder_ffn_dim": (U32, FFN),
        "mimo_tok.num_quantizers": (U32, NQ),
        "mimo_tok.sampling_rate": (U32, 24000),
        "mimo_tok.hop_length": (U32, 240),
        "mimo_tok.stride_size": (U32, 2),
        "mimo_tok.avg_pooler": (U32, 2),
        "mimo_tok.kernel_size": (U32, 3),
        "mimo_tok.n_mels": (U32, 128),
        "mimo_tok.nfft": (U32, 960),
        "mimo_tok.window_size": (U32, 960),
        "mimo_tok.encoder_skip_layer_id": (U32, 3),
        "mimo_tok.rope_theta": (F32, 10000.0),
        "mimo_tok.layer_norm_eps": (F32, pytest.approx(1e-5)),
    }
    for s, k in enumerate(SIZES):
        want[f"mimo_tok.codebook_size.{s}"] = (U32, k)
    for key, (typ, value) in want.items():
        assert _field(gguf_f16, key) == (typ, value), key
    written = {k for k in gguf_f16.fields if not k.startswith("GGUF.")}
    assert written == set(want)
    assert "general.file_type" not in written  # only quantized files carry it


@pytest.mark.parametrize("mode", ["f16", "f32"])
def test_tensor_names_shapes_and_types(mode, gguf_f16, gguf_f32):
    reader = gguf_f16 if mode == "f16" else gguf_f32
    layout = expected_layout()
    got = {t.name: t for t in reader.tensors}
    assert len(reader.tensors) == len(got)  # no duplicates
    assert set(got) == set(layout)
    assert len(got) == 4 + 15 * LAYERS + 2 + 3 + 4 * NQ
    assert not any(n.startswith("decoder") for n in got)
    big = GGMLQuantizationType.F16 if mode == "f16" else GGMLQuantizationType.F32
    for name, (ne, kind, _) in layout.items():
        t = got[name]
        assert tuple(int(x) for x in t.shape) == ne, name  # ggml order: PyTorch shape reversed
        want_type = GGMLQuantizationType.F32 if kind == "vec" else big
        assert t.tensor_type == want_type, name


def test_values_round_trip(ckpt, gguf_f16, gguf_f32):
    src = load_file(str(ckpt / "model.safetensors"))
    f16 = {t.name: t for t in gguf_f16.tensors}
    f32 = {t.name: t for t in gguf_f32.tensors}
    for name, (ne, kind, hf) in expected_layout().items():
        ref = src[hf].astype(np.float32)
        torch_shape = tuple(reversed(ne))
        exact = np.asarray(f32[name].data).reshape(torch_shape)
        np.testing.assert_array_equal(exact, ref.reshape(torch_shape), err_msg=name)
        half = np.asarray(f16[name].data).reshape(torch_shape)
        want = ref if kind == "vec" else ref.astype(np.float16)
        np.testing.assert_array_equal(half, want.reshape(torch_shape), err_msg=name)


def test_codebook_dtype_is_independent(ckpt, tmp_path):
    out = convert_audio_tokenizer(ckpt, tmp_path / "mixed.gguf", dtype="f16", codebook_dtype="f32")
    reader = GGUFReader(out)
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["encoder.quant.vq.layers.0._codebook.embed"] == GGMLQuantizationType.F32
    assert types["encoder.quant.vq.layers.0._codebook.embed_avg"] == GGMLQuantizationType.F32
    assert types["enc.blk.0.attn.q.weight"] == GGMLQuantizationType.F16
    assert types["encoder.conv1.weight"] == GGMLQuantizationType.F16
    src = load_file(str(ckpt / "model.safetensors"))
    cb = next(t for t in reader.tensors if t.name == "encoder.quant.vq.layers.5._codebook.embed")
    np.testing.assert_array_equal(
        np.asarray(cb.data).reshape(128, D), src["encoder.quantizer.vq.layers.5._codebook.embed"]
    )


def _rewrite(folder, tensors=None, config=None):
    if tensors is not None:
        save_file(tensors, str(folder / "model.safetensors"))
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))


def test_missing_tensors_are_named(tmp_path):
    drop = ("encoder.layers.2.self_attn.k_proj.weight", "encoder.quantizer.vq.layers.7._codebook.embed")
    folder = make_tiny_tokenizer_checkpoint(tmp_path / "ck", layers=3, n_quantizers=8, drop=drop)
    out = tmp_path / "x.gguf"
    with pytest.raises(ModelLoadError) as info:
        convert_audio_tokenizer(folder, out)
    for name in drop:
        assert name in str(info.value)
    assert not out.exists() and not list(tmp_path.glob("*.part"))


def test_wrong_shape_and_unsupported_config(tmp_path):
    folder = make_tiny_tokenizer_checkpoint(tmp_path / "ck", layers=2, n_quantizers=4)
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["encoder.layers.1.fc1.weight"] = np.zeros((FFN + 1, D), np.float32)
    _rewrite(folder, tensors)
    with pytest.raises(ModelLoadError, match=r"encoder\.layers\.1\.fc1\.weight"):
        convert_audio_tokenizer(folder, tmp_path / "x.gguf")

    folder2 = make_tiny_tokenizer_checkpoint(tmp_path / "ck2", layers=2, n_quantizers=4)
    cfg = json.loads((folder2 / "config.json").read_text())
    cfg["encoder_causal"] = True
    _rewrite(folder2, config=cfg)
    with pytest.raises(UnsupportedModelError, match="encoder_causal"):
        convert_audio_tokenizer(folder2, tmp_path / "y.gguf")

    del cfg["d_model"]
    _rewrite(folder2, config=cfg)
    with pytest.raises(ModelLoadError, match="d_model"):
        convert_audio_tokenizer(folder2, tmp_path / "z.gguf")


def test_bad_dtype_argument(ckpt, tmp_path):
    with pytest.raises(InvalidArgumentError):
        convert_audio_tokenizer(ckpt, tmp_path / "x.gguf", dtype="q4_k")
    with pytest.raises(InvalidArgumentError):
        convert_audio_tokenizer(ckpt, tmp_path / "x.gguf", codebook_dtype="bf16")


def test_short_quantizer_prefix_and_bf16_source(tmp_path):
    """A checkpoint already using CrispASR's `encoder.quant.` spelling, stored in BF16."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file as save_torch

    folder = make_tiny_tokenizer_checkpoint(tmp_path / "ck", layers=2, n_quantizers=3)
    src = load_file(str(folder / "model.safetensors"))
    renamed = {k.replace("encoder.quantizer.", "encoder.quant."): torch.from_numpy(v).to(torch.bfloat16)
               for k, v in src.items()}
    save_torch(renamed, str(folder / "model.safetensors"))
    reader = GGUFReader(convert_audio_tokenizer(folder, tmp_path / "x.gguf", dtype="f32", codebook_dtype="f32"))
    got = {t.name: t for t in reader.tensors}
    assert len(got) == 4 + 15 * 2 + 2 + 3 + 4 * 3
    want = renamed["encoder.quant.vq.layers.1._codebook.embed"].to(torch.float32).numpy()
    np.testing.assert_array_equal(
        np.asarray(got["encoder.quant.vq.layers.1._codebook.embed"].data).reshape(want.shape), want
    )


# ---------------------------------------------------------------------------
# the fixture and the reference the ggml encoder will be checked against
# ---------------------------------------------------------------------------


def _wave(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * 24000)
    t = np.arange(n) / 24000
    env = np.repeat(rng.uniform(0.05, 0.5, n // 2400 + 1), 2400)[:n]
    x = env * np.sin(2 * np.pi * (150 + 400 * t) * t) + 0.05 * rng.standard_normal(n)
    return x.astype(np.float32)


def test_reference_stages_shapes_and_codes(ckpt):
    wave = _wave(2.0 + 0.13)
    out = run_reference(ckpt, wave)
    n = len(wave)
    t_mel = n // 240 + 1
    t_enc = (t_mel - 1) // 2 + 1
    t_code = -(-t_enc // 2)
    assert out["tok_mel"].shape == (t_mel, 128)
    assert out["tok_conv1_out"].shape == (t_mel, D)
    assert out["tok_conv2_out"].shape == (t_enc, D)
    for i in range(LAYERS):
        assert out[f"tok_layer{i}_out"].shape == (t_enc, D)
    assert out["tok_xfmr_out"].shape == (t_enc, D)
    assert out["tok_pool_out"].shape == (t_code, D)
    codes, gaps = out["tok_codes"], out["tok_code_gaps"]
    assert codes.shape == gaps.shape == (t_code, 8)
    assert all((codes[:, s] >= 0).all() and (codes[:, s] < SIZES[s]).all() for s in range(8))
    assert (gaps >= 0).all()
    assert all(len(np.unique(codes[:, s])) > 3 for s in range(8)), "fixture codes should vary"
    for key in ("tok_layer0_out", "tok_xfmr_out", "tok_pool_out"):
        v = out[key]
        assert np.isfinite(v).all() and 0.05 < np.abs(v).mean() < 20, key  # activations O(1)
    padded = out["audio_codes"]
    assert padded.shape == (-(-t_code // 4) * 4, 8)
    np.testing.assert_array_equal(padded[:t_code], codes)
    np.testing.assert_array_equal(padded[t_code:], np.repeat(codes[-1:], len(padded) - t_code, 0))


def test_reference_rvq_matches_brute_force(ckpt):
    tok = ReferenceTokenizer(ckpt)
    st = tok.stages(_wave(1.5, seed=3))
    r = st["tok_pool_out"].astype(np.float64)
    src = load_file(str(ckpt / "model.safetensors"))
    for s in range(8):
        e = src[f"encoder.quantizer.vq.layers.{s}._codebook.embed"].astype(np.float64)
        dist = ((r[:, None, :] - e[None, :, :]) ** 2).sum(-1)
        best = dist.argmin(1)
        clear = st["tok_code_gaps"][:, s] > 1e-3
        np.testing.assert_array_equal(st["tok_codes"][clear, s], best[clear])
        r = r - e[st["tok_codes"][:, s]]


def test_reference_rope_switch_and_skip(ckpt):
    wave = _wave(1.0, seed=5)
    bf = ReferenceTokenizer(ckpt, bf16_rope=True)
    ex = ReferenceTokenizer(ckpt, bf16_rope=False)
    f_bf, f_ex = bf.inv_freq(), ex.inv_freq()
    assert f_bf[0] == f_ex[0] == 1.0
    rel = (f_bf - f_ex).abs() / f_ex
    assert rel.max() < 0.004 and rel.max() > 0  # bf16 rounding: up to ~0.4 %
    a, b = bf.stages(wave), ex.stages(wave)
    np.testing.assert_array_equal(a["tok_conv2_out"], b["tok_conv2_out"])
    assert not np.array_equal(a["tok_layer0_out"], b["tok_layer0_out"])


def test_reference_chunks_are_independent(ckpt):
    """30 s + 1000 samples: a second, tiny chunk whose codes restart (§3)."""
    tok = ReferenceTokenizer(ckpt)
    wave = _wave(30.0, seed=9)
    tail = _wave(1000 / 24000, seed=10)
    codes, gaps = tok.encode(np.concatenate([wave, tail]))
    first = tok.stages(wave, keep_layers=False)["tok_codes"]
    second = tok.stages(tail, keep_layers=False)["tok_codes"]
    assert len(first) == 751 and len(second) == 2
    np.testing.assert_array_equal(codes, np.concatenate([first, second]))
    assert gaps.shape == codes.shape
    # a tail shorter than 960 samples would join the last chunk instead
    assert chunk_bounds_ref(720_500) == [(0, 720_500)]
