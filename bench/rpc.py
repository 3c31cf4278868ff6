"""Decode over ggml RPC on loopback, beside the same model run locally.

The real-size random Q4_K ASR language model (bench/common.py) runs three
ways in one process: on the local CPU, whole on a `mimo-ggml rpc-server`
started on 127.0.0.1 (same machine, same thread count), and with its layers
split half and half between the local CPU and that server. For each it
prints prefill tokens/s of a --prompt-token prompt and decode ms/token over
--tokens steps (median of --repeats, the three ways alternated in each
repeat). On one machine the server's compute is the local one's; what the
difference shows is what the protocol and the copies cost per token.

    python bench/rpc.py --threads 2

Needs a build with the RPC backend (a wheel, or MIMO_GGML_BUNDLE_GGML=1).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import random_asr_lm  # noqa: E402

from mimo_ggml import LanguageModel, system_info  # noqa: E402


def start_server(threads: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "mimo_ggml", "rpc-server", "--host", "127.0.0.1", "--port",
                             str(port), "--threads", str(threads)], stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("rpc-server did not start")


def measure(lm: LanguageModel, prompt: np.ndarray, steps: int) -> tuple[float, float]:
    """(prefill tokens/s, decode ms/token) from a fresh context."""
    lm.reset()
    t0 = time.perf_counter()
    tok = int(lm.eval(prompt)[-1].argmax())
    prefill = len(prompt) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(steps):
        tok = int(lm.step(tok)[0].argmax())
    return prefill, 1000 * (time.perf_counter() - t0) / steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/mimo-ggml-bench"))
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if not system_info().get("build", {}).get("rpc"):
        print("this build has no RPC backend (install a wheel, or build with MIMO_GGML_BUNDLE_GGML=1)")
        return 2
    path = random_asr_lm(Path(args.cache), qtype="q4_K", with_audio=True)
    proc, endpoint = start_server(args.threads)
    try:
        ways = {"local": dict(device="cpu"), "rpc": dict(device=f"rpc:{endpoint}"),
                "split": dict(devices=["cpu", f"rpc:{endpoint}"])}
        models = {}
        for name, where in ways.items():
            t0 = time.perf_counter()
            models[name] = LanguageModel(path, **where, n_threads=args.threads, n_ctx=args.prompt_tokens + 64)
            print(f"{name:6s} load {time.perf_counter() - t0:6.1f} s  weights {models[name].weights_bytes_by_device}")
        prompt = np.random.default_rng(0).integers(0, 151000, args.prompt_tokens)
        for m in models.values():
            measure(m, prompt[:8], 2)  # graphs built, memory touched
        got: dict[str, list[tuple[float, float]]] = {n: [] for n in models}
        for _ in range(args.repeats):
            for name, m in models.items():
                got[name].append(measure(m, prompt, args.tokens))
        print(f"\n{path.name}, {args.threads} threads, {args.prompt_tokens}-token prompt, {args.tokens} steps, "
              f"median of {args.repeats}:")
        base = statistics.median(d for _, d in got["local"])
        for name, runs in got.items():
            pre = statistics.median(p for p, _ in runs)
            dec = statistics.median(d for _, d in runs)
            print(f"  {name:6s} prefill {pre:7.1f} tok/s   decode {dec:7.1f} ms/token "
                  f"({min(d for _, d in runs):.1f}-{max(d for _, d in runs):.1f})   {dec / base:5.2f}x local")
        for m in models.values():
            m.close()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
