"""Result objects of speech recognition.

Owns: :class:`Segment` (one transcribed clip) and :class:`Transcription`
(the whole input), plain dataclasses with ``to_dict()`` / ``from_dict()``
for JSON output and round trips.  Times are in seconds from the start of
the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from .errors import InvalidArgumentError

__all__ = ["Segment", "Transcription"]


@dataclass
class Segment:
    """One transcribed clip.

    ``finish_reason`` is "stop" when the model ended the text itself and
    "length" when the token limit cut it; ``tokens`` are the generated ids
    (stop id excluded); ``avg_logprob`` is their mean log-probability
    under the model (the stop id's included), a confidence figure.
    """

    id: int
    start: float
    end: float
    text: str
    tokens: list[int] = field(default_factory=list)
    finish_reason: str = "stop"
    language: Optional[str] = None
    avg_logprob: Optional[float] = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": int(self.id),
            "start": float(self.start),
            "end": float(self.end),
            "text": self.text,
            "tokens": [int(t) for t in self.tokens],
            "finish_reason": self.finish_reason,
            "language": self.language,
            "avg_logprob": None if self.avg_logprob is None else float(self.avg_logprob),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Segment":
        try:
            return cls(
                id=int(data["id"]),
                start=float(data["start"]),
                end=float(data["end"]),
                text=str(data["text"]),
                tokens=[int(t) for t in data.get("tokens", ())],
                finish_reason=str(data.get("finish_reason", "stop")),
                language=data.get("language"),
                avg_logprob=None if data.get("avg_logprob") is None else float(data["avg_logprob"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"not a segment record: {exc}") from None


@dataclass
class Transcription:
    """The transcript of one input: joined text, detected or requested
    language, audio duration in seconds, per-clip segments and stage
    timings in seconds (e.g. ``{"decode_audio": 0.01, "lm_decode": 1.2}``)."""

    text: str
    language: Optional[str] = None
    duration: float = 0.0
    segments: list[Segment] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "language": self.language,
            "duration": float(self.duration),
            "segments": [s.to_dict() for s in self.segments],
            "timings": {str(k): float(v) for k, v in self.timings.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Transcription":
        try:
            return cls(
                text=str(data["text"]),
                language=data.get("language"),
                duration=float(data.get("duration", 0.0)),
                segments=[Segment.from_dict(s) for s in data.get("segments", ())],
                timings={str(k): float(v) for k, v in dict(data.get("timings", {})).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"not a transcription record: {exc}") from None

    def __str__(self) -> str:
        return self.text
