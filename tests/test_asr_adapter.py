"""The ggml audio adapter (speech embeddings + input local transformer +
group downcast, spec asr.md §9–§10) against the independent torch reference
(tests/reference/asr_ref.py) on a tiny random-weight MiMo-V2.5-ASR
checkpoint in the official layout, plus its typed errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from gguf_edit import rewrite

from asr_fixtures import EMPTY_IDS, SPEECH_VOCAB, make_tiny_asr_checkpoint
from mimo_ggml import _core
from mimo_ggml.adapter import AsrAdapter
from mimo_ggml.convert.asr import convert_asr
from mimo_ggml.convert.quantize import quantize_gguf
from mimo_ggml.errors import InvalidArgumentError, ModelLoadError, UnsupportedModelError
from reference.asr_ref import adapter_reference, load_checkpoint

VOCAB = np.array(SPEECH_VOCAB)
EMPTY = np.array(EMPTY_IDS)
STAGES = ("ilt_input", "ilt_output", "audio_features")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("asr_adapter")
    ckpt = make_tiny_asr_checkpoint(root / "hf", seed=5, tts=False)
    causal = make_tiny_asr_checkpoint(root / "hf_causal", seed=5, full_attention=False, tts=False)  # same weights
    f32 = convert_asr(ckpt, root / "asr-f32.gguf", dtype="f32")
    return {
        "ckpt": ckpt,
        "causal_ckpt": causal,
        "f32": f32,
        "f16": convert_asr(ckpt, root / "asr-f16.gguf", dtype="f16", fuse_qkv=False),
        "q8_0": quantize_gguf(f32, root / "asr-q8_0.gguf", "q8_0"),
        "causal": convert_asr(causal, root / "asr-causal-f32.gguf", dtype="f32"),
        "root": root,
    }


@pytest.fixture(scope="module")
def adapter(files):
    with AsrAdapter(files["f32"], device="cpu", n_threads=2) as a:
        yield a


def random_codes(n_groups: int, seed: int = 0, p_empty: float = 0.2) -> np.ndarray:
    """[4·G, 8] codes over each channel's whole range, about p_empty of them the empty id."""
    rng = np.random.default_rng(seed)
    codes = (rng.random((4 * n_groups, 8)) * (VOCAB - 1)).astype(np.int64)  # real codes < empty id
    m = rng.random(codes.shape) < p_empty
    codes[m] = np.broadcast_to(EMPTY, codes.shape)[m]
    return codes


def compare(got: np.ndarray, ref: np.ndarray, rel: float = 1e-3, cos_min: float = 0.9999, name: str = "") -> None:
    assert got.shape == ref.shape, (name, got.shape, ref.shape)
    err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))
    cos = float((got * ref).sum() / (np.linalg.norm(got) * np.linalg.norm(ref) + 1e-30))
    assert err <= rel and cos >= cos_min, f"{name}: relative max error {err:.3g}, cosine {cos:.8f}"


# ---------------------------------------------------------------------------
# parity
# ---------------------------------------------------------------------------


def test_stages_match_reference(adapter, files):
    codes = random_codes(9, seed=1)
    got = adapter.stages(codes)
    ref = adapter_reference(files["ckpt"], codes)
    for k in STAGES:
        compare(got[k], ref[k], name=k)
    np.testing.assert_array_equal(adapter.features(codes), got["audio_features"])
    assert got["audio_features"].dtype == np.float32
    # the comparison can tell causal from bidirectional attention inside a group
    causal = adapter_reference(files["causal_ckpt"], codes)["ilt_output"]  # same weights, causal
    assert not np.allclose(causal, got["ilt_output"], atol=1e-2)


def test_empty_ids_are_masked(adapter, files):
    codes = random_codes(4, seed=2, p_empty=0.0)
    codes[0:4] = EMPTY  # a group with no code at all
    codes[5, :] = EMPTY  # one frame with no code
    codes[9, 3] = EMPTY[3]  # a single channel
    got = adapter.stages(codes)
    ilt_in = got["ilt_input"].reshape(-1, got["ilt_input"].shape[-1])
    assert not ilt_in[0:4].any() and not ilt_in[5].any()
    ref = adapter_reference(files["ckpt"], codes)
    for k in STAGES:
        compare(got[k], ref[k], name=k)
    # the table rows at the empty ids are random in the checkpoint: masking matters
    _, tensors = load_checkpoint(files["ckpt"])
    for c in range(8):
        assert tensors[f"speech_embeddings.{c}.weight"][EMPTY[c]].abs().min() > 0


def test_groups_are_independent_and_chunked(adapter, files):
    n = 2 * 256 + 7  # three graphs of at most 256 groups
    codes = random_codes(n, seed=3)
    got = adapter.stages(codes)
    ref = adapter_reference(files["ckpt"], codes)
    for k in STAGES:
        compare(got[k], ref[k], name=k)
    # a group alone gives its row of the batch
    for g in (0, 255, 256, n - 1):
        one = adapter.features(codes[4 * g:4 * g + 4])
        np.testing.assert_allclose(one[0], got["audio_features"][g], rtol=1e-5, atol=1e-6)


def test_causal_attention_from_config(files):
    codes = random_codes(5, seed=4)
    with AsrAdapter(files["causal"], device="cpu", n_threads=1) as a:
        got = a.stages(codes)
    ref = adapter_reference(files["causal_ckpt"], codes)
    for k in STAGES:
        compare(got[k], ref[k], name=k)


@pytest.mark.parametrize("kind, cos_min", [("f16", 0.9995), ("q8_0", 0.999)])
def test_reduced_precision_files(files, kind, cos_min):
    codes = random_codes(6, seed=5)
    with AsrAdapter(files[kind], device="cpu", n_threads=2) as a:
        got = a.features(codes)
    ref = adapter_reference(files["ckpt"], codes)["audio_features"]
    compare(got, ref, rel=0.05, cos_min=cos_min, name=kind)


def test_concurrent_calls(adapter):
    codes = [random_codes(3, seed=10 + i) for i in range(4)]
    want = [adapter.features(c) for c in codes]
    got: list = [None] * 4

    def work(i):
        got[i] = adapter.features(codes[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w, g in zip(want, got):
        np.testing.assert_array_equal(w, g)


# ---------------------------------------------------------------------------
# metadata
# ---------------------------------------------------------------------------


def test_properties(adapter):
    assert adapter.channels == 8
    assert adapter.group_size == 4
    assert adapter.empty_ids == EMPTY_IDS
    assert adapter.speech_vocab == SPEECH_VOCAB
    assert adapter.n_embd == 256
    assert adapter.input_dim == 64
    assert adapter.n_layer == 2
    assert adapter.device == "CPU"
    assert adapter.weights_bytes > 0


def test_lm_hidden_not_out_hidden_size(files, tmp_path):
    # CrispASR's converter writes out_hidden_size = 4096 whatever the model: it must be ignored
    p = tmp_path / "out-hidden.gguf"
    rewrite(files["f32"], p, set_u32={"mimo_asr.audio.out_hidden_size": 4096})
    with AsrAdapter(p, device="cpu", n_threads=1) as a:
        assert a.n_embd == 256
        assert a.features(random_codes(1)).shape == (1, 256)


def test_missing_empty_id_keys_use_spec_defaults(files, adapter, tmp_path):
    # CrispASR's files carry no speech_zeroemb keys
    p = tmp_path / "no-zeroemb.gguf"
    rewrite(files["f32"], p, drop_key="mimo_asr.audio.speech_zeroemb.0")
    codes = random_codes(2, seed=6)
    with AsrAdapter(p, device="cpu", n_threads=1) as a:
        assert a.empty_ids == EMPTY_IDS
        np.testing.assert_array_equal(a.features(codes), adapter.features(codes))


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


def test_lm_only_file(tiny_lm):
    with pytest.raises(ModelLoadError, match="no audio adapter"):
        AsrAdapter(tiny_lm[1]["f32_fused"], device="cpu")


def test_missing_adapter_tensor(files, tmp_path):
    p = tmp_path / "no-up.gguf"
    rewrite(files["f32"], p, drop="audio.blk.1.ffn.up.weight")
    with pytest.raises(ModelLoadError, match="audio.blk.1.ffn.up.weight"):
        AsrAdapter(p, device="cpu")


def test_wrong_architecture(files, tmp_path):
    p = tmp_path / "tok.gguf"
    rewrite(files["f32"], p, arch="mimo_tokenizer")
    with pytest.raises(UnsupportedModelError, match="audio-tokenizer"):
        AsrAdapter(p, device="cpu")


BAD_CODES = {
    "1-D": np.zeros(32, dtype=np.int32),
    "3-D": np.zeros((4, 8, 1), dtype=np.int32),
    "7 channels": np.zeros((4, 7), dtype=np.int32),
    "not a multiple of 4 frames": np.zeros((6, 8), dtype=np.int32),
    "float codes": np.zeros((4, 8), dtype=np.float32),
    "negative": np.where(np.arange(32).reshape(4, 8) == 9, -1, 0),
    "channel 0 at its vocabulary size": np.where(np.arange(32).reshape(4, 8) == 0, 1025, 0),
    "channel 3 at its vocabulary size": np.where(np.arange(32).reshape(4, 8) == 3, 129, 0),
    "beyond int32": np.where(np.arange(32).reshape(4, 8) == 5, 2**32, 0).astype(np.int64),
}


@pytest.mark.parametrize("name", list(BAD_CODES))
def test_bad_codes(adapter, name):
    codes = BAD_CODES[name]
    with pytest.raises(InvalidArgumentError):
        adapter.features(codes)
    with pytest.raises(InvalidArgumentError):
        adapter.stages(codes)
    # the native layer checks on its own too (no ggml abort on bad input)
    with pytest.raises(InvalidArgumentError):
        adapter._native.features(codes)


def test_native_rejects_non_arrays(adapter):
    with pytest.raises(InvalidArgumentError):
        adapter._native.features("codes")
    with pytest.raises(InvalidArgumentError):
        adapter._native.features([[0] * 8] * 3)


def test_no_groups(adapter):
    assert adapter.features(np.zeros((0, 8), dtype=np.int32)).shape == (0, 256)
    st = adapter.stages(np.zeros((0, 8), dtype=np.int64))
    assert st["ilt_input"].shape == (0, 4, 64) and st["audio_features"].shape == (0, 256)


def test_closed(files):
    a = AsrAdapter(files["f32"], device="cpu", n_threads=1)
    a.close()
    with pytest.raises(InvalidArgumentError, match="closed"):
        a.features(random_codes(1))
    a.close()  # idempotent


def test_native_class_is_registered():
    assert hasattr(_core, "AsrAdapter")
