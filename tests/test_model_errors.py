"""Bad model files and bad arguments get typed errors naming the problem,
never a crash."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from gguf_edit import rewrite

from mimo_ggml import LanguageModel
from mimo_ggml.errors import (
    BackendError,
    InvalidArgumentError,
    ModelLoadError,
    ModelNotFoundError,
    UnsupportedModelError,
)


@pytest.fixture(scope="module")
def good(tiny_lm):
    return tiny_lm[1]["f32_split"]


def test_missing_file(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not found"):
        LanguageModel(tmp_path / "nope.gguf")
    with pytest.raises(FileNotFoundError):  # also a built-in FileNotFoundError
        LanguageModel(tmp_path / "nope.gguf")


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ModelLoadError, match="directory"):
        LanguageModel(tmp_path)


def test_not_gguf(tmp_path):
    p = tmp_path / "model.gguf"
    p.write_bytes(b"PK\x03\x04 this is a zip, not a model" * 10)
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        LanguageModel(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.gguf"
    p.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        LanguageModel(p)


def test_truncated_data(good, tmp_path):
    p = tmp_path / "truncated.gguf"
    data = good.read_bytes()
    p.write_bytes(data[: len(data) - 1000])
    with pytest.raises(ModelLoadError, match="truncated"):
        LanguageModel(p)


def test_truncated_header(good, tmp_path):
    p = tmp_path / "header.gguf"
    p.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        LanguageModel(p)


def test_wrong_architecture(good, tmp_path):
    p = rewrite(good, tmp_path / "llama.gguf", arch="mimo_tokenizer")
    with pytest.raises(UnsupportedModelError, match="tokenizer"):
        LanguageModel(p)


def test_missing_tensor(good, tmp_path):
    p = rewrite(good, tmp_path / "missing.gguf", drop="model.layers.1.ffn.up.weight")
    with pytest.raises(ModelLoadError, match=r"model\.layers\.1\.ffn\.up\.weight"):
        LanguageModel(p)


def test_wrong_shape(good, tmp_path):
    p = rewrite(good, tmp_path / "shape.gguf", shrink="model.layers.0.attn.k.weight")
    with pytest.raises(ModelLoadError, match=r"attn\.k\.weight.*shape"):
        LanguageModel(p)


def test_missing_key(good, tmp_path):
    p = rewrite(good, tmp_path / "nokey.gguf", drop_key="mimo_asr.llm.num_heads")
    with pytest.raises(ModelLoadError, match="num_heads"):
        LanguageModel(p)


def test_bad_arguments(good):
    with pytest.raises(InvalidArgumentError, match="kv_type"):
        LanguageModel(good, kv_type="q4")
    with pytest.raises(InvalidArgumentError, match="n_threads"):
        LanguageModel(good, n_threads=0)
    with pytest.raises(BackendError, match="not available"):
        LanguageModel(good, device="cuda:7")
    with pytest.raises(InvalidArgumentError, match="device index"):
        LanguageModel(good, device="cuda:x")
    with LanguageModel(good, device="cpu", n_ctx=16) as lm:
        with pytest.raises(InvalidArgumentError, match="vocabulary"):
            lm.eval([0, lm.n_vocab])
        with pytest.raises(InvalidArgumentError, match="context is full"):
            lm.eval(list(range(17)))
        with pytest.raises(InvalidArgumentError, match="exactly one"):
            lm._native.eval(None, None, 1, False)
        with pytest.raises(InvalidArgumentError, match="embeddings"):
            lm.eval(embeddings=np.zeros((3, 5), np.float32))
        with pytest.raises(InvalidArgumentError, match="temperature"):
            lm._native.generator([1, 2], 4, temperature=-1)
        with pytest.raises(InvalidArgumentError, match="top_k"):
            lm._native.generator([1, 2], 4, top_k=10**12)
        with pytest.raises(InvalidArgumentError, match="seed"):
            lm._native.generator([1, 2], 4, seed=-1)
        with pytest.raises(InvalidArgumentError, match="out of range"):  # not wrapped into a valid id
            lm.eval([2**32 + 5])
        with pytest.raises(InvalidArgumentError, match="out of range"):
            lm._native.eval(np.array([2**32 + 5]), None, 1, False)
        with pytest.raises(InvalidArgumentError, match="vocabulary"):
            lm.eval([-1])
        lm.eval([1, 2, 3])
        assert lm.n_past == 3
    with pytest.raises(InvalidArgumentError, match="closed"):
        lm.eval([1])


def test_prompt_with_lone_surrogates_is_a_typed_error():
    from mimo_ggml.text_tokenizer import TextTokenizer

    tok = TextTokenizer.from_gguf_fields(["a", "b", "ab"], ["a b"])
    with pytest.raises(InvalidArgumentError, match="not valid Unicode"):
        tok.encode("a\udc80b")
