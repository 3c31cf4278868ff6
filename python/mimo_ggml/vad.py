"""Where the speech is: Silero VAD through onnxruntime, and the segments the
ASR pipeline decodes.

:func:`speech_segments` turns a waveform into speech-bounded segments: speech
only, each at most ``max_segment_s`` long, neighbours merged across short
gaps, with real starts and ends and the VAD's doubt about each one
(``no_speech_prob``). Silence is never returned, so it is never decoded.

The detector is Silero VAD (v5/v6, 16 kHz, 32 ms frames) run by onnxruntime;
no torch is needed. Its model file is found the way the ASR model is
(:func:`find_vad_model`):

1. an explicit path (``vad="silero_vad.onnx"``) or ``$MIMO_GGML_VAD_MODEL``;
2. a file shipped by an installed package (``silero-vad``, ``faster-whisper``);
3. the Hugging Face cache (``onnx-community/silero-vad``, ``onnx/model.onnx``),
   downloaded first when allowed.

Both ONNX interfaces Silero publishes are accepted: the *sequence* model
(``input`` [frames, 576], ``h``, ``c``: one call per block of frames) and the
*streaming* model (``input`` [batch, 576], ``state``, ``sr``: one call per
frame, run here over many stretches of the input side by side).

Without a model (or without onnxruntime) ``speech_segments`` falls back to
:func:`mimo_ggml.audio.split_on_pauses` with a :class:`VadUnavailableWarning`;
``vad=False`` asks for that plain clip behaviour directly.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .audio import TARGET_SAMPLE_RATE, resample, resample_context, split_on_pauses
from .errors import AudioError, InvalidArgumentError, ModelLoadError, ModelNotFoundError

__all__ = [
    "DEFAULT_MAX_SEGMENT_S",
    "SpeechSegment",
    "VadModel",
    "VadUnavailableWarning",
    "find_vad_model",
    "speech_probabilities",
    "speech_segments",
]

log = logging.getLogger("mimo_ggml")

# -- facts of the detector (Silero VAD at 16 kHz) ---------------------------
VAD_SAMPLE_RATE = 16_000
FRAME_SAMPLES = 512  # 32 ms per probability
CONTEXT_SAMPLES = 64  # the tail of the previous frame each frame is prefixed with
STATE_WIDTH = 128

# -- where the model file comes from ------------------------------------------
VAD_ENV = "MIMO_GGML_VAD_MODEL"
VAD_REPO = "onnx-community/silero-vad"
VAD_REPO_FILE = "onnx/model.onnx"
# (distribution, file inside it): the sequence models first (fewer calls)
PACKAGED_MODELS = (
    ("silero-vad", "silero_vad/data/silero_vad_16k_sequence.onnx"),
    ("faster-whisper", "faster_whisper/assets/silero_vad_v6.onnx"),
    ("silero-vad", "silero_vad/data/silero_vad.onnx"),
)

# -- segmentation defaults (one place) ----------------------------------------
DEFAULT_MAX_SEGMENT_S = 15.0  # suits subtitles; the ASR prompt costs little at this length
THRESHOLD = 0.5  # a frame at or above this starts speech
OFFSET_DROP = 0.15  # speech ends below threshold - OFFSET_DROP (hysteresis)
MIN_SPEECH_S = 0.25  # shorter bursts are dropped
MIN_SILENCE_S = 0.1  # dips shorter than this stay inside the speech
SPEECH_PAD_S = 0.1  # kept around each stretch of speech so word edges are not cut
MERGE_GAP_S = 0.6  # neighbours closer than this become one segment (when it fits)

_SEQUENCE_BLOCK = 2048  # frames per call of a sequence model (~65 s, ~4.7 MB of input)
_PIECE_FRAMES = 1875  # the input is resampled and framed 60 s at a time: memory stays flat for long inputs
_STREAM_FRAMES = 320  # frames per side-by-side stretch of a streaming model (~10 s)
_STREAM_WARMUP = 32  # frames each stretch is started early by, so its state has settled


class VadUnavailableWarning(UserWarning):
    """The VAD was asked for but cannot run (no model file, no onnxruntime):
    the input is split at pauses instead."""


@dataclass(frozen=True)
class SpeechSegment:
    """One stretch of speech: samples ``[start, end)`` of the waveform given
    to :func:`speech_segments`, and ``no_speech_prob``, one minus the VAD's
    mean speech probability over the frames it heard as speech (``None`` when
    no VAD ran)."""

    start: int
    end: int
    no_speech_prob: Optional[float] = None

    def seconds(self, sample_rate: int = TARGET_SAMPLE_RATE) -> tuple[float, float]:
        """(start, end) in seconds."""
        return self.start / sample_rate, self.end / sample_rate


# ---------------------------------------------------------------------------
# finding the model
# ---------------------------------------------------------------------------


def _packaged_model() -> Optional[Path]:
    from importlib import metadata

    for dist, rel in PACKAGED_MODELS:
        try:
            path = Path(metadata.distribution(dist).locate_file(rel))
        except metadata.PackageNotFoundError:
            continue
        if path.is_file():
            return path
    return None


def _where_we_looked() -> str:
    packages = ", ".join(sorted({d for d, _ in PACKAGED_MODELS}))
    return (f"${VAD_ENV}, the files shipped by the packages {packages}, and the Hugging Face cache "
            f"({VAD_REPO}, {VAD_REPO_FILE})")


def find_vad_model(vad: Union[bool, str, os.PathLike] = True, *, download: bool = True) -> Optional[Path]:
    """The Silero VAD ONNX file to use, or None when there is none.

    ``vad`` is True (search), or the path of an ``.onnx`` file (which must
    exist: :class:`~mimo_ggml.errors.ModelNotFoundError` otherwise).
    ``download`` allows fetching it from the Hugging Face Hub when it is in
    none of the places searched (never while ``HF_HUB_OFFLINE`` is set).
    """
    if vad is True:
        env = os.environ.get(VAD_ENV)
        if env:
            vad = env
        else:
            found = _packaged_model()
            if found is not None:
                return found
            from .models import hub_file

            return hub_file(VAD_REPO, VAD_REPO_FILE, download=download, required=False)
    if isinstance(vad, (str, os.PathLike)):
        path = Path(os.fspath(vad)).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(
                f"VAD model not found: {path} (expected a Silero VAD .onnx file; "
                f"`hf download {VAD_REPO} {VAD_REPO_FILE}` fetches one)")
        return path
    raise InvalidArgumentError(f"vad must be True, False or the path of a Silero VAD .onnx file, got {vad!r}")


# ---------------------------------------------------------------------------
# running the model
# ---------------------------------------------------------------------------


class VadModel:
    """A loaded Silero VAD ONNX model (thread-safe: no state between calls).

    :meth:`probabilities` gives the speech probability of every 32 ms frame
    of a 16 kHz waveform.
    """

    def __init__(self, path: Union[str, os.PathLike]):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelLoadError("the VAD needs onnxruntime: pip install onnxruntime") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # frames are tiny; more threads only add contention
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # Silero's exports trigger harmless initializer warnings
        self.path = Path(path)
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=opts,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadError(f"{self.path} is not a usable ONNX model: {exc}") from None
        names = {i.name for i in self._session.get_inputs()}
        if {"input", "h", "c"} <= names:
            self.kind = "sequence"
        elif {"input", "state"} <= names:
            self.kind = "streaming"
            self._takes_rate = "sr" in names
        else:
            raise ModelLoadError(
                f"{self.path} does not look like Silero VAD (inputs {sorted(names)}; expected input/h/c or "
                "input/state/sr)")

    @staticmethod
    def frames(wave16k: np.ndarray, context: Optional[np.ndarray] = None) -> np.ndarray:
        """[n_frames, 64 + 512] model inputs: each 512-sample frame prefixed
        with the last 64 samples before it (``context`` for the first: the
        end of the previous piece, zeros at the start); the last frame is
        zero-padded."""
        n = len(wave16k)
        n_frames = -(-n // FRAME_SAMPLES)
        padded = np.zeros(n_frames * FRAME_SAMPLES, dtype=np.float32)
        padded[:n] = wave16k
        body = padded.reshape(n_frames, FRAME_SAMPLES)
        out = np.empty((n_frames, CONTEXT_SAMPLES + FRAME_SAMPLES), dtype=np.float32)
        out[:, CONTEXT_SAMPLES:] = body
        out[0, :CONTEXT_SAMPLES] = 0.0 if context is None else context
        out[1:, :CONTEXT_SAMPLES] = body[:-1, -CONTEXT_SAMPLES:]
        return out

    def probabilities(self, wave16k: np.ndarray) -> np.ndarray:
        """Speech probability in [0, 1] of each 32 ms frame (float32)."""
        x = np.ascontiguousarray(wave16k, dtype=np.float32)
        if x.ndim != 1:
            raise AudioError(f"the VAD expects a 1-D waveform, got shape {x.shape}")
        return self.probabilities_of_pieces([x])

    def probabilities_of_pieces(self, pieces) -> np.ndarray:
        """Like :meth:`probabilities` for a 16 kHz signal given as consecutive
        pieces (each a whole number of 512-sample frames but the last), so a
        long input is never framed all at once: the model state and each
        frame's 64-sample context carry over from piece to piece."""
        context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        h = np.zeros((1, 1, STATE_WIDTH), dtype=np.float32)
        c = np.zeros_like(h)
        warm = np.zeros((0, CONTEXT_SAMPLES + FRAME_SAMPLES), dtype=np.float32)
        out = []
        for piece in pieces:
            if len(piece) == 0:
                continue
            frames = self.frames(piece, context)
            context = frames[-1, -CONTEXT_SAMPLES:].copy()
            if self.kind == "sequence":
                for b in range(0, len(frames), _SEQUENCE_BLOCK):
                    p, h, c = self._session.run(None, {"input": frames[b : b + _SEQUENCE_BLOCK], "h": h, "c": c})
                    out.append(np.asarray(p, dtype=np.float32).reshape(-1))
            else:
                # the end of the previous piece warms the state up again (outputs dropped)
                p = self._streaming(np.concatenate([warm, frames]))[len(warm) :]
                warm = frames[-_STREAM_WARMUP:]
                out.append(p)
        if not out:
            return np.zeros(0, dtype=np.float32)
        probs = np.concatenate(out)
        return np.clip(np.nan_to_num(probs, nan=0.0), 0.0, 1.0)

    def _streaming(self, frames: np.ndarray) -> np.ndarray:
        # One call per frame is slow for long inputs, so the input is cut into
        # stretches of _STREAM_FRAMES run side by side as a batch; each stretch
        # starts _STREAM_WARMUP frames early (outputs discarded) so its state
        # has settled by the time its own frames come.
        n = len(frames)
        starts = list(range(0, n, _STREAM_FRAMES))
        steps = _STREAM_WARMUP + _STREAM_FRAMES
        batch = np.zeros((len(starts), steps, frames.shape[1]), dtype=np.float32)
        for i, s in enumerate(starts):
            lo = max(0, s - _STREAM_WARMUP)
            piece = frames[lo : min(n, s + _STREAM_FRAMES)]
            offset = _STREAM_WARMUP - (s - lo)
            batch[i, offset : offset + len(piece)] = piece
        state = np.zeros((2, len(starts), STATE_WIDTH), dtype=np.float32)
        feeds = {"state": state}
        if self._takes_rate:
            feeds["sr"] = np.array(VAD_SAMPLE_RATE, dtype=np.int64)
        probs = np.empty((len(starts), steps), dtype=np.float32)
        for t in range(steps):
            feeds["input"] = batch[:, t]
            p, feeds["state"] = self._session.run(None, feeds)
            probs[:, t] = np.asarray(p).reshape(-1)
        out = probs[:, _STREAM_WARMUP:].reshape(-1)
        return out[:n]


def _pieces_16k(x: np.ndarray, sr: int, piece_frames: int):
    """The 16 kHz version of ``x`` in consecutive pieces of ``piece_frames``
    frames, each resampled from its own stretch of ``x`` with enough context
    around it to equal one resampling of the whole (memory: one piece)."""
    step = piece_frames * FRAME_SAMPLES
    if sr == VAD_SAMPLE_RATE:
        for s in range(0, len(x), step):
            yield x[s : s + step]
        return
    n16 = -(-len(x) * VAD_SAMPLE_RATE // sr)  # what resample() returns for the whole
    pad = resample_context(sr, VAD_SAMPLE_RATE)
    g = math.gcd(sr, VAD_SAMPLE_RATE)
    a, b = sr // g, VAD_SAMPLE_RATE // g  # a piece starting at input k*a starts at output k*b, on the same grid
    for s16 in range(0, n16, step):
        e16 = min(n16, s16 + step)
        lo = max(0, (s16 * sr) // VAD_SAMPLE_RATE - pad) // a * a
        hi = min(len(x), -(-(e16 * sr) // VAD_SAMPLE_RATE) + pad)
        y = resample(x[lo:hi], sr, VAD_SAMPLE_RATE)
        off = lo // a * b
        piece = y[s16 - off : e16 - off]
        if len(piece) < e16 - s16:
            piece = np.concatenate([piece, np.zeros(e16 - s16 - len(piece), np.float32)])
        yield piece


_models: dict[Path, VadModel] = {}
_models_lock = threading.Lock()


def _load(path: Path) -> VadModel:
    key = path.resolve()
    with _models_lock:
        model = _models.get(key)
        if model is None:
            model = _models[key] = VadModel(key)
        return model


def speech_probabilities(wave: np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE, *,
                         vad: Union[bool, str, os.PathLike] = True, download: bool = True) -> np.ndarray:
    """Per-frame speech probabilities of ``wave`` (frames of 32 ms at the
    VAD's 16 kHz: frame i covers seconds [0.032 i, 0.032 (i + 1))).

    Raises :class:`~mimo_ggml.errors.ModelNotFoundError` when no model is
    found and :class:`~mimo_ggml.errors.ModelLoadError` without onnxruntime.
    """
    path = find_vad_model(vad, download=download)
    if path is None:
        raise ModelNotFoundError(
            f"no Silero VAD model found (looked in {_where_we_looked()}); "
            f"fetch it with `hf download {VAD_REPO} {VAD_REPO_FILE}` or pass vad=PATH")
    x = _check_wave(wave)
    sr = _check_sample_rate(sample_rate)
    return _load(path).probabilities_of_pieces(_pieces_16k(x, sr, _PIECE_FRAMES))


# ---------------------------------------------------------------------------
# probabilities -> segments
# ---------------------------------------------------------------------------


def _speech_runs(probs: np.ndarray, threshold: float, min_speech: int, min_silence: int) -> list[list[int]]:
    """[start, end) frame runs of speech, with hysteresis: speech starts at a
    frame >= threshold and ends where the probability stays below
    threshold - OFFSET_DROP for at least ``min_silence`` frames."""
    off = max(0.01, threshold - OFFSET_DROP)
    above = probs >= threshold
    below = probs < off
    runs: list[list[int]] = []
    i, n = 0, len(probs)
    while i < n:
        # next onset
        on = np.flatnonzero(above[i:])
        if on.size == 0:
            break
        start = i + int(on[0])
        j = start
        end = n
        while j < n:
            nxt = np.flatnonzero(below[j:])
            if nxt.size == 0:
                break
            q = j + int(nxt[0])  # first quiet frame
            back = np.flatnonzero(~below[q:])  # where the quiet stretch ends
            q_end = n if back.size == 0 else q + int(back[0])
            if q_end - q >= min_silence or q_end == n:
                end = q
                break
            j = q_end
        if end - start >= min_speech:
            runs.append([start, end])
        i = max(end, start + 1)
    return runs


def _split_long(a: int, b: int, probs: np.ndarray, max_len: int) -> list[tuple[int, int]]:
    """Cut frames [a, b) into pieces of at most max_len frames, each cut at
    the quietest frame (3-frame mean; the latest of equals) in the back half
    of the allowed span."""
    pieces = []
    smooth = np.convolve(probs, np.ones(3) / 3.0, mode="same")
    while b - a > max_len:
        lo, hi = a + max(1, max_len // 2), a + max_len
        window = smooth[lo:hi]
        cut = lo + (len(window) - 1 - int(np.argmin(window[::-1])))
        pieces.append((a, cut))
        a = cut
    pieces.append((a, b))
    return pieces


def segments_from_probabilities(
    probs: np.ndarray,
    n_samples: int,
    sample_rate: int,
    *,
    max_segment_s: Optional[float] = DEFAULT_MAX_SEGMENT_S,
    threshold: float = THRESHOLD,
    min_speech_s: float = MIN_SPEECH_S,
    min_silence_s: float = MIN_SILENCE_S,
    speech_pad_s: float = SPEECH_PAD_S,
    merge_gap_s: float = MERGE_GAP_S,
) -> list[SpeechSegment]:
    """Speech segments (sample indices at ``sample_rate``) from per-frame
    probabilities; see :func:`speech_segments`."""
    frame_s = FRAME_SAMPLES / VAD_SAMPLE_RATE
    to_frames = lambda s: int(round(s / frame_s))  # noqa: E731
    probs = np.asarray(probs, dtype=np.float32)
    runs = _speech_runs(probs, threshold, max(1, to_frames(min_speech_s)), max(1, to_frames(min_silence_s)))
    if not runs:
        return []
    n_frames = len(probs)
    pad = to_frames(speech_pad_s)
    gap = to_frames(merge_gap_s)
    max_len = None if max_segment_s is None else max(1, int(max_segment_s / frame_s))

    # pad; where two neighbours' pads would overlap they share the gap at its middle
    padded = []
    for k, (s, e) in enumerate(runs):
        lo = -(-(runs[k - 1][1] + s) // 2) if k else 0
        hi = (e + runs[k + 1][0]) // 2 if k + 1 < len(runs) else n_frames
        padded.append([max(lo, s - pad), min(hi, e + pad), [(s, e)]])
    # merge neighbours across short gaps while the result fits
    merged = [padded[0]]
    for s, e, inner in padded[1:]:
        cur = merged[-1]
        if s - cur[1] <= gap and (max_len is None or e - cur[0] <= max_len):
            cur[1] = e
            cur[2].extend(inner)
        else:
            merged.append([s, e, inner])
    # split what is still too long (one long stretch of speech)
    pieces: list[tuple[int, int, list]] = []
    for s, e, inner in merged:
        if max_len is None or e - s <= max_len:
            pieces.append((s, e, inner))
        else:
            for a, b in _split_long(s, e, probs, max_len):
                pieces.append((a, b, [(max(a, x), min(b, y)) for x, y in inner if min(b, y) > max(a, x)]))

    scale = sample_rate * frame_s  # source samples per frame
    out = []
    for s, e, inner in pieces:
        start = min(n_samples, int(round(s * scale)))
        end = min(n_samples, int(round(e * scale)))
        if end <= start:
            continue
        voiced = np.concatenate([probs[x:y] for x, y in inner]) if inner else probs[s:e]
        out.append(SpeechSegment(start, end, float(np.clip(1.0 - voiced.mean(), 0.0, 1.0))))
    return out


def _check_wave(wave) -> np.ndarray:
    x = np.asarray(wave)
    if x.ndim != 1:
        raise AudioError(f"speech_segments expects a 1-D waveform, got shape {x.shape}")
    if x.dtype.kind != "f":
        raise AudioError(f"speech_segments expects float samples (what load_audio returns), got {x.dtype}")
    return x.astype(np.float32, copy=False)


def _check_sample_rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, Real) or sample_rate != int(sample_rate) \
            or sample_rate <= 0:
        raise InvalidArgumentError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    return int(sample_rate)


def _check_seconds(name: str, value, *, allow_none: bool = False, minimum: float = 0.0) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < minimum:
        what = f"a number of seconds >= {minimum:g}" + (" or None" if allow_none else "")
        raise InvalidArgumentError(f"{name} must be {what}, got {value!r}")


def speech_segments(
    wave: np.ndarray,
    sample_rate: int = TARGET_SAMPLE_RATE,
    *,
    max_segment_s: Optional[float] = DEFAULT_MAX_SEGMENT_S,
    vad: Union[bool, str, os.PathLike] = True,
    download: bool = True,
    threshold: float = THRESHOLD,
    min_speech_s: float = MIN_SPEECH_S,
    min_silence_s: float = MIN_SILENCE_S,
    speech_pad_s: float = SPEECH_PAD_S,
    merge_gap_s: float = MERGE_GAP_S,
) -> list[SpeechSegment]:
    """The stretches of ``wave`` to transcribe, in order.

    wave: mono float samples (what :func:`mimo_ggml.audio.load_audio`
    returns: 24 kHz), resampled here to the VAD's 16 kHz.
    max_segment_s: longest segment (None: no limit). Longer speech is cut
    at its quietest moment.
    vad: True (find Silero VAD), a path to its .onnx file, or False for the
    plain pause splitter (:func:`~mimo_ggml.audio.split_on_pauses` clips of
    ``max_segment_s``, every sample kept, ``no_speech_prob`` None).
    download: allow fetching the VAD model from the Hugging Face Hub.

    With the VAD, segments cover speech only: frames at or above
    ``threshold`` start speech, which ends after ``min_silence_s`` below
    ``threshold - 0.15``; bursts shorter than ``min_speech_s`` are dropped;
    each stretch keeps ``speech_pad_s`` either side; neighbours closer than
    ``merge_gap_s`` merge while the result is no longer than
    ``max_segment_s``. Silence alone gives ``[]``.

    Without a usable VAD model (none found, no onnxruntime) this warns
    (:class:`VadUnavailableWarning`) and splits at pauses instead.
    """
    x = _check_wave(wave)
    sr = _check_sample_rate(sample_rate)
    _check_seconds("max_segment_s", max_segment_s, allow_none=True, minimum=1.0)
    for name, value in (("min_speech_s", min_speech_s), ("min_silence_s", min_silence_s),
                        ("speech_pad_s", speech_pad_s), ("merge_gap_s", merge_gap_s)):
        _check_seconds(name, value)
    if isinstance(threshold, bool) or not isinstance(threshold, Real) or not 0.0 < threshold < 1.0:
        raise InvalidArgumentError(f"threshold must be a probability strictly between 0 and 1, got {threshold!r}")
    if x.size == 0:
        return []
    if vad is False:
        return _pause_clips(x, sr, max_segment_s)
    try:
        probs = speech_probabilities(x, sr, vad=vad, download=download)
    except (ModelNotFoundError, ModelLoadError) as exc:
        if vad is not True:  # an explicit model that cannot be used is the caller's error
            raise
        msg = f"voice activity detection unavailable, splitting at pauses instead: {exc}"
        warnings.warn(msg, VadUnavailableWarning, stacklevel=2)
        log.warning("%s", msg)
        return _pause_clips(x, sr, max_segment_s)
    return segments_from_probabilities(
        probs, len(x), sr, max_segment_s=max_segment_s, threshold=threshold, min_speech_s=min_speech_s,
        min_silence_s=min_silence_s, speech_pad_s=speech_pad_s, merge_gap_s=merge_gap_s)


def _pause_clips(x: np.ndarray, sr: int, max_segment_s: Optional[float]) -> list[SpeechSegment]:
    return [SpeechSegment(a, b, None) for a, b in split_on_pauses(x, sr, max_clip_s=max_segment_s)]
