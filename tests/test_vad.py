"""mimo_ggml.vad on espeak-ng speech made at test time, with inserted silence
and noise: segment boundaries near the true speech boundaries, no long
silence inside a segment, the length cap, silence giving nothing (fast), the
two Silero ONNX interfaces, model discovery and the fallback."""

from __future__ import annotations

import shutil
import subprocess
import time

import numpy as np
import pytest

from mimo_ggml import vad
from mimo_ggml.audio import TARGET_SAMPLE_RATE as SR
from mimo_ggml.audio import load_audio, split_on_pauses
from mimo_ggml.errors import InvalidArgumentError, ModelNotFoundError

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Speech recognition turns sound into text.",
    "Please call me back tomorrow morning, after nine.",
    "Seven silver spoons were left on the table.",
    "It was raining when the train finally arrived.",
    "A long sentence keeps going, with a few commas, and then some more words after that.",
]


@pytest.fixture(scope="module")
def packaged_model():
    path = vad._packaged_model()
    assert path is not None, "the [test] extra installs silero-vad, which ships the VAD's ONNX files"
    return path


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """Each sentence spoken by espeak-ng, at 24 kHz, trimmed to its audible
    extent (so the true speech boundaries are known to the sample)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    root = tmp_path_factory.mktemp("espeak")
    out = []
    for i, text in enumerate(SENTENCES):
        wav = root / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-s", "165", "-w", str(wav), text], check=True, timeout=60)
        w = load_audio(wav)
        loud = np.flatnonzero(np.abs(w) > 1e-3)
        out.append(w[loud[0] : loud[-1] + 1])
    return out


def compose(parts, noise_db: float = -60.0, seed: int = 0):
    """Concatenate ("speech", wave) / ("gap", seconds) / ("noise", seconds)
    parts over a faint noise floor; returns the signal, the true speech
    islands (sample ranges) and a per-sample mask of pure silence."""
    rng = np.random.default_rng(seed)
    pieces, islands, silent = [], [], []
    pos = 0
    for kind, value in parts:
        if kind == "speech":
            x = value
            islands.append((pos, pos + len(x)))
            # inside speech, 10 ms stretches under -60 dBFS count as silence too
            frames = np.abs(x[: len(x) // 240 * 240]).reshape(-1, 240).max(axis=1) < 1e-3
            m = np.zeros(len(x), bool)
            m[: len(frames) * 240] = np.repeat(frames, 240)
            silent.append(m)
        elif kind == "gap":
            x = np.zeros(int(value * SR), np.float32)
            silent.append(np.ones(len(x), bool))
        else:  # broadband noise, not speech, not silence
            x = (0.05 * rng.standard_normal(int(value * SR))).astype(np.float32)
            silent.append(np.zeros(len(x), bool))
        pieces.append(x)
        pos += len(x)
    sig = np.concatenate(pieces)
    sig = sig + (10 ** (noise_db / 20) * rng.standard_normal(len(sig))).astype(np.float32)
    return sig.astype(np.float32), islands, np.concatenate(silent)


def offline_cache(monkeypatch, home):
    """Offline, with an own Hugging Face cache under ``home``, no VAD package and no $MIMO_GGML_VAD_MODEL."""
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.delenv(vad.VAD_ENV, raising=False)
    monkeypatch.setattr(vad, "PACKAGED_MODELS", ())


def longest_run(mask: np.ndarray) -> int:
    if not mask.any():
        return 0
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return int((np.flatnonzero(d == -1) - np.flatnonzero(d == 1)).max())


def check_segments(segs, islands, silent, max_segment_s):
    assert segs, "speech was not found"
    starts = np.array([a for a, _ in islands]) / SR
    ends = np.array([b for _, b in islands]) / SR
    prev_end = 0
    for s in segs:
        assert 0 <= s.start < s.end and s.start >= prev_end  # ordered, not overlapping
        prev_end = s.end
        a, b = s.seconds()
        assert b - a <= max_segment_s + 1e-9
        assert longest_run(silent[s.start : s.end]) <= 1.0 * SR, (a, b)
        assert 0.0 <= s.no_speech_prob <= 1.0
    # every island is covered, and the outer edges of the speech are found to 0.3 s
    covered = np.zeros(len(silent), bool)
    for s in segs:
        covered[s.start : s.end] = True
    for (a, b) in islands:
        assert covered[a + int(0.3 * SR) : b - int(0.3 * SR)].all(), (a / SR, b / SR)
    for s in segs:
        a, b = s.seconds()
        # a segment starts at an island's start (or at a cut inside long speech, which is checked by coverage)
        if not any(lo <= a <= hi for lo, hi in zip(starts, ends)):
            assert np.abs(starts - a).min() <= 0.3, f"segment start {a:.3f} is not near a speech start"
        if not any(lo <= b <= hi for lo, hi in zip(starts, ends)):
            assert np.abs(ends - b).min() <= 0.3, f"segment end {b:.3f} is not near a speech end"
    for a in starts:
        assert min(abs(s.seconds()[0] - a) for s in segs) <= 0.3 or any(
            s.start < a * SR < s.end for s in segs), f"speech start {a:.3f} has no segment start near it"
    errors = [min(abs(s.seconds()[0] - starts)) for s in segs] + [min(abs(s.seconds()[1] - ends)) for s in segs]
    print(f"{len(segs)} segments; boundary error to the nearest true boundary: max {max(errors):.3f} s "
          f"(cuts inside long speech included)")


def test_boundaries_silence_and_noise(voices, packaged_model):
    parts = [("gap", 1.3), ("speech", voices[0]), ("gap", 2.0), ("speech", voices[1]), ("gap", 0.3),
             ("speech", voices[2]), ("gap", 1.5), ("noise", 2.0), ("gap", 1.5), ("speech", voices[3]),
             ("gap", 4.0)]
    sig, islands, silent = compose(parts)
    t0 = time.perf_counter()
    segs = vad.speech_segments(sig, SR, max_segment_s=15.0)
    print(f"{len(sig) / SR:.1f} s of audio segmented in {time.perf_counter() - t0:.3f} s")
    check_segments(segs, islands, silent, 15.0)
    # the 0.3 s gap is merged over, the 2 s gap is not, and noise is not speech
    assert len(segs) == 3
    assert segs[1].start < islands[1][0] + 0.3 * SR and segs[1].end > islands[2][1] - 0.3 * SR
    noise = (islands[2][1] + int(1.5 * SR), islands[2][1] + int(3.5 * SR))
    assert not any(s.start < noise[1] and s.end > noise[0] for s in segs)
    assert all(s.no_speech_prob < 0.5 for s in segs)


@pytest.mark.parametrize("max_segment_s", [6.0, 15.0])
def test_long_speech_is_cut_below_the_cap(voices, packaged_model, max_segment_s):
    parts = [("gap", 0.5)]
    for v in voices * 3:
        parts += [("speech", v), ("gap", 0.25)]
    parts.append(("gap", 1.0))
    sig, islands, silent = compose(parts, noise_db=-50.0, seed=1)
    assert len(sig) / SR > 3 * max_segment_s
    segs = vad.speech_segments(sig, SR, max_segment_s=max_segment_s)
    check_segments(segs, islands, silent, max_segment_s)
    assert len(segs) >= (len(sig) / SR - 1.5) / max_segment_s


def test_ten_minutes_of_silence_is_nothing_and_fast(packaged_model):
    rng = np.random.default_rng(2)
    for sig in (np.zeros(600 * SR, np.float32), (1e-3 * rng.standard_normal(600 * SR)).astype(np.float32)):
        t0 = time.perf_counter()
        segs = vad.speech_segments(sig, SR)
        took = time.perf_counter() - t0
        print(f"10 min of {'digital silence' if not sig.any() else '-60 dB noise'}: {took:.2f} s, {len(segs)} segments")
        assert segs == []
        assert took < 20.0


def test_other_rates_and_sample_indices(voices, packaged_model):
    sig, islands, _ = compose([("gap", 1.0), ("speech", voices[4]), ("gap", 1.0)])
    from mimo_ggml.audio import resample

    at24 = vad.speech_segments(sig, SR)
    sig16 = resample(sig, SR, 16000)
    at16 = vad.speech_segments(sig16, 16000)
    assert len(at24) == len(at16) == 1
    assert abs(at24[0].seconds()[0] - at16[0].seconds(16000)[0]) < 0.01
    assert at16[0].end <= len(sig16) and at24[0].end <= len(sig)


def test_streaming_interface_agrees_with_sequence(voices, packaged_model, tmp_path, monkeypatch):
    """The streaming export (input/state/sr: the Hugging Face file's
    interface) run as side-by-side stretches finds the same speech as the
    sequence export, and is found in a Hugging Face cache layout."""
    stream_file = packaged_model.parent / "silero_vad.onnx"
    if not stream_file.is_file():
        pytest.skip("this silero-vad release ships no streaming export")
    parts = [("gap", 1.0)]
    for v in voices[:5]:
        parts += [("speech", v), ("gap", 1.2)]
    sig, islands, silent = compose(parts, seed=3)
    seq = vad.speech_segments(sig, SR, vad=packaged_model)
    stream = vad.speech_segments(sig, SR, vad=stream_file)
    assert vad._load(stream_file).kind == "streaming" and vad._load(packaged_model).kind == "sequence"
    check_segments(stream, islands, silent, vad.DEFAULT_MAX_SEGMENT_S)
    assert len(seq) == len(stream)
    for a, b in zip(seq, stream):
        assert abs(a.start - b.start) <= 0.1 * SR and abs(a.end - b.end) <= 0.1 * SR

    # discovery: a Hugging Face cache holding onnx-community/silero-vad, offline, no package
    hub = tmp_path / "hf" / "hub" / "models--onnx-community--silero-vad"
    snap = hub / "snapshots" / ("0" * 40)
    (snap / "onnx").mkdir(parents=True)
    shutil.copy(stream_file, snap / "onnx" / "model.onnx")
    (hub / "refs").mkdir()
    (hub / "refs" / "main").write_text("0" * 40)
    offline_cache(monkeypatch, tmp_path / "hf")
    assert vad.find_vad_model() == snap / "onnx" / "model.onnx"


def test_vad_false_is_the_pause_splitter(voices):
    sig, _, _ = compose([("speech", voices[0]), ("gap", 0.5)] * 6)
    segs = vad.speech_segments(sig, SR, vad=False, max_segment_s=5.0)
    assert [(s.start, s.end) for s in segs] == split_on_pauses(sig, SR, max_clip_s=5.0)
    assert all(s.no_speech_prob is None for s in segs)
    assert [(s.start, s.end) for s in vad.speech_segments(sig, SR, vad=False, max_segment_s=None)] == [(0, len(sig))]


def test_missing_model_falls_back_with_a_warning(tmp_path, monkeypatch):
    offline_cache(monkeypatch, tmp_path / "empty")
    assert vad.find_vad_model() is None
    sig = (0.1 * np.random.default_rng(4).standard_normal(40 * SR)).astype(np.float32)
    with pytest.warns(vad.VadUnavailableWarning, match="hf download onnx-community/silero-vad onnx/model.onnx"):
        segs = vad.speech_segments(sig, SR, max_segment_s=15.0)
    assert [(s.start, s.end) for s in segs] == split_on_pauses(sig, SR, max_clip_s=15.0)
    with pytest.raises(ModelNotFoundError, match="hf download"):
        vad.speech_probabilities(sig, SR)


def test_explicit_model_and_arguments(tmp_path, monkeypatch):
    sig = np.zeros(SR, np.float32)
    with pytest.raises(ModelNotFoundError, match="VAD model not found"):
        vad.speech_segments(sig, SR, vad=tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(vad.ModelLoadError, match="not a usable ONNX model"):
        vad.speech_segments(sig, SR, vad=bad)
    monkeypatch.setenv(vad.VAD_ENV, str(tmp_path / "nope.onnx"))
    with pytest.raises(ModelNotFoundError):
        vad.find_vad_model()
    for kwargs in ({"max_segment_s": 0.5}, {"max_segment_s": float("nan")}, {"threshold": 1.0},
                   {"speech_pad_s": -1}, {"vad": 3}):
        with pytest.raises(InvalidArgumentError):
            vad.speech_segments(sig, SR, **kwargs)
    with pytest.raises(vad.AudioError):
        vad.speech_segments(np.zeros((2, 10), np.float32), SR)
    assert vad.speech_segments(np.zeros(0, np.float32), SR) == []


def test_segments_from_probabilities_rules():
    """The frame-level rules on hand-made probabilities (32 ms frames)."""
    f = vad.FRAME_SAMPLES / vad.VAD_SAMPLE_RATE
    n = int(20 / f)
    p = np.zeros(n, np.float32)

    def put(a, b, v=0.9):
        p[int(a / f) : int(b / f)] = v

    put(1.0, 4.0)
    put(3.0, 3.06, 0.2)  # a dip below the offset level shorter than min_silence_s: stays inside
    put(6.0, 6.1)  # a 0.1 s burst: dropped
    put(8.0, 9.0)
    put(9.4, 10.0)  # 0.4 s gap: merged
    put(12.0, 19.0)
    segs = vad.segments_from_probabilities(p, 20 * SR, SR, max_segment_s=4.0)
    sec = [s.seconds() for s in segs]
    assert sec[0][0] == pytest.approx(1.0 - vad.SPEECH_PAD_S, abs=0.04)
    assert sec[0][1] == pytest.approx(4.0 + vad.SPEECH_PAD_S, abs=0.04)
    assert sec[1][0] == pytest.approx(8.0 - vad.SPEECH_PAD_S, abs=0.04)
    assert sec[1][1] == pytest.approx(10.0 + vad.SPEECH_PAD_S, abs=0.04)
    rest = sec[2:]
    assert len(rest) == 2 and all(b - a <= 4.0 for a, b in rest)
    assert rest[0][0] == pytest.approx(12.0 - vad.SPEECH_PAD_S, abs=0.04)
    assert rest[-1][1] == pytest.approx(19.0 + vad.SPEECH_PAD_S, abs=0.04)
    assert rest[0][1] == rest[1][0]  # cut, not gapped
    assert segs[0].no_speech_prob == pytest.approx(0.1, abs=0.05)
    assert vad.segments_from_probabilities(np.full(n, 0.3, np.float32), 20 * SR, SR) == []


@pytest.mark.parametrize("rate", [24000, 16000, 44100])
def test_pieces_give_the_whole_signal_probabilities(voices, packaged_model, monkeypatch, rate):
    """Long inputs are resampled and framed a piece at a time (flat memory);
    the probabilities equal those of the whole signal at once."""
    from mimo_ggml.audio import resample

    parts = [("gap", 0.7)]
    for v in voices[:3]:
        parts += [("speech", v), ("gap", 0.9)]
    sig24, _, _ = compose(parts, seed=5)
    sig = sig24 if rate == SR else resample(sig24, SR, rate)
    whole = vad._load(packaged_model).probabilities(resample(sig, rate, 16000) if rate != 16000 else sig)
    monkeypatch.setattr(vad, "_PIECE_FRAMES", 37)  # ~1.2 s pieces: many boundaries
    pieces = vad.speech_probabilities(sig, rate, vad=packaged_model)
    assert len(pieces) == len(whole)
    np.testing.assert_allclose(pieces, whole, atol=2e-3)
    stream_file = packaged_model.parent / "silero_vad.onnx"
    if stream_file.is_file():
        monkeypatch.setattr(vad, "_PIECE_FRAMES", 100)
        s = vad.speech_probabilities(sig, rate, vad=stream_file)
        assert len(s) == len(whole) and np.mean(np.abs(s - whole)) < 0.05


def test_memory_stays_flat_for_long_inputs(packaged_model):
    """20 minutes at 48 kHz: load_audio peaks at its one float copy at the
    source rate plus the 24 kHz result, and speech_segments adds next to
    nothing on top (it resamples and frames 60 s at a time)."""
    import sys

    script = """
import resource, numpy as np
from mimo_ggml.audio import load_audio
from mimo_ggml import vad
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
vad.speech_segments(np.zeros(24000 * 130, np.float32), 24000)  # the model loaded, its buffers at full size
w = np.zeros(24000 * 1200, np.float32)
w[::97] = 1e-4
base = peak()
segs = vad.speech_segments(w, 24000)
vad_growth = peak() - base
del w
x = np.zeros(48000 * 1200, np.int16)
x[::97] = 3
base = peak()
w = load_audio((x, 48000))
print(peak() - base, vad_growth, w.nbytes, len(segs))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    load_growth, vad_growth, wave_bytes, n = map(int, run.stdout.split())
    print(f"load_audio +{load_growth / 2**20:.0f} MiB, speech_segments +{vad_growth / 2**20:.0f} MiB "
          f"for a {wave_bytes / 2**20:.0f} MiB waveform")
    assert load_growth < 3.2 * wave_bytes  # 48 kHz float copy (2x) + the 24 kHz result (1x)
    assert vad_growth < 48 << 20
