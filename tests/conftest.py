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
