"""Load test of ``mimo-ggml serve`` on 127.0.0.1.

C clients start together and each sends R requests one after another (a mix
of transcriptions of different clips and chat completions) with the real
``openai`` client, retries off, to a server with a pool of S sessions per
model and a queue of Q. Every answer must be either the correct one (equal
to ``Session.transcribe`` / ``TextSession.generate`` run sequentially in this
process with the same settings) or a 429: none lost, none another
request's answer. Prints requests/s, p50/p95 latency and the server's RSS
(at start with S sessions, at start with one session, and peak under load).

    python bench/server_load.py                     # tiny random models built here; 32 x 4, pool of 4
    python bench/server_load.py --asr mimo-asr.gguf --text mimo2.gguf --clients 8 --requests 2

Bounded: C x R requests, each with a 300 s timeout; loopback only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

CLIPS = [(2.0, 16000, 11), (3.5, 24000, 12), (5.0, 16000, 13), (7.5, 44100, 14)]  # seconds, rate, seed
CHATS = ["the quick brown fox", "MiMo counts 0123456789"]
CHAT_TOKENS = 24
MAX_CLIP = 4.0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _inputs(asr_path, text_path, workdir: Path, threads: int, n_ctx: int, sizes: dict):
    """The request kinds and their sequential answers; ``sizes`` gets the
    weights and per-session KV bytes of the models."""
    import soundfile as sf

    from mimo_ggml import Session, TextSession
    from mimo_ggml.chat_template import render_chat
    from mimo_ggml.server.runtime import special_tokens
    from test_transcribe import speechlike

    kinds = []
    with Session(asr_path, device="cpu", n_threads=threads, kv_type="f32", n_ctx=n_ctx) as asr:
        for seconds, rate, seed in CLIPS:
            path = workdir / f"clip-{seed}.wav"
            sf.write(path, speechlike(seconds, rate, seed=seed, pauses=(seconds / 2,)), rate, subtype="PCM_16")
            want = asr.transcribe(str(path), max_clip_s=MAX_CLIP, vad=False).text
            kinds.append(("audio", path.read_bytes(), path.name, want))
        sizes["weights"] = asr.model.weights_bytes
        sizes["kv"] = asr.kv_bytes
    if text_path is not None:
        with TextSession(text_path, device="cpu", n_threads=threads, kv_type="f32", n_ctx=n_ctx) as text:
            for content in CHATS:
                messages = [{"role": "user", "content": content}]
                prompt = render_chat(messages, text.model.chat_template, **special_tokens(str(text_path)))
                kinds.append(("chat", messages, None, text.generate(prompt, max_tokens=CHAT_TOKENS).text))
            sizes["weights"] += text.model.weights_bytes
            sizes["kv"] += text.kv_bytes
    answers = [k[3] for k in kinds]
    assert len(set(answers)) == len(answers), "every input needs a distinct answer to tell mixed results apart"
    return kinds


def run_load(asr_path, text_path, workdir, *, clients: int = 32, requests_per_client: int = 4, sessions: int = 4,
             max_queue: int = 8, threads: int = 1, n_ctx: int = 512, timeout: float = 300.0,
             compare_rss: bool = True) -> dict:
    import openai

    from server_helpers import ServerProcess

    workdir = Path(workdir)
    sizes: dict = {}
    kinds = _inputs(asr_path, text_path, workdir, threads, n_ctx, sizes)
    answers = {k[3]: i for i, k in enumerate(kinds)}
    base = ["-m", str(asr_path), "--device", "cpu", "-t", str(threads), "--kv-type", "f32",
            "--max-clip", str(MAX_CLIP), "--no-vad", "--n-ctx", str(n_ctx), "--text-n-ctx", str(n_ctx),
            "--max-queue", str(max_queue)]
    if text_path is not None:
        base += ["--text-model", str(text_path)]
    rss_one = None
    if compare_rss:
        with ServerProcess(base + ["--sessions", "1"], workdir) as one:
            rss_one = one.rss_kib("VmRSS")
    results: list[tuple[str, float]] = []  # (outcome, seconds)
    lock = threading.Lock()
    with ServerProcess(base + ["--sessions", str(sessions)], workdir) as srv:
        health = json.loads(urllib.request.urlopen(srv.url + "/health").read())
        rss_start = srv.rss_kib("VmRSS")
        start = threading.Barrier(clients + 1)

        def client_loop(c: int) -> None:
            api = openai.OpenAI(base_url=srv.url + "/v1", api_key="none", max_retries=0, timeout=timeout)
            start.wait()
            for r in range(requests_per_client):
                i = (c + r) % len(kinds)
                kind, payload, name, want = kinds[i]
                t0 = time.perf_counter()
                try:
                    if kind == "audio":
                        got = api.audio.transcriptions.create(model="m", file=(name, payload)).text
                    else:
                        got = api.chat.completions.create(model="m", messages=payload,
                                                          max_tokens=CHAT_TOKENS).choices[0].message.content
                    outcome = "ok" if got == want else "mixed" if got in answers else "wrong"
                except openai.RateLimitError:
                    outcome = "rejected"
                except Exception as exc:  # noqa: BLE001 - counted as lost, reported
                    outcome = f"lost: {type(exc).__name__}: {exc}"
                with lock:
                    results.append((outcome, time.perf_counter() - t0))

        workers = [threading.Thread(target=client_loop, args=(c,), daemon=True) for c in range(clients)]
        for w in workers:
            w.start()
        start.wait()
        t_start = time.perf_counter()
        for w in workers:
            w.join(timeout * requests_per_client)
        wall = time.perf_counter() - t_start
        rss_peak = srv.rss_kib("VmHWM")
    ok = [s for o, s in results if o == "ok"]
    lost = [o for o, _ in results if o.startswith("lost")]
    sent = clients * requests_per_client
    return {
        "clients": clients, "requests_per_client": requests_per_client, "sessions": sessions, "max_queue": max_queue,
        "requests": sent, "answered": len(results),
        "ok": len(ok), "rejected": sum(o == "rejected" for o, _ in results),
        "wrong": sum(o in ("wrong", "mixed") for o, _ in results), "mixed": sum(o == "mixed" for o, _ in results),
        "lost": len(lost) + (sent - len(results)), "lost_examples": lost[:3],
        "wall_s": wall, "ok_per_s": len(ok) / wall if wall > 0 else 0.0,
        "answered_per_s": len(results) / wall if wall > 0 else 0.0,
        "p50_s": _percentile(ok, 0.50), "p95_s": _percentile(ok, 0.95),
        "rss_start_mib": rss_start / 1024, "rss_one_session_mib": rss_one / 1024 if rss_one else None,
        "rss_peak_mib": rss_peak / 1024,
        "weights_mib": sizes["weights"] / (1 << 20), "kv_per_session_mib": sizes["kv"] / (1 << 20),
        "models": [m["id"] for m in health.get("models", [])],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--asr", help="mimo_asr GGUF (default: a tiny random one built here)")
    p.add_argument("--text", help="mimo2 GGUF (default: a tiny random one built here; 'none' for speech only)")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=4, help="requests per client")
    p.add_argument("--sessions", type=int, default=4)
    p.add_argument("--max-queue", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="CPU threads per session")
    p.add_argument("--n-ctx", type=int, default=512,
                   help="context positions per session (small: the KV caches stay apart from the weights in RSS)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mimo-load-") as tmp:
        tmp = Path(tmp)
        asr = args.asr
        if asr is None:
            from asr_fixtures import tiny_asr_files

            asr = tiny_asr_files(tmp / "asr")["f32_fused"]
        text = None if args.text == "none" else args.text
        if args.text is None:
            from server_helpers import tiny_text_model

            text = tiny_text_model(tmp / "text")
        r = run_load(asr, text, tmp, clients=args.clients, requests_per_client=args.requests,
                     sessions=args.sessions, max_queue=args.max_queue, threads=args.threads, n_ctx=args.n_ctx)
    print(f"{r['clients']} clients x {r['requests_per_client']} requests, pool of {r['sessions']} sessions per model, "
          f"queue {r['max_queue']}")
    print(f"  answered {r['answered']}/{r['requests']}: {r['ok']} correct, {r['rejected']} rejected (429), "
          f"{r['wrong']} wrong ({r['mixed']} another request's answer), {r['lost']} lost")
    for example in r["lost_examples"]:
        print(f"    {example}")
    print(f"  {r['ok_per_s']:.1f} correct requests/s ({r['answered_per_s']:.1f} answered/s) over {r['wall_s']:.1f} s; "
          f"latency of correct answers p50 {r['p50_s'] * 1000:.0f} ms, p95 {r['p95_s'] * 1000:.0f} ms")
    one = f", {r['rss_one_session_mib']:.0f} MiB with one session" if r["rss_one_session_mib"] else ""
    print(f"  server RSS: {r['rss_start_mib']:.0f} MiB at start with {r['sessions']} sessions{one}; "
          f"peak {r['rss_peak_mib']:.0f} MiB")
    if r["rss_one_session_mib"]:
        extra = r["sessions"] - 1
        print(f"  {extra} more sessions added {r['rss_start_mib'] - r['rss_one_session_mib']:.0f} MiB: their KV caches "
              f"are {extra * r['kv_per_session_mib']:.0f} MiB; {extra} more copies of the weights would be "
              f"{extra * r['weights_mib']:.0f} MiB")
    return 0 if r["wrong"] == 0 and r["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
