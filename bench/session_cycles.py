"""Memory over many open -> transcribe 1 s -> close cycles.

A long-running process (a server, a notebook) opens and closes sessions and
models again and again; its memory must not grow. This builds the tiny
random MiMo-V2.5-ASR model of the tests, then runs N cycles of
``Session(path)`` (a model of its own each time: load, transcribe 1 s,
close) and prints RSS after the warm-up and every --every cycles, and the
growth after warm-up.

    python bench/session_cycles.py --cycles 1000
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from asr_fixtures import tiny_asr_files  # noqa: E402

from mimo_ggml import Session  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--every", type=int, default=100)
    args = ap.parse_args()
    files = tiny_asr_files(tempfile.mkdtemp(prefix="mimo-cycles-"))
    audio = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)

    def cycle():
        with Session(files["f32_fused"], device="cpu", n_threads=1, n_ctx=256) as s:
            s.transcribe((audio, 16000), language="en", max_new_tokens=2, vad=False)

    t0 = time.perf_counter()
    for _ in range(args.warmup):
        cycle()
    gc.collect()
    base = rss_mib()
    print(f"after {args.warmup} warm-up cycles: RSS {base:.1f} MiB")
    for i in range(1, args.cycles + 1):
        cycle()
        if i % args.every == 0:
            gc.collect()
            now = rss_mib()
            print(f"cycle {i:5d}: RSS {now:7.1f} MiB ({now - base:+.1f} MiB since warm-up)")
    gc.collect()
    print(f"growth after warm-up over {args.cycles} cycles: {rss_mib() - base:+.1f} MiB "
          f"({time.perf_counter() - t0:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
