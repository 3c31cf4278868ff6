"""Streaming clean-up of transcript text (spec asr.md §12.3): language tags
hidden while they are still being spelled and dropped once complete. Used by
the tests to check that a streamed transcript equals the post-processed one;
kept here until a streaming consumer needs it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional

from mimo_ggml.errors import InvalidArgumentError
from mimo_ggml.postprocess import (  # noqa: F401
    LANGUAGE_TAG_STRINGS,
    MARKERS,
    _alternation,
    _language_of,
    _stop_ids_of,
    clean_text,
    drop_stop_id,
)

if TYPE_CHECKING:
    from mimo_ggml.text_tokenizer import TextTokenizer

class _PatternRemover:
    """Deletes fixed strings from a stream of text, holding back any tail
    that could still grow into one of them.

    Assumes no pattern occurs inside another (true of the marker and tag sets).
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        patterns = tuple(patterns)
        self._re = _alternation(patterns)
        self._prefixes = frozenset(p[:k] for p in patterns for k in range(1, len(p)))
        self._longest_prefix = max(len(p) for p in patterns) - 1
        self._pending = ""

    def push(self, text: str) -> tuple[str, list[str]]:
        buf = self._pending + text
        out: list[str] = []
        found: list[str] = []
        pos = 0
        for m in self._re.finditer(buf):
            out.append(buf[pos:m.start()])
            found.append(m.group())
            pos = m.end()
        rest = buf[pos:]
        hold = 0
        for k in range(min(len(rest), self._longest_prefix), 0, -1):
            if rest[-k:] in self._prefixes:
                hold = k
                break
        cut = len(rest) - hold
        out.append(rest[:cut])
        self._pending = rest[cut:]
        return "".join(out), found

    def finish(self) -> str:
        # An unfinished prefix never became a pattern: it is ordinary text.
        rest, self._pending = self._pending, ""
        return rest


class StreamingTextFilter:
    """Streaming form of :func:`clean_text` (§12.3).

    ``push(piece)`` returns the text that can be shown now; text that is
    still a prefix of a marker or of ``<english>``/``<chinese>`` is held
    back, complete tags and markers are dropped, leading whitespace is
    dropped and trailing whitespace is held until more text follows.
    ``"".join(pushes) + finish()`` equals ``clean_text(all_text)[0]``.
    """

    def __init__(self) -> None:
        self._markers = _PatternRemover(MARKERS)
        self._tags = _PatternRemover(LANGUAGE_TAG_STRINGS)
        self._tags_seen: list[str] = []
        self._started = False  # any non-whitespace emitted yet
        self._pending_space = ""
        self._emitted: list[str] = []
        self._finished = False

    @property
    def language(self) -> Optional[str]:
        """Language from the tags seen so far ("zh" over "en"), or None."""
        return _language_of(self._tags_seen)

    @property
    def text(self) -> str:
        """Everything returned so far."""
        return "".join(self._emitted)

    def _trim(self, text: str) -> str:
        if not text:
            return ""
        if not self._started:
            text = text.lstrip()
            if not text:
                return ""
            self._started = True
        stripped = text.rstrip()
        if not stripped:
            self._pending_space += text
            return ""
        out = self._pending_space + stripped
        self._pending_space = text[len(stripped):]
        return out

    def _emit(self, text: str) -> str:
        if text:
            self._emitted.append(text)
        return text

    def push(self, piece: str) -> str:
        if not isinstance(piece, str):
            raise InvalidArgumentError(f"piece must be a string, got {type(piece).__name__}")
        if self._finished:
            raise InvalidArgumentError("this filter has finished; make a new one")
        no_markers, _ = self._markers.push(piece)
        no_tags, tags = self._tags.push(no_markers)
        self._tags_seen += tags
        return self._emit(self._trim(no_tags))

    def finish(self) -> str:
        """Flush held-back text (trailing whitespace is dropped)."""
        if self._finished:
            return ""
        self._finished = True
        no_tags, tags = self._tags.push(self._markers.finish())
        self._tags_seen += tags
        out = self._trim(no_tags + self._tags.finish())
        self._pending_space = ""
        return self._emit(out)


class TranscriptStreamer:
    """Generated ids in, displayable transcript text out.

    Combines the tokenizer's incremental detokenizer (whole UTF-8
    characters only) with :class:`StreamingTextFilter`.  Stop ids are
    skipped, matching :func:`postprocess_ids`.
    """

    def __init__(self, tokenizer: "TextTokenizer", stop_ids: Optional[Iterable[int]] = None) -> None:
        self._detok = tokenizer.detokenizer(skip_special=False)
        self._filter = StreamingTextFilter()
        self._stops = frozenset(int(i) for i in (_stop_ids_of(tokenizer) if stop_ids is None else stop_ids))

    @property
    def language(self) -> Optional[str]:
        return self._filter.language

    @property
    def text(self) -> str:
        return self._filter.text

    def feed(self, token_id: int) -> str:
        """Add one generated id; return newly displayable text (maybe "")."""
        if int(token_id) in self._stops:
            return ""
        return self._filter.push(self._detok.feed(token_id))

    def finish(self) -> str:
        return self._filter.push(self._detok.finish()) + self._filter.finish()
