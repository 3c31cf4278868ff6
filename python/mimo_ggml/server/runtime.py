"""The one adapter between the server and the mimo_ggml Python API.

Everything the server asks of the package goes through here:

- ASR: one :class:`mimo_ggml.AsrModel` (the weights, loaded once) and
  ``model.session(kv_type=, n_ctx=)`` per pool slot, so N sessions cost one
  copy of the weights plus N KV caches.
- Text: one :class:`mimo_ggml.TextModel` and ``model.session(...)``; chat
  prompts rendered with ``model.chat_template`` (the GGUF's
  ``tokenizer.chat_template``) by :func:`mimo_ggml.chat_template.render_chat`.
- Cancellation: a transcription's ``on_token`` callback returns False once
  the request's cancel event is set (the native decode loop stops between
  tokens and raises GenerationCancelled); a text generation runs as a
  ``TextStream`` that is closed between tokens.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..audio import TARGET_SAMPLE_RATE
from ..errors import GenerationCancelled
from ..prompt import normalize_language
from ..session import AsrModel
from ..text import TextModel

__all__ = ["AsrRuntime", "TextRuntime", "join_segments", "model_id"]


def model_id(path: str) -> str:
    """The name /v1/models lists for a model file, folder or hub id."""
    p = Path(str(path))
    return p.stem if p.suffix == ".gguf" else p.name or str(path)


def _stopper(cancel: threading.Event) -> Callable[[int, int], bool]:
    """An ``on_token`` callback that cancels once ``cancel`` is set."""
    return lambda _segment, _token: not cancel.is_set()


class AsrRuntime:
    """The speech-recognition model of the server and how to open sessions on it."""

    def __init__(self, path: str, tokenizer: Optional[str] = None, *, device: str = "auto",
                 n_threads: Optional[int] = None, kv_type: str = "f16", n_ctx: int = 4096,
                 max_clip_s: Optional[float] = 60.0, vad: bool = True, max_segment_s: Optional[float] = None,
                 devices: Optional[list] = None, layer_split: Optional[list] = None):
        self.path = str(path)
        self.id = model_id(path)
        self.kv_type, self.n_ctx = kv_type, n_ctx
        # the transcription options every request uses
        self.options = {"max_clip_s": max_clip_s or None, "vad": bool(vad)}
        if max_segment_s is not None:
            self.options["max_segment_s"] = max_segment_s
        self.model = AsrModel.load(self.path, tokenizer, device=device, n_threads=n_threads, devices=devices,
                                   layer_split=layer_split)

    def open_session(self):
        return self.model.session(kv_type=self.kv_type, n_ctx=self.n_ctx)

    def transcribe(self, session, wave: np.ndarray, *, language: str, cancel: threading.Event):
        """The whole transcription of a 24 kHz waveform (``Session.transcribe``)."""
        if cancel.is_set():
            raise GenerationCancelled("the client went away before the transcription started")
        return session.transcribe((wave, TARGET_SAMPLE_RATE), language=language, on_token=_stopper(cancel),
                                  **self.options)

    def transcribe_stream(self, session, wave: np.ndarray, *, language: str, cancel: threading.Event,
                          on_segment: Callable[[Any], None]) -> tuple[list, Optional[str], str]:
        """Segments one by one to ``on_segment`` as clips finish; returns
        ``(segments, language, text)`` joined as ``Session.transcribe`` joins them."""
        segments = []
        it = session.transcribe_stream((wave, TARGET_SAMPLE_RATE), language=language, on_token=_stopper(cancel),
                                       **self.options)
        try:
            for seg in it:
                segments.append(seg)
                on_segment(seg)
        finally:
            it.close()
        lang, text = join_segments(segments, language)
        return segments, lang, text

    def close(self) -> None:
        self.model.close()


def join_segments(segments: Sequence, language: str) -> tuple[Optional[str], str]:
    """``(language, text)`` of a transcription from its segments, by
    ``Session.transcribe``'s rule: the first tagged language (else the
    requested one), texts joined with a space, or with nothing for Chinese."""
    requested = normalize_language(language)
    detected = next((s.language for s in segments if s.language), None)
    final = detected or (None if requested == "auto" else requested)
    joiner = "" if final == "zh" else " "
    return final, joiner.join(s.text for s in segments if s.text)


class TextRuntime:
    """The MoE text model of the server, its chat template and sessions."""

    def __init__(self, path: str, *, device: str = "auto", n_threads: Optional[int] = None,
                 kv_type: str = "f16", n_ctx: int = 4096, draft: Optional[str] = None, draft_block: int = 8,
                 devices: Optional[list] = None, layer_split: Optional[list] = None):
        self.path = os.fspath(path)
        self.id = model_id(path)
        self.kv_type, self.n_ctx = kv_type, n_ctx
        self.model = TextModel.load(self.path, device=device, n_threads=n_threads, devices=devices,
                                    layer_split=layer_split)
        self.chat_template: Optional[str] = self.model.chat_template or None
        # speculative decoding: one DFlash drafter shared by every session, or the model's MTP blocks
        self.draft_block = draft_block
        self.draft = None
        try:
            if draft is not None:
                self.draft = "mtp" if draft == "mtp" else self.model.load_draft(draft)
        except BaseException:
            self.model.close()
            raise

    def open_session(self):
        return self.model.session(kv_type=self.kv_type, n_ctx=self.n_ctx, draft=self.draft,
                                  draft_block=self.draft_block)

    def render(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The prompt for ``messages`` through the model's own template (ChatML without one)."""
        return self.model.render_chat(messages)

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
        if self.draft is not None and self.draft != "mtp":
            self.draft.close()
        self.model.close()
