"""GGUF fuzz harness: mutants of the fixture files go through every public
constructor (plus one short inference when loading succeeds) in worker
subprocesses, so a crash or a hang is caught and attributed to its mutant.

    python tests/fuzz/gguf_fuzz.py --mutants 20000 --jobs 2          # the long run
    python tests/fuzz/gguf_fuzz.py --kind mimo2 --seed 123 --show    # one mutant, in this process
    python tests/fuzz/gguf_fuzz.py --kind asr --seed 123 --save x.gguf

Each mutant is a pure function of (file kind, seed) (see mutate.py). A pool
of workers each handles many mutants; the parent hands out seeds, enforces a
per-mutant timeout and restarts a worker that died. Outcomes per mutant:

* ``accepted``: some constructor loaded it (and its inference ran or raised a
  MimoError);
* ``rejected``: every constructor raised a mimo_ggml.errors.MimoError subclass
  (counted by class);
* ``untyped``: some call raised an exception that is not a MimoError;
* ``crash``: the worker died (signal or exit) - the seed and the call are kept;
* ``hang``: the mutant ran past the timeout.

The list of constructors is TARGETS below: one row per public entry point.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
for p in (str(TESTS),):
    if p not in sys.path:
        sys.path.insert(0, p)

KINDS = ("asr", "tokenizer", "mimo2")
THREADS = 1

# ---------------------------------------------------------------------------
# the public entry points: (name, kinds it is tried on, load(path, fixtures) -> object, infer(object))
# Add a row for a new constructor (e.g. AsrModel.load) and it is fuzzed too.


def _audio(seconds: float = 0.5):
    import numpy as np

    t = np.arange(int(24000 * seconds)) / 24000.0
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _load_lm(path, fx):
    from mimo_ggml import LanguageModel

    return LanguageModel(path, device="cpu", n_threads=THREADS, n_ctx=64, kv_type="f32")


def _infer_lm(lm):
    ids = [i % lm.n_vocab for i in (1, 2, 3)]
    lm.step(int(lm.eval(ids)[0].argmax()))


def _load_adapter(path, fx):
    from mimo_ggml import AsrAdapter

    return AsrAdapter(path, device="cpu", n_threads=THREADS)


def _infer_adapter(ad):
    import numpy as np

    vocab = np.asarray(ad._native.speech_vocab)
    codes = (np.arange(8 * len(vocab)).reshape(8, len(vocab)) % vocab).astype(np.int32)
    ad.features(codes)


def _load_audio_tokenizer(path, fx):
    from mimo_ggml import AudioTokenizer

    return AudioTokenizer(path, device="cpu", n_threads=THREADS)


def _infer_audio_tokenizer(tok):
    tok.encode(_audio(0.5), 24000)


def _load_session_model(path, fx):
    from mimo_ggml import Session

    return Session(path, tokenizer=fx["tokenizer"], device="cpu", n_threads=THREADS, n_ctx=256, download=False)


def _load_session_tokenizer(path, fx):
    from mimo_ggml import Session

    return Session(fx["asr"], tokenizer=path, device="cpu", n_threads=THREADS, n_ctx=256, download=False)


def _infer_session(s):
    s.transcribe(_audio(1.0), 24000, max_new_tokens=3, vad=False)  # the test signal is no speech to a VAD


def _load_text(path, fx):
    from mimo_ggml import TextSession

    return TextSession(path, device="cpu", n_threads=THREADS, n_ctx=64, kv_type="f32")


def _infer_text(s):
    s.generate([1, 2, 3], max_tokens=2)
    if s.has_tokenizer:
        s.generate("the quick", max_tokens=2)


class _CliResult:
    def close(self):
        pass


def _load_cli_info(path, fx):
    from mimo_ggml import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            rc = cli.main(["info", str(path)])
        except SystemExit as exc:
            rc = exc.code
    if rc not in (0, None):
        raise _CliFailed(rc)
    return _CliResult()


class _CliFailed(Exception):
    """The CLI returned a non-zero status (its own clean refusal)."""


ALL = KINDS
TARGETS = [
    ("LanguageModel", ALL, _load_lm, _infer_lm),
    ("AsrAdapter", ALL, _load_adapter, _infer_adapter),
    ("AudioTokenizer", ALL, _load_audio_tokenizer, _infer_audio_tokenizer),
    ("TextSession", ALL, _load_text, _infer_text),
    ("Session(model)", ("asr",), _load_session_model, _infer_session),
    ("Session(tokenizer)", ("tokenizer",), _load_session_tokenizer, _infer_session),
    ("cli info", ALL, _load_cli_info, None),
]


CLI_TARGETS = ("cli info",)


def targets_for(kind: str, only=None):
    return [t for t in TARGETS if kind in t[1] and (not only or t[0] in only)]


# ---------------------------------------------------------------------------
# one mutant, in this process


def _classify(exc: BaseException) -> str:
    from mimo_ggml.errors import MimoError

    if isinstance(exc, _CliFailed):
        return f"cli-exit-{exc.args[0]}"
    if isinstance(exc, MimoError):
        return type(exc).__name__
    return "untyped:" + type(exc).__name__


def run_targets(path: Path, kind: str, fixtures: dict, only=None, progress=None, details=False, done=None) -> dict:
    """{target: {'load': outcome, 'infer': outcome}}; outcome 'ok', a MimoError class name or 'untyped:<class>'.
    progress(name) is called before each target, done(name, rec) after it."""
    out = {}
    for name, _, load, infer in targets_for(kind, only):
        if progress:
            progress(name)
        rec = {}
        obj = None
        try:
            obj = load(str(path), fixtures)
            rec["load"] = "ok"
        except Exception as exc:  # noqa: BLE001 - classified below
            rec["load"] = _classify(exc)
            if details:
                rec["message"] = f"{type(exc).__name__}: {exc}"[:500]
                if rec["load"].startswith("untyped"):
                    rec["traceback"] = traceback.format_exc()[-2000:]
        if obj is not None:
            if infer is not None:
                try:
                    infer(obj)
                    rec["infer"] = "ok"
                except Exception as exc:  # noqa: BLE001
                    rec["infer"] = _classify(exc)
                    if details:
                        rec["message"] = f"{type(exc).__name__}: {exc}"[:500]
                        if rec["infer"].startswith("untyped"):
                            rec["traceback"] = traceback.format_exc()[-2000:]
            try:
                obj.close()
            except Exception as exc:  # noqa: BLE001
                rec["close"] = _classify(exc)
        out[name] = rec
        if done:
            done(name, rec)
    return out


def verdict(result: dict) -> str:
    """accepted / rejected / untyped for one mutant's results. `accepted`: some library constructor
    loaded it (the CLI's info command, a reader of any GGUF, only counts when it fails untyped)."""
    outcomes = [v for rec in result.values() for k, v in rec.items() if k in ("load", "infer", "close")]
    if any(o.startswith("untyped") for o in outcomes):
        return "untyped"
    if any(rec.get("load") == "ok" for name, rec in result.items() if name not in CLI_TARGETS):
        return "accepted"
    return "rejected"


# ---------------------------------------------------------------------------
# worker process


def worker_main(fixtures: dict, only) -> None:
    import logging

    from fuzz.mutate import Mutator

    logging.getLogger("mimo_ggml").setLevel(logging.CRITICAL)
    mutators = {}
    tmp = Path(tempfile.mkdtemp(prefix="gguf-fuzz-"))
    # the protocol gets its own descriptor; whatever the libraries print goes to /dev/null
    out = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    sys.stdout = io.StringIO()
    try:
        for line in sys.stdin:
            kind, seed = line.split()
            seed = int(seed)
            try:
                if kind not in mutators:
                    mutators[kind] = Mutator(Path(fixtures[kind]).read_bytes())
                data, desc = mutators[kind].mutant(seed)
            except Exception:  # noqa: BLE001 - a fault of the harness, not of the code under test
                out.write(json.dumps({"kind": kind, "seed": seed, "harness_error": traceback.format_exc()[-1500:]})
                          + "\n")
                out.flush()
                continue
            path = tmp / f"{kind}.gguf"
            path.write_bytes(data)

            def progress(name):
                out.write(json.dumps({"at": name}) + "\n")
                out.flush()

            def done(name, rec):  # so a later crash or hang keeps what came before
                out.write(json.dumps({"done": name, "rec": rec}) + "\n")
                out.flush()

            result = run_targets(path, kind, fixtures, only, progress, done=done)
            sys.stdout = io.StringIO()
            out.write(json.dumps({"kind": kind, "seed": seed, "desc": desc, "result": result}) + "\n")
            out.flush()
    finally:
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()


# ---------------------------------------------------------------------------
# the pool


class Pool:
    def __init__(self, fixtures: dict, jobs: int, timeout: float, only=None, env=None, nice: int = 0):
        self.fixtures = {k: str(v) for k, v in fixtures.items()}
        self.jobs = jobs
        self.timeout = timeout
        self.only = only
        self.env = env
        self.nice = nice
        self.sel = selectors.DefaultSelector()
        self.workers = []

    def _spawn(self):
        cmd = [sys.executable, str(HERE / "gguf_fuzz.py"), "--worker", "--fixtures", json.dumps(self.fixtures)]
        if self.only:
            cmd += ["--only", ",".join(self.only)]
        if self.nice:
            cmd = ["nice", "-n", str(self.nice)] + cmd
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONPATH"] = os.pathsep.join([str(TESTS)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env=env)
        w = {"proc": proc, "job": None, "at": None, "deadline": None, "buf": b"", "partial": {}}
        os.set_blocking(proc.stdout.fileno(), False)
        self.sel.register(proc.stdout, selectors.EVENT_READ, w)
        self.workers.append(w)
        return w

    def _retire(self, w, kill=False):
        self.sel.unregister(w["proc"].stdout)
        self.workers.remove(w)
        if kill:
            with contextlib.suppress(ProcessLookupError):
                w["proc"].kill()
        with contextlib.suppress(Exception):
            w["proc"].stdin.close()
        w["proc"].wait()
        return w["proc"].returncode

    def _give(self, w, job):
        kind, seed = job
        w["job"], w["at"], w["partial"] = job, None, {}
        w["deadline"] = time.monotonic() + self.timeout
        try:
            w["proc"].stdin.write(f"{kind} {seed}\n".encode())
            w["proc"].stdin.flush()
        except BrokenPipeError:  # died between jobs: the read loop sees the EOF
            pass

    def run(self, jobs, on_result):
        """jobs: iterable of (kind, seed); on_result(record) for each, in completion order."""
        queue = collections.deque(jobs)
        for _ in range(min(self.jobs, len(queue))):
            self._give(self._spawn(), queue.popleft())
        while self.workers:
            events = self.sel.select(timeout=0.5)
            for key, _ in events:
                w = key.data
                try:
                    chunk = os.read(w["proc"].stdout.fileno(), 1 << 16)
                except BlockingIOError:
                    continue
                if chunk == b"":  # EOF: the worker died
                    job, at, partial = w["job"], w["at"], w["partial"]
                    rc = self._retire(w)
                    if job is not None:
                        how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit {rc}"
                        on_result({"kind": job[0], "seed": job[1], "verdict": "crash", "how": how, "at": at,
                                   "result": partial})
                    if queue:
                        self._give(self._spawn(), queue.popleft())
                    continue
                w["buf"] += chunk
                while b"\n" in w["buf"]:
                    line, w["buf"] = w["buf"].split(b"\n", 1)
                    msg = json.loads(line)
                    if "at" in msg:
                        w["at"] = msg["at"]
                        continue
                    if "done" in msg:
                        w["partial"][msg["done"]] = msg["rec"]
                        continue
                    msg["verdict"] = "harness-error" if "harness_error" in msg else verdict(msg["result"])
                    on_result(msg)
                    w["job"] = None
                    if queue:
                        self._give(w, queue.popleft())
                    else:
                        self._retire(w)
                        break
            now = time.monotonic()
            for w in list(self.workers):
                if w["job"] is not None and now > w["deadline"]:
                    job, at, partial = w["job"], w["at"], w["partial"]
                    self._retire(w, kill=True)
                    on_result({"kind": job[0], "seed": job[1], "verdict": "hang", "at": at,
                               "how": f"over {self.timeout:.0f} s", "result": partial})
                    if queue:
                        self._give(self._spawn(), queue.popleft())


def fuzz(fixtures: dict, n_mutants: int, *, start_seed: int = 0, jobs: int = 2, timeout: float = 30.0,
         kinds=KINDS, only=None, nice: int = 0, log=None, env=None, replay=None) -> dict:
    """Run n_mutants mutants spread over the kinds (round robin, seeds from start_seed), or the
    (kind, seed) list `replay`. Returns {'records': [...], 'wall_s': float}."""
    jobs_list = list(replay) if replay else [(kinds[i % len(kinds)], start_seed + i) for i in range(n_mutants)]
    n_mutants = len(jobs_list)
    records = []
    t0 = time.monotonic()

    def on_result(rec):
        records.append(rec)
        if log:
            log(rec, len(records), n_mutants, time.monotonic() - t0)

    Pool(fixtures, jobs, timeout, only=only, env=env, nice=nice).run(jobs_list, on_result)
    return {"records": records, "wall_s": time.monotonic() - t0}


def table(records) -> str:
    """The outcome table: verdicts per kind, rejection classes, problem cases."""
    kinds = sorted({r["kind"] for r in records}, key=lambda k: KINDS.index(k) if k in KINDS else 99)
    verdicts = ["accepted", "rejected", "untyped", "crash", "hang"]
    if any(r["verdict"] == "harness-error" for r in records):
        verdicts.append("harness-error")
    lines = ["| kind | mutants | " + " | ".join(verdicts) + " |", "|---|---:|" + "---:|" * len(verdicts)]
    for k in kinds + ["all"]:
        rs = [r for r in records if k == "all" or r["kind"] == k]
        c = collections.Counter(r["verdict"] for r in rs)
        lines.append(f"| {k} | {len(rs)} | " + " | ".join(str(c[v]) for v in verdicts) + " |")
    # rejection / error classes per call
    calls = collections.Counter()
    for r in records:
        for name, rec in r.get("result", {}).items():
            for stage in ("load", "infer"):
                if stage in rec:
                    calls[(name, stage, rec[stage])] += 1
    lines += ["", "| call | stage | outcome | count |", "|---|---|---|---:|"]
    for (name, stage, outcome), n in sorted(calls.items()):
        lines.append(f"| {name} | {stage} | {outcome} | {n} |")
    bad = [r for r in records if r["verdict"] in ("crash", "hang", "untyped", "harness-error")]
    if bad:
        lines += ["", "problem mutants (kind seed verdict at/how):"]
        for r in bad[:50]:
            where = r.get("at") or ",".join(f"{n}:{v}" for n, rec in r.get("result", {}).items()
                                            for v in rec.values() if str(v).startswith("untyped"))
            lines.append(f"  {r['kind']} {r['seed']} {r['verdict']} {where} {r.get('how', '')}")
    return "\n".join(lines)


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mutants", type=int, default=300, help="mutants in all, spread over the kinds")
    ap.add_argument("--start-seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per mutant before it counts as a hang")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--only", default="", help="comma-separated target names (default: all)")
    ap.add_argument("--fixtures-dir", default="", help="where the fixture GGUFs are built (default: a temp dir)")
    ap.add_argument("--nice", type=int, default=0, help="run the workers under nice -n N")
    ap.add_argument("--json", default="", help="write every record to this file (JSON lines)")
    ap.add_argument("--replay", default="", help="kind:seed,kind:seed,...: run these mutants through the pool")
    ap.add_argument("--kind", default="", help="with --seed: one mutant of this kind")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--show", action="store_true", help="with --seed: run it here and print each call's outcome")
    ap.add_argument("--save", default="", help="with --seed: write the mutant to this path")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--fixtures", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    only = [s for s in args.only.split(",") if s] or None

    if args.worker:
        worker_main(json.loads(args.fixtures), only)
        return 0

    from fuzz.fixtures import build_fixtures

    root = Path(args.fixtures_dir) if args.fixtures_dir else Path(tempfile.mkdtemp(prefix="gguf-fuzz-fixtures-"))
    have = {k: root / n for k, n in (("asr", "asr/models/mimo-asr-f32.gguf"),
                                      ("tokenizer", "asr/models/mimo-tokenizer.gguf"),
                                      ("mimo2", "mimo2-f32.gguf"))}
    fixtures = have if all(p.exists() for p in have.values()) else build_fixtures(root)

    if args.seed is not None:
        from fuzz.mutate import Mutator

        kind = args.kind or "asr"
        data, desc = Mutator(Path(fixtures[kind]).read_bytes()).mutant(args.seed)
        print(f"{kind} seed {args.seed}: {desc}")
        if args.save:
            Path(args.save).write_bytes(data)
            print(f"written to {args.save}")
        if args.show:
            path = Path(tempfile.mkdtemp()) / f"{kind}.gguf"
            path.write_bytes(data)
            res = run_targets(path, kind, {k: str(v) for k, v in fixtures.items()}, only, details=True)
            print(json.dumps(res, indent=1))
        return 0

    sink = open(args.json, "w") if args.json else None
    last = [0.0]

    def log(rec, done, total, elapsed):
        if sink:
            sink.write(json.dumps(rec) + "\n")
        if rec["verdict"] in ("crash", "hang", "untyped", "harness-error"):
            print(f"  {rec['verdict']}: {rec['kind']} seed {rec['seed']} {rec.get('at') or ''} {rec.get('how', '')}",
                  flush=True)
        if elapsed - last[0] > 30 or done == total:
            last[0] = elapsed
            print(f"[{done}/{total}] {elapsed:.0f} s", flush=True)

    kinds = tuple(k for k in args.kinds.split(",") if k)
    replay = [(x.split(":")[0], int(x.split(":")[1])) for x in args.replay.split(",") if x]
    if replay:
        args.mutants = len(replay)
    res = fuzz(fixtures, args.mutants, start_seed=args.start_seed, jobs=args.jobs, timeout=args.timeout,
               kinds=kinds, only=only, nice=args.nice, log=log, replay=replay or None)
    if sink:
        sink.close()
    print(f"\n{args.mutants} mutants, {args.jobs} workers, {res['wall_s']:.0f} s wall\n")
    print(table(res["records"]))
    bad = sum(r["verdict"] in ("crash", "hang", "untyped", "harness-error") for r in res["records"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(_main())
