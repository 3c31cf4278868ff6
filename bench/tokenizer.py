"""Speed of the audio tokenizer (encoder + 8 RVQ stages) at its real size.

Writes (once, cached under --cache) a random-weight ``mimo_tokenizer`` GGUF
with the real shapes — d 1280, 32 layers, 20 heads, ffn 5120, 20 codebooks —
straight from gguf-py's GGUFWriter (no Hugging Face checkpoint): matrices F16
(or a ggml quantized type with --qtype, e.g. q4_K), conv kernels and
codebooks F16 and 1-D tensors F32, as in CrispASR's files. Then it encodes
30 s and 120 s of audio and prints seconds of audio per second and the
achieved GFLOP/s (analytic count of the encoder + RVQ matmuls and attention)
beside the machine's peak measured in the same run: a 2048³ numpy float32
matmul (OpenBLAS sgemm) on the same number of threads.

    python bench/tokenizer.py --threads 2
    python bench/tokenizer.py --threads 2 --qtype q4_K
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/mimo-ggml-bench"))
    ap.add_argument("--qtype", default="f16", help="type of the encoder matrices: f16 (default) or q4_K, q8_0…")
    ap.add_argument("--seconds", default="30,120", help="audio lengths to time, comma-separated")
    ap.add_argument("--layers", type=int, default=32, help="fewer layers for a quick look (FLOP count follows)")
    return ap.parse_args()


ARGS = parse_args()
# numpy's BLAS reads its thread count at import: the peak is measured on the
# same number of threads as the tokenizer
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mib  # noqa: E402

from mimo_ggml import AudioTokenizer, _core  # noqa: E402
from mimo_ggml.audio import log_mel, pad_chunk, tokenizer_chunks  # noqa: E402
from mimo_ggml.convert.common import PlannedTensor, write_gguf  # noqa: E402

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


def chunk_flops(t_mel: int, n_layer: int) -> float:
    """Multiply-add FLOPs (2 per MAC) of one chunk: convs, projections, attention, RVQ distances."""
    d, ff = TOK["d"], TOK["ffn"]
    t_enc = (t_mel - 1) // 2 + 1
    t_code = -(-t_enc // 2)
    f = 2 * t_mel * (3 * TOK["n_mels"]) * d  # conv1
    f += 2 * t_enc * (3 * d) * d  # conv2
    f += n_layer * (2 * t_enc * (4 * d * d + 2 * d * ff) + 2 * 2 * t_enc * t_enc * d)  # projections + QK^T, AV
    f += 2 * t_code * (2 * d) * d  # down-sampler
    f += 2 * t_code * d * sum(TOK["codebooks"][:N_STAGES])  # RVQ distances
    return float(f)


def measure_peak(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a float32 n×n×n numpy matmul (best of repeats)."""
    a = np.random.default_rng(1).random((n, n), dtype=np.float32)
    b = np.random.default_rng(2).random((n, n), dtype=np.float32)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def speech_like(seconds: float, sr: int = 24000) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    env = np.repeat(rng.uniform(0.05, 0.5, n // 2400 + 1), 2400)[:n]
    return (env * np.sin(2 * np.pi * (150 + 300 * (t % 3.0)) * t) + 0.03 * rng.standard_normal(n)).astype(np.float32)


def main() -> int:
    path = random_tokenizer(Path(ARGS.cache), ARGS.qtype, ARGS.layers)
    t0 = time.perf_counter()
    tok = AudioTokenizer(path, device="cpu", n_threads=ARGS.threads)
    load_s = time.perf_counter() - t0
    tok.encode(speech_like(1.0), sample_rate=24000)  # warm-up: threads, page-in

    peak = measure_peak()
    print(f"model: {path.name} ({path.stat().st_size / 2**20:.0f} MiB), {ARGS.threads} threads, load {load_s:.1f} s")
    print(f"peak (numpy float32 2048^3 matmul, OpenBLAS, {ARGS.threads} threads, measured now): "
          f"{peak / 1e9:.1f} GFLOP/s")
    for sec in [float(s) for s in ARGS.seconds.split(",") if s]:
        wave = speech_like(sec)
        bounds = tokenizer_chunks(len(wave))
        flops = sum(chunk_flops(len(pad_chunk(wave[s:e])) // 240 + 1, ARGS.layers) for s, e in bounds)
        t0 = time.perf_counter()
        mels = [log_mel(pad_chunk(wave[s:e])) for s, e in bounds]
        mel_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        codes = tok.encode(wave, sample_rate=24000)
        total_s = time.perf_counter() - t0
        enc_s = total_s - mel_s
        print(
            f"{sec:6.0f} s audio: {total_s:7.2f} s  ({sec / total_s:6.2f} s of audio per second)  "
            f"codes {codes.shape}  mel front-end {mel_s:.2f} s  "
            f"encoder+RVQ {flops / 1e12:.2f} TFLOP in ~{enc_s:.2f} s = {flops / enc_s / 1e9:.1f} GFLOP/s "
            f"({flops / enc_s / peak * 100:.0f}% of peak)"
        )
        del mels
    tok.close()
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
