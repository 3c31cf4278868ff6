"""Decode and prefill speed of the ASR language model at its real size.

Both CPU weight layouts are timed: ggml's repacked one and the plain one.

Builds (once, cached) a random-weight LM with MiMo-V2.5-ASR's shapes — 36
layers, hidden 4096, 32/8 heads, ffn 11008, vocab 151680 — with every matrix
quantized to Q4_K by ggml, then measures prefill tokens/s (64 positions) and
decode ms/token, and prints them beside the memory roofline: bytes read per
decoded token divided by the read bandwidth measured in this same run.

    python bench/lm_decode.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import lm_decode_bytes, measure_read_bandwidth, peak_rss_mib, random_asr_lm  # noqa: E402

from mimo_ggml import LanguageModel  # noqa: E402


def run(path: Path, args, repack: bool) -> tuple[float, float, float]:
    """(prefill tokens/s, decode s/token, load s) for one weight layout."""
    t0 = time.perf_counter()
    lm = LanguageModel(path, device="cpu", n_threads=args.threads, n_ctx=512, kv_type=args.kv_type,
                       repack_weights=repack)
    load_s = time.perf_counter() - t0
    prompt = np.random.default_rng(0).integers(0, 151643, 64).astype(np.int32)
    lm.eval(prompt)  # warm-up: page in weights, build graphs
    lm.reset()
    t0 = time.perf_counter()
    logits = lm.eval(prompt)
    prefill_s = time.perf_counter() - t0
    tok = int(logits[0].argmax())
    lm.step(tok)  # warm the step graph
    t0 = time.perf_counter()
    for _ in range(args.decode):
        tok = int(lm.step(tok).argmax())
    decode_s = (time.perf_counter() - t0) / args.decode
    lm.close()
    return 64 / prefill_s, decode_s, load_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/mimo-ggml-bench"))
    ap.add_argument("--qtype", default="q4_K")
    ap.add_argument("--layers", type=int, default=36, help="fewer layers for a quick look (roofline scales)")
    ap.add_argument("--decode", type=int, default=64, help="decoded tokens timed")
    ap.add_argument("--kv-type", default="f16")
    args = ap.parse_args()

    path = random_asr_lm(Path(args.cache), qtype=args.qtype, n_layer=args.layers)
    weight_bytes, kv_bytes = lm_decode_bytes(path, 64 + args.decode // 2)
    bandwidth = measure_read_bandwidth(args.threads)
    roofline_s = (weight_bytes + kv_bytes) / bandwidth
    print(f"model: {path.name} ({weight_bytes / 2**30:.2f} GiB read per token), {args.threads} threads")
    print(f"memory read bandwidth (measured now, {args.threads} threads, AVX2 loads, huge pages): "
          f"{bandwidth / 1e9:.1f} GB/s -> decode roofline {roofline_s * 1000:.1f} ms/token")
    for repack in (True, False):
        prefill_tps, decode_s, load_s = run(path, args, repack)
        layout = "repacked (default)" if repack else "plain + huge pages"
        print(f"[{layout:20s}] load {load_s:5.1f} s | prefill {prefill_tps:6.1f} tokens/s (64 positions) | "
              f"decode {decode_s * 1000:6.1f} ms/token = {roofline_s / decode_s * 100:3.0f}% of roofline")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
