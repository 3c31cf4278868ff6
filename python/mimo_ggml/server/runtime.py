"""The one adapter between the server and the mimo_ggml Python API.

Everything the server asks of the package goes through here, chosen by
feature checks so that the server runs on today's API and picks up the
shared-weights one (issue 10) without changes elsewhere:

- ASR: ``AsrModel.load(path, tokenizer, device=, n_threads=)`` then
  ``model.session(kv_type=, n_ctx=)`` when the package has it (one copy of
  the weights for every session); otherwise each session is a
  ``Session(path, ...)`` that loads its own copy.
- Cancellation: ``Session.transcribe(..., on_token=)`` where it exists
  (stops between tokens); otherwise a streamed transcription stops between
  clips and a whole one runs to its end. Text generation always streams
  internally, so closing the ``TextStream`` stops it between tokens.
- Text: ``TextModel.load(path, device=, n_threads=)`` and
  ``model.session(...)`` / ``model.chat_template`` when they exist;
  otherwise ``TextSession(path, ...)`` and the template read from the GGUF.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

import mimo_ggml
from ..audio import TARGET_SAMPLE_RATE
from ..chat_template import render_chat
from ..errors import GenerationCancelled
from ..prompt import normalize_language

__all__ = ["AsrRuntime", "TextRuntime", "model_id", "read_chat_template"]


def model_id(path: str) -> str:
    """The name /v1/models lists for a model file, folder or hub id."""
    p = Path(str(path))
    return p.stem if p.suffix == ".gguf" else p.name or str(path)


def _accepts(fn: Callable, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _loader(name: str):
    """``mimo_ggml.<name>.load`` when the package has the shared-model API."""
    return getattr(getattr(mimo_ggml, name, None), "load", None)


class AsrRuntime:
    """The speech-recognition model of the server and how to open sessions on it."""

    def __init__(self, path: str, tokenizer: Optional[str] = None, *, device: str = "auto",
                 n_threads: Optional[int] = None, kv_type: str = "f16", n_ctx: int = 4096,
                 max_clip_s: Optional[float] = 60.0):
        self.path, self.tokenizer = str(path), tokenizer
        self.id = model_id(path)
        self.device, self.n_threads, self.kv_type, self.n_ctx = device, n_threads, kv_type, n_ctx
        self.max_clip_s = max_clip_s or None
        load = _loader("AsrModel")
        self._model = load(self.path, tokenizer, device=device, n_threads=n_threads) if load else None

    @property
    def shares_weights(self) -> bool:
        """True when every session runs on one loaded copy of the weights."""
        return self._model is not None

    def open_session(self):
        if self._model is not None:
            return self._model.session(kv_type=self.kv_type, n_ctx=self.n_ctx)
        return mimo_ggml.Session(self.path, self.tokenizer, device=self.device, n_threads=self.n_threads,
                                 kv_type=self.kv_type, n_ctx=self.n_ctx)

    def _cancel_kw(self, fn: Callable, cancel: threading.Event) -> dict:
        if _accepts(fn, "on_token"):
            return {"on_token": lambda _segment, _token: not cancel.is_set()}
        return {}

    def transcribe(self, session, wave: np.ndarray, *, language: str, cancel: threading.Event):
        """The whole transcription of a 24 kHz waveform (``Session.transcribe``)."""
        if cancel.is_set():
            raise GenerationCancelled("the client went away before the transcription started")
        return session.transcribe((wave, TARGET_SAMPLE_RATE), language=language, max_clip_s=self.max_clip_s,
                                  **self._cancel_kw(session.transcribe, cancel))

    def transcribe_stream(self, session, wave: np.ndarray, *, language: str, cancel: threading.Event,
                          on_segment: Callable[[Any], None]) -> tuple[list, Optional[str], str]:
        """Segments one by one to ``on_segment`` as clips finish; returns
        ``(segments, language, text)`` joined as ``Session.transcribe`` joins them."""
        segments = []
        it = session.transcribe_stream((wave, TARGET_SAMPLE_RATE), language=language, max_clip_s=self.max_clip_s,
                                       **self._cancel_kw(session.transcribe_stream, cancel))
        try:
            for seg in it:
                if cancel.is_set():
                    raise GenerationCancelled("the client went away during the transcription")
                segments.append(seg)
                on_segment(seg)
        finally:
            it.close()
        lang, text = join_segments(segments, language)
        return segments, lang, text

    def close(self) -> None:
        if self._model is not None:
            self._model.close()


def join_segments(segments: Sequence, language: str) -> tuple[Optional[str], str]:
    """``(language, text)`` of a transcription from its segments, by
    ``Session.transcribe``'s rule: the first tagged language (else the
    requested one), texts joined with a space, or with nothing for Chinese."""
    requested = normalize_language(language)
    detected = next((s.language for s in segments if s.language), None)
    final = detected or (None if requested == "auto" else requested)
    joiner = "" if final == "zh" else " "
    return final, joiner.join(s.text for s in segments if s.text)


def read_chat_template(path: str) -> dict[str, Optional[str]]:
    """``{"template", "bos_token", "eos_token"}`` from a GGUF's tokenizer
    metadata (None where absent). ``tokenizer.chat_template`` is a plain
    string key, which the native string-array reader does not cover, so
    gguf-py reads it."""
    import gguf

    reader = gguf.GGUFReader(path)
    fields = reader.fields

    def value(key):
        field = fields.get(key)
        return field.contents() if field is not None else None

    template = value("tokenizer.chat_template")
    tokens = value("tokenizer.ggml.tokens")
    out: dict[str, Optional[str]] = {"template": template or None, "bos_token": None, "eos_token": None}
    for name in ("bos", "eos"):
        idx = value(f"tokenizer.ggml.{name}_token_id")
        if tokens is not None and isinstance(idx, (int, np.integer)) and 0 <= int(idx) < len(tokens):
            out[f"{name}_token"] = tokens[int(idx)]
    return out


class TextRuntime:
    """The MoE text model of the server, its chat template and sessions."""

    def __init__(self, path: str, *, device: str = "auto", n_threads: Optional[int] = None,
                 kv_type: str = "f16", n_ctx: int = 4096):
        self.path = os.fspath(path)
        self.id = model_id(path)
        self.device, self.n_threads, self.kv_type, self.n_ctx = device, n_threads, kv_type, n_ctx
        load = _loader("TextModel")
        self._model = load(self.path, device=device, n_threads=n_threads) if load else None
        info = read_chat_template(self.path)
        if self._model is not None and hasattr(self._model, "chat_template"):
            info["template"] = self._model.chat_template
        self.chat_template: Optional[str] = info["template"]
        self._special = {k: v for k, v in info.items() if k != "template" and v is not None}

    @property
    def shares_weights(self) -> bool:
        return self._model is not None

    def open_session(self):
        if self._model is not None:
            return self._model.session(kv_type=self.kv_type, n_ctx=self.n_ctx)
        return mimo_ggml.TextSession(self.path, device=self.device, n_threads=self.n_threads,
                                     kv_type=self.kv_type, n_ctx=self.n_ctx)

    def render(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The prompt for ``messages`` through the model's own template (ChatML without one)."""
        return render_chat(messages, self.chat_template, add_generation_prompt=True, **self._special)

    def generate(self, session, prompt, *, cancel: threading.Event,
                 on_start: Optional[Callable[[], None]] = None,
                 on_piece: Optional[Callable[[str], None]] = None, **params):
        """``TextSession.generate`` streamed piece by piece (so a cancel
        stops it between tokens); returns the GenerationResult. ``on_start``
        is called once the arguments are accepted, before the first token."""
        if cancel.is_set():
            raise GenerationCancelled("the client went away before the generation started")
        stream = session.generate(prompt, stream=True, **params)
        if on_start is not None:
            on_start()
        try:
            for piece in stream:
                if cancel.is_set():
                    raise GenerationCancelled("the client went away during the generation")
                if on_piece is not None:
                    on_piece(piece)
        finally:
            stream.close()
        return stream.result

    def close(self) -> None:
        if self._model is not None:
            self._model.close()
