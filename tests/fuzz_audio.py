"""Audio fuzzing: malformed inputs through ``Session.transcribe`` and
``AudioTokenizer.encode`` in worker subprocesses, so a crash is caught and
attributed to its input.

The bar (issue 15): zero crashes, zero hangs (no input takes longer than
``--case-timeout`` seconds, 20 by default, on the tiny test models), and
every rejection an ``AudioError``, ``FileNotFoundError`` or
``InvalidArgumentError`` (an input that happens to decode is fine too).

Inputs (generated from a seed and an index, so any case is reproduced by its
number): valid WAV/FLAC/OGG/MP3/M4A files then mutated (bit flips, byte and
header-field overwrites, huge counts, truncation, inserted and deleted
bytes), raw garbage and bare magic numbers, arrays of odd dtypes and shapes
with NaN/inf/huge values, extreme sample rates, FIFOs without a writer,
devices, directories, missing and odd paths, and broken file objects.

The long run (>= 1,000 inputs, a few minutes on two cores)::

    nice -n 10 python tests/fuzz_audio.py --cases 1200 --seed 15

It builds the tiny models itself (tests/asr_fixtures.py) unless given
``--model``/``--tokenizer``, and prints an outcome table. The test suite runs
a fixed-seed slice of it (tests/test_fuzz_audio.py).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import select
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

ALLOWED = ("AudioError", "FileNotFoundError", "InvalidArgumentError", "ModelNotFoundError")
TARGETS = ("transcribe", "encode")
KINDS = ("mutated_file", "raw_bytes", "array", "rate", "path", "file_object")


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------


def _tone(n: int, sr: int, rng) -> np.ndarray:
    t = np.arange(n) / sr
    return (0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


def _container(rng, scratch: Path) -> bytes:
    """A small valid audio file of a random format."""
    import soundfile as sf

    sr = int(rng.choice([8000, 16000, 22050, 24000, 44100, 48000]))
    ch = int(rng.choice([1, 2]))
    x = _tone(int(sr * rng.uniform(0.05, 0.6)), sr, rng)
    data = np.repeat(x[:, None], ch, axis=1)
    fmt = rng.choice(["WAV16", "WAVF", "WAV8", "FLAC", "OGG", "MP3", "M4A"])
    buf = io.BytesIO()
    if fmt == "M4A":
        try:
            return _m4a(x, sr)
        except Exception:
            fmt = "WAV16"
    if fmt == "MP3":
        try:
            sf.write(buf, data, sr, format="MP3")
            return buf.getvalue()
        except Exception:
            fmt = "WAV16"
    subtype = {"WAV16": "PCM_16", "WAVF": "FLOAT", "WAV8": "PCM_U8", "FLAC": "PCM_16", "OGG": "VORBIS"}[fmt]
    sf.write(buf, data, sr, format="WAV" if fmt.startswith("WAV") else fmt, subtype=subtype)
    return buf.getvalue()


def _m4a(x: np.ndarray, sr: int) -> bytes:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=sr, layout="mono")
        for i in range(0, len(x), 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[None, i : i + 1024]), format="fltp",
                                               layout="mono")
            frame.sample_rate = sr
            frame.pts = i
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)
    return buf.getvalue()


def _mutate(data: bytes, rng) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        op = rng.choice(["flip", "overwrite", "field", "huge", "truncate", "insert", "delete", "zero"])
        n = len(b)
        if n == 0:
            break
        if op == "flip":
            for _ in range(int(rng.integers(1, 16))):
                i = int(rng.integers(0, n))
                b[i] ^= 1 << int(rng.integers(0, 8))
        elif op == "overwrite":
            i = int(rng.integers(0, min(n, 128)))
            k = int(rng.integers(1, 16))
            b[i : i + k] = bytes(rng.integers(0, 256, k, dtype=np.uint8))
        elif op == "field":  # a 2- or 4-byte little-endian field of the header
            i = int(rng.integers(0, max(1, min(n - 4, 64))))
            width = int(rng.choice([2, 4]))
            value = int(rng.choice([0, 1, 2, 7, 999, 1000, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF,
                                    int(rng.integers(0, 2**31))]))
            b[i : i + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        elif op == "huge":  # wave headers: rate (24), byte rate (28), channels (22), bits (34), data size
            off = int(rng.choice([22, 24, 28, 32, 34, 40, 4]))
            if off + 4 <= n:
                b[off : off + 4] = int(rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 1, 0])).to_bytes(4, "little")
        elif op == "truncate":
            del b[int(rng.integers(0, n)) :]
        elif op == "insert":
            i = int(rng.integers(0, n))
            b[i:i] = bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
        elif op == "delete":
            i = int(rng.integers(0, n))
            del b[i : i + int(rng.integers(1, 64))]
        else:
            i = int(rng.integers(0, n))
            b[i : i + int(rng.integers(1, 256))] = bytes(min(n - i, 256))[: len(b[i : i + 256])]
    return bytes(b)


MAGICS = [b"", b"RIFF", b"RIFF\xff\xff\xff\xffWAVE", b"fLaC", b"OggS", b"ID3", b"\xff\xfb", b"\x00\x00\x00\x20ftypM4A ",
          b"\x1aE\xdf\xa3", b"FORM", b".snd", b"caff", b"\x00" * 64]


def make_case(seed: int, index: int, scratch: Path):
    """(kind, description, input, kwargs) of case ``index``."""
    rng = np.random.default_rng([seed, index])
    kind = KINDS[index % len(KINDS)] if index < len(KINDS) * 4 else str(rng.choice(
        KINDS, p=[0.45, 0.1, 0.15, 0.1, 0.1, 0.1]))
    if kind == "mutated_file":
        data = _mutate(_container(rng, scratch), rng)
        if rng.random() < 0.5:
            return kind, f"{len(data)} bytes", data, {}
        path = scratch / f"case{index}.bin"
        path.write_bytes(data)
        return kind, f"file of {len(data)} bytes", str(path), {}
    if kind == "raw_bytes":
        magic = MAGICS[int(rng.integers(0, len(MAGICS)))]
        tail = bytes(rng.integers(0, 256, int(rng.integers(0, 4096)), dtype=np.uint8))
        return kind, f"magic {magic[:8]!r} + {len(tail)} random bytes", magic + tail, {}
    if kind == "array":
        choice = int(rng.integers(0, 14))
        n = int(rng.integers(0, 20000))
        sr = 16000
        if choice == 0:
            arr = np.full(n, np.nan, np.float32)
        elif choice == 1:
            arr = _tone(max(n, 1), sr, rng)
            arr[int(rng.integers(0, len(arr)))] = rng.choice([np.inf, -np.inf, np.nan])
        elif choice == 2:
            arr = np.full(n, 1e30, np.float64)
        elif choice == 3:
            arr = np.zeros(n, np.complex64)
        elif choice == 4:
            arr = np.array(["a"] * min(n, 10))
        elif choice == 5:
            arr = np.zeros(n, dtype=object)
        elif choice == 6:
            arr = np.zeros((int(rng.integers(0, 4)), int(rng.integers(0, 4)), 3), np.float32)
        elif choice == 7:
            arr = np.float32(0.5)  # 0-d
        elif choice == 8:
            arr = np.zeros((int(rng.integers(9, 40)), 10), np.float32)  # more channels than samples
        elif choice == 9:
            arr = (rng.integers(-2**31, 2**31, n, dtype=np.int64) * 2**31).astype(np.int64)
        elif choice == 10:
            arr = rng.integers(0, 2**63, n, dtype=np.uint64)
        elif choice == 11:
            arr = np.zeros(n, np.bool_)
        elif choice == 12:
            arr = _tone(max(n, 1), sr, rng).astype(np.float16)
        else:
            arr = [0.1, "x", None][: int(rng.integers(1, 4))]
        shape = arr.shape if hasattr(arr, "shape") else len(arr)
        desc = f"array {getattr(arr, 'dtype', type(arr).__name__)} {shape}"
        return kind, desc, arr, {"sample_rate": sr}
    if kind == "rate":
        rate = [0, 1, 2, 7, 999, 1000, 768_001, 2**63, -1, 16000.5, float("nan"), float("inf"), "16000", None,
                True, 10**20][int(rng.integers(0, 16))]
        arr = _tone(int(rng.integers(1, 4000)), 16000, rng)
        if rng.random() < 0.5:
            return kind, f"(array, {rate!r})", (arr, rate), {}
        return kind, f"array, sample_rate={rate!r}", arr, {"sample_rate": rate}
    if kind == "path":
        choice = int(rng.integers(0, 9))
        if choice == 0:
            return kind, "missing file", str(scratch / f"missing{index}.wav"), {}
        if choice == 1:
            return kind, "directory", str(scratch), {}
        if choice == 2:
            fifo = scratch / f"fifo{index}"
            if not fifo.exists():
                os.mkfifo(fifo)
            return kind, "FIFO without a writer", str(fifo), {}
        if choice == 3:
            return kind, "/dev/zero", "/dev/zero", {}
        if choice == 4:
            return kind, "/dev/null", "/dev/null", {}
        if choice == 5:
            empty = scratch / f"empty{index}.wav"
            empty.write_bytes(b"")
            return kind, "empty file", str(empty), {}
        if choice == 6:
            loop = scratch / f"loop{index}"
            if not loop.is_symlink():
                os.symlink(loop, loop)
            return kind, "symlink loop", str(loop), {}
        if choice == 7:
            return kind, "NUL in the path", "a\0b.wav", {}
        return kind, "very long name", "x" * 5000, {}
    # file objects
    choice = int(rng.integers(0, 5))
    if choice == 0:
        f = tempfile.TemporaryFile("w+")
        return kind, "text-mode file", f, {}
    if choice == 1:
        f = io.BytesIO(_container(rng, scratch))
        f.close()
        return kind, "closed BytesIO", f, {}
    if choice == 2:
        class Exploding(io.RawIOBase):
            def readable(self):
                return True

            def readinto(self, b):
                raise OSError("device went away")

        return kind, "read() raises OSError", Exploding(), {}
    if choice == 3:
        data = _container(rng, scratch)
        return kind, "truncated BytesIO", io.BytesIO(data[: int(rng.integers(0, len(data)))]), {}
    return kind, "an object with read() returning str", type("R", (), {"read": lambda self, n=-1: "abc"})(), {}


# ---------------------------------------------------------------------------
# worker: runs cases, reports one JSON line per case on stdout
# ---------------------------------------------------------------------------


def worker(model: str, tokenizer: str, seed: int, indices: list[int], scratch: Path) -> None:
    from mimo_ggml import AudioTokenizer, Session

    out = sys.stdout
    with Session(model, tokenizer, device="cpu", n_threads=1, kv_type="f32") as asr, \
            AudioTokenizer(tokenizer, device="cpu", n_threads=1) as tok:
        for index in indices:
            for target in TARGETS:
                out.write(json.dumps({"start": index, "target": target}) + "\n")
                out.flush()
                t0 = time.perf_counter()
                try:
                    kind, desc, audio, kwargs = make_case(seed, index, scratch)
                except Exception as exc:  # a generator bug, not a finding
                    out.write(json.dumps({"index": index, "target": target, "outcome": "generator-error",
                                          "type": type(exc).__name__, "message": str(exc)}) + "\n")
                    out.flush()
                    continue
                record = {"index": index, "target": target, "kind": kind, "desc": desc}
                if os.environ.get("FUZZ_AUDIO_SELFTEST_CRASH") == str(index):
                    os.abort()  # the harness's own test: is a crash caught and attributed?
                if os.environ.get("FUZZ_AUDIO_SELFTEST_HANG") == str(index):
                    time.sleep(3600)
                try:
                    if target == "transcribe":
                        asr.transcribe(audio, max_new_tokens=2, **kwargs)
                    else:
                        tok.encode(audio, **kwargs)
                    record.update(outcome="ok")
                except BaseException as exc:  # noqa: BLE001 - classified by the parent
                    record.update(outcome="raised", type=type(exc).__name__,
                                  message=str(exc)[:300],
                                  where=traceback.format_exc(limit=-2)[-600:])
                finally:
                    if hasattr(audio, "close") and not isinstance(audio, (str, bytes)):
                        try:
                            audio.close()
                        except Exception:
                            pass
                record["seconds"] = round(time.perf_counter() - t0, 3)
                out.write(json.dumps(record) + "\n")
                out.flush()


# ---------------------------------------------------------------------------
# parent: runs workers, catches crashes and hangs, tabulates
# ---------------------------------------------------------------------------


def run_fuzz(model: str, tokenizer: str, seed: int, indices: list[int], *, case_timeout: float = 20.0,
             scratch: Path | None = None, log=print, extra_env: dict | None = None) -> dict:
    """Run ``indices`` through the targets; returns {"records": [...],
    "crashes": [...], "hangs": [...], "bad": [...], "table": Counter}."""
    own = scratch is None
    scratch = Path(tempfile.mkdtemp(prefix="fuzz_audio_")) if own else scratch
    records, crashes, hangs = [], [], []
    todo = list(indices)
    env = dict(os.environ, PYTHONFAULTHANDLER="1", **(extra_env or {}))
    while todo:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--model", model, "--tokenizer", tokenizer,
               "--seed", str(seed), "--scratch", str(scratch), "--indices", ",".join(map(str, todo))]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        current = None
        buf = b""
        last = time.monotonic()
        finished = set()
        stderr_chunks = []
        while True:
            ready, _, _ = select.select([p.stdout, p.stderr], [], [], 0.5)
            if p.stderr in ready:
                chunk = os.read(p.stderr.fileno(), 65536)
                if chunk:
                    stderr_chunks.append(chunk)
            if p.stdout in ready:
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    msg = json.loads(line)
                    last = time.monotonic()
                    if "start" in msg:
                        current = (msg["start"], msg["target"])
                    else:
                        records.append(msg)
                        if msg["target"] == TARGETS[-1]:
                            finished.add(msg["index"])
                        current = None
            elif current is not None and time.monotonic() - last > case_timeout:
                p.kill()
                p.wait()
                hangs.append({"index": current[0], "target": current[1], "seconds": case_timeout})
                log(f"HANG: case {current[0]} ({current[1]}) ran past {case_timeout:g} s")
                break
            if p.poll() is not None and not ready:
                break
        rc = p.wait()
        err = b"".join(stderr_chunks).decode(errors="replace")
        if rc != 0 and current is not None and not any(h["index"] == current[0] for h in hangs):
            crashes.append({"index": current[0], "target": current[1], "returncode": rc, "stderr": err[-2000:]})
            log(f"CRASH: case {current[0]} ({current[1]}) killed the worker (rc {rc})")
        elif rc != 0 and current is None and not hangs:
            raise RuntimeError(f"the fuzz worker failed outside any case (rc {rc}):\n{err[-3000:]}")
        # go on after the case that crashed or hung
        stuck = current[0] if current is not None else None
        todo = [i for i in todo if i not in finished and i != stuck]
    bad = [r for r in records if r["outcome"] == "raised" and r["type"] not in ALLOWED]
    bad += [r for r in records if r["outcome"] == "generator-error"]
    table = Counter()
    for r in records:
        table[(r["target"], r.get("kind", "?"), r["outcome"] if r["outcome"] != "raised" else r["type"])] += 1
    if own:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    return {"records": records, "crashes": crashes, "hangs": hangs, "bad": bad, "table": table}


def format_table(result: dict) -> str:
    lines = [f"{'target':<11} {'kind':<13} {'outcome':<22} {'count':>6}"]
    for (target, kind, outcome), n in sorted(result["table"].items()):
        lines.append(f"{target:<11} {kind:<13} {outcome:<22} {n:>6}")
    slowest = max((r.get("seconds", 0.0) for r in result["records"]), default=0.0)
    lines.append(f"crashes: {len(result['crashes'])}, hangs: {len(result['hangs'])}, disallowed exceptions: "
                 f"{len(result['bad'])}, slowest input: {slowest:.2f} s")
    return "\n".join(lines)


def _tiny_models(root: Path) -> tuple[str, str]:
    sys.path.insert(0, str(Path(__file__).parent))
    from asr_fixtures import tiny_asr_files

    files = tiny_asr_files(root)
    return str(files["f32_fused"]), str(files["tokenizer"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1200, help="inputs to generate (each goes through both targets)")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--model", help="mimo_asr GGUF (default: build the tiny test model)")
    ap.add_argument("--tokenizer", help="mimo_tokenizer GGUF (default: the tiny test tokenizer)")
    ap.add_argument("--case-timeout", type=float, default=20.0, help="seconds one input may take")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--indices", help=argparse.SUPPRESS)
    ap.add_argument("--scratch", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.model, args.tokenizer, args.seed, [int(i) for i in args.indices.split(",") if i],
               Path(args.scratch))
        return 0
    with tempfile.TemporaryDirectory(prefix="fuzz_models_") as root:
        model, tok = (args.model, args.tokenizer) if args.model else _tiny_models(Path(root))
        t0 = time.monotonic()
        result = run_fuzz(model, tok, args.seed, list(range(args.cases)), case_timeout=args.case_timeout)
        wall = time.monotonic() - t0
    print(format_table(result))
    print(f"{args.cases} inputs x {len(TARGETS)} targets, seed {args.seed}: {wall:.0f} s wall")
    for r in result["bad"][:20]:
        print("DISALLOWED:", json.dumps(r)[:800])
    return 0 if not (result["crashes"] or result["hangs"] or result["bad"]) else 1


if __name__ == "__main__":
    sys.exit(main())
