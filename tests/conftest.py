"""Shared pytest fixtures: tiny random checkpoints built once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory):
    """(reference transformers model, {variant: GGUF path}) for a tiny Qwen2."""
    from lm_fixtures import convert, make_tiny_qwen2

    root = tmp_path_factory.mktemp("tiny_lm")
    model = make_tiny_qwen2(root / "hf")
    files = {
        "f32_fused": convert(root / "hf", root / "lm-f32-fused.gguf", dtype="f32", fuse_qkv=True),
        "f32_split": convert(root / "hf", root / "lm-f32-split.gguf", dtype="f32", fuse_qkv=False),
        "f16_fused": convert(root / "hf", root / "lm-f16-fused.gguf", dtype="f16", fuse_qkv=True),
    }
    return model, files


@pytest.fixture(scope="session")
def tiny_asr(tmp_path_factory):
    """Tiny MiMo-V2.5-ASR + audio-tokenizer checkpoints (official layout) and
    their GGUF files side by side (see asr_fixtures.tiny_asr_files)."""
    from asr_fixtures import tiny_asr_files

    return tiny_asr_files(tmp_path_factory.mktemp("tiny_asr"))
