"""The ggml audio tokenizer (encoder + RVQ) against the independent torch
reference (tests/reference/audio_tokenizer_ref.py), stage by stage, on a tiny
random-weight checkpoint in the official layout that keeps the real
front-end constants (128 mels, 24 kHz, hop 240) and the real head size (64).

Codes are compared exactly wherever the reference's best/second-best
distance gap exceeds 1e-2; a code at a closer near-tie may flip (and with it
every later stage of that frame, whose residual then differs) — those are
counted and printed.
"""

from __future__ import annotations

import shutil
import threading
import time

import gguf
import numpy as np
import pytest
from gguf_edit import rewrite
from safetensors.numpy import load_file, save_file

from mimo_ggml import AudioTokenizer
from mimo_ggml.audio import log_mel, pad_chunk, tokenizer_chunks
from mimo_ggml.convert.audio_tokenizer import convert_audio_tokenizer
from mimo_ggml.errors import InvalidArgumentError, ModelLoadError, ModelNotFoundError, UnsupportedModelError
from reference.audio_tokenizer_ref import ReferenceTokenizer, resample_ref
from tokenizer_fixtures import make_tiny_tokenizer_checkpoint

D, LAYERS, HEADS, FFN = 128, 4, 2, 256  # head_dim 64 as in the real model
GAP = 1e-2  # codes closer to a tie than this may legitimately flip
SR = 24_000


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio_tok")
    ckpt = make_tiny_tokenizer_checkpoint(root / "hf", d_model=D, layers=LAYERS, heads=HEADS, ffn=FFN, seed=7)
    # the same checkpoint with F16-rounded centroids: the exact reference for an F16-codebook file
    ckpt16 = root / "hf16"
    shutil.copytree(ckpt, ckpt16)
    t = load_file(str(ckpt16 / "model.safetensors"))
    for k in t:
        if k.endswith("._codebook.embed"):
            t[k] = t[k].astype(np.float16).astype(np.float32)
    save_file(t, str(ckpt16 / "model.safetensors"), metadata={"format": "pt"})
    return {
        "ckpt": ckpt,
        "ckpt16": ckpt16,
        "f32": convert_audio_tokenizer(ckpt, root / "tok-f32.gguf", dtype="f32", codebook_dtype="f32"),
        "f32_cb16": convert_audio_tokenizer(ckpt, root / "tok-f32-cb16.gguf", dtype="f32", codebook_dtype="f16"),
        "f16": convert_audio_tokenizer(ckpt, root / "tok-f16.gguf", dtype="f16", codebook_dtype="f16"),
    }


@pytest.fixture(scope="module")
def ref(files):
    return ReferenceTokenizer(files["ckpt"])


@pytest.fixture(scope="module")
def tok(files):
    with AudioTokenizer(files["f32"], device="cpu", n_threads=2) as t:
        yield t


def signal(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """Speech-like test audio in [-1, 1]: a gliding tone under a syllable-rate envelope, plus noise."""
    rng = np.random.default_rng(seed)
    n = max(1, int(round(seconds * sr)))
    t = np.arange(n) / sr
    step = max(1, sr // 10)
    env = np.repeat(rng.uniform(0.05, 0.5, n // step + 1), step)[:n]
    x = env * np.sin(2 * np.pi * (150 + 300 * (t % 3.0)) * t) + 0.03 * rng.standard_normal(n)
    return np.clip(x, -1, 1)


def make_input(seconds, sr, channels, dtype, seed=0):
    """(array as a caller would pass it, float32 mono at 24 kHz as the reference computes it)."""
    chans = [signal(seconds, sr, seed + c) for c in range(channels)]
    if dtype == "int16":
        data = np.stack([np.round(c * 32767).astype(np.int16) for c in chans], axis=1)
        mono = (data.astype(np.float64) / 32768.0).mean(axis=1)
    else:
        data = np.stack(chans, axis=1).astype(np.float32)
        mono = data.astype(np.float64).mean(axis=1)
    if channels == 1:
        data = data[:, 0]
    return data, resample_ref(mono.astype(np.float32), sr, SR)


def rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def cosine(a, b):
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def compare_codes(codes, ref_codes, ref_gaps, label="", gap=GAP):
    """Equal codes except at near-ties; returns (near_ties, excused_flips)."""
    assert codes.shape == ref_codes.shape, label
    assert codes.dtype == np.int32
    near = int((ref_gaps <= gap).sum())
    excused = 0
    for t in np.nonzero((codes != ref_codes).any(axis=1))[0]:
        s = int(np.nonzero(codes[t] != ref_codes[t])[0][0])  # first differing stage of this frame
        assert ref_gaps[t, s] <= gap, (
            f"{label}: frame {t} stage {s}: code {codes[t, s]} != reference {ref_codes[t, s]} "
            f"with a clear distance gap {ref_gaps[t, s]:.4g}"
        )
        excused += 1  # later stages of this frame quantize a different residual
    print(f"{label}: {codes.shape[0]} frames, {near} near-ties (gap <= {gap}), {excused} excused flips")
    return near, excused


# ---------------------------------------------------------------------------
# stage parity (F32 file)
# ---------------------------------------------------------------------------


def check_stages(st, rs, label):
    for key in ["tok_conv1_out", "tok_conv2_out", *[f"tok_layer{i}_out" for i in range(LAYERS)], "tok_xfmr_out",
                "tok_pool_out"]:
        a, b = st[key], rs[key]
        assert a.shape == b.shape, (label, key)
        assert rel_err(a, b) <= 1e-3 and cosine(a, b) >= 0.9999, (label, key, rel_err(a, b), cosine(a, b))


def test_stages_match_reference_24k(tok, ref):
    wave = signal(2.13, SR, seed=1).astype(np.float32)
    st = tok.encode_stages(wave, sample_rate=SR)
    rs = ref.stages(wave)
    # mel front-end: compared in the linear domain (spec §15)
    assert st["tok_mel"].shape == rs["tok_mel"].shape == (len(wave) // 240 + 1, 128)
    assert rel_err(np.exp(st["tok_mel"]), np.exp(rs["tok_mel"])) <= 1e-3
    check_stages(st, rs, "24k")
    t_code = rs["tok_pool_out"].shape[0]
    assert st["tok_codes"].shape == (t_code, 8)
    assert all(len(np.unique(rs["tok_codes"][:, s])) > 3 for s in range(8)), "fixture codes should vary"
    compare_codes(st["tok_codes"], rs["tok_codes"], rs["tok_code_gaps"], "24k stages")
    # the native gaps describe the same near-ties
    np.testing.assert_allclose(st["tok_code_gaps"], rs["tok_code_gaps"], atol=2e-3, rtol=1e-3)
    np.testing.assert_array_equal(st["codes"], st["tok_codes"])


def test_stages_of_a_later_chunk(tok, ref):
    """Chunk 1 of 44.1 kHz audio: positions restart at 0, a full 30 s chunk (T_enc 1501)."""
    data, wave24 = make_input(31.0, 44_100, 1, "float32", seed=11)
    st = tok.encode_stages(data, sample_rate=44_100, chunk=0)
    bounds = st["chunk_bounds"]
    assert bounds == [(0, 720_000), (720_000, len(wave24))]
    rs = ref.stages(wave24[: bounds[0][1]])
    assert st["tok_xfmr_out"].shape == (1501, D)
    check_stages(st, rs, "44.1k chunk 0")
    st1 = tok.encode_stages(data, sample_rate=44_100, chunk=1)
    rs1 = ref.stages(wave24[bounds[1][0] :])
    check_stages(st1, rs1, "44.1k chunk 1")
    np.testing.assert_array_equal(st1["codes"], st["codes"])


# ---------------------------------------------------------------------------
# codes over the whole input pipeline
# ---------------------------------------------------------------------------

CASES = [
    # sample rate, seconds, channels, dtype
    (16_000, 0.03, 2, "int16"),  # 30 ms: one padded 960-sample chunk
    (8_000, 7.0, 2, "float32"),
    (24_000, 30.0 + 500 / SR, 1, "float32"),  # a tail < 960 samples joins the only chunk
    (44_100, 61.3, 1, "int16"),  # three chunks
    (24_000, 12.5, 2, "int16"),
]


@pytest.mark.parametrize("sr,seconds,channels,dtype", CASES, ids=lambda v: str(v))
def test_codes_match_reference(tok, ref, sr, seconds, channels, dtype):
    data, wave24 = make_input(seconds, sr, channels, dtype, seed=int(seconds * 10) + sr)
    codes = tok.encode(data, sample_rate=sr)
    ref_codes, ref_gaps = ref.encode(wave24)
    n24 = len(wave24)
    want_frames = sum(
        -(-(((max(e - s, 960) // 240 + 1) - 1) // 2 + 1) // 2) for s, e in tokenizer_chunks(n24)
    )
    assert codes.shape == (want_frames, 8)
    label = f"{sr} Hz {seconds:g}s {channels}ch {dtype}"
    near, excused = compare_codes(codes, ref_codes.astype(np.int32), ref_gaps, label)
    assert excused <= max(2, codes.shape[0] // 100)
    assert all((codes[:, s] >= 0).all() and (codes[:, s] < k).all() for s, k in enumerate([1024, 1024] + [128] * 6))


def test_encode_is_chunked_and_accepts_all_inputs(tok, tmp_path):
    import soundfile as sf

    data, wave24 = make_input(3.2, 16_000, 2, "int16", seed=3)
    a = tok.encode(data, sample_rate=16_000)
    b = tok.encode((data, 16_000))
    c = tok.encode(np.ascontiguousarray(data.T), sample_rate=16_000)  # [channels, samples]
    path = tmp_path / "x.wav"
    sf.write(path, data, 16_000, subtype="PCM_16")
    d = tok.encode(path)
    e = tok.encode(path.read_bytes())
    for other in (b, c, d, e):
        np.testing.assert_array_equal(a, other)
    # encode == per-chunk encode_mel, concatenated
    from mimo_ggml.audio import load_audio

    w = load_audio(data, 16_000)
    parts = [tok.encode_mel(log_mel(pad_chunk(w[s:e]))) for s, e in tokenizer_chunks(len(w))]
    np.testing.assert_array_equal(a, np.concatenate(parts))
    # deterministic
    np.testing.assert_array_equal(a, tok.encode(data, sample_rate=16_000))


# ---------------------------------------------------------------------------
# file variants and options
# ---------------------------------------------------------------------------


def test_f16_codebooks(files):
    """F32 weights, F16 centroids (CrispASR's codebook type): exact against F16-rounded centroids."""
    data, wave24 = make_input(9.0, 16_000, 1, "float32", seed=21)
    ref16 = ReferenceTokenizer(files["ckpt16"])
    with AudioTokenizer(files["f32_cb16"], device="cpu", n_threads=2) as t:
        codes = t.encode(data, sample_rate=16_000)
    rc, rg = ref16.encode(wave24)
    compare_codes(codes, rc.astype(np.int32), rg, "f16 codebooks")


def test_f16_file_is_close(files, ref):
    """An all-F16 file rounds weights and activations: close, not identical."""
    wave = signal(6.0, SR, seed=4).astype(np.float32)
    with AudioTokenizer(files["f16"], device="cpu", n_threads=2) as t:
        st = t.encode_stages(wave, sample_rate=SR)
        assert t.n_codebooks == 8 and t.n_quantizers == 20
        assert t.codebook_sizes == [1024, 1024] + [128] * 6
    rs = ref.stages(wave)
    assert cosine(st["tok_pool_out"], rs["tok_pool_out"]) >= 0.999
    agree = (st["tok_codes"][:, 0] == rs["tok_codes"][:, 0]).mean()
    assert agree >= 0.9, agree


def test_exact_rope_option(files):
    wave = signal(4.0, SR, seed=8).astype(np.float32)
    exact = ReferenceTokenizer(files["ckpt"], bf16_rope=False)
    with AudioTokenizer(files["f32"], device="cpu", n_threads=2, bf16_rope=False) as t:
        assert t.bf16_rope is False
        st = t.encode_stages(wave, sample_rate=SR)
    rs = exact.stages(wave)
    check_stages(st, rs, "exact rope")
    compare_codes(st["tok_codes"], rs["tok_codes"].astype(np.int32), rs["tok_code_gaps"], "exact rope")


def test_bf16_rope_differs_from_exact(tok, files):
    wave = signal(4.0, SR, seed=8).astype(np.float32)
    with AudioTokenizer(files["f32"], device="cpu", n_threads=2, bf16_rope=False) as t:
        a = t.encode_stages(wave, sample_rate=SR)["tok_layer0_out"]
    b = tok.encode_stages(wave, sample_rate=SR)["tok_layer0_out"]
    assert not np.allclose(a, b, rtol=0, atol=1e-4)


def test_properties_and_lifetime(files):
    t = AudioTokenizer(files["f32"], device="cpu", n_threads=2)
    assert (t.d_model, t.n_layer, t.n_threads, t.device) == (D, LAYERS, 2, "CPU")
    assert t.weights_bytes > 0
    t.close()
    with pytest.raises(InvalidArgumentError, match="closed"):
        t.encode(np.zeros(2400, np.float32), sample_rate=SR)
    import mimo_ggml

    assert mimo_ggml.AudioTokenizer is AudioTokenizer


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


def test_wrong_architecture(files, tmp_path):
    p = rewrite(files["f16"], tmp_path / "llama.gguf", arch="llama")
    with pytest.raises(UnsupportedModelError, match="'llama'.*mimo_tokenizer"):
        AudioTokenizer(p, device="cpu")


def test_lm_file_passed_as_tokenizer(tiny_lm):
    with pytest.raises(UnsupportedModelError, match="language-model file"):
        AudioTokenizer(tiny_lm[1]["f16_fused"], device="cpu")


def test_missing_tensors(files, tmp_path):
    p = rewrite(files["f16"], tmp_path / "nok.gguf", drop={"enc.blk.1.attn.k.weight"})
    with pytest.raises(ModelLoadError, match=r"enc\.blk\.1\.attn\.k\.weight"):
        AudioTokenizer(p, device="cpu")
    p = rewrite(files["f16"], tmp_path / "nocb.gguf", drop={"encoder.quant.vq.layers.5._codebook.embed"})
    with pytest.raises(ModelLoadError, match=r"vq\.layers\.5\._codebook\.embed"):
        AudioTokenizer(p, device="cpu")
    # codebooks past the 8 used ones are not needed
    extra = {f"encoder.quant.vq.layers.{s}._codebook.{n}" for s in range(8, 20)
             for n in ("embed", "embed_avg", "cluster_size", "inited")}
    p = rewrite(files["f16"], tmp_path / "eight.gguf", drop=extra)
    with AudioTokenizer(p, device="cpu", n_threads=1) as t:
        assert t.encode(np.zeros(960, np.float32), sample_rate=SR).shape == (2, 8)


def test_bad_metadata(files, tmp_path):
    p = rewrite(files["f16"], tmp_path / "mels.gguf", set_u32={"mimo_tok.n_mels": 80})
    with pytest.raises(UnsupportedModelError, match="n_mels"):
        AudioTokenizer(p, device="cpu")
    p = rewrite(files["f16"], tmp_path / "skip.gguf", set_u32={"mimo_tok.encoder_skip_layer_id": LAYERS + 1})
    with pytest.raises(ModelLoadError, match="skip"):
        AudioTokenizer(p, device="cpu")
    p = rewrite(files["f16"], tmp_path / "nq.gguf", set_u32={"mimo_tok.num_quantizers": 4})
    with pytest.raises(ModelLoadError, match="codebooks"):
        AudioTokenizer(p, device="cpu")
    with pytest.raises(ModelNotFoundError):
        AudioTokenizer(tmp_path / "nope.gguf", device="cpu")
    with pytest.raises(InvalidArgumentError, match="n_threads"):
        AudioTokenizer(files["f16"], n_threads=0)


def test_bad_mel_input(tok):
    with pytest.raises(InvalidArgumentError, match="128"):
        tok.encode_mel(np.zeros((10, 80), np.float32))
    with pytest.raises(InvalidArgumentError):
        tok.encode_mel(np.zeros((0, 128), np.float32))
    with pytest.raises(InvalidArgumentError, match="128"):
        tok._native.encode_mel(np.zeros((10,), np.float32))
    bad = np.zeros((10, 128), np.float32)
    bad[3, 7] = np.nan
    with pytest.raises(InvalidArgumentError, match="non-finite"):
        tok.encode_mel(bad)
    with pytest.raises(InvalidArgumentError, match="30 s chunks"):
        tok._native.encode_mel(np.zeros((tok._native.max_mel_frames + 1, 128), np.float32))
    # the shortest mel (one frame) still encodes
    assert tok.encode_mel(np.full((1, 128), -5.0, np.float32)).shape == (1, 8)


def test_gil_is_released_while_encoding(files):
    """Another Python thread keeps running while a chunk is encoded."""
    mel = log_mel(signal(30.0, SR, seed=2).astype(np.float32))
    with AudioTokenizer(files["f32"], device="cpu", n_threads=1) as t:
        t.encode_mel(mel)  # warm: graph built for this length
        done = threading.Event()
        out = {}

        def work():
            out["codes"] = t.encode_mel(mel)
            done.set()

        th = threading.Thread(target=work)
        stamps = []
        th.start()
        t0 = time.perf_counter()
        while not done.is_set():
            stamps.append(time.perf_counter())
        elapsed = time.perf_counter() - t0
        th.join()
    assert out["codes"].shape == (751, 8)
    gaps = np.diff(stamps) if len(stamps) > 1 else np.array([elapsed])
    # a held GIL would stall this loop for the whole native call
    assert len(stamps) > 100 and gaps.max() < max(0.5 * elapsed, 0.05), (len(stamps), gaps.max(), elapsed)
