"""`mimo-ggml` as a user runs it, in subprocesses, on the tiny random-weight
models of the fixtures: output naming and collisions, checks before any
model loads, stdin, m4a, --version, `| head`, Ctrl-C at every stage (exit 130
within a second, finished work written and marked partial), a full disk
(RLIMIT_FSIZE), and one-line errors (exit 2) for bad input."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mimo_ggml.cli import WATCHDOG_THREAD_NAME


def speechlike(seconds: float, rate: int, seed: int, pauses: tuple = ()) -> np.ndarray:
    """Noise with a 4 Hz syllable envelope plus a tone; 0.6 s silent gaps at ``pauses``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * (0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t) ** 2) * rng.standard_normal(t.size)
    x += 0.2 * np.sin(2 * np.pi * rng.uniform(150, 400) * t)
    for p in pauses:
        x[int(p * rate) : int((p + 0.6) * rate)] = 0.0
    return x.astype(np.float32)

CLIP = "3"  # --max-clip: many short clips, so there is work in progress to interrupt
TOKENS = "40"  # random weights never stop: a fixed budget per clip


@pytest.fixture(scope="module")
def model(tiny_asr):
    return str(tiny_asr["f32_fused"])


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_audio")
    files = {}
    short = (speechlike(2.0, 16000, seed=3) * 20000).astype(np.int16)
    for ext, fmt in (("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG")):
        files[ext] = root / f"short.{ext}"
        sf.write(files[ext], short, 16000, format=fmt)
    files["long"] = root / "long.wav"
    sf.write(files["long"], speechlike(24.0, 16000, seed=4, pauses=tuple(range(2, 24, 3))), 16000)
    return files


def env(tmp_path) -> dict:
    e = dict(os.environ)
    e.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), PYTHONFAULTHANDLER="1")
    return e


def cli(tmp_path, *args, input=None, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "mimo_ggml", *map(str, args)], capture_output=True,
                          input=input, timeout=timeout, env=env(tmp_path), cwd=tmp_path, **kw)


def transcribe_args(model, *files, out=None, extra=()):
    # the synthetic signals here are no speech to a VAD: decode them whole, in clips
    args = ["transcribe", *files, "-m", model, "-l", "en", "-t", "1", "--device", "cpu", "--max-new-tokens", TOKENS,
            "--max-clip", CLIP, "--no-vad", *extra]
    if out is not None:
        args += ["-f", "all", "-o", out]
    return args


def one_line_error(run) -> str:
    err = run.stderr.decode() if isinstance(run.stderr, bytes) else run.stderr
    assert run.returncode == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mimo-ggml: error: "), err
    return lines[0]


def test_version(tmp_path):
    from mimo_ggml import __version__

    run = cli(tmp_path, "--version", text=True)
    assert run.returncode == 0 and run.stdout.strip() == f"mimo-ggml {__version__}"


def test_outputs_named_by_input_never_collide(tmp_path, model, audio):
    out = tmp_path / "out"
    files = [audio["flac"], audio["wav"], audio["ogg"]]
    run = cli(tmp_path, *transcribe_args(model, *files, out=out), text=True)
    assert run.returncode == 0, run.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{f.name}.{x}" for f in files for x in ("txt", "srt", "vtt", "json"))
    headers = [ln for ln in run.stdout.splitlines() if ln.startswith("==> ")]
    assert headers == [f"==> {f} <==" for f in files]
    for f in files:
        data = json.loads((out / f"{f.name}.json").read_text(encoding="utf-8"))
        assert data["partial"] is False and data["duration"] == pytest.approx(2.0)
    # existing files are kept unless --overwrite
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = cli(tmp_path, *transcribe_args(model, audio["wav"], out=out), text=True)
    assert "--overwrite" in one_line_error(again) and "short.wav.txt" in again.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    forced = cli(tmp_path, *transcribe_args(model, audio["wav"], out=out, extra=["--overwrite"]), text=True)
    assert forced.returncode == 0, forced.stderr
    # the same name from two folders is refused before any work
    other = tmp_path / "other"
    other.mkdir()
    (other / "short.wav").write_bytes(audio["wav"].read_bytes())
    clash = cli(tmp_path, *transcribe_args(model, audio["wav"], other / "short.wav", out=tmp_path / "o2"), text=True)
    assert "would both be written" in one_line_error(clash)


def test_bad_output_dir_fails_before_any_model_loads(tmp_path, audio):
    """-o problems are reported first: the model given does not even exist,
    and its error never shows."""
    afile = tmp_path / "a_file"
    afile.write_text("x")
    missing_model = tmp_path / "no-such-model.gguf"
    for out in (afile, afile / "sub"):
        t0 = time.perf_counter()
        run = cli(tmp_path, "transcribe", audio["wav"], "-m", missing_model, "-o", out, text=True)
        line = one_line_error(run)
        assert "-o/--output-dir" in line and "model" not in line.split("-o/--output-dir")[0]
        assert time.perf_counter() - t0 < 30
    missing = cli(tmp_path, "transcribe", tmp_path / "nope.wav", "-m", missing_model, text=True)
    assert "audio file not found" in one_line_error(missing)


def test_errors_name_flags(tmp_path, model, audio):
    for flag, value in (("--max-new-tokens", "0"), ("--threads", "-1"), ("--max-segment", "0.5"),
                        ("--batch-size", "0"), ("--max-duration", "nan")):
        run = cli(tmp_path, "transcribe", audio["wav"], "-m", model, flag, value, text=True)
        assert run.returncode == 2 and flag in run.stderr.splitlines()[-1] and "Traceback" not in run.stderr
    run = cli(tmp_path, "transcribe", audio["wav"], "-m", model, "--max-duration", "1", text=True)
    line = one_line_error(run)
    assert "--max-duration" in line and "max_duration_s" not in line


def test_verbose_after_the_subcommand(tmp_path, model, audio):
    run = cli(tmp_path, *transcribe_args(model, audio["wav"], extra=["-v"]), text=True)
    assert run.returncode == 0, run.stderr
    assert "mimo_ggml:" in run.stderr  # native logs shown


def test_stdin_and_m4a(tmp_path, model, audio):
    from test_audio import encode_with_pyav

    ref = cli(tmp_path, *transcribe_args(model, audio["wav"]), text=True)
    assert ref.returncode == 0, ref.stderr
    piped = cli(tmp_path, *transcribe_args(model, "-", out=tmp_path / "o"), input=audio["wav"].read_bytes())
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.decode() == ref.stdout
    assert (tmp_path / "o" / "stdin.txt").read_text(encoding="utf-8") == ref.stdout
    empty = cli(tmp_path, *transcribe_args(model, "-"), input=b"")
    assert "standard input is empty" in one_line_error(empty)

    import av

    if "aac" not in av.codecs_available:
        pytest.skip("this PyAV build has no AAC encoder")
    m4a = tmp_path / "talk.m4a"
    encode_with_pyav(m4a, speechlike(2.0, 44100, seed=8), 44100, "mp4", "aac")
    run = cli(tmp_path, *transcribe_args(model, m4a, out=tmp_path / "m"), text=True)
    assert run.returncode == 0, run.stderr
    data = json.loads((tmp_path / "m" / "talk.m4a.json").read_text(encoding="utf-8"))
    assert data["duration"] == pytest.approx(2.0, abs=0.05) and data["segments"]


def test_head_closes_the_pipe_quietly(tmp_path, model, audio):
    cmd = [sys.executable, "-m", "mimo_ggml", *map(str, transcribe_args(model, audio["long"]))]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(tmp_path), cwd=tmp_path)
    head = subprocess.run(["head", "-n", "1"], stdin=p.stdout, capture_output=True, timeout=300)
    p.stdout.close()
    err = p.stderr.read().decode()
    rc = p.wait(timeout=300)
    assert len(head.stdout.splitlines()) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert rc == 141


def test_bad_input_is_one_line_exit_2(tmp_path, tiny_asr):
    gguf = tiny_asr["tokenizer"].read_bytes()
    trunc = tmp_path / "trunc.gguf"
    trunc.write_bytes(gguf[: len(gguf) // 3])
    line = one_line_error(cli(tmp_path, "info", trunc, text=True))
    assert "trunc.gguf" in line
    header_only = tmp_path / "header.gguf"
    header_only.write_bytes(gguf[:10])
    one_line_error(cli(tmp_path, "info", header_only, text=True))
    assert "not found" in one_line_error(cli(tmp_path, "info", tmp_path / "missing.gguf", text=True))
    bad = cli(tmp_path, "generate", "-m", tmp_path / "whatever.gguf", "-p", "-", input=b"caf\xe9 \xff\xfe")
    assert "UTF-8" in one_line_error(bad)


# ---------------------------------------------------------------------------
# Ctrl-C
# ---------------------------------------------------------------------------


def start(tmp_path, args):
    return subprocess.Popen([sys.executable, "-m", "mimo_ggml", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env(tmp_path), cwd=tmp_path)


def threads(pid: int) -> list[str]:
    names = []
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            names.append(Path(f"/proc/{pid}/task/{t}/comm").read_text().strip())
        except OSError:
            pass
    return names


def wait_ready(p, timeout=60.0) -> None:
    """Until main() has installed its Ctrl-C handling (its watchdog thread
    exists); a SIGINT before that lands in interpreter start-up."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if p.poll() is not None:
            raise AssertionError(f"exited early: {p.stderr.read().decode()}")
        try:
            if WATCHDOG_THREAD_NAME in threads(p.pid):
                return
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    raise AssertionError("the CLI never became ready")


def interrupt(p) -> tuple[int, float]:
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    try:
        rc = p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError("Ctrl-C was swallowed: still running 10 s later")
    return rc, time.monotonic() - t0


def check_outputs(out: Path, name: str, printed: list[str] | None) -> bool | None:
    """The files of one input are either absent, or complete and consistent;
    returns their partial flag (None when absent). ``printed``: the lines the
    CLI printed for it, which a partial txt must hold exactly."""
    files = {x: out / f"{name}.{x}" for x in ("txt", "srt", "vtt", "json")}
    if not any(f.exists() for f in files.values()):
        return None
    assert all(f.exists() for f in files.values())
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    data = json.loads(files["json"].read_text(encoding="utf-8"))
    vtt = files["vtt"].read_text(encoding="utf-8")
    txt = files["txt"].read_text(encoding="utf-8")
    import srt

    list(srt.parse(files["srt"].read_text(encoding="utf-8")))
    assert ("NOTE partial transcript" in vtt) == data["partial"]
    assert txt == "".join(s["text"].strip() + "\n" for s in data["segments"] if s["text"].strip())
    if printed is not None and data["partial"]:
        assert txt.splitlines() == printed  # what was shown is what was kept
    return data["partial"]


def test_sigint_during_load(tmp_path, model, audio):
    """Ctrl-C while a model file is being read: exit 130 within a second,
    nothing written (no input had started)."""
    out = tmp_path / "out"
    for attempt in range(5):
        p = start(tmp_path, transcribe_args(model, audio["long"], out=out))
        wait_ready(p)
        hit = False
        t0 = time.monotonic()
        while p.poll() is None and time.monotonic() - t0 < 60:
            try:
                fds = [os.readlink(f"/proc/{p.pid}/fd/{f}") for f in os.listdir(f"/proc/{p.pid}/fd")]
            except OSError:
                continue
            if any(f.endswith(".gguf") for f in fds):
                hit = True
                break
        rc, took = interrupt(p)
        if hit:
            break
    assert hit, "never caught the CLI with a model file open"
    assert rc == 130 and took < 1.0, (rc, took, p.stderr.read())
    assert not out.exists() or not list(out.iterdir())


def test_sigint_after_a_segment_writes_the_partial_result(tmp_path, model, audio):
    """Ctrl-C once the first segment has printed (the next one is being
    encoded or decoded): exit 130 within a second, and every format holds the
    finished segments, marked partial."""
    out = tmp_path / "out"
    # one segment at a time, so that the next one is surely still in work (a batch finishes together)
    p = start(tmp_path, transcribe_args(model, audio["long"], out=out, extra=("--batch-size", "1")))
    first = p.stdout.readline().decode().rstrip("\n")
    assert first and p.poll() is None
    rc, took = interrupt(p)
    rest = p.stdout.read().decode().splitlines()
    assert rc == 130 and took < 1.0, (rc, took, p.stderr.read())
    assert check_outputs(out, "long.wav", [first] + rest) is True
    data = json.loads((out / "long.wav.json").read_text(encoding="utf-8"))
    assert 1 <= len(data["segments"]) < 8 and data["text"]


def run_random_trials(tmp_path, model, audio, n: int, seed: int) -> None:
    """SIGINT at random moments of a whole run (start-up done, through load,
    encode, decode and writing): always exit 130 within a second, and outputs
    complete or marked partial. (A signal that meets a process already
    exiting after its work is done leaves exit 0 and complete outputs.)"""
    rng = random.Random(seed)
    # how long a whole run takes here, to spread the moments over it
    t0 = time.monotonic()
    p = start(tmp_path, transcribe_args(model, audio["long"], out=tmp_path / "calib"))
    wait_ready(p)
    t_ready = time.monotonic() - t0
    assert p.wait(timeout=300) == 0, p.stderr.read()
    total = time.monotonic() - t0 - t_ready
    outcomes = {"partial": 0, "complete": 0, "nothing": 0, "finished first": 0, "already exiting": 0}
    for k in range(n):
        out = tmp_path / f"t{k}"
        p = start(tmp_path, transcribe_args(model, audio["long"], out=out))
        wait_ready(p)
        time.sleep(rng.uniform(0.0, total))
        if p.poll() is not None:
            assert p.returncode == 0
            outcomes["finished first"] += 1
            continue
        rc, took = interrupt(p)
        err = p.stderr.read().decode()
        if rc == 0:  # the signal met a process already exiting: then everything must be complete
            assert check_outputs(out, "long.wav", None) is False, (k, err)
            outcomes["already exiting"] += 1
            continue
        assert rc == 130, (k, rc, err)
        assert took < 1.0, (k, took)
        assert "Traceback" not in err, err
        flag = check_outputs(out, "long.wav", None)
        outcomes["nothing" if flag is None else "partial" if flag else "complete"] += 1
    print(f"{n} trials over a {total:.2f} s run: {outcomes}")


def test_sigint_at_random_moments(tmp_path, model, audio):
    run_random_trials(tmp_path, model, audio, n=10, seed=1)


@pytest.mark.skipif(not os.environ.get("MIMO_GGML_SLOW_TESTS"), reason="slow (~50 runs): set MIMO_GGML_SLOW_TESTS=1")
def test_sigint_at_random_moments_50(tmp_path, model, audio):
    run_random_trials(tmp_path, model, audio, n=50, seed=2)


def test_full_disk_leaves_no_truncated_file(tmp_path, model, audio):
    """A size limit (RLIMIT_FSIZE, as a full disk) fails the write: exit 2,
    one line, and no truncated file under a final name."""
    out = tmp_path / "out"
    limit = 3000  # the txt fits, the json (tokens, timings) does not

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    run = subprocess.run([sys.executable, "-m", "mimo_ggml", *map(str, transcribe_args(model, audio["long"], out=out))],
                         capture_output=True, text=True, timeout=300, env=env(tmp_path), cwd=tmp_path,
                         preexec_fn=small_files)
    line = one_line_error(run)
    assert "too large" in line.lower() or "no space" in line.lower(), line
    for p in out.iterdir():
        assert not p.name.endswith(".tmp"), p
        assert p.stat().st_size <= limit
        if p.suffix == ".json":
            json.loads(p.read_text(encoding="utf-8"))
    assert not (out / "long.wav.json").exists()


def test_interrupt_raised_in_the_native_log_callback_is_kept(tiny_asr):
    """A KeyboardInterrupt raised while the native core forwards a log line
    (where a Ctrl-C often lands during loading) reaches the caller."""
    import logging

    from mimo_ggml import AudioTokenizer

    class Interrupting(logging.Handler):
        fired = 0

        def emit(self, record):
            if not Interrupting.fired:
                Interrupting.fired += 1
                raise KeyboardInterrupt

    logger = logging.getLogger("mimo_ggml")
    handler = Interrupting()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with pytest.raises(KeyboardInterrupt):
            tok = AudioTokenizer(tiny_asr["tokenizer"], device="cpu")
            tok.close()
            for _ in range(100):  # the re-armed interrupt is delivered at the next bytecode boundary
                pass
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert Interrupting.fired == 1


def _session_takes(name: str) -> bool:
    from dataclasses import fields

    from mimo_ggml.session import TranscribeOptions

    return name in {f.name for f in fields(TranscribeOptions)}


@pytest.mark.skipif(not _session_takes("vad"), reason="Session.transcribe_stream has no vad= yet")
def test_vad_segments_through_the_cli(tmp_path, model):
    """With the VAD wired into the Session: espeak speech between long
    silences gives segments inside the speech, none longer than
    --max-segment; --no-vad covers everything."""
    import shutil as sh

    if sh.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from mimo_ggml.audio import load_audio

    speech = tmp_path / "s.wav"
    subprocess.run(["espeak-ng", "-w", str(speech), "One two three four five six seven eight nine ten."],
                   check=True, timeout=60)
    w = load_audio(speech)
    sil = np.zeros(3 * 24000, np.float32)
    sig = np.concatenate([sil, w, sil, w, w, sil])
    wav = tmp_path / "talk.wav"
    sf.write(wav, sig, 24000, subtype="FLOAT")
    args = ["transcribe", wav, "-m", model, "-t", "1", "--device", "cpu", "--max-new-tokens", "4", "-f", "json"]
    run = cli(tmp_path, *args, "-o", tmp_path / "v", "--max-segment", "4", text=True)
    assert run.returncode == 0, run.stderr
    segs = json.loads((tmp_path / "v" / "talk.wav.json").read_text(encoding="utf-8"))["segments"]
    assert segs and all(s["end"] - s["start"] <= 4.0 + 1e-6 for s in segs)
    assert segs[0]["start"] >= 2.5 and segs[-1]["end"] <= len(sig) / 24000 - 2.5  # silence not decoded
    assert all(0.0 <= s["no_speech_prob"] <= 1.0 for s in segs)
    plain = cli(tmp_path, *args, "-o", tmp_path / "p", "--no-vad", text=True)
    assert plain.returncode == 0, plain.stderr
    psegs = json.loads((tmp_path / "p" / "talk.wav.json").read_text(encoding="utf-8"))["segments"]
    assert psegs[0]["start"] == 0.0 and psegs[-1]["end"] == pytest.approx(len(sig) / 24000)
