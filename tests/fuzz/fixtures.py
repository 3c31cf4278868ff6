"""The three GGUF files the fuzzer mutates, built from the test fixtures:
the tiny MiMo-V2.5-ASR file (LM + audio adapter + BPE vocabulary), the tiny
audio tokenizer, and a tiny mimo2 MoE text model with a tokenizer."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

# hybrid full / sliding-window layers, one dense and two MoE layers: every mimo2 code path, small
MIMO2_FUZZ_GEOMETRY = dict(hidden=64, layers=3, pattern=(0, 1, 0), moe=(0, 1, 1), heads=4, kv_full=1, kv_swa=2,
                           experts=4, top_k=2, moe_ffn=32, ffn=64, vocab=300)


def build_mimo2(root: Path) -> Path:
    import moe_fixtures as mf
    from mimo_ggml.convert.mimo2 import convert_mimo2

    folder = root / "mimo2_hf"
    mf.write_synthetic_checkpoint(folder, mf.Geometry(**MIMO2_FUZZ_GEOMETRY), linear="bf16", experts="bf16",
                                  fused_qkv=False, extras=False, seed=11)
    mf.write_tokenizer(folder)
    out = root / "mimo2-f32.gguf"
    convert_mimo2(folder, out, dtype="f32")
    return out


def build_fixtures(root: Path, asr_files: dict | None = None) -> dict:
    """{'asr': ..., 'tokenizer': ..., 'mimo2': ...} GGUF paths under root.
    asr_files: the tests' tiny_asr fixture, if already built."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if asr_files is None:
        from asr_fixtures import tiny_asr_files

        asr_files = tiny_asr_files(root / "asr")
    return {"asr": Path(asr_files["f32_fused"]), "tokenizer": Path(asr_files["tokenizer"]), "mimo2": build_mimo2(root)}
