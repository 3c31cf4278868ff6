"""The low-level language-model handle: the Qwen2 decoder of a MiMo-V2.5-ASR
``mimo_asr`` GGUF loaded alone, with one decoding context. It returns logits
for token ids or input embeddings (the ASR path feeds embeddings), one
position or many at a time.

Example::

    with LanguageModel("mimo-asr-q4_k.gguf", n_threads=2) as lm:
        logits = lm.eval([151644, 872, 198])        # (1, n_vocab): last position
        nxt = int(logits[0].argmax())
        logits = lm.step(nxt)                        # (n_vocab,)

Transcription goes through :class:`mimo_ggml.Session`, which runs the whole
pipeline natively; this handle is for checking and experimenting.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from . import _core
from .lifetime import Closeable
from .arguments import device_arguments, optional_integer, text
from .concurrency import OperationLock


class LanguageModel(Closeable):
    """A MiMo-ASR language model with its KV cache.

    path: a ``mimo_asr`` GGUF file. device: ``"auto"`` (first GPU, else CPU),
    ``"cpu"``, ``"cuda:0"``, ``"metal"``, ``"rpc:HOST:PORT"``… devices: instead of one ``device``, a list
    (``["cpu", "rpc:HOST:PORT", ...]``) over which each stack of layers is
    split in order, in proportion to ``layer_split`` (one share per device;
    None: equal shares); everything outside the layers stays on the first. n_threads: CPU threads (None: all
    cores). n_ctx: positions the KV cache holds (None: the model's maximum).
    kv_type: ``"f16"`` (default), ``"f32"`` (exact checks) or ``"q8_0"``.
    repack_weights: on CPU, keep quantized matrices in ggml's repacked
    layouts (faster prompt processing); False keeps the file's layout in
    huge-page memory (faster one-token decode on AVX2). Results are the same
    up to float rounding order.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        device: str = "auto",
        n_threads: int | None = None,
        n_ctx: int | None = 4096,
        kv_type: str = "f16",
        repack_weights: bool = True,
        devices: Optional[Sequence[str]] = None,
        layer_split: Optional[Sequence[float]] = None,
    ):
        self._model = _core.AsrLanguageModel(os.fspath(path), **device_arguments(device, devices, layer_split),
                                             n_threads=optional_integer("n_threads", n_threads),
                                             repack_weights=bool(repack_weights))
        try:
            self._native = self._model.session(n_ctx=optional_integer("n_ctx", n_ctx), kv_type=text("kv_type", kv_type))
        except BaseException:
            self._model.close()
            raise
        self._busy = OperationLock("LanguageModel")

    # -- evaluation -----------------------------------------------------
    def eval(
        self,
        tokens: Sequence[int] | np.ndarray | None = None,
        *,
        embeddings: np.ndarray | None = None,
        n_out: int = 1,
        all_logits: bool = False,
        return_hidden: bool = False,
    ):
        """Append positions to the context and return logits of the last
        ``n_out`` of them (every position with ``all_logits=True``) as a
        float32 array (n_out, n_vocab). With ``return_hidden=True`` also the
        final-norm hidden states (n_out, n_embd)."""
        with self._busy.hold():
            return self._native.eval(tokens, embeddings, -1 if all_logits else n_out, return_hidden)

    def step(self, token: int) -> np.ndarray:
        """Feed one token; return the next-token logits (n_vocab,)."""
        return self.eval([token])[0]

    def reset(self) -> None:
        """Forget every position (the KV cache is reused)."""
        self._native.reset()

    def truncate(self, n: int) -> None:
        """Keep only the first ``n`` positions."""
        self._native.truncate(n)

    # -- properties -------------------------------------------------------
    n_vocab = property(lambda self: self._model.n_vocab)
    n_embd = property(lambda self: self._model.n_embd)
    n_layer = property(lambda self: self._model.n_layer)
    n_ctx = property(lambda self: self._native.n_ctx)
    n_past = property(lambda self: self._native.n_past)
    kv_type = property(lambda self: self._native.kv_type)
    device = property(lambda self: self._model.device)
    n_threads = property(lambda self: self._model.n_threads)
    fused_qkv = property(lambda self: list(self._model.fused_qkv))
    weights_bytes = property(lambda self: self._model.weights_bytes)
    # {device name: bytes}: where the weights live (several devices with ``devices=``)
    weights_bytes_by_device = property(lambda self: dict(self._model.weights_bytes_by_device))
    kv_bytes = property(lambda self: self._native.kv_bytes)

    # -- lifetime ---------------------------------------------------------
    def close(self) -> None:
        """Free the weights and the KV cache now (also done by ``with``)."""
        self._native.close()
        self._model.close()
