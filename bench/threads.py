"""ggml's own thread pool against an OpenMP build, on a quiet machine and
beside competing CPU-bound processes.

Each run is a fresh process that loads the real-size random ASR files
(bench/common.py) and transcribes --seconds of speech-like audio (a fixed
token budget, no VAD), with MIMO_GGML_BACKEND_DIR pointing at one build's
backend modules (a dispatching mimo-ggml install loads them from there). The
builds alternate within every repeat, so a burst of outside load hits both.
"--load N" starts N busy-looping processes for the duration of the run.
Prints the transcription wall time per build and load: median (min-max).

    python bench/threads.py --build pool=/path/to/mimo_ggml/ggml --build omp=/path/to/omp/lib --load 0 1

Needs a dispatching install (a wheel, or MIMO_GGML_BUNDLE_GGML=1): a source
build links its ggml and ignores MIMO_GGML_BACKEND_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import random_asr_files  # noqa: E402

RUN = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from common import speech_like
from mimo_ggml import Session, system_info
lm, tok, seconds, threads = sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
with Session(lm, tok, device="cpu", n_threads=threads) as asr:
    audio = speech_like(seconds)
    asr.transcribe((audio[:24000], 24000), language="en", max_new_tokens=2, vad=False)  # graphs, page cache
    t0 = time.perf_counter()
    asr.transcribe((audio, 24000), language="en", max_new_tokens=round(25 * seconds / 11), vad=False)
    wall = time.perf_counter() - t0
info = system_info()
print(json.dumps({"wall": wall, "variant": info.get("cpu_variant"), "module": info.get("cpu_module"),
                  "openmp": info.get("features", {}).get("CPU", {}).get("OPENMP") == "1"}))
"""

SPIN = "while True:\n    pass\n"


def one_run(build_dir: str, files, seconds: float, threads: int, load: int) -> dict:
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(load)]
    try:
        env = dict(os.environ, MIMO_GGML_BACKEND_DIR=build_dir)
        out = subprocess.run([sys.executable, "-c", RUN, str(Path(__file__).resolve().parent), str(files[0]),
                              str(files[1]), str(seconds), str(threads)],
                             env=env, capture_output=True, text=True, timeout=1800)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    if out.returncode != 0:
        raise RuntimeError(f"run with {build_dir} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", action="append", required=True, metavar="NAME=DIR",
                    help="a folder of ggml backend modules (libggml-cpu-*.so), named")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/mimo-ggml-bench"))
    ap.add_argument("--seconds", type=float, default=11.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--load", type=int, nargs="+", default=[0, 1], help="competing busy processes")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    builds = dict(b.split("=", 1) for b in args.build)
    files = random_asr_files(Path(args.cache))
    print(f"{args.seconds:g} s of audio, {args.threads} threads, {os.cpu_count()} cores; files {files[0].name}")
    walls: dict[tuple[str, int], list[float]] = {}
    for load in args.load:
        for r in range(args.repeats):
            for name, folder in builds.items():
                res = one_run(folder, files, args.seconds, args.threads, load)
                walls.setdefault((name, load), []).append(res["wall"])
                if r == 0 and load == args.load[0]:
                    print(f"  {name}: variant {res['variant']}, OpenMP {'yes' if res['openmp'] else 'no'} "
                          f"({folder}/{res['module']})")
                print(f"  load {load}, repeat {r + 1}, {name}: {res['wall']:.2f} s", flush=True)
    print("\nwall seconds, median (min-max):")
    for load in args.load:
        row = [f"{name} {statistics.median(walls[(name, load)]):6.2f} ({min(walls[(name, load)]):.2f}-"
               f"{max(walls[(name, load)]):.2f})" for name in builds]
        print(f"  {load} competing process{'es' if load != 1 else ''}: " + "   ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
