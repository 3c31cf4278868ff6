"""The audio adapter of MiMo-V2.5-ASR: speech codes in, LM input rows out.

For each group of 4 code frames (spec asr.md §9–§10) the eight channels'
speech embeddings are summed per frame (codes equal to a channel's empty id
contribute nothing), the 4 frames go through the bidirectional "input local
transformer", and the downcast maps the 4 frames side by side to one row of
the LM's width. The whole computation runs on ggml in native code with the
GIL released; the adapter's weights are read from the same ``mimo_asr`` GGUF
as the language model.

Example::

    with AsrAdapter("mimo-asr-q4_k.gguf", n_threads=2) as adapter:
        feats = adapter.features(codes)   # codes (4·G, 8) -> (G, 4096) float32
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from . import _core
from .lifetime import Closeable
from .arguments import device_arguments, optional_integer

__all__ = ["AsrAdapter"]


class AsrAdapter(Closeable):
    """The speech embeddings, input local transformer and group downcast of
    a ``mimo_asr`` GGUF.

    path: the MiMo-ASR model file (CrispASR's layout, or ``mimo-ggml
    convert``'s); a language-model-only file raises ModelLoadError.
    device: ``"auto"`` (first GPU, else CPU), ``"cpu"``, ``"cuda:0"``…
    devices, layer_split: several devices, as for :class:`mimo_ggml.AsrModel`.
    n_threads: CPU threads (None: all cores).
    """

    def __init__(self, path: str | os.PathLike, device: str = "auto", n_threads: int | None = None, *,
                 devices: Sequence[str] | None = None, layer_split: Sequence[float] | None = None):
        self._native = _core.AsrAdapter(os.fspath(path), **device_arguments(device, devices, layer_split),
                                        n_threads=optional_integer("n_threads", n_threads))

    # -- computation ----------------------------------------------------------
    def features(self, codes) -> np.ndarray:
        """LM input rows of audio groups: float32 (G, n_embd).

        ``codes`` is an integer array (group_size·G, channels) in time order
        (already padded to a multiple of group_size frames by repeating the
        last frame, spec asr §7); every group is treated as speech.
        Codes must lie in [0, speech_vocab[c]); a code equal to its channel's
        empty id is masked (contributes nothing).
        """
        return self._native.features(codes)

    def stages(self, codes) -> dict:
        """Intermediate results for parity tests (spec asr.md §15):
        ``ilt_input`` (G, group_size, input_dim) — the summed speech
        embeddings, ``ilt_output`` (G, group_size, input_dim) — after the
        input local transformer's final norm, and ``audio_features``
        (G, n_embd)."""
        return self._native.stages(codes)

    # -- properties -----------------------------------------------------------
    channels = property(lambda self: self._native.channels)
    group_size = property(lambda self: self._native.group_size)
    empty_ids = property(lambda self: list(self._native.empty_ids))
    speech_vocab = property(lambda self: list(self._native.speech_vocab))
    n_embd = property(lambda self: self._native.n_embd)
    input_dim = property(lambda self: self._native.input_dim)
    n_layer = property(lambda self: self._native.n_layer)
    device = property(lambda self: self._native.device)
    n_threads = property(lambda self: self._native.n_threads)
    weights_bytes = property(lambda self: self._native.weights_bytes)

    # -- lifetime -------------------------------------------------------------
    def close(self) -> None:
        """Free the weights and compute buffers now (also done by ``with``)."""
        self._native.close()
