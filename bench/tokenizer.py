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
from common import N_STAGES, TOK, peak_rss_mib, random_tokenizer, speech_like  # noqa: E402

from mimo_ggml import AudioTokenizer  # noqa: E402
from mimo_ggml.audio import log_mel, pad_chunk, tokenizer_chunks  # noqa: E402

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
