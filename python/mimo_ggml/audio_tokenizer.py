"""The MiMo audio tokenizer: audio in, 8-channel RVQ codes out.

Python owns the edges (decoding, resampling to 24 kHz, the independent 30 s
chunks and the log-mel front-end of :mod:`mimo_ggml.audio`); each chunk's
log-mel then goes through the ggml encoder (conv stem, 32 transformer layers,
down-sampler) and the first 8 residual-VQ stages in native code, with the
GIL released (spec/asr.md §2–§7).

Example::

    with AudioTokenizer("mimo-audio-tokenizer.gguf", n_threads=2) as tok:
        codes = tok.encode("speech.wav")          # (T, 8) int32, 25 frames/s
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from . import _core
from .lifetime import Closeable
from .arguments import device_arguments, optional_integer
from .audio import N_MELS, load_audio, log_mel, pad_chunk, tokenizer_chunks
from .errors import InvalidArgumentError

__all__ = ["AudioTokenizer", "chunk_mel", "clip_mels"]


def chunk_mel(wave: np.ndarray, start: int, end: int) -> np.ndarray:
    """The log-mel (T_mel, 128) of one tokenizer chunk wave[start:end] (spec asr §3–§4)."""
    return log_mel(pad_chunk(wave[start:end]))


def clip_mels(wave: np.ndarray) -> list[np.ndarray]:
    """The log-mels of a 24 kHz waveform's independent 30 s tokenizer chunks, in order."""
    return [chunk_mel(wave, s, e) for s, e in tokenizer_chunks(len(wave))]


class AudioTokenizer(Closeable):
    """A loaded ``mimo_tokenizer`` GGUF (the MiMo-Audio-Tokenizer encoder + RVQ).

    path: the tokenizer GGUF (CrispASR's layout, or ``mimo-ggml convert``'s).
    device: ``"auto"`` (first GPU, else CPU), ``"cpu"``, ``"cuda:0"``…
    devices, layer_split: several devices, as for :class:`mimo_ggml.AsrModel`.
    n_threads: CPU threads (None: all cores).
    bf16_rope: round the RoPE inverse frequencies to bfloat16 as the official
    pipeline does (default); False uses the exact float32 frequencies.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        device: str = "auto",
        n_threads: int | None = None,
        *,
        bf16_rope: bool = True,
        devices: Sequence[str] | None = None,
        layer_split: Sequence[float] | None = None,
    ):
        self._native = _core.AudioTokenizer(
            os.fspath(path), **device_arguments(device, devices, layer_split),
            n_threads=optional_integer("n_threads", n_threads),
            bf16_rope=bool(bf16_rope)
        )

    # -- encoding -------------------------------------------------------------
    def encode(self, audio, sample_rate: int | None = None) -> np.ndarray:
        """RVQ codes of any audio input: int32 array (T, 8), 25 frames per second.

        ``audio`` is anything :func:`mimo_ggml.audio.load_audio` accepts (a
        path, file bytes, a file object, a numpy array with ``sample_rate=``,
        or an ``(array, sample_rate)`` tuple). The 24 kHz waveform is cut into
        independent 30 s chunks whose codes are concatenated; no padding to a
        multiple of 4 frames is applied.
        """
        wave = load_audio(audio, sample_rate)
        parts = [self._native.encode_mel(mel) for mel in clip_mels(wave)]
        return np.concatenate(parts, axis=0)

    def encode_stages(self, audio, sample_rate: int | None = None, chunk: int = 0) -> dict:
        """Every intermediate stage, for parity tests (spec/asr.md §15).

        Keys for chunk ``chunk``: ``tok_mel`` (T_mel, 128), ``tok_conv1_out``,
        ``tok_conv2_out``, ``tok_layer{i}_out``, ``tok_xfmr_out`` (T_enc, d),
        ``tok_pool_out`` (T_code, d), ``tok_codes`` (T_code, 8) and
        ``tok_code_gaps`` (second-smallest minus smallest squared distance of
        each code). Over all chunks: ``chunk_bounds`` (list of (start, end)
        samples at 24 kHz), ``codes`` and ``gaps`` (T, 8).
        """
        wave = load_audio(audio, sample_rate)
        bounds = tokenizer_chunks(len(wave))
        if isinstance(chunk, bool) or not isinstance(chunk, int) or not 0 <= chunk < len(bounds):
            raise InvalidArgumentError(f"chunk must be an index in [0, {len(bounds)}), got {chunk!r}")
        codes, gaps = [], []
        out: dict = {}
        for i, (s, e) in enumerate(bounds):
            mel = chunk_mel(wave, s, e)
            if i == chunk:
                out = {"tok_mel": mel, **self._native.encode_mel_stages(mel)}
                c, g = out["tok_codes"], out["tok_code_gaps"]
            else:
                c, g = self._native.encode_mel(mel, True)
            codes.append(c)
            gaps.append(g)
        out["chunk_bounds"] = bounds
        out["codes"] = np.concatenate(codes, axis=0)
        out["gaps"] = np.concatenate(gaps, axis=0)
        return out

    def encode_mel(self, mel) -> np.ndarray:
        """RVQ codes (T_code, 8) int32 of one chunk's log-mel (T_mel, 128) float32."""
        return self._native.encode_mel(self._check_mel(mel))

    def encode_mel_stages(self, mel) -> dict:
        """Every stage of one chunk's log-mel (see :meth:`encode_stages`)."""
        return self._native.encode_mel_stages(self._check_mel(mel))

    def _check_mel(self, mel) -> np.ndarray:
        m = np.asarray(mel, dtype=np.float32)
        if m.ndim != 2 or m.shape[1] != N_MELS or m.shape[0] == 0:
            raise InvalidArgumentError(
                f"mel must be a (T_mel, {N_MELS}) float array with T_mel >= 1 (mimo_ggml.audio.log_mel of one chunk), "
                f"got shape {m.shape}"
            )
        return np.ascontiguousarray(m)

    # -- properties -----------------------------------------------------------
    d_model = property(lambda self: self._native.d_model)
    n_layer = property(lambda self: self._native.n_layer)
    n_codebooks = property(lambda self: self._native.n_codebooks)
    n_quantizers = property(lambda self: self._native.n_quantizers)
    codebook_sizes = property(lambda self: list(self._native.codebook_sizes))
    bf16_rope = property(lambda self: self._native.bf16_rope)
    device = property(lambda self: self._native.device)
    n_threads = property(lambda self: self._native.n_threads)
    weights_bytes = property(lambda self: self._native.weights_bytes)

    # -- lifetime -------------------------------------------------------------
    def close(self) -> None:
        """Free the weights and compute buffers now (also done by ``with``)."""
        self._native.close()
