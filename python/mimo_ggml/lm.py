"""The low-level language-model handle: one loaded ASR language model
(MiMo-V2.5-ASR's Qwen2 decoder, from a ``mimo_asr`` GGUF) plus one decoding
context. It returns logits, steps one token at a time and accepts input
embeddings as well as token ids (the ASR path feeds embeddings).

Example::

    with LanguageModel("mimo-asr-q4_k.gguf", n_threads=2) as lm:
        logits = lm.eval([151644, 872, 198])        # (1, n_vocab): last position
        nxt = int(logits[0].argmax())
        logits = lm.step(nxt)                        # (n_vocab,)
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np

from . import _core
from .errors import InvalidArgumentError


class LanguageModel:
    """A MiMo-ASR language model with its KV cache.

    path: a ``mimo_asr`` GGUF file. device: ``"auto"`` (first GPU, else CPU),
    ``"cpu"``, ``"cuda:0"``, ``"metal"``… n_threads: CPU threads (None: all
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
    ):
        if n_threads is not None and n_threads <= 0:
            raise InvalidArgumentError(f"n_threads must be a positive integer or None, got {n_threads}")
        if n_ctx is not None and n_ctx <= 0:
            raise InvalidArgumentError(f"n_ctx must be a positive integer or None, got {n_ctx}")
        self._native = _core.LanguageModel(
            os.fspath(path), device=device, n_threads=n_threads or 0, n_ctx=n_ctx or 0, kv_type=kv_type,
            repack_weights=repack_weights,
        )

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
        if tokens is not None:
            tokens = np.asarray(tokens, dtype=np.int64)
            if tokens.ndim != 1 or tokens.size == 0:
                raise InvalidArgumentError("tokens must be a non-empty 1-D sequence of token ids")
            if tokens.min() < 0 or tokens.max() >= self.n_vocab:
                raise InvalidArgumentError(f"token ids must be in [0, {self.n_vocab}), the vocabulary of this model")
            tokens = tokens.astype(np.int32)
        return self._native.eval(tokens, embeddings, -1 if all_logits else n_out, return_hidden)

    def step(self, token: int) -> np.ndarray:
        """Feed one token; return the next-token logits (n_vocab,)."""
        return self.eval([int(token)])[0]

    def embed(self, tokens: Sequence[int] | np.ndarray) -> np.ndarray:
        """Rows of the token-embedding table, (n, n_embd) float32."""
        return self._native.embed(np.asarray(tokens))

    def generate(
        self,
        prompt: Iterable[int],
        max_new_tokens: int,
        *,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        stop: Iterable[int] = (),
        banned: Iterable[int] = (),
    ) -> list[int]:
        """Evaluate ``prompt`` then sample up to ``max_new_tokens`` ids
        (greedy unless temperature > 0), stopping after a ``stop`` id."""
        params = _core.SamplerParams(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        return self._native.generate(list(prompt), int(max_new_tokens), params, list(stop), list(banned))

    def reset(self) -> None:
        """Forget every position (the KV cache is reused)."""
        self._native.reset()

    def truncate(self, n: int) -> None:
        """Keep only the first ``n`` positions."""
        self._native.truncate(n)

    # -- properties -------------------------------------------------------
    n_vocab = property(lambda self: self._native.n_vocab)
    n_embd = property(lambda self: self._native.n_embd)
    n_layer = property(lambda self: self._native.n_layer)
    n_ctx = property(lambda self: self._native.n_ctx)
    n_past = property(lambda self: self._native.n_past)
    kv_type = property(lambda self: self._native.kv_type)
    device = property(lambda self: self._native.device)
    n_threads = property(lambda self: self._native.n_threads)
    fused_qkv = property(lambda self: list(self._native.fused_qkv))
    weights_bytes = property(lambda self: self._native.weights_bytes)
    kv_bytes = property(lambda self: self._native.kv_bytes)

    # -- lifetime ---------------------------------------------------------
    def close(self) -> None:
        """Free the weights and the KV cache now (also done by ``with``)."""
        self._native.close()

    def __enter__(self) -> "LanguageModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
