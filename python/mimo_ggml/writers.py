"""Output writers for transcripts: txt, srt, vtt, json.

Owns: rendering a :class:`~mimo_ggml.results.Transcription` as text in each
format (the layouts whisper.cpp and faster-whisper users expect: numbered
SRT cues with ``HH:MM:SS,mmm`` times, a ``WEBVTT`` file with
``HH:MM:SS.mmm`` times, one line per segment for txt, OpenAI's verbose_json
record for json) and writing it, UTF-8, to a path (through a temporary file
renamed into place, so a failed write never leaves a truncated file under
the final name) or an open file.

Subtitle cues are wrapped at about :data:`MAX_LINE_WIDTH` columns (East
Asian wide characters count two) and hold at most :data:`MAX_CUE_LINES`
lines; a longer segment becomes several cues that share the segment's time
span in proportion to their length. Those inner cue times are estimates:
the model times segments, not words.

A partial transcription (interrupted work) is marked where the format has a
place for it: a ``NOTE`` in vtt, ``"partial": true`` in json.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile
import unicodedata
from typing import IO, Any, Callable, Union

from .errors import InvalidArgumentError
from .results import Segment, Transcription

__all__ = [
    "FORMATS",
    "WRITERS",
    "MAX_LINE_WIDTH",
    "MAX_CUE_LINES",
    "cues",
    "wrap_text",
    "format_timestamp",
    "format_transcription",
    "write_transcription",
    "write_txt",
    "write_srt",
    "write_vtt",
    "write_json",
    "write_file_atomic",
]

FileOrPath = Union[str, "os.PathLike[str]", IO[str], IO[bytes]]

MAX_LINE_WIDTH = 42  # columns per subtitle line (the usual broadcast limit)
MAX_CUE_LINES = 2  # lines per cue


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


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 0 if unicodedata.combining(ch) else 1
               for ch in text)


def _is_wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in "WF"


# closing punctuation that must not start a line (it sticks to what precedes it)
_NO_LINE_START = set("，。、；：？！」』）】》〉,.;:?!)]}%…·")
_SENTENCE_END = re.compile(r"[.!?。！？…][\"'”’」』）)]*$")


def _units(text: str) -> list[tuple[str, bool]]:
    """Breakable units of a line: (text, preceded by a space). A run of
    non-wide characters between spaces is one unit; each wide (CJK)
    character is its own unit; closing punctuation joins the unit before."""
    out: list[tuple[str, bool]] = []
    for m in re.finditer(r"(\s*)(\S+)", text):
        space = bool(m.group(1)) and bool(out)
        pieces: list[str] = []
        for ch in m.group(2):
            if pieces and ((not _is_wide(ch) and not _is_wide(pieces[-1][-1])) or ch in _NO_LINE_START):
                pieces[-1] += ch
            else:
                pieces.append(ch)
        out.extend((piece, space and i == 0) for i, piece in enumerate(pieces))
    return out


def _hard_split(unit: str, width: int) -> list[str]:
    parts, cur = [], ""
    for ch in unit:
        if cur and _width(cur + ch) > width:
            parts.append(cur)
            cur = ""
        cur += ch
    if cur:
        parts.append(cur)
    return parts


def wrap_text(text: str, width: int = MAX_LINE_WIDTH) -> list[str]:
    """Greedy word wrap at ``width`` columns: spaces break Latin text, any
    boundary between wide (CJK) characters breaks Chinese or Japanese,
    closing punctuation never starts a line, and a word wider than a whole
    line is split by characters. Existing line breaks are kept."""
    if width < 1:
        raise InvalidArgumentError(f"width must be at least 1 column, got {width}")
    lines: list[str] = []
    for para in _cue_text(text).split("\n"):
        cur = ""
        for unit, space in _units(para):
            joined = cur + (" " if space and cur else "") + unit
            if not cur or _width(joined) <= width:
                cur = joined
            else:
                lines.append(cur)
                cur = unit
            while _width(cur) > width:
                head, *rest = _hard_split(cur, width)
                lines.append(head)
                cur = "".join(rest)
        if cur:
            lines.append(cur)
    return lines


def cues(transcription: Transcription, *, width: int = MAX_LINE_WIDTH,
         max_lines: int = MAX_CUE_LINES) -> list[tuple[float, float, str]]:
    """The subtitle cues (start, end, text) of a transcription, in order.

    Each segment's text is wrapped at ``width`` columns and grouped into cues
    of at most ``max_lines`` lines (a cue also ends after a line that ends a
    sentence). A segment of several cues divides its time span among them in
    proportion to their length, so inner cue times are estimates.
    """
    t = _check(transcription)
    if max_lines < 1:
        raise InvalidArgumentError(f"max_lines must be at least 1, got {max_lines}")
    out = []
    for seg in _segments(t):
        lines = wrap_text(seg.text, width)
        if not lines:
            continue
        groups: list[list[str]] = [[]]
        for ln in lines:
            if len(groups[-1]) >= max_lines:
                groups.append([])
            groups[-1].append(ln)
            if _SENTENCE_END.search(ln):
                groups.append([])
        groups = [g for g in groups if g]
        start = float(seg.start)
        end = max(start, float(seg.end))
        weights = [max(1, sum(_width(ln) for ln in g)) for g in groups]
        total = float(sum(weights))
        acc = 0.0
        for g, w in zip(groups, weights):
            a = start + (end - start) * acc / total
            acc += w
            b = end if acc >= total else start + (end - start) * acc / total
            out.append((a, b, "\n".join(g)))
    return out


def _render_txt(t: Transcription) -> str:
    lines = [s.text.strip() for s in t.segments] if t.segments else [t.text.strip()]
    lines = [ln for ln in lines if ln]
    return "".join(ln + "\n" for ln in lines)


def _render_srt(t: Transcription) -> str:
    blocks = []
    for n, (start, end, text) in enumerate(cues(t), start=1):
        blocks.append(f"{n}\n{format_timestamp(start, ',')} --> {format_timestamp(end, ',')}\n{text}\n")
    return "\n".join(blocks)


def _render_vtt(t: Transcription) -> str:
    parts = ["WEBVTT\n"]
    if t.partial:
        done = max((float(s.end) for s in t.segments), default=0.0)
        parts.append(f"NOTE partial transcript: interrupted, the audio after {format_timestamp(done)} "
                     "is missing\n")
    for start, end, text in cues(t):
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


def write_file_atomic(path: Union[str, "os.PathLike[str]"], data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into
    place: ``path`` holds either its old content or all of ``data``, never a
    truncated file (a full disk or a size limit fails the write, not the file)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_text(text: str, file_or_path: FileOrPath) -> None:
    if isinstance(file_or_path, (str, os.PathLike)):
        # bytes, not text mode: the same bytes on every platform
        write_file_atomic(file_or_path, text.encode("utf-8"))
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
