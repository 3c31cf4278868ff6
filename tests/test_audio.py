"""Audio input and front-end (mimo_ggml.audio) against the spec and the torch reference."""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mimo_ggml import audio as A
from mimo_ggml.errors import AudioError, InvalidArgumentError
from reference.audio_tokenizer_ref import (
    chunk_bounds_ref,
    log_mel_ref,
    mel_filterbank_ref,
    pad_chunk_ref,
    resample_ref,
)

RNG = np.random.default_rng(1234)


def _signal(n: int, sr: int, seed: int = 0) -> np.ndarray:
    """Tones below 4 kHz plus a little noise: a band every test rate can carry."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    x = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234.5 * t + 0.3)
    x += 0.05 * rng.standard_normal(n)
    return x.astype(np.float32)


# ---------------------------------------------------------------------------
# load_audio: every input kind
# ---------------------------------------------------------------------------


def test_float_mono_at_24k_is_returned_as_a_copy():
    x = _signal(24000, 24000)
    y = A.load_audio(x, sample_rate=24000)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y, x)
    y[0] = 99.0
    assert x[0] != 99.0  # the caller's buffer is never aliased


def test_float64_list_and_tensor_inputs():
    x = _signal(4800, 24000)
    np.testing.assert_array_equal(A.load_audio(x.astype(np.float64), sample_rate=24000), x)
    np.testing.assert_array_equal(A.load_audio(x.tolist(), sample_rate=24000), x)
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(A.load_audio(torch.from_numpy(x), sample_rate=24000), x)


@pytest.mark.parametrize(
    "dtype, offset, scale",
    [(np.int16, 0, 2.0**15), (np.int32, 0, 2.0**31), (np.int8, 0, 2.0**7), (np.uint8, 128, 2.0**7)],
)
def test_integer_pcm_is_scaled_by_2_pow_bits_minus_1(dtype, offset, scale):
    info = np.iinfo(dtype)
    raw = RNG.integers(info.min, info.max, size=3000, endpoint=True).astype(dtype)
    y = A.load_audio(raw, sample_rate=24000)
    want = ((raw.astype(np.float64) - offset) / scale).astype(np.float32)
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-7)


def test_stereo_is_averaged_in_either_orientation():
    left, right = _signal(2400, 24000, 1), _signal(2400, 24000, 2)
    want = ((left + right) / 2).astype(np.float32)
    last = A.load_audio(np.stack([left, right], axis=1), sample_rate=24000)
    first = A.load_audio(np.stack([left, right], axis=0), sample_rate=24000)
    np.testing.assert_allclose(last, want, atol=1e-7)
    np.testing.assert_array_equal(first, last)
    # int16 stereo: scale first, then average
    pcm = (np.stack([left, right], axis=1) * 32767).astype(np.int16)
    np.testing.assert_allclose(
        A.load_audio(pcm, sample_rate=24000), pcm.astype(np.float64).mean(axis=1) / 32768, atol=1e-7
    )


def test_tuple_input_and_resampling_once():
    x = _signal(16000, 16000)
    y = A.load_audio((x, 16000))
    assert y.shape == (24000,)
    np.testing.assert_allclose(y, resample_ref(x, 16000, 24000), atol=1e-5)
    np.testing.assert_array_equal(A.load_audio(x, sample_rate=16000), y)
    np.testing.assert_array_equal(A.load_audio((x, 16000), sample_rate=16000), y)
    np.testing.assert_array_equal(A.load_audio(x, sample_rate=16000.0), y)  # integral float rate


@pytest.fixture(scope="module")
def wav16k_stereo(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 16 kHz stereo PCM_16 WAV and the mono float signal it should decode to."""
    n = 8000
    pcm = np.stack(
        [(_signal(n, 16000, 3) * 32767).astype(np.int16), (_signal(n, 16000, 4) * 32767).astype(np.int16)], 1
    )
    path = tmp_path_factory.mktemp("audio") / "stereo16k.wav"
    sf.write(path, pcm, 16000, subtype="PCM_16")
    mono = (pcm.astype(np.float64).mean(axis=1) / 32768).astype(np.float32)
    return path, mono


def test_wav_from_path_bytes_and_file_objects(wav16k_stereo):
    path, mono = wav16k_stereo
    want = resample_ref(mono, 16000, 24000)
    y = A.load_audio(str(path))
    assert y.dtype == np.float32 and y.shape == (12000,)
    np.testing.assert_allclose(y, want, atol=1e-5)
    data = path.read_bytes()
    for source in (path, data, bytearray(data), memoryview(data), io.BytesIO(data)):
        np.testing.assert_array_equal(A.load_audio(source), y)
    with open(path, "rb") as fh:
        np.testing.assert_array_equal(A.load_audio(fh), y)
    # a matching sample_rate= is tolerated for files
    np.testing.assert_array_equal(A.load_audio(path, sample_rate=16000), y)


@pytest.mark.parametrize(
    "fmt, subtype, sr, tol",
    [
        ("FLAC", "PCM_16", 44100, 1e-5),
        ("FLAC", "PCM_24", 48000, 1e-5),
        ("WAV", "FLOAT", 8000, 1e-5),
        ("WAV", "PCM_U8", 24000, 1e-7),
        ("OGG", "VORBIS", 24000, None),  # lossy: decode + length only
    ],
)
def test_other_containers(tmp_path, fmt, subtype, sr, tol):
    x = _signal(sr // 2, sr, 5) * 0.9
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, x, sr, format=fmt, subtype=subtype)
    y = A.load_audio(path)
    assert y.dtype == np.float32 and y.shape == (math.ceil(len(x) * 24000 / sr),)
    if tol is not None:
        stored, _ = sf.read(path, dtype="float32")
        np.testing.assert_allclose(y, resample_ref(stored, sr, 24000), atol=tol)


def test_mp3_when_libsndfile_can_write_it(tmp_path):
    x = _signal(12000, 24000, 6)
    path = tmp_path / "x.mp3"
    try:
        sf.write(path, x, 24000, format="MP3")
    except Exception:
        pytest.skip("this libsndfile cannot encode MP3")
    y = A.load_audio(path)
    assert y.dtype == np.float32 and abs(len(y) - len(x)) < 2400 and np.isfinite(y).all()


# ---------------------------------------------------------------------------
# load_audio: errors
# ---------------------------------------------------------------------------


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        A.load_audio(tmp_path / "nope.wav")
    with pytest.raises(FileNotFoundError):
        A.load_audio(str(tmp_path / "nope.wav"))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: np.zeros(0, np.float32), "empty"),
        (lambda p: np.zeros((0, 2), np.float32), "empty"),
        (lambda p: b"", "empty"),
        (lambda p: np.array([0.0, np.nan, 0.1], np.float32), "NaN or infinite"),
        (lambda p: np.array([0.0, np.inf], np.float64), "NaN or infinite"),
        (lambda p: b"this is not audio at all" * 10, "could not decode"),
        (lambda p: np.zeros((4, 4, 4), np.float32), "1-D"),
        (lambda p: np.zeros((16, 1000), np.float32), "more channels than samples"),
        (lambda p: np.zeros(10, np.complex64), "dtype"),
        (lambda p: np.array(["a", "b"]), "dtype"),
        (lambda p: 12345, "unsupported audio input"),
        (lambda p: {"audio": 1}, "unsupported audio input"),
        (lambda p: (np.zeros(10),), "tuple"),
    ],
)
def test_unusable_inputs_raise_audio_error(tmp_path, make, match):
    audio = make(tmp_path)
    kwargs = {"sample_rate": 24000} if isinstance(audio, np.ndarray) else {}
    with pytest.raises(AudioError, match=match):
        A.load_audio(audio, **kwargs)


def test_array_without_rate_says_what_to_pass():
    with pytest.raises(AudioError, match="sample_rate="):
        A.load_audio(np.zeros(100, np.float32))


@pytest.mark.parametrize("rate", [0, -16000, 16000.5, float("nan"), "16000", True, None])
def test_bad_rates(rate):
    x = np.zeros(100, np.float32)
    with pytest.raises(AudioError):
        A.load_audio((x, rate))
    if rate is not None:
        with pytest.raises(AudioError):
            A.load_audio(x, sample_rate=rate)


def test_file_error_cases(tmp_path, wav16k_stereo):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF....WAVEfmt " + bytes(range(200)))
    with pytest.raises(AudioError, match="could not decode"):
        A.load_audio(garbage)
    with pytest.raises(AudioError, match="directory"):
        A.load_audio(tmp_path)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.int16), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="no audio samples"):
        A.load_audio(empty)
    path, _ = wav16k_stereo
    with pytest.raises(AudioError, match="16000 Hz"):
        A.load_audio(path, sample_rate=44100)
    with open(path, encoding="latin-1") as text_mode:
        with pytest.raises(AudioError, match="text mode"):
            A.load_audio(text_mode)
    nan_wav = tmp_path / "nan.wav"
    sf.write(nan_wav, np.array([0.0, np.nan, 0.5], np.float32), 24000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        A.load_audio(nan_wav)


def test_contradicting_tuple_rate():
    with pytest.raises(AudioError, match="contradicts"):
        A.load_audio((np.zeros(100, np.float32), 16000), sample_rate=24000)


# ---------------------------------------------------------------------------
# resample
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sr", [8000, 16000, 44100, 48000, 22050, 32000])
@pytest.mark.parametrize("n", [1, 7, 147, 1001, 12345])
def test_resample_matches_torch_reference(sr, n):
    x = _signal(n, sr, n) + 0.3 * np.random.default_rng(n).standard_normal(n).astype(np.float32)
    y = A.resample(x, sr, 24000)
    ref = resample_ref(x, sr, 24000)
    assert y.dtype == np.float32
    assert y.shape == ref.shape == (math.ceil(24000 * n / sr),)
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-5)


def test_resample_kernel_geometry_and_identity():
    # spec §2.3 examples: half width w for each rate pair
    for sr, w in [(16000, 7), (48000, 13), (44100, 12), (8000, 7)]:
        g = math.gcd(sr, 24000)
        h, hw = A._sinc_kernel(sr // g, 24000 // g)
        assert hw == w and h.shape == (24000 // g, 2 * w + sr // g)
    x = _signal(1000, 24000)
    y = A.resample(x, 24000, 24000)
    np.testing.assert_array_equal(y, x)
    assert y is not x


def test_resample_block_boundaries_do_not_matter(monkeypatch):
    x = _signal(30011, 44100, 9)
    whole = A.resample(x, 44100, 24000)
    monkeypatch.setattr(A, "_BLOCK_ELEMENTS", 1000)  # ~5 frames per block -> hundreds of blocks
    # BLAS may sum in another order for another block shape: equal to float32 rounding
    np.testing.assert_allclose(A.resample(x, 44100, 24000), whole, rtol=0, atol=1e-6)


def test_resample_rejects_absurd_rate_pairs():
    with pytest.raises(AudioError, match="common"):
        A.resample(np.zeros(100, np.float32), 44101, 24000)
    with pytest.raises(AudioError):
        A.resample(np.zeros((2, 100), np.float32), 16000, 24000)


def test_resample_60s_44k1_is_fast():
    x = np.random.default_rng(0).standard_normal(44100 * 60).astype(np.float32) * 0.1
    A.resample(x[:44100], 44100, 24000)  # kernel cache warm-up
    t0 = time.perf_counter()
    y = A.resample(x, 44100, 24000)
    elapsed = time.perf_counter() - t0
    assert y.shape == (24000 * 60,)
    assert elapsed < 1.0, f"60 s of 44.1 kHz took {elapsed:.2f} s"


# ---------------------------------------------------------------------------
# tokenizer chunks
# ---------------------------------------------------------------------------


def test_chunk_rules():
    C = A.CHUNK_SAMPLES
    assert C == 720_000
    assert A.tokenizer_chunks(0) == []
    assert A.tokenizer_chunks(500) == [(0, 500)]
    assert A.tokenizer_chunks(C) == [(0, C)]
    assert A.tokenizer_chunks(C + 959) == [(0, C + 959)]  # tail < n_fft merged
    assert A.tokenizer_chunks(C + 960) == [(0, C), (C, C + 960)]
    assert A.tokenizer_chunks(3 * C + 10) == [(0, C), (C, 2 * C), (2 * C, 3 * C + 10)]
    for n in [1, 959, 960, 24000, C - 1, C + 1, 2 * C, 2 * C + 500, 2 * C + 961, 5 * C + 123]:
        assert A.tokenizer_chunks(n) == chunk_bounds_ref(n), n
    with pytest.raises(InvalidArgumentError):
        A.tokenizer_chunks(-1)


def test_pad_chunk_and_frame_counts():
    short = _signal(500, 24000)
    padded = A.pad_chunk(short)
    assert padded.shape == (960,) and padded.dtype == np.float32
    np.testing.assert_array_equal(padded[:500], short)
    assert not padded[500:].any()
    np.testing.assert_array_equal(padded, pad_chunk_ref(short))
    long = _signal(2000, 24000)
    np.testing.assert_array_equal(A.pad_chunk(long), long)
    # §3: a full 30 s chunk gives 3001 mel frames (-> 1501 -> 751)
    assert A.mel_frames(720_000) == 3001
    assert A.log_mel(np.zeros(720_000, np.float32)).shape == (3001, 128)


# ---------------------------------------------------------------------------
# mel
# ---------------------------------------------------------------------------


def test_mel_filterbank_matches_reference():
    fb = A.mel_filterbank()
    ref = mel_filterbank_ref().numpy()
    assert fb.shape == (481, 128) and fb.dtype == np.float32
    # the reference builds the triangles in float32 (as torchaudio does), we in float64
    np.testing.assert_allclose(fb, ref, rtol=0, atol=5e-5)
    assert (fb >= 0).all() and (fb.max(axis=0) > 0).all()  # every filter is non-empty
    assert fb.max() <= 1.0 + 1e-6  # triangles peak at 1: no area normalisation


def _compare_mel(x):
    got = A.log_mel(x)
    ref = log_mel_ref(x)
    assert got.shape == ref.shape == (len(x) // 240 + 1, 128)
    assert got.dtype == np.float32
    lin_g, lin_r = np.exp(got.astype(np.float64)), np.exp(ref.astype(np.float64))
    rel = np.abs(lin_g - lin_r).max() / np.abs(lin_r).max()
    cos = (lin_g * lin_r).sum() / np.linalg.norm(lin_g) / np.linalg.norm(lin_r)
    assert rel <= 1e-3, rel
    assert cos >= 0.9999, cos
    # ln() magnifies the reference's float32 FFT noise in near-silent bins, so the
    # log domain is compared only within 10 nepers of the loudest bin (and above -10)
    loud = ref > max(-10.0, float(ref.max()) - 10.0)
    assert np.abs(got - ref)[loud].max() < 1e-3


def test_log_mel_matches_reference_on_tones_and_noise():
    _compare_mel(_signal(24000 + 123, 24000, 11))


def test_log_mel_across_frame_blocks():
    _compare_mel(_signal(6 * 24000, 24000, 12))  # 601 frames > one 512-frame block


def test_log_mel_on_upsampled_8k_and_padded_short_chunk():
    _compare_mel(A.resample(_signal(8000, 8000, 13), 8000, 24000))  # empty band above 4 kHz
    _compare_mel(A.pad_chunk(_signal(500, 24000, 14)))


def test_log_mel_floor_and_short_input():
    m = A.log_mel(np.zeros(960, np.float32))
    np.testing.assert_allclose(m, np.log(np.float32(1e-7)), rtol=1e-6)
    with pytest.raises(AudioError, match="pad_chunk"):
        A.log_mel(np.zeros(480, np.float32))


# ---------------------------------------------------------------------------
# pause-aware clips
# ---------------------------------------------------------------------------


def _speech_with_gaps(total_s: float, gaps: list[tuple[float, float]], sr: int = 24000, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = (0.3 * rng.standard_normal(int(total_s * sr))).astype(np.float32)
    for a, b in gaps:
        x[int(a * sr) : int(b * sr)] *= 1e-4  # near-silence
    return x


def _check_clips(clips, n, max_s, sr=24000, min_last_s=1.0):
    assert clips[0][0] == 0 and clips[-1][1] == n
    for (s0, e0), (s1, _) in zip(clips, clips[1:]):
        assert e0 == s1
    for s, e in clips:
        assert 0 < e - s <= max_s * sr
    if len(clips) > 1:
        assert clips[-1][1] - clips[-1][0] >= min_last_s * sr


def test_split_cuts_long_audio_inside_pauses():
    sr = 24000
    gaps = [(25.0, 25.6), (52.0, 52.8), (70.0, 70.5), (101.0, 101.7), (140.0, 140.6)]
    x = _speech_with_gaps(150.0, gaps)
    clips = A.split_on_pauses(x, sr, max_clip_s=60.0)
    _check_clips(clips, len(x), 60.0)
    assert len(clips) >= 3
    for _, cut in clips[:-1]:
        # the 200 ms window fits inside a gap, and the cut is at its centre
        assert any(a * sr + 0.1 * sr - 1 <= cut <= b * sr - 0.1 * sr + 1 for a, b in gaps), cut / sr
    # the latest minimum within each search window: here the later gaps win
    inside = [next(i for i, (a, b) in enumerate(gaps) if a * sr <= c <= b * sr) for _, c in clips[:-1]]
    assert inside == [1, 3]


def test_split_prefers_the_latest_of_equal_pauses():
    sr = 24000
    x = _speech_with_gaps(20.0, [])
    x[int(6.0 * sr) : int(6.5 * sr)] = 0  # two exactly silent gaps: a tie
    x[int(8.0 * sr) : int(8.5 * sr)] = 0
    clips = A.split_on_pauses(x, sr, max_clip_s=10.0)
    _check_clips(clips, len(x), 10.0)
    assert 8.0 * sr <= clips[0][1] <= 8.5 * sr


def test_split_without_pauses_and_short_tails():
    sr = 24000
    x = _speech_with_gaps(130.0, [], seed=3)
    clips = A.split_on_pauses(x, sr, max_clip_s=60.0)
    _check_clips(clips, len(x), 60.0)
    # a pause right before the end cannot leave a last clip under 1 s
    y = _speech_with_gaps(10.5, [(9.9, 10.3)], seed=4)
    clips = A.split_on_pauses(y, sr, max_clip_s=10.0)
    _check_clips(clips, len(y), 10.0)
    # tiny max_clip_s still respects the limit
    z = _speech_with_gaps(5.0, [], seed=5)
    _check_clips(A.split_on_pauses(z, sr, max_clip_s=0.3, min_last_s=0.0), len(z), 0.3, min_last_s=0.0)


def test_split_single_clip_cases_and_errors():
    x = _speech_with_gaps(3.0, [])
    assert A.split_on_pauses(x, 24000, max_clip_s=None) == [(0, len(x))]
    assert A.split_on_pauses(x, 24000, max_clip_s=60.0) == [(0, len(x))]
    with pytest.raises(InvalidArgumentError):
        A.split_on_pauses(x, 24000, max_clip_s=0)
    with pytest.raises(InvalidArgumentError):
        A.split_on_pauses(x, 24000, max_clip_s=-5.0)
    with pytest.raises(AudioError):
        A.split_on_pauses(np.zeros(0, np.float32))
    with pytest.raises(AudioError):
        A.split_on_pauses(np.zeros((2, 100), np.float32))


# ---------------------------------------------------------------------------
# PyAV formats and resource limits (issue 15, class 7)
# ---------------------------------------------------------------------------


def encode_with_pyav(path, x: np.ndarray, sr: int, fmt: str, codec: str, channels: int = 2) -> None:
    """Write float samples in [-1, 1] as ``codec`` in a ``fmt`` container with PyAV itself."""
    import av

    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=sr, layout=layout)
        frame_len = 1024
        planar = np.repeat(x[None, :], channels, axis=0).astype(np.float32)
        for i in range(0, len(x), frame_len):
            chunk = np.ascontiguousarray(planar[:, i : i + frame_len])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = sr
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.mark.parametrize("fmt, codec, ext", [("mp4", "aac", "m4a"), ("webm", "libopus", "webm"), ("adts", "aac", "aac")])
def test_formats_beyond_libsndfile_go_through_pyav(tmp_path, fmt, codec, ext):
    import av

    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec} encoder")
    sr = 48000
    x = _signal(int(1.5 * sr), sr)
    path = tmp_path / f"clip.{ext}"
    encode_with_pyav(path, x, sr, fmt, codec)
    with pytest.raises(Exception):
        sf.SoundFile(path)  # libsndfile cannot, so this really is the PyAV path
    y = A.load_audio(path)
    assert abs(len(y) - 1.5 * 24000) < 0.05 * 24000  # codec priming/padding only
    ref = A.resample(x, sr, 24000)
    # lossy codecs: compare band energy, not samples
    assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(ref**2)), rel=0.15)
    np.testing.assert_array_equal(A.load_audio(path.read_bytes()), y)
    with open(path, "rb") as fh:
        np.testing.assert_array_equal(A.load_audio(fh), y)


@pytest.mark.parametrize("rate", [1, 2, 7, 999, 768_001, 10**9])
def test_rates_outside_the_audio_range_are_refused(tmp_path, rate):
    x = np.zeros(96_000 // 4, np.float32)
    with pytest.raises(AudioError, match="1000-768000 Hz"):
        A.load_audio(x, sample_rate=rate)
    with pytest.raises(AudioError, match="1000-768000 Hz"):
        A.load_audio((x, rate))
    path = tmp_path / "odd.wav"
    if rate <= 655_350:  # what a WAV header of libsndfile can hold
        sf.write(path, x, rate, subtype="FLOAT")
        with pytest.raises(AudioError, match="1000-768000 Hz"):
            A.load_audio(path)
    A.load_audio(x, sample_rate=1000)  # the lowest accepted rate works


def test_max_duration(tmp_path):
    x = np.zeros(10 * 8000, np.int16)
    with pytest.raises(AudioError, match="longer than the 5 s limit"):
        A.load_audio(x, sample_rate=8000, max_duration_s=5)
    assert len(A.load_audio(x, sample_rate=8000, max_duration_s=None)) == 10 * 24000
    path = tmp_path / "ten.wav"
    sf.write(path, x, 8000, subtype="PCM_16")
    with pytest.raises(AudioError, match="limit"):
        A.load_audio(path, max_duration_s=5)
    with pytest.raises(AudioError, match="limit"):
        A.load_audio(path.read_bytes(), max_duration_s=9.9)
    assert len(A.load_audio(path, max_duration_s=10)) == 10 * 24000
    for bad in (0, -1, float("nan"), "10", True):
        with pytest.raises(InvalidArgumentError, match="max_duration_s"):
            A.load_audio(x, sample_rate=8000, max_duration_s=bad)
    assert A.DEFAULT_MAX_DURATION_S >= 3600


def test_header_claiming_huge_length_is_refused_before_allocating(tmp_path):
    """A WAV whose header claims 2^31 frames (data chunk size forged) is
    refused by the duration limit, not by a giant allocation."""
    path = tmp_path / "liar.wav"
    sf.write(path, np.zeros(1000, np.int16), 8000, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    i = raw.index(b"data")
    raw[i + 4 : i + 8] = (0xFFFFFFF0).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    try:
        y = A.load_audio(path)
    except AudioError as exc:
        assert "limit" in str(exc) or "decode" in str(exc)
    else:  # libsndfile may clamp the size to the file: then it is the real 1000 samples
        assert len(y) == 3000


def test_fifo_and_devices_are_refused_unless_asked(tmp_path):
    import os
    import threading

    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    with pytest.raises(AudioError, match="FIFO, device or socket"):
        A.load_audio(fifo)
    with pytest.raises(AudioError, match="FIFO, device or socket"):
        A.load_audio("/dev/zero")
    assert time.perf_counter() - t0 < 1.0
    # asked for: no writer -> the inactivity timeout
    t0 = time.perf_counter()
    with pytest.raises(AudioError, match="no data for 0.3 s"):
        A.load_audio(fifo, allow_special_files=True, read_timeout_s=0.3)
    assert time.perf_counter() - t0 < 2.0
    # asked for, with a writer: decoded
    buf = io.BytesIO()
    sf.write(buf, (_signal(8000, 16000) * 20000).astype(np.int16), 16000, format="WAV", subtype="PCM_16")

    def writer():
        with open(fifo, "wb") as w:
            w.write(buf.getvalue())

    th = threading.Thread(target=writer)
    th.start()
    y = A.load_audio(fifo, allow_special_files=True, read_timeout_s=5)
    th.join()
    assert len(y) == 12000
    # a device that never ends hits the size cap
    with pytest.raises(AudioError, match="more than"):
        A.read_stream("/dev/zero", max_bytes=1 << 20)


def test_bad_paths_are_audio_errors(tmp_path):
    with pytest.raises(AudioError):
        A.load_audio("bad\0name.wav")
    with pytest.raises(AudioError):
        A.load_audio("x" * 5000 + ".wav")
    locked = tmp_path / "locked.wav"
    sf.write(locked, np.zeros(100, np.int16), 16000)
    locked.chmod(0)
    import os

    if os.geteuid() != 0:  # root reads anything
        with pytest.raises(AudioError, match="cannot open"):
            A.load_audio(locked)
