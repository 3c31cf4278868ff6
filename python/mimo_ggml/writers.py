"""Output writers for transcripts: txt, srt, vtt, json.

Owns: rendering a :class:`~mimo_ggml.results.Transcription` as text in each
format (the layouts whisper.cpp and faster-whisper users expect: numbered
SRT cues with ``HH:MM:SS,mmm`` times, a ``WEBVTT`` file with
``HH:MM:SS.mmm`` times, one line per segment for txt, the full record for
json) and writing it, UTF-8, to a path or an open file.
"""

from __future__ import annotations

import io
import json
import math
import os
from typing import IO, Any, Callable, Union

from .errors import InvalidArgumentError
from .results import Segment, Transcription

__all__ = [
    "FORMATS",
    "WRITERS",
    "format_timestamp",
    "format_transcription",
    "write_transcription",
    "write_txt",
    "write_srt",
    "write_vtt",
    "write_json",
]

FileOrPath = Union[str, "os.PathLike[str]", IO[str], IO[bytes]]


def format_timestamp(seconds: float, decimal_marker: str = ".") -> str:
    """``HH:MM:SS<marker>mmm``, rounded to the millisecond, negatives clamped to 0."""
    if not math.isfinite(seconds):
        raise InvalidArgumentError(f"timestamp must be finite, got {seconds!r}")
    ms = max(0, int(round(seconds * 1000.0)))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{ms:03d}"


def _check(transcription: object) -> Transcription:
    if not isinstance(transcription, Transcription):
        raise InvalidArgumentError(f"expected a Transcription, got {type(transcription).__name__}")
    return transcription


def _segments(t: Transcription) -> list[Segment]:
    if t.segments:
        return list(t.segments)
    # A result without segments still renders as one cue spanning the input.
    return [Segment(id=0, start=0.0, end=float(t.duration), text=t.text, language=t.language)]


def _cue_text(text: str) -> str:
    # A blank line ends a cue and "-->" starts a timing line in both formats.
    lines = [ln.strip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(ln for ln in lines if ln).replace("-->", "->")


def _cues(t: Transcription) -> list[tuple[float, float, str]]:
    out = []
    for seg in _segments(t):
        text = _cue_text(seg.text)
        if text:
            out.append((float(seg.start), max(float(seg.start), float(seg.end)), text))
    return out


def _render_txt(t: Transcription) -> str:
    lines = [s.text.strip() for s in t.segments] if t.segments else [t.text.strip()]
    lines = [ln for ln in lines if ln]
    return "".join(ln + "\n" for ln in lines)


def _render_srt(t: Transcription) -> str:
    blocks = []
    for n, (start, end, text) in enumerate(_cues(t), start=1):
        blocks.append(f"{n}\n{format_timestamp(start, ',')} --> {format_timestamp(end, ',')}\n{text}\n")
    return "\n".join(blocks)


def _render_vtt(t: Transcription) -> str:
    parts = ["WEBVTT\n"]
    for start, end, text in _cues(t):
        parts.append(f"{format_timestamp(start)} --> {format_timestamp(end)}\n{text}\n")
    return "\n".join(parts)


def _finite_or_none(value: Any) -> Any:
    # JSON has no NaN/Infinity; write null instead of invalid JSON.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def _render_json(t: Transcription) -> str:
    return json.dumps(_finite_or_none(t.to_dict()), ensure_ascii=False, indent=2) + "\n"


_RENDERERS: dict[str, Callable[[Transcription], str]] = {
    "txt": _render_txt,
    "srt": _render_srt,
    "vtt": _render_vtt,
    "json": _render_json,
}
FORMATS = tuple(_RENDERERS)


def _normalize_format(fmt: str) -> str:
    key = fmt.strip().lower().lstrip(".") if isinstance(fmt, str) else None
    if key not in _RENDERERS:
        raise InvalidArgumentError(f"unknown output format {fmt!r}; accepted: {', '.join(FORMATS)}")
    return key


def format_transcription(transcription: Transcription, fmt: str) -> str:
    """The file content for ``fmt`` (one of txt, srt, vtt, json)."""
    return _RENDERERS[_normalize_format(fmt)](_check(transcription))


def _write_text(text: str, file_or_path: FileOrPath) -> None:
    if isinstance(file_or_path, (str, os.PathLike)):
        # newline="": the same bytes on every platform.
        with open(file_or_path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        return
    if not hasattr(file_or_path, "write"):
        raise InvalidArgumentError(f"expected a path or a writable file, got {type(file_or_path).__name__}")
    if isinstance(file_or_path, io.TextIOBase):
        file_or_path.write(text)
    elif isinstance(file_or_path, (io.RawIOBase, io.BufferedIOBase)) or "b" in str(getattr(file_or_path, "mode", "")):
        file_or_path.write(text.encode("utf-8"))  # type: ignore[arg-type]
    else:
        file_or_path.write(text)  # type: ignore[arg-type]


def write_transcription(transcription: Transcription, file_or_path: FileOrPath, fmt: str) -> None:
    """Write ``transcription`` as ``fmt`` to a path (UTF-8) or an open text/binary file."""
    _write_text(format_transcription(transcription, fmt), file_or_path)


def write_txt(transcription: Transcription, file_or_path: FileOrPath) -> None:
    """One line per segment (the whole text when there are no segments)."""
    write_transcription(transcription, file_or_path, "txt")


def write_srt(transcription: Transcription, file_or_path: FileOrPath) -> None:
    """Numbered SubRip cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``."""
    write_transcription(transcription, file_or_path, "srt")


def write_vtt(transcription: Transcription, file_or_path: FileOrPath) -> None:
    """WebVTT: ``WEBVTT`` header, cues with ``HH:MM:SS.mmm`` times."""
    write_transcription(transcription, file_or_path, "vtt")


def write_json(transcription: Transcription, file_or_path: FileOrPath) -> None:
    """The full record (text, language, duration, segments, timings)."""
    write_transcription(transcription, file_or_path, "json")


WRITERS: dict[str, Callable[[Transcription, FileOrPath], None]] = {
    "txt": write_txt,
    "srt": write_srt,
    "vtt": write_vtt,
    "json": write_json,
}
