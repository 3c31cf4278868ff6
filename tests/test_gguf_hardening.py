"""Malformed GGUF files get a typed error that says what is wrong, never a
crash (issue 15, failure classes 1-5): every generator in
tests/fuzz/regressions.py is loaded through the public constructors, and the
metadata getters are checked directly through the bindings."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lm_fixtures import generate

from fuzz import gguf_raw as G
from fuzz.fixtures import build_mimo2
from fuzz.regressions import CASES, build, set_kv
from mimo_ggml import _core, errors


@pytest.fixture(scope="module")
def fixtures(tiny_asr, tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf_hardening")
    paths = {"asr": tiny_asr["f32_fused"], "tokenizer": tiny_asr["tokenizer"], "mimo2": build_mimo2(root)}
    return {k: (p, p.read_bytes()) for k, p in paths.items()}


def load(kind: str, path, fixtures):
    """Everything a user would open the file with, including the lazily read vocabulary."""
    from mimo_ggml import AudioTokenizer, Session, TextSession

    if kind == "asr":
        Session(path, tokenizer=fixtures["tokenizer"][0], device="cpu", n_threads=1, n_ctx=64, download=False).close()
    elif kind == "tokenizer":
        AudioTokenizer(path, device="cpu", n_threads=1).close()
    else:
        s = TextSession(path, device="cpu", n_threads=1, n_ctx=64, kv_type="f32")
        try:
            s.has_tokenizer  # reads tokenizer.ggml.tokens / merges
        finally:
            s.close()


def test_fixtures_load(fixtures):
    for kind, (path, _) in fixtures.items():
        load(kind, path, fixtures)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_regression(case, fixtures, tmp_path):
    path = tmp_path / f"{case.kind}.gguf"
    path.write_bytes(build(case, fixtures[case.kind][1]))
    with pytest.raises(errors.MimoError) as info:
        load(case.kind, path, fixtures)
    assert type(info.value).__name__ == case.error, f"{type(info.value).__name__}: {info.value}"
    assert re.search(case.match, str(info.value)), str(info.value)
    assert str(path) in str(info.value)  # every message names the file


def test_cases_cover_every_class():
    # the generators keep one or more crashers of each GGUF failure class
    text = open(__import__("fuzz.regressions", fromlist=["x"]).__file__).read()
    for marker in ("class 1:", "class 2:", "class 3:", "class 4:", "class 5:"):
        assert marker in text


def test_integer_getters_accept_every_integer_type(fixtures, tmp_path):
    path0, data = fixtures["asr"]
    from mimo_ggml import LanguageModel

    for vtype in (G.U8, G.I8, G.U16, G.I16, G.U32, G.I32, G.U64, G.I64):
        g = G.parse(data)
        set_kv("mimo_asr.llm.num_layers", vtype, 3)(g)
        set_kv("mimo_asr.llm.rope_theta", G.F64, 640000.0)(g)  # f64 and integers also read as floats
        set_kv("mimo_asr.llm.rms_norm_eps", G.F32, 1e-6)(g)
        p = tmp_path / f"t{vtype}.gguf"
        p.write_bytes(G.write(g))
        with LanguageModel(p, device="cpu", n_threads=1, n_ctx=16) as lm:
            assert lm.n_layer == 3


def test_strings_binding_names_key_for_bad_utf8(fixtures, tmp_path):
    g = G.parse(fixtures["mimo2"][1])
    g.find(b"tokenizer.ggml.merges").value[2] = b"\xff\xfe"
    p = tmp_path / "bad.gguf"
    p.write_bytes(G.write(g))
    with pytest.raises(errors.ModelLoadError, match=r"tokenizer\.ggml\.merges' entry 2 is not valid UTF-8"):
        _core.gguf_strings(str(p), ["tokenizer.ggml.merges"])
    # the valid arrays of the same file still read
    assert len(_core.gguf_strings(str(p), ["tokenizer.ggml.tokens"])["tokenizer.ggml.tokens"]) == 300


def test_info_binding_summarises_without_trusting(fixtures, tmp_path):
    g = G.parse(fixtures["mimo2"][1])
    g.find(b"general.name").value = b"name\xff"
    p = tmp_path / "info.gguf"
    p.write_bytes(G.write(g))
    info = _core.gguf_info(str(p))
    assert info["version"] == 3 and info["tensors"] == len(g.tensors)
    assert info["metadata"]["general.name"] == "name\\xFF"
    assert info["metadata"]["tokenizer.ggml.tokens"] == "array[300] of str"
    assert info["metadata"]["mimo2.block_count"] == 3
    assert sum(info["tensor_types"].values()) == len(g.tensors)


def test_fifo_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    with pytest.raises(errors.ModelLoadError, match="not a regular file"):
        _core.gguf_architecture(str(fifo))


def test_huge_layer_count_is_refused_quickly_and_small(fixtures, tmp_path):
    import resource
    import time

    from mimo_ggml import LanguageModel

    g = G.parse(fixtures["asr"][1])
    set_kv("mimo_asr.llm.num_layers", G.U32, 2**32 - 1)(g)
    p = tmp_path / "layers.gguf"
    p.write_bytes(G.write(g))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(errors.ModelLoadError, match="num_layers"):
        LanguageModel(p, device="cpu", n_threads=1)
    assert time.perf_counter() - t0 < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB: no 2^32-layer tables


def test_nan_weights_do_not_crash_inference(fixtures, tmp_path):
    """Data is not validated (it is the model's business), but NaN weights must end in a typed error or
    garbage numbers, never a crash."""
    from mimo_ggml import LanguageModel

    g = G.parse(fixtures["asr"][1])
    t = g.tensor(b"model.layers.1.ffn.up.weight")
    t.data = np.full(len(t.data) // 4, np.nan, dtype=np.float32).tobytes()
    p = tmp_path / "nan.gguf"
    p.write_bytes(G.write(g))
    with LanguageModel(p, device="cpu", n_threads=1, n_ctx=16) as lm:
        try:
            generate(lm, [1, 2], 2)
        except errors.MimoError:
            pass
