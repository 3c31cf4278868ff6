"""End-to-end transcription speed at the real model size.

Random weights with MiMo-V2.5-ASR's shapes — the Q4_K language model with its
audio adapter and the real vocabulary (bench/common.py), and the audio
tokenizer as CrispASR publishes it (Q4_K matrices, F16 convs and codebooks;
bench/tokenizer.py) — transcribe 11 s and 60 s of audio at 2 threads.
Random weights never emit a stop token, so the number of new tokens is fixed
(25 per 11 s, about what real speech yields). Prints per-phase times, the
real-time factor, and the ASR decode loop's time per token (native, no
Python per token) beside a LanguageModel.step loop on the same LM file (one
Python round trip and a logits copy per token).

    python bench/transcribe.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mib, random_asr_files, speech_like  # noqa: E402

from mimo_ggml import LanguageModel, Session  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/mimo-ggml-bench"))
    ap.add_argument("--seconds", type=float, nargs="+", default=[11.0, 60.0])
    ap.add_argument("--step-reference", type=int, default=16,
                    help="LanguageModel.step calls timed for the per-token reference (0: skip)")
    args = ap.parse_args()

    cache = Path(args.cache)
    lm, tok = random_asr_files(cache)
    t0 = time.perf_counter()
    asr = Session(lm, device="cpu", n_threads=args.threads)
    print(f"model: {lm} + {tok.name}, {args.threads} threads, load {time.perf_counter() - t0:.1f} s")
    for seconds in args.seconds:
        audio = speech_like(seconds)
        new_tokens = round(25 * seconds / 11.0)
        t0 = time.perf_counter()
        # random-weight audio is no speech to a VAD: decode it whole, in clips
        result = asr.transcribe((audio, 24000), language="en", max_new_tokens=new_tokens, vad=False)
        wall = time.perf_counter() - t0
        tokens = sum(len(s.tokens) for s in result.segments)
        phases = "  ".join(f"{k} {v:6.2f} s" for k, v in result.timings.items())
        print(f"{seconds:5.1f} s audio, {tokens} new tokens: {wall:6.2f} s wall, real-time factor "
              f"{wall / seconds:.2f} ({seconds / wall:.2f}x real time)\n    {phases}")
        if tokens > 1:
            step_ms = 1000 * result.timings["lm_decode"] / (tokens - 1)  # the first token comes from the prefill
            print(f"    decode loop {step_ms:.1f} ms/token ({tokens - 1} steps)")
    asr.close()
    if args.step_reference:
        with LanguageModel(lm, device="cpu", n_threads=args.threads, n_ctx=512) as ref:
            tok = int(ref.eval(list(range(100, 164)))[0].argmax())
            tok = int(ref.step(tok).argmax())  # warm the step graph
            t0 = time.perf_counter()
            for _ in range(args.step_reference):
                tok = int(ref.step(tok).argmax())
            print(f"LanguageModel.step loop (Python per token): "
                  f"{1000 * (time.perf_counter() - t0) / args.step_reference:.1f} ms/token")
    print(f"peak RSS: {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
