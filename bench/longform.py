"""Long-form transcription throughput: batched against one-by-one decoding.

Real-size random weights (bench/common.py: the Q4_K LM with its adapter and
the real vocabulary, the Q4_K tokenizer), speech-like audio with a pause
every few seconds, cut into clips of at most --clip seconds at the pauses
(the VAD's 15 s segments are as long; random-weight audio is no speech to a
real VAD, so the pause splitter stands in for it). Random weights never
emit a stop token, so every clip decodes a fixed budget of about
--tokens-per-s tokens per second of audio. Both runs share one loaded model
and differ only in batch_size; the script prints audio seconds per wall
second for each, their ratio, per-phase times, decode's share of the wall
time, and peak RSS. Beside them it prints the compute floor of batching: a
batched decode step still costs the FLOPs of its rows, so decode cannot go
below the new tokens times the LM's per-row cost in a large batch (measured
in the same run: a 256-row forward of the same LM). With batch 1's encode
and prefill times that bounds the best batched wall time, its speed-up and
decode's share.

    python bench/longform.py --threads 2 --minutes 10 --batch-size 8
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mib, random_asr_files, speech_like  # noqa: E402

from mimo_ggml import AsrModel, LanguageModel  # noqa: E402

RATE = 24000


def audio_with_pauses(seconds: float, every: float = 7.0, pause: float = 0.6) -> np.ndarray:
    """speech_like audio with a silent gap every ``every`` seconds (jittered)."""
    x = speech_like(seconds, RATE)
    rng = np.random.default_rng(1)
    t = every * rng.uniform(0.6, 1.4)
    while t + pause < seconds:
        x[int(t * RATE): int((t + pause) * RATE)] = 0.0
        t += pause + every * rng.uniform(0.6, 1.4)
    return x


def lm_seconds_per_row(path: Path, threads: int, rows: int = 256) -> float:
    """Seconds per row of one forward over `rows` token rows (the best case of a batched step)."""
    ids = np.random.default_rng(2).integers(0, 151000, rows)
    with LanguageModel(path, device="cpu", n_threads=threads, n_ctx=rows + 8) as m:
        m.eval(ids[:16])  # builds and warms up
        m.reset()
        t0 = time.perf_counter()
        m.eval(ids)
        return (time.perf_counter() - t0) / rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/mimo-ggml-bench"))
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--clip", type=float, default=15.0, help="longest clip, seconds")
    ap.add_argument("--tokens-per-s", type=float, default=3.0, help="token budget per second of audio")
    ap.add_argument("--batch-size", type=int, nargs="+", default=[8])
    args = ap.parse_args()

    lm, tok = random_asr_files(Path(args.cache))
    t0 = time.perf_counter()
    model = AsrModel.load(lm, tok, device="cpu", n_threads=args.threads)
    print(f"model: {lm.name} + {tok.name}, {args.threads} threads, load {time.perf_counter() - t0:.1f} s")
    audio = audio_with_pauses(60.0 * args.minutes)
    seconds = len(audio) / RATE
    budget = max(1, round(args.tokens_per_s * args.clip))
    rates, runs = {}, {}
    with model.session(kv_type="f16", n_ctx=1024) as s:
        # graphs and first-touch memory before any timed run, so that batch 1 (timed first) pays none of it
        s.transcribe((audio[: 2 * RATE], RATE), language="en", vad=False, max_new_tokens=2, batch_size=2)
        for batch in [1, *args.batch_size]:
            t0 = time.perf_counter()
            r = s.transcribe((audio, RATE), language="en", vad=False, max_clip_s=args.clip,
                             max_new_tokens=budget, batch_size=batch)
            wall = time.perf_counter() - t0
            rates[batch] = seconds / wall
            n_tok = sum(len(g.tokens) for g in r.segments)
            runs[batch] = (wall, dict(r.timings), n_tok)
            phases = "  ".join(f"{k} {v:6.1f} s" for k, v in r.timings.items())
            print(f"batch {batch:2d}: {seconds:6.0f} s of audio in {wall:7.1f} s = {rates[batch]:5.2f} audio s per s "
                  f"({len(r.segments)} clips, {n_tok} tokens); decode {100 * r.timings['lm_decode'] / wall:4.1f}% "
                  f"of the wall time\n    {phases}")
    for batch in args.batch_size:
        print(f"batch {batch} vs 1: {rates[batch] / rates[1]:.2f}x the throughput")
    model.close()
    per_row = lm_seconds_per_row(lm, args.threads)
    wall1, t1, n_tok = runs[1]
    floor = n_tok * per_row
    best = t1["audio_encode"] + t1["lm_prefill"] + floor
    print(f"compute floor: the LM costs {1000 * per_row:.0f} ms per row in a 256-row forward, so {n_tok} new "
          f"tokens cost >= {floor:.0f} s however they are batched; with batch 1's encode and prefill the best "
          f"batched run takes >= {best:.0f} s = at most {wall1 / best:.2f}x batch 1, decode >= "
          f"{100 * floor / best:.0f}% of it")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
