"""mimo-ggml beside the runtimes a user could pick instead, on identical files.

In one run, on the same random-weight files of the real sizes (built once,
cached under --cache), each engine in its own process (their ggml copies
would clash in one):

* ASR language model, Q4_K, 2 threads: prefill tokens/s (64 positions) and
  decode ms/token of mimo-ggml on our ``mimo_asr`` file against llama.cpp
  (``llama-cpp-python``) on the same weights written in llama.cpp's ``qwen2``
  layout, beside the decode roofline (bytes read per token / the memory read
  bandwidth measured in this run);
* end-to-end transcription of 11 s and 60 s of audio by mimo-ggml and by
  CrispASR (``crispasr``, backend ``mimo-asr``) on the same GGUF pair, both
  capped at the same number of new tokens (random weights never stop: 25 per
  11 s, about what real speech yields) in clips of at most 30 s, CrispASR's
  clip length.

Several mimo-ggml installs can be timed in the same run, each by the
interpreter that imports it (``--build NAME=PYTHON``, for instance the
installed wheel against a mimo-ggml linked to a ggml compiled for this CPU);
each figure is printed with the CPU variant that install loaded, its ratio
to the first build and to the peer, and the peak memory (RSS) of the process
that produced it. The peers are optional installs:

    pip install llama-cpp-python      # compiles llama.cpp (~10 min)
    pip install crispasr

in this environment, or in their own venvs passed with --llama-python and
--crispasr-python. A missing peer is skipped with a message.

    python bench/compare.py --threads 2
    python bench/compare.py --build wheel=/venv-wheel/bin/python --build native=/venv-native/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
PROMPT_LEN = 64
NEW_TOKENS_PER_11S = 25
CLIP_S = 30.0  # CrispASR's clip length for mimo-asr


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -------------------------------------------------------------------------------------------------
# workers: each runs in its own process and prints one RESULT line of JSON


def _time_lm(prefill, step) -> dict:
    """Prefill 64 positions (after a warm-up pass) and time ``decode`` greedy steps."""
    prompt = np.random.default_rng(0).integers(0, 151643, PROMPT_LEN).tolist()
    prefill(prompt)  # warm-up: page the weights in, build graphs
    t0 = time.perf_counter()
    tok = prefill(prompt)
    prefill_s = time.perf_counter() - t0
    tok = step(tok)  # warm the single-token path
    n = ARGS.decode
    t0 = time.perf_counter()
    for _ in range(n):
        tok = step(tok)
    decode_s = (time.perf_counter() - t0) / n
    return {"prefill_tps": PROMPT_LEN / prefill_s, "decode_ms": decode_s * 1e3}


def _loaded_ggml() -> str:
    """Which CPU code this mimo-ggml install runs: the variant module a dispatching build picked, or
    the linked ggml's own build (the features it was compiled with)."""
    from mimo_ggml import system_info

    info = system_info()
    if info.get("cpu_variant"):
        return f"{info['cpu_variant']} module"
    features = [k for k, v in info["features"].get("CPU", {}).items() if v == "1" and k.startswith("AVX512")]
    return "linked ggml" + (f" ({' '.join(features)})" if features else " (no AVX-512)")


def worker_mimo_lm(job: dict) -> dict:
    from mimo_ggml import LanguageModel

    lm = LanguageModel(job["model"], device="cpu", n_threads=job["threads"], n_ctx=512, kv_type="f16")

    def prefill(prompt):
        lm.reset()
        return int(lm.eval(prompt)[0].argmax())

    out = _time_lm(prefill, lambda tok: int(lm.step(tok).argmax()))
    out["variant"] = _loaded_ggml()
    return out


def worker_llama_lm(job: dict) -> dict:
    from llama_cpp import Llama

    llm = Llama(job["model"], n_ctx=512, n_batch=512, n_threads=job["threads"], n_threads_batch=job["threads"],
                verbose=False)

    def prefill(prompt):
        llm.reset()
        llm.eval(prompt)
        return int(np.argmax(llm.scores[llm.n_tokens - 1]))

    def step(tok):
        llm.eval([tok])
        return int(np.argmax(llm.scores[llm.n_tokens - 1]))

    out = _time_lm(prefill, step)
    import llama_cpp

    out["version"] = llama_cpp.__version__
    return out


def _audio(job: dict, seconds: float) -> np.ndarray:
    return np.load(job["audio"][str(seconds)])


def worker_mimo_asr(job: dict) -> dict:
    from mimo_ggml import Session

    asr = Session(job["model"], job["tokenizer"], device="cpu", n_threads=job["threads"])
    # random-weight audio is no speech to a VAD: the whole input is decoded in clips, as CrispASR does
    asr.transcribe((_audio(job, 2.0), 16000), language="auto", max_new_tokens=4, vad=False)  # warm-up
    runs = {}
    for seconds, new_tokens in job["runs"]:
        t0 = time.perf_counter()
        r = asr.transcribe((_audio(job, seconds), 16000), language="auto", max_new_tokens=new_tokens,
                           max_clip_s=CLIP_S, vad=False)
        runs[str(seconds)] = {"wall_s": time.perf_counter() - t0,
                              "new_tokens": sum(len(s.tokens) for s in r.segments),
                              "clips": len(r.segments), "phases": dict(r.timings)}
    return {"runs": runs, "variant": _loaded_ggml()}


def worker_crispasr(job: dict) -> dict:
    import crispasr

    s = crispasr.Session(job["model"], n_threads=job["threads"], backend="mimo-asr")
    s.set_codec_path(job["tokenizer"])
    s.set_max_new_tokens(4)
    s.transcribe(_audio(job, 2.0), 16000)  # warm-up
    runs = {}
    for seconds, new_tokens in job["runs"]:
        s.set_max_new_tokens(new_tokens)
        t0 = time.perf_counter()
        segments = s.transcribe(_audio(job, seconds), 16000)
        wall = time.perf_counter() - t0
        runs[str(seconds)] = {"wall_s": wall, "clips": len(segments),
                              "new_tokens": sum(len(seg.tokens) for seg in segments)}
    return {"runs": runs, "version": getattr(crispasr, "__version__", "?")}


WORKERS = {"mimo-lm": worker_mimo_lm, "llama-lm": worker_llama_lm, "mimo-asr": worker_mimo_asr,
           "crispasr": worker_crispasr}


def run_worker(kind: str, job: dict, python: str) -> dict | None:
    """Run one worker in a fresh process; None (with the reason printed) if it failed."""
    cmd = [python, str(HERE), "--worker", kind, "--job", json.dumps(job), "--decode", str(ARGS.decode)]
    env = dict(os.environ, OMP_NUM_THREADS=str(job["threads"]), OPENBLAS_NUM_THREADS=str(job["threads"]))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        print(f"  [{kind}] failed (exit {proc.returncode}):\n{tail}")
        return None
    return json.loads(lines[-1][len("RESULT "):])


def has_module(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


# -------------------------------------------------------------------------------------------------
# the llama.cpp copy of our LM file


def write_qwen2_copy(src: Path, dst: Path) -> Path:
    """The same weights (bytes unchanged) under llama.cpp's ``qwen2`` names and keys.
    A fused attn.qkv is split by rows, which for row-wise quantized blocks is a byte slice."""
    import gguf

    from mimo_ggml.convert.common import PlannedTensor, write_gguf

    if dst.exists():
        return dst
    r = gguf.GGUFReader(src)

    def u32(key):
        return int(r.fields[f"mimo_asr.llm.{key}"].contents())

    d, n_head, n_kv = u32("hidden_size"), u32("num_heads"), u32("num_kv_heads")
    q_rows, kv_rows = d, d // n_head * n_kv
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    merges = r.fields["tokenizer.ggml.merges"].contents()
    plain = {"attn_norm.weight": "attn_norm.weight", "attn.o.weight": "attn_output.weight",
             "ffn_norm.weight": "ffn_norm.weight", "ffn.gate.weight": "ffn_gate.weight",
             "ffn.up.weight": "ffn_up.weight", "ffn.down.weight": "ffn_down.weight"}
    for x in "qkv":
        plain[f"attn.{x}.weight"] = f"attn_{x}.weight"
        plain[f"attn.{x}.bias"] = f"attn_{x}.bias"
    top = {"llm.embed.weight": "token_embd.weight", "llm.final_norm.weight": "output_norm.weight",
           "llm.lm_head.weight": "output.weight"}

    def planned(name, t, rows=None):
        data = np.asarray(t.data)
        if rows is not None:
            data = data[rows[0]:rows[1]]
        return PlannedTensor(name, data.shape, t.tensor_type.name.lower(), lambda d=data: d)

    tensors = []
    for t in r.tensors:
        if t.name in top:
            tensors.append(planned(top[t.name], t))
            continue
        if not t.name.startswith("model.layers."):
            continue  # the audio adapter: not part of the language model
        _, _, i, rest = t.name.split(".", 3)
        blk = f"blk.{i}."
        if rest.startswith("attn.qkv."):
            kind = rest.split(".")[-1]
            for x, (a, b) in zip("qkv", ((0, q_rows), (q_rows, q_rows + kv_rows),
                                         (q_rows + kv_rows, q_rows + 2 * kv_rows))):
                tensors.append(planned(f"{blk}attn_{x}.{kind}", t, (a, b)))
        else:
            tensors.append(planned(blk + plain[rest], t))

    def metadata(w) -> None:
        w.add_string("general.name", "random MiMo-V2.5-ASR LM (benchmark, llama.cpp layout)")
        w.add_uint32("qwen2.context_length", u32("max_position_embeddings"))
        w.add_uint32("qwen2.embedding_length", d)
        w.add_uint32("qwen2.block_count", u32("num_layers"))
        w.add_uint32("qwen2.feed_forward_length", u32("intermediate_size"))
        w.add_uint32("qwen2.attention.head_count", n_head)
        w.add_uint32("qwen2.attention.head_count_kv", n_kv)
        w.add_float32("qwen2.rope.freq_base", float(r.fields["mimo_asr.llm.rope_theta"].contents()))
        w.add_float32("qwen2.attention.layer_norm_rms_epsilon", float(r.fields["mimo_asr.llm.rms_norm_eps"].contents()))
        w.add_string("tokenizer.ggml.model", "gpt2")
        w.add_string("tokenizer.ggml.pre", "qwen2")
        w.add_array("tokenizer.ggml.tokens", list(tokens))
        special = [3 if (t.startswith("<|") and t.endswith("|>")) or t.startswith("[PAD") else 1 for t in tokens]
        w.add_array("tokenizer.ggml.token_type", special)
        w.add_array("tokenizer.ggml.merges", list(merges))
        w.add_uint32("tokenizer.ggml.eos_token_id", tokens.index("<|endoftext|>"))
        w.add_uint32("tokenizer.ggml.padding_token_id", tokens.index("<|endoftext|>"))

    return write_gguf(dst, "qwen2", metadata, tensors)


# -------------------------------------------------------------------------------------------------


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/mimo-ggml-bench"))
    ap.add_argument("--decode", type=int, default=32, help="decode steps timed per engine")
    ap.add_argument("--seconds", type=float, nargs="+", default=[11.0, 60.0], help="audio lengths to transcribe")
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs per LM engine (best is shown)")
    ap.add_argument("--asr-repeats", type=int, default=1, help="alternating transcription runs per engine")
    ap.add_argument("--build", action="append", metavar="NAME=PYTHON",
                    help="a mimo-ggml install to time, by the interpreter that imports it (repeatable; default: this "
                         "interpreter's, as 'mimo-ggml'); ratios are taken against the first")
    ap.add_argument("--only", choices=("lm", "asr"), help="run one of the two comparisons")
    ap.add_argument("--llama-python", default=sys.executable, help="interpreter that has llama_cpp")
    ap.add_argument("--crispasr-python", default=sys.executable, help="interpreter that has crispasr")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--job", help=argparse.SUPPRESS)
    return ap.parse_args()


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def best_of(runs: list[dict]) -> dict:
    """The fastest figures of repeated runs (the host is shared: slower runs met interference)."""
    out = dict(runs[0])
    out["prefill_tps"] = max(r["prefill_tps"] for r in runs)
    out["decode_ms"] = min(r["decode_ms"] for r in runs)
    out["peak_rss_mib"] = max(r["peak_rss_mib"] for r in runs)
    return out


def parse_builds(specs: list[str] | None) -> list[tuple[str, str]]:
    """``NAME=PYTHON`` pairs (default: this interpreter's mimo-ggml)."""
    if not specs:
        return [("mimo-ggml", sys.executable)]
    builds = []
    for spec in specs:
        name, sep, python = spec.partition("=")
        if not sep or not name or not python:
            sys.exit(f"--build expects NAME=PYTHON (an interpreter that imports mimo_ggml), got {spec!r}")
        if not has_module(python, "mimo_ggml"):
            sys.exit(f"--build {spec}: {python} cannot import mimo_ggml")
        builds.append((name, python))
    if len({n for n, _ in builds}) != len(builds):
        sys.exit("--build names must differ")
    return builds


def compare_lm(lm: Path, cache: Path) -> None:
    sys.path.insert(0, str(HERE.parent))
    from common import lm_decode_bytes, measure_read_bandwidth

    llama_file = write_qwen2_copy(lm, cache / "asr-lm-q4_K-qwen2-llama.gguf")
    weight_bytes, kv_bytes = lm_decode_bytes(lm, PROMPT_LEN + ARGS.decode // 2)
    engines = [(name, "mimo-lm", lm, python) for name, python in BUILDS]
    if has_module(ARGS.llama_python, "llama_cpp"):
        engines.append(("llama.cpp", "llama-lm", llama_file, ARGS.llama_python))
    else:
        print(f"  llama.cpp: skipped ({ARGS.llama_python} cannot import llama_cpp; `pip install llama-cpp-python` "
              "or pass --llama-python)")
    # engines alternate over the repeats and the bandwidth is measured before each run, so that a
    # noisy neighbour on the shared host weighs on both and the roofline uses the best bandwidth seen
    results: dict[str, list[dict]] = {name: [] for name, *_ in engines}
    bandwidths = []
    for _ in range(ARGS.repeats):
        for name, kind, path, python in engines:
            bandwidths.append(measure_read_bandwidth(ARGS.threads))
            res = run_worker(kind, {"threads": ARGS.threads, "model": str(path)}, python)
            if res:
                results[name].append(res)
    bandwidth = max(bandwidths)
    roof_ms = (weight_bytes + kv_bytes) / bandwidth * 1e3
    print(f"\n== ASR language model (36 layers, Q4_K, {ARGS.threads} threads; {weight_bytes / 2**30:.2f} GiB read per "
          f"token; read bandwidth {min(bandwidths) / 1e9:.1f}-{bandwidth / 1e9:.1f} GB/s measured beside the runs -> "
          f"roofline {roof_ms:.0f} ms/token; best of {ARGS.repeats} alternating runs)")
    best = {name: best_of(runs) for name, runs in results.items() if runs}
    for name, res in best.items():
        label = f"{name} ({res['version']})" if "version" in res else f"{name} [{res['variant']}]"
        spread = ", ".join(f"{r['decode_ms']:.1f}" for r in results[name])
        print(f"  {label:40s} prefill {res['prefill_tps']:6.2f} tokens/s | decode {res['decode_ms']:6.1f} ms/token "
              f"(runs {spread}) = {roof_ms / res['decode_ms'] * 100:3.0f}% of roofline | "
              f"peak RSS {res['peak_rss_mib']:6.0f} MiB")
    ours = [name for name, _ in BUILDS if name in best]
    for name in ours[1:]:
        a, b = best[name], best[ours[0]]
        print(f"  {name} / {ours[0]}: decode speed {ratio(b['decode_ms'], a['decode_ms'])}, "
              f"prefill speed {ratio(a['prefill_tps'], b['prefill_tps'])}")
    if "llama.cpp" in best:
        peer = best["llama.cpp"]
        for name in ours:
            print(f"  {name} / llama.cpp: decode speed {ratio(peer['decode_ms'], best[name]['decode_ms'])}, "
                  f"prefill speed {ratio(best[name]['prefill_tps'], peer['prefill_tps'])}")


def compare_asr(lm: Path, tok: Path, cache: Path) -> None:
    sys.path.insert(0, str(HERE.parent))
    from common import speech_like

    from mimo_ggml.audio import resample

    audio = {}
    for seconds in sorted(set(ARGS.seconds) | {2.0}):
        path = cache / f"speech-like-{seconds:g}s-16k.npy"
        if not path.exists():
            np.save(path, resample(speech_like(seconds), 24000, 16000).astype(np.float32))
        audio[str(seconds)] = str(path)
    # CrispASR cuts audio into clips of at most 30 s and caps each clip's new tokens: mimo-ggml is run
    # with the same clip limit and per-clip cap, so both generate the same number of tokens
    runs = [(s, round(NEW_TOKENS_PER_11S * min(s, CLIP_S) / 11.0)) for s in ARGS.seconds]
    job = {"threads": ARGS.threads, "model": str(lm), "tokenizer": str(tok), "audio": audio, "runs": runs}
    print(f"\n== end-to-end transcription ({lm.name} + {tok.name}, 16 kHz input, {ARGS.threads} threads; "
          f"best of {ARGS.asr_repeats} alternating runs)")
    engines = [(name, "mimo-asr", python) for name, python in BUILDS]
    if has_module(ARGS.crispasr_python, "crispasr"):
        engines.append(("crispasr", "crispasr", ARGS.crispasr_python))
    else:
        print(f"  crispasr: skipped ({ARGS.crispasr_python} cannot import crispasr; `pip install crispasr` "
              "or pass --crispasr-python)")
    results: dict[str, list[dict]] = {name: [] for name, *_ in engines}
    for _ in range(ARGS.asr_repeats):
        for name, kind, python in engines:
            res = run_worker(kind, job, python)
            if res:
                results[name].append(res)
    done = {name: rs for name, rs in results.items() if rs}

    def wall(name: str, key: str) -> float:
        return min(r["runs"][key]["wall_s"] for r in done[name])

    ours = [name for name, _ in BUILDS if name in done]
    for seconds, new_tokens in runs:
        key = str(seconds)
        print(f"  {seconds:4.0f} s audio, at most {new_tokens} new tokens per clip:")
        for name, rs in done.items():
            best = min(rs, key=lambda r: r["runs"][key]["wall_s"])
            r = best["runs"][key]
            label = f"{name} {best['version']}" if "version" in best else f"{name} [{best['variant']}]"
            spread = ", ".join(f"{x['runs'][key]['wall_s']:.2f}" for x in rs)
            line = (f"    {label:40s} {r['wall_s']:7.2f} s (runs {spread}; {r['clips']} clip{'s' if r['clips'] != 1 else ''}, {r['new_tokens']} tokens, "
                    f"{seconds / r['wall_s']:.2f}x real time")
            if "phases" in r:
                line += "; " + ", ".join(f"{k} {v:.1f}" for k, v in r["phases"].items() if k != "total")
            print(line + ")")
        for name in ours[1:]:
            print(f"    {name} / {ours[0]}: {ratio(wall(ours[0], key), wall(name, key))} the speed")
        if "crispasr" in done:
            for name in ours:
                print(f"    {name} is {ratio(wall('crispasr', key), wall(name, key))} faster than crispasr")
    for name, rs in done.items():
        print(f"  peak RSS {name}: {max(r['peak_rss_mib'] for r in rs):.0f} MiB")


def main() -> int:
    if ARGS.worker:
        out = WORKERS[ARGS.worker](json.loads(ARGS.job))
        out["peak_rss_mib"] = _peak_rss_mib()
        print("RESULT " + json.dumps(out), flush=True)
        return 0
    sys.path.insert(0, str(HERE.parent))
    from common import random_asr_files

    from mimo_ggml import system_info

    cache = Path(ARGS.cache)
    lm, tok = random_asr_files(cache)
    info = system_info()
    # the builds timed print their own CPU code beside each figure; this is the host
    print(f"host: {info['devices'][0]['description']}, {os.cpu_count()} cores; ggml {info['ggml_version']}; "
          f"builds timed: {', '.join(name for name, _ in BUILDS)}")
    if ARGS.only in (None, "lm"):
        compare_lm(lm, cache)
    if ARGS.only in (None, "asr"):
        compare_asr(lm, tok, cache)
    return 0


ARGS = parse_args()
BUILDS = parse_builds(ARGS.build) if not ARGS.worker else []

if __name__ == "__main__":
    sys.exit(main())
