"""Result objects of speech recognition.

Owns: :class:`Segment` (one transcribed stretch) and :class:`Transcription`
(the whole input), plain dataclasses with ``to_dict()`` / ``from_dict()``
for JSON output and round trips. ``to_dict()`` follows OpenAI's
``verbose_json`` transcription (``openai.types.audio.TranscriptionVerbose``)
and adds our own fields.  Times are in seconds from the start of
the input.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from .errors import InvalidArgumentError

__all__ = ["Segment", "Transcription", "compression_ratio", "SEEK_UNITS_PER_SECOND"]

# ``seek`` counts 10 ms steps from the start of the input (whisper's mel-frame unit)
SEEK_UNITS_PER_SECOND = 100


def compression_ratio(text: str) -> float:
    """len(UTF-8 bytes) / len(zlib-compressed bytes), as OpenAI's whisper
    computes it: high values (> 2.4) flag repetitive, looping output."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


def _opt_float(value: Any) -> Optional[float]:
    return None if value is None else float(value)


def _or_zero(value: Any) -> float:
    return 0.0 if value is None else float(value)


@dataclass
class Segment:
    """One transcribed stretch of the input.

    ``finish_reason`` is "stop" when the model ended the text itself and
    "length" when the token limit cut it; ``tokens`` are the generated ids
    (stop id excluded). ``avg_logprob`` is the mean log-probability of the
    generated tokens, ``no_speech_prob`` the voice-activity detector's doubt
    that the stretch holds speech (see :mod:`mimo_ggml.vad`); both are None
    when not measured. ``language_probability`` (auto mode) is the model's
    probability for the language tag it wrote in this segment, None without
    one. ``temperature`` is the sampling temperature (0:
    greedy); ``seek`` the start in 10 ms steps (set from ``start`` when not
    given); :attr:`compression_ratio` is computed from the text.
    """

    id: int
    start: float
    end: float
    text: str
    tokens: list[int] = field(default_factory=list)
    finish_reason: str = "stop"
    language: Optional[str] = None
    avg_logprob: Optional[float] = None
    no_speech_prob: Optional[float] = None
    temperature: float = 0.0
    seek: Optional[int] = None
    language_probability: Optional[float] = None

    def __post_init__(self) -> None:
        if self.seek is None:
            start = float(self.start)
            self.seek = int(round(start * SEEK_UNITS_PER_SECOND)) if math.isfinite(start) else 0

    @property
    def compression_ratio(self) -> float:
        return compression_ratio(self.text)

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's verbose_json segment (``id, seek, start, end, text, tokens,
        temperature, avg_logprob, compression_ratio, no_speech_prob``) plus
        ``finish_reason``, ``language`` and ``language_probability``. The schema wants numbers, so an
        unmeasured ``avg_logprob`` or ``no_speech_prob`` is written as 0.0
        (the value no filter drops: full confidence, certainly speech)."""
        return {
            "id": int(self.id),
            "seek": int(self.seek),
            "start": float(self.start),
            "end": float(self.end),
            "text": self.text,
            "tokens": [int(t) for t in self.tokens],
            "temperature": float(self.temperature),
            "avg_logprob": _or_zero(self.avg_logprob),
            "compression_ratio": float(self.compression_ratio),
            "no_speech_prob": _or_zero(self.no_speech_prob),
            "finish_reason": self.finish_reason,
            "language": self.language,
            "language_probability": _opt_float(self.language_probability),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Segment":
        try:
            seek = data.get("seek")
            return cls(
                id=int(data["id"]),
                start=float(data["start"]),
                end=float(data["end"]),
                text=str(data["text"]),
                tokens=[int(t) for t in data.get("tokens", ())],
                finish_reason=str(data.get("finish_reason", "stop")),
                language=data.get("language"),
                avg_logprob=_opt_float(data.get("avg_logprob")),
                no_speech_prob=_opt_float(data.get("no_speech_prob")),
                temperature=float(data.get("temperature", 0.0)),
                seek=None if seek is None else int(seek),
                language_probability=_opt_float(data.get("language_probability")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"not a segment record: {exc}") from None


@dataclass
class Transcription:
    """The transcript of one input: joined text, detected or requested
    language (and, in ``auto`` mode, the model's probability for it), audio
    duration in seconds, per-stretch segments, stage timings in seconds
    (e.g. ``{"decode_audio": 0.01, "lm_decode": 1.2}``), and ``partial``:
    True when the work was interrupted and only the segments that had
    finished are here."""

    text: str
    language: Optional[str] = None
    duration: float = 0.0
    segments: list[Segment] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    language_probability: Optional[float] = None
    partial: bool = False

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's ``verbose_json`` transcription (``task``, ``language`` as
        a string — "" when unknown —, ``duration``, ``text``, ``segments``)
        plus our ``language_probability``, ``partial`` and ``timings``."""
        return {
            "task": "transcribe",
            "language": self.language or "",
            "duration": float(self.duration),
            "text": self.text,
            "segments": [s.to_dict() for s in self.segments],
            "language_probability": _opt_float(self.language_probability),
            "partial": bool(self.partial),
            "timings": {str(k): float(v) for k, v in self.timings.items()},
        }

    @classmethod
    def from_segments(
        cls,
        segments: list[Segment],
        *,
        language: Optional[str] = None,
        duration: float = 0.0,
        timings: Optional[dict[str, float]] = None,
        language_probability: Optional[float] = None,
        partial: bool = False,
    ) -> "Transcription":
        """The transcription of ``segments`` (in order): the language is the
        first one a segment detected, else ``language`` (the requested one;
        "auto" or None: unknown); texts are joined with "" for Chinese and
        " " otherwise (spec asr.md §13). Without a given
        ``language_probability``, the model's probability for that language's
        tag in the first segment that wrote it (auto mode)."""
        requested = None if language in (None, "auto") else language
        final = next((s.language for s in segments if s.language), None) or requested
        if language_probability is None:
            language_probability = next((s.language_probability for s in segments
                                         if s.language == final and s.language_probability is not None), None)
        joiner = "" if final == "zh" else " "
        return cls(text=joiner.join(s.text for s in segments if s.text), language=final, duration=float(duration),
                   segments=list(segments), timings=dict(timings or {}),
                   language_probability=language_probability, partial=partial)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Transcription":
        try:
            return cls(
                text=str(data["text"]),
                language=data.get("language") or None,
                duration=float(data.get("duration", 0.0)),
                segments=[Segment.from_dict(s) for s in data.get("segments") or ()],
                timings={str(k): float(v) for k, v in dict(data.get("timings") or {}).items()},
                language_probability=_opt_float(data.get("language_probability")),
                partial=bool(data.get("partial", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"not a transcription record: {exc}") from None

    def __str__(self) -> str:
        return self.text
