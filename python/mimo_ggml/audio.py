"""Audio input and the tokenizer's front-end, in numpy float32.

This module owns everything between "whatever the user passed" and the
log-mel matrix the audio-tokenizer encoder consumes (spec/asr.md §2–§4, §13):

- :func:`load_audio` decodes files, bytes, file objects and arrays to one
  mono float32 waveform at 24 kHz (channels averaged, integer PCM scaled by
  2^(bits-1), resampled once, straight from the source rate); libsndfile
  decodes WAV/FLAC/OGG/MP3, PyAV (FFmpeg) whatever else (m4a, mp4, webm,
  aac, ...). Inputs that would become resource bombs are refused before
  they cost anything: rates below :data:`MIN_SAMPLE_RATE`, audio longer than
  ``max_duration_s`` (default :data:`DEFAULT_MAX_DURATION_S`), and FIFOs,
  devices and sockets unless ``allow_special_files=True`` (then read with an
  inactivity timeout and a size cap);
- :func:`resample` is torchaudio's ``sinc_interp_hann`` resampler (width 6,
  rolloff 0.99), done as a block-wise polyphase strided correlation;
- :func:`tokenizer_chunks` / :func:`pad_chunk` cut the waveform into the
  tokenizer's independent 30 s chunks;
- :func:`log_mel` / :func:`mel_filterbank` are the 960/240 STFT + 128 HTK mel
  front-end;
- :func:`split_on_pauses` cuts long audio into ≤ 60 s clips at quiet places
  (an application-level choice, applied before the 30 s chunking).

Runtime dependencies: numpy, soundfile, and PyAV (``av``) for the formats
libsndfile lacks.
"""

from __future__ import annotations

import io
import math
import os
import stat
from functools import lru_cache
from numbers import Integral, Real

import numpy as np

from .errors import AudioError, InvalidArgumentError

__all__ = [
    "TARGET_SAMPLE_RATE",
    "CHUNK_SAMPLES",
    "N_FFT",
    "HOP_LENGTH",
    "N_MELS",
    "load_audio",
    "resample",
    "resample_context",
    "tokenizer_chunks",
    "pad_chunk",
    "mel_filterbank",
    "log_mel",
    "mel_frames",
    "split_on_pauses",
    "MIN_SAMPLE_RATE",
    "MAX_SAMPLE_RATE",
    "DEFAULT_MAX_DURATION_S",
    "MAX_STREAM_BYTES",
    "read_stream",
]

TARGET_SAMPLE_RATE = 24_000
CHUNK_SAMPLES = 30 * TARGET_SAMPLE_RATE  # 720 000: the tokenizer's independent chunk
N_FFT = 960
HOP_LENGTH = 240
N_MELS = 128
LOG_FLOOR = 1e-7

# resampler constants (torchaudio defaults, spec §2.3)
_LOWPASS_WIDTH = 6
_ROLLOFF = 0.99
# largest polyphase kernel (phases x taps) we agree to build; coprime rates such
# as 44 101 -> 24 000 would need gigabytes and are certainly a mistake
_MAX_KERNEL_ELEMENTS = 50_000_000
# target size of one block's frame matrix (floats); keeps temporaries ~16 MB
_BLOCK_ELEMENTS = 1 << 22
# samples read from a decoder / mixed down per step
_READ_BLOCK = 1 << 18

# resource limits on input (issue: 1 Hz "audio" became hours of samples)
MIN_SAMPLE_RATE = 1_000  # below this it is not audio speech can be heard in
MAX_SAMPLE_RATE = 768_000  # the highest rate real converters produce
DEFAULT_MAX_DURATION_S = 4 * 3600.0  # 4 hours: ~1.4 GB as 24 kHz float32
MAX_STREAM_BYTES = 1 << 30  # bytes read from a pipe, FIFO, device or stdin
DEFAULT_READ_TIMEOUT_S = 10.0  # a FIFO/device silent this long is given up on

_WHAT_TO_PASS = (
    "pass a file path, audio file bytes, a binary file object (WAV, FLAC, OGG, MP3, M4A, ...), "
    "a numpy array with sample_rate=, or an (array, sample_rate) tuple"
)


# ---------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------


def _check_rate(rate, what: str = "sample_rate") -> int:
    """A sample rate as a positive int; integral floats (16000.0) are accepted."""
    if isinstance(rate, bool) or not isinstance(rate, Real):
        raise AudioError(f"{what} must be a positive integer number of Hz, got {rate!r}")
    if not isinstance(rate, Integral):
        if not math.isfinite(rate) or rate != int(rate):
            raise AudioError(f"{what} must be a whole number of Hz, got {rate!r}")
    r = int(rate)
    if r <= 0:
        raise AudioError(f"{what} must be positive, got {rate!r}")
    return r


def _check_input_rate(rate, what: str = "sample_rate") -> int:
    """A source rate load_audio accepts: a whole number of Hz within
    [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]."""
    r = _check_rate(rate, what)
    if not MIN_SAMPLE_RATE <= r <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{what} is {r} Hz; audio must be sampled at {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz "
            "(check the rate you passed or the file's header)"
        )
    return r


def _check_max_duration(max_duration_s) -> float | None:
    if max_duration_s is None:
        return None
    if isinstance(max_duration_s, bool) or not isinstance(max_duration_s, Real) or not max_duration_s > 0 \
            or math.isnan(max_duration_s):
        raise InvalidArgumentError(f"max_duration_s must be a positive number of seconds or None, got {max_duration_s!r}")
    return float(max_duration_s)


def _check_duration(n_samples: int, rate: int, max_duration_s: float | None, label: str) -> None:
    if max_duration_s is not None and n_samples > max_duration_s * rate:
        raise AudioError(
            f"{label} is longer than the {max_duration_s:g} s limit ({n_samples / rate:.0f} s or more); "
            "pass a larger max_duration_s (None: no limit) or cut the audio"
        )


def _pcm_scale(dtype: np.dtype) -> tuple[float, float]:
    """(offset, scale) that map stored samples to float: (x - offset) * scale."""
    if dtype.kind == "f":
        return 0.0, 1.0
    bits = dtype.itemsize * 8
    full = float(2 ** (bits - 1))
    if dtype.kind == "i":
        return 0.0, 1.0 / full
    if dtype.kind == "u":  # unsigned PCM is centred on 2^(bits-1) (uint8 WAV: 128)
        return full, 1.0 / full
    raise AudioError(f"audio samples of dtype {dtype} are not supported; use float or integer PCM")


def _mix_to_mono(arr: np.ndarray) -> np.ndarray:
    """[samples, channels] of any supported dtype -> new float32 mono array.

    Works block by block so an int16 stereo file never exists as a full float
    copy; integer PCM is scaled by 2^(bits-1) before averaging.
    """
    n, ch = arr.shape
    offset, scale = _pcm_scale(arr.dtype)
    out = np.empty(n, dtype=np.float32)
    for b in range(0, n, _READ_BLOCK):
        blk = arr[b : b + _READ_BLOCK]
        if arr.dtype.kind == "f":
            blk = blk.astype(np.float32, copy=False)
        else:
            blk = (blk.astype(np.float64) - offset) * scale
        out[b : b + len(blk)] = blk[:, 0] if ch == 1 else blk.mean(axis=1)
    return out


def _array_to_mono(audio, sample_rate, max_duration_s=None) -> tuple[np.ndarray, int]:
    if sample_rate is None:
        raise AudioError(
            "a raw sample array needs its rate: call load_audio(array, sample_rate=16000) "
            "or pass (array, sample_rate)"
        )
    sr = _check_input_rate(sample_rate)
    try:
        arr = np.asarray(audio)
    except (ValueError, TypeError) as exc:  # ragged lists and the like
        raise AudioError(f"audio is not an array of samples: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise AudioError(
            f"audio array has dtype {arr.dtype}; pass float samples in [-1, 1] or integer PCM"
        )
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim == 2:
        # [samples, channels] is the norm (soundfile's layout); [channels, samples]
        # is accepted when the first axis is clearly the short channel axis
        if arr.shape[0] <= 8 and arr.shape[0] < arr.shape[1]:
            arr = arr.T
        elif arr.shape[1] > arr.shape[0]:
            raise AudioError(
                f"audio array of shape {arr.shape} has more channels than samples; "
                "pass [samples, channels] (transpose a [channels, samples] array)"
            )
    else:
        raise AudioError(
            f"audio array must be 1-D [samples] or 2-D [samples, channels], got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise AudioError("audio is empty (no samples); " + _WHAT_TO_PASS)
    _check_duration(arr.shape[0], sr, max_duration_s, "the audio array")
    return _mix_to_mono(arr), sr


def _decode(source, label: str, max_duration_s: float | None) -> tuple[np.ndarray, int]:
    """Decode a path or binary file-like: libsndfile first, PyAV (FFmpeg) for
    what libsndfile does not know."""
    import soundfile as sf  # runtime dependency; imported late to keep import cheap

    try:
        start = source.tell() if hasattr(source, "tell") and hasattr(source, "seek") else None
    except Exception:  # unseekable or closed: soundfile will say so
        start = None
    try:
        f = sf.SoundFile(source)
    except Exception as exc:  # libsndfile reports every unknown/corrupt format the same way
        if not isinstance(source, (str, os.PathLike)):
            if start is None:
                raise AudioError(f"could not decode {label}: {exc}; " + _WHAT_TO_PASS) from None
            try:
                source.seek(start)
            except Exception:
                raise AudioError(f"could not decode {label}: {exc}") from None
        return _decode_av(source, label, max_duration_s, f"{exc}")
    with f:
        sr = _check_input_rate(f.samplerate, f"the sample rate stored in {label}")
        ch = f.channels
        if not 1 <= ch <= 1024:
            raise AudioError(f"{label} claims {ch} channels; not a usable audio file")
        expected = f.frames if f.frames and f.frames > 0 else 0
        _check_duration(expected, sr, max_duration_s, label)
        out = np.empty(expected, dtype=np.float32)
        filled = 0
        try:
            while True:
                blk = f.read(_READ_BLOCK, dtype="float32", always_2d=True)
                if len(blk) == 0:
                    break
                mono = blk[:, 0] if ch == 1 else blk.mean(axis=1)
                if filled + len(mono) > len(out):  # length unknown / under-reported
                    _check_duration(filled + len(mono), sr, max_duration_s, label)
                    grown = np.empty(max(2 * len(out), filled + len(mono)), dtype=np.float32)
                    grown[:filled] = out[:filled]
                    out = grown
                out[filled : filled + len(mono)] = mono
                filled += len(mono)
        except AudioError:
            raise
        except Exception as exc:
            raise AudioError(f"could not decode {label}: {exc}") from None
    if filled == 0:
        raise AudioError(f"{label} contains no audio samples")
    return out[:filled], sr


def _decode_av(source, label: str, max_duration_s: float | None, sndfile_error: str) -> tuple[np.ndarray, int]:
    """Decode the first audio stream with PyAV (FFmpeg): m4a, mp4, webm, aac, ...;
    channels averaged, the stream's own rate kept."""
    try:
        import av
    except ImportError:
        raise AudioError(
            f"could not decode {label}: {sndfile_error}; formats beyond WAV/FLAC/OGG/MP3 need PyAV "
            "(pip install av)"
        ) from None
    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except Exception as exc:
        raise AudioError(f"could not decode {label}: not an audio format libsndfile or FFmpeg knows "
                         f"({sndfile_error}; {exc}); " + _WHAT_TO_PASS) from None
    with container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            raise AudioError(f"{label} holds no audio stream")
        stream = streams[0]
        ctx = getattr(stream, "codec_context", None)
        if ctx is None:
            raise AudioError(f"could not decode {label}: FFmpeg has no decoder for its audio stream")
        sr = _check_input_rate(ctx.sample_rate or getattr(stream, "rate", None) or 0,
                               f"the sample rate stored in {label}")
        limit = None if max_duration_s is None else int(max_duration_s * sr) + 1
        resampler = av.AudioResampler(format="fltp", rate=sr)  # planar float, the stream's rate
        parts: list[np.ndarray] = []
        filled = 0
        try:
            for packet in container.demux(stream):
                for frame in packet.decode():
                    for f in resampler.resample(frame):
                        planes = f.to_ndarray()
                        mono = planes.mean(axis=0, dtype=np.float32) if planes.shape[0] > 1 else planes[0]
                        parts.append(np.ascontiguousarray(mono, dtype=np.float32))
                        filled += len(mono)
                        if limit is not None and filled > limit:
                            _check_duration(filled, sr, max_duration_s, label)
            for f in resampler.resample(None):
                planes = f.to_ndarray()
                parts.append(np.ascontiguousarray(planes.mean(axis=0, dtype=np.float32)))
                filled += planes.shape[1]
        except AudioError:
            raise
        except Exception as exc:
            if filled == 0:
                raise AudioError(f"could not decode {label}: {exc}") from None
            # a damaged tail: keep what decoded (FFmpeg's own behaviour for truncated files)
    if filled == 0:
        raise AudioError(f"{label} contains no audio samples")
    _check_duration(filled, sr, max_duration_s, label)
    return np.concatenate(parts), sr


def _is_special(mode: int) -> bool:
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode)


def read_stream(path, *, timeout_s: float = DEFAULT_READ_TIMEOUT_S, max_bytes: int = MAX_STREAM_BYTES) -> bytes:
    """All bytes of a FIFO, device or other special file, with an inactivity
    timeout (no data for ``timeout_s`` seconds, including waiting for a
    writer) and a size cap. Raises AudioError on either."""
    import select

    path = os.fspath(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    chunks, total = [], 0
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], timeout_s)
            if not ready:
                raise AudioError(f"{path} gave no data for {timeout_s:g} s (a FIFO with no writer?); "
                                 "write the audio to a regular file instead")
            try:
                data = os.read(fd, 1 << 20)
            except BlockingIOError:
                continue
            if not data:
                break
            total += len(data)
            if total > max_bytes:
                raise AudioError(f"{path} gave more than {max_bytes} bytes; not an audio file")
            chunks.append(data)
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_binary_stream(f, *, max_bytes: int = MAX_STREAM_BYTES, label: str = "standard input") -> bytes:
    """All bytes of an open binary stream (stdin, a pipe), at most ``max_bytes``."""
    chunks, total = [], 0
    while True:
        data = f.read(1 << 20)
        if not data:
            break
        total += len(data)
        if total > max_bytes:
            raise AudioError(f"{label} gave more than {max_bytes} bytes; not an audio file")
        chunks.append(data)
    return b"".join(chunks)


def load_audio(
    audio,
    sample_rate: int | None = None,
    *,
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S,
    allow_special_files: bool = False,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
) -> np.ndarray:
    """Any supported audio input -> float32 mono waveform at 24 kHz.

    ``audio`` may be a path (str / PathLike; WAV, FLAC, OGG, MP3 — whatever
    libsndfile decodes), ``bytes`` / ``bytearray`` / ``memoryview`` holding
    such a file, a binary file object, a numpy array (1-D, or 2-D
    [samples, channels]; [channels, samples] is accepted when channels ≤ 8 is
    clearly the short axis) together with ``sample_rate=``, or an
    ``(array, sample_rate)`` tuple.

    For encoded inputs ``sample_rate`` may be omitted; if given it must match
    the rate stored in the file.  Formats libsndfile does not decode (m4a,
    mp4, webm, aac, ...) go through PyAV.

    Limits: source rates must lie in [1 kHz, 768 kHz]; audio longer than
    ``max_duration_s`` (4 hours by default; None: no limit) is refused
    before it is decoded where the header tells its length, else as soon as
    the limit is passed; FIFOs, devices and sockets are refused unless
    ``allow_special_files=True``, which reads them with a ``read_timeout_s``
    inactivity timeout and a 1 GiB cap.

    Raises :class:`FileNotFoundError` for a missing file and
    :class:`~mimo_ggml.errors.AudioError` for everything else that cannot be
    used (empty, non-finite, undecodable, bad rate, too long).
    """
    max_duration_s = _check_max_duration(max_duration_s)
    if isinstance(audio, tuple):
        if len(audio) != 2:
            raise AudioError("an audio tuple must be (array, sample_rate); " + _WHAT_TO_PASS)
        arr, sr = audio
        sr = _check_input_rate(sr, "the sample rate in the (array, sample_rate) tuple")
        if sample_rate is not None and _check_rate(sample_rate) != sr:
            raise AudioError(f"sample_rate={sample_rate} contradicts the tuple's rate {sr}")
        mono, src_sr = _array_to_mono(arr, sr, max_duration_s)
    elif isinstance(audio, (np.ndarray, list)) or (
        hasattr(audio, "__array__") and not hasattr(audio, "read")
    ):
        mono, src_sr = _array_to_mono(audio, sample_rate, max_duration_s)
    else:
        if isinstance(audio, (str, os.PathLike)):
            path = os.fspath(audio)
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise FileNotFoundError(f"audio file not found: {path}") from None
            except (OSError, ValueError) as exc:  # permission, name too long, NUL in the name
                raise AudioError(f"cannot open audio file {path!r}: {exc}") from None
            if stat.S_ISDIR(st.st_mode):
                raise AudioError(f"{path} is a directory, not an audio file")
            label = f"audio file {path}"
            if _is_special(st.st_mode):
                if not allow_special_files:
                    raise AudioError(
                        f"{path} is a FIFO, device or socket, not a regular file; reading it could block "
                        "forever (pass allow_special_files=True to read it with a timeout)"
                    )
                mono, src_sr = _decode(io.BytesIO(read_stream(path, timeout_s=read_timeout_s)), label,
                                       max_duration_s)
            else:
                try:
                    mono, src_sr = _decode(path, label, max_duration_s)
                except PermissionError as exc:
                    raise AudioError(f"cannot open audio file {path}: {exc}") from None
        elif isinstance(audio, (bytes, bytearray, memoryview)):
            if len(audio) == 0:
                raise AudioError("audio bytes are empty; " + _WHAT_TO_PASS)
            mono, src_sr = _decode(io.BytesIO(audio), "audio bytes", max_duration_s)
        elif hasattr(audio, "read"):
            if isinstance(audio, io.TextIOBase):
                raise AudioError("the audio file object is open in text mode; open it with 'rb'")
            mono, src_sr = _decode(audio, "audio file object", max_duration_s)
        else:
            raise AudioError(f"unsupported audio input of type {type(audio).__name__}; " + _WHAT_TO_PASS)
        # encoded input carries its own rate; a sample_rate= that disagrees is a caller mistake
        if sample_rate is not None and _check_rate(sample_rate) != src_sr:
            raise AudioError(
                f"sample_rate={sample_rate} was given but the audio is stored at {src_sr} Hz; "
                "sample_rate= is only needed for raw arrays"
            )
    if mono.size == 0:
        raise AudioError("audio is empty (no samples)")
    if not all(np.isfinite(mono[b : b + _READ_BLOCK]).all() for b in range(0, mono.size, _READ_BLOCK)):
        raise AudioError("audio contains NaN or infinite samples; clean the signal before passing it")
    if src_sr == TARGET_SAMPLE_RATE:
        return mono  # already a fresh array (never the caller's buffer): no second copy of long audio
    return resample(mono, src_sr, TARGET_SAMPLE_RATE)


# ---------------------------------------------------------------------------
# resampling (spec §2.3)
# ---------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _sinc_kernel(a: int, b: int) -> tuple[np.ndarray, int]:
    """Polyphase windowed-sinc kernel [b phases, 2w + a taps] and half width w.

    Arithmetic in float32 in torchaudio's order, so the taps match its kernel
    to the last bit or two.
    """
    base = min(a, b) * _ROLLOFF
    w = math.ceil(_LOWPASS_WIDTH * a / base)
    idx = np.arange(-w, w + a, dtype=np.float32) / np.float32(a)
    t = np.arange(0, -b, -1, dtype=np.float32)[:, None] / np.float32(b) + idx[None, :]
    t *= np.float32(base)
    np.clip(t, -_LOWPASS_WIDTH, _LOWPASS_WIDTH, out=t)
    window = np.cos(t * np.float32(math.pi) / np.float32(_LOWPASS_WIDTH) / np.float32(2)) ** 2
    t *= np.float32(math.pi)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.where(t == 0, np.float32(1), np.sin(t) / t).astype(np.float32)
    h *= window * np.float32(base / a)
    h.setflags(write=False)
    return h, w


def resample_context(sr_in: int, sr_out: int) -> int:
    """Input samples on each side that one output sample of :func:`resample`
    depends on (the filter's half width w): a piece resampled with this much
    real input around it matches the whole signal resampled at once."""
    sr_in = _check_rate(sr_in, "sr_in")
    sr_out = _check_rate(sr_out, "sr_out")
    g = math.gcd(sr_in, sr_out)
    a, b = sr_in // g, sr_out // g
    return math.ceil(_LOWPASS_WIDTH * a / (min(a, b) * _ROLLOFF)) + a


def resample(x, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a 1-D signal like ``torchaudio.functional.resample`` (defaults).

    Polyphase: output sample n·b + j = Σ_k h_j[k] · x_pad[n·a + k] with the
    input padded by w zeros on the left and w + a on the right; the first
    ceil(b·N/a) samples are kept.  Processed in blocks of output frames, so no
    padded or framed copy of the whole input is ever made.
    """
    sr_in = _check_rate(sr_in, "sr_in")
    sr_out = _check_rate(sr_out, "sr_out")
    x = np.asarray(x)
    if x.ndim != 1:
        raise AudioError(f"resample expects a 1-D signal, got shape {x.shape}")
    if sr_in == sr_out:
        return np.array(x, dtype=np.float32, copy=True)
    x = x.astype(np.float32, copy=False)
    g = math.gcd(sr_in, sr_out)
    a, b = sr_in // g, sr_out // g
    taps = 2 * math.ceil(_LOWPASS_WIDTH * a / (min(a, b) * _ROLLOFF)) + a
    if b * taps > _MAX_KERNEL_ELEMENTS:
        raise AudioError(
            f"cannot resample {sr_in} Hz -> {sr_out} Hz: the rates share no useful common "
            "factor (the filter would be enormous); convert the audio to a standard rate first"
        )
    h, w = _sinc_kernel(a, b)
    hT = np.ascontiguousarray(h.T)  # [taps, b]
    n = x.shape[0]
    n_out = -(-b * n // a)
    n_frames = -(-n_out // b)
    y = np.empty(n_frames * b, dtype=np.float32)
    per_block = max(1, _BLOCK_ELEMENTS // taps)
    for f0 in range(0, n_frames, per_block):
        f1 = min(n_frames, f0 + per_block)
        # input samples [lo, hi) cover frames f0..f1-1 (x_pad index p = x index + w)
        lo = f0 * a - w
        hi = (f1 - 1) * a + taps - w
        seg = np.zeros(hi - lo, dtype=np.float32)
        s0, s1 = max(lo, 0), min(hi, n)
        if s1 > s0:
            seg[s0 - lo : s1 - lo] = x[s0:s1]
        frames = np.lib.stride_tricks.as_strided(
            seg, shape=(f1 - f0, taps), strides=(a * seg.strides[0], seg.strides[0]), writeable=False
        )
        y[f0 * b : f1 * b] = (frames @ hT).ravel()
    return y[:n_out]


# ---------------------------------------------------------------------------
# tokenizer chunking (spec §3)
# ---------------------------------------------------------------------------


def tokenizer_chunks(n_samples: int) -> list[tuple[int, int]]:
    """[start, end) sample ranges of the tokenizer's independent 30 s chunks.

    Chunks are 720 000 samples; a tail shorter than n_fft (960) samples is
    merged into the chunk before it (so a chunk can reach 720 959 samples).
    An input shorter than 960 samples gives one short chunk, which
    :func:`pad_chunk` right-pads before the mel front-end.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, Integral) or n_samples < 0:
        raise InvalidArgumentError(f"n_samples must be a non-negative integer, got {n_samples!r}")
    n = int(n_samples)
    out = []
    s = 0
    while s < n:
        e = min(s + CHUNK_SAMPLES, n)
        if 0 < n - e < N_FFT:
            e = n
        out.append((s, e))
        s = e
    return out


def pad_chunk(chunk) -> np.ndarray:
    """Right-pad a chunk with zeros to n_fft (960) samples if it is shorter."""
    x = np.asarray(chunk, dtype=np.float32)
    if x.ndim != 1:
        raise AudioError(f"a chunk must be 1-D, got shape {x.shape}")
    if x.shape[0] < N_FFT:
        x = np.concatenate([x, np.zeros(N_FFT - x.shape[0], dtype=np.float32)])
    return x


# ---------------------------------------------------------------------------
# mel front-end (spec §4)
# ---------------------------------------------------------------------------


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=4)
def _filterbank64(n_mels: int, n_fft: int, sample_rate: int, f_min: float, f_max: float) -> np.ndarray:
    n_freqs = n_fft // 2 + 1
    bins = np.linspace(0.0, sample_rate / 2, n_freqs)
    pts = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    width = np.diff(pts)  # p_{k+1} - p_k
    rise = (bins[:, None] - pts[None, :-2]) / width[None, :-1]
    fall = (pts[None, 2:] - bins[:, None]) / width[None, 1:]
    fb = np.maximum(0.0, np.minimum(rise, fall))
    fb.setflags(write=False)
    return fb


def mel_filterbank(
    n_mels: int = N_MELS,
    n_fft: int = N_FFT,
    sample_rate: int = TARGET_SAMPLE_RATE,
    f_min: float = 0.0,
    f_max: float | None = None,
) -> np.ndarray:
    """Triangular HTK mel filters [n_fft//2 + 1, n_mels] float32, no area normalisation.

    Bin centres are n_fft//2+1 points over [0, sr/2]; n_mels+2 mel points
    spaced evenly between m(f_min) and m(f_max) with m(f) = 2595·log10(1+f/700).
    """
    f_max = sample_rate / 2 if f_max is None else float(f_max)
    return _filterbank64(int(n_mels), int(n_fft), int(sample_rate), float(f_min), f_max).astype(np.float32)


@lru_cache(maxsize=2)
def _hann_periodic(n: int) -> np.ndarray:
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
    w.setflags(write=False)
    return w


def mel_frames(n_samples: int) -> int:
    """Mel frames of a chunk of n samples: floor(n / 240) + 1."""
    return int(n_samples) // HOP_LENGTH + 1


def log_mel(chunk) -> np.ndarray:
    """Log-mel spectrogram of one tokenizer chunk: [T_mel, 128] float32.

    Periodic Hann 960, hop 240, reflect centring (480 each side), magnitude
    spectrum, 128 HTK mels, ln(max(M, 1e-7)); T_mel = floor(n/240) + 1.
    The chunk must be longer than 480 samples (reflect padding): pass short
    input through :func:`pad_chunk` first.
    """
    x = np.asarray(chunk, dtype=np.float32)
    if x.ndim != 1:
        raise AudioError(f"log_mel expects a 1-D chunk, got shape {x.shape}")
    half = N_FFT // 2
    if x.shape[0] <= half:
        raise AudioError(
            f"log_mel needs more than {half} samples (reflect padding), got {x.shape[0]}; "
            "pad short chunks to 960 samples with pad_chunk()"
        )
    # FFT in float64: the float32 result then carries no FFT rounding noise
    xp = np.pad(x.astype(np.float64), half, mode="reflect")
    n_frames = mel_frames(x.shape[0])
    window = _hann_periodic(N_FFT)
    fb = _filterbank64(N_MELS, N_FFT, TARGET_SAMPLE_RATE, 0.0, TARGET_SAMPLE_RATE / 2)
    out = np.empty((n_frames, N_MELS), dtype=np.float32)
    per_block = 512
    stride = xp.strides[0]
    for f0 in range(0, n_frames, per_block):
        f1 = min(n_frames, f0 + per_block)
        frames = np.lib.stride_tricks.as_strided(
            xp[f0 * HOP_LENGTH :], shape=(f1 - f0, N_FFT), strides=(HOP_LENGTH * stride, stride), writeable=False
        )
        mag = np.abs(np.fft.rfft(frames * window, axis=1))
        out[f0:f1] = np.log(np.maximum(mag @ fb, LOG_FLOOR))
    return out


# ---------------------------------------------------------------------------
# pause-aware clips for long audio (spec §13)
# ---------------------------------------------------------------------------


def split_on_pauses(
    wave,
    sample_rate: int = TARGET_SAMPLE_RATE,
    max_clip_s: float | None = 60.0,
    min_last_s: float = 1.0,
) -> list[tuple[int, int]]:
    """[start, end) sample ranges of clips no longer than ``max_clip_s``, cut at pauses.

    Energy is measured on 20 ms frames and smoothed over 10 frames (200 ms).
    For each clip the 200 ms window of lowest energy is searched between
    start + max/2 and min(start + max, N − min_last) − 200 ms; the latest
    minimum wins and the cut lands at its centre.  The last clip is at least
    ``min_last_s`` long.  ``max_clip_s=None`` (or audio no longer than the
    limit) gives a single clip.
    """
    x = np.asarray(wave)
    if x.ndim != 1:
        raise AudioError(f"split_on_pauses expects a 1-D waveform, got shape {x.shape}")
    n = x.shape[0]
    if n == 0:
        raise AudioError("audio is empty (no samples)")
    sr = _check_rate(sample_rate)
    if max_clip_s is None:
        return [(0, n)]
    if not (isinstance(max_clip_s, Real) and math.isfinite(max_clip_s) and max_clip_s > 0):
        raise InvalidArgumentError(f"max_clip_s must be a positive number of seconds or None, got {max_clip_s!r}")
    if not (isinstance(min_last_s, Real) and math.isfinite(min_last_s) and min_last_s >= 0):
        raise InvalidArgumentError(f"min_last_s must be a non-negative number of seconds, got {min_last_s!r}")
    max_len = max(1, int(round(max_clip_s * sr)))
    if n <= max_len:
        return [(0, n)]
    min_last = int(round(min_last_s * sr))
    frame = max(1, int(round(0.02 * sr)))
    smooth = 10
    win = smooth * frame

    nf = n // frame
    frames = x[: nf * frame].reshape(nf, frame)
    energy = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / frame
    if nf >= smooth:
        # direct 10-term sums (no cumulative-sum cancellation, so silent stretches stay exactly 0)
        smoothed = np.convolve(energy, np.ones(smooth), mode="valid") / smooth
    else:
        smoothed = np.empty(0)

    clips = []
    start = 0
    while n - start > max_len:
        lo = start + max_len // 2
        hi = min(start + max_len, n - min_last) - win  # latest allowed window start
        f_lo = -(-lo // frame)
        f_hi = min(hi // frame, len(smoothed) - 1) if hi >= 0 else -1
        if f_hi >= f_lo:
            seg = smoothed[f_lo : f_hi + 1]
            best = f_lo + (len(seg) - 1 - int(np.argmin(seg[::-1])))  # latest minimum
            cut = best * frame + win // 2
        else:
            # no room for a search window (only when max_clip_s is tiny): hard cut
            cut = min(start + max_len, n - min_last)
            if cut <= start:
                cut = start + max_len
        clips.append((start, cut))
        start = cut
    clips.append((start, n))
    return clips
