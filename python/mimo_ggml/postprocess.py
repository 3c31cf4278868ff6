"""Turning generated ASR ids into the transcript (spec asr.md §12.2, §12.3).

Owns: the final clean-up (drop the stop id, decode with specials kept,
delete the marker tokens, detect and remove the ``<english>``/``<chinese>``
language tag, trim). Its streaming counterpart (tests/reference) surfaces
text as tokens arrive; the tests check the two agree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Optional

from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from .text_tokenizer import TextTokenizer

__all__ = [
    "MARKERS",
    "LANGUAGE_TAG_STRINGS",
    "drop_stop_id",
    "clean_text",
    "postprocess_ids",
    "language_tag_probability",
]

# Deleted wherever they appear (the last two defensively, §12.2 step 3).
MARKERS = ("<|empty|>", "<|eot|>", "<|eostm|>", "<|im_end|>", "<|endoftext|>")
# Checked in this order: Chinese wins when both are present (§12.2 step 4).
LANGUAGE_TAG_STRINGS = {"<chinese>": "zh", "<english>": "en"}


def _alternation(patterns: Iterable[str]) -> "re.Pattern[str]":
    return re.compile("|".join(re.escape(p) for p in patterns))


_MARKER_RE = _alternation(MARKERS)
_TAG_RE = _alternation(LANGUAGE_TAG_STRINGS)


def _language_of(found: Iterable[str]) -> Optional[str]:
    seen = set(found)
    for tag, code in LANGUAGE_TAG_STRINGS.items():
        if tag in seen:
            return code
    return None


def drop_stop_id(ids: Iterable[int], stop_ids: Iterable[int]) -> list[int]:
    """The ids without a final stop id (only the last one; a length-limited
    run keeps its last real token, unlike upstream)."""
    out = [int(i) for i in ids]
    stops = {int(s) for s in stop_ids}
    if out and out[-1] in stops:
        out.pop()
    return out


def clean_text(text: str) -> tuple[str, Optional[str]]:
    """Markers and language tags removed, trimmed; returns (text, language).

    language is "zh" if a ``<chinese>`` tag was present, else "en" for
    ``<english>``, else None.
    """
    if not isinstance(text, str):
        raise InvalidArgumentError(f"text must be a string, got {type(text).__name__}")
    # One left-to-right pass per pattern set, so that the streaming filter
    # (which works the same way) agrees exactly.
    text = _MARKER_RE.sub("", text.strip())
    language = _language_of(_TAG_RE.findall(text))
    text = _TAG_RE.sub("", text).strip()
    return text, language


def _stop_ids_of(tokenizer: "TextTokenizer") -> list[int]:
    ids = [tokenizer.token_to_id(s) for s in ("<|im_end|>", "<|endoftext|>")]
    return [i for i in ids if i is not None]


def postprocess_ids(
    ids: Iterable[int],
    tokenizer: "TextTokenizer",
    stop_ids: Optional[Iterable[int]] = None,
) -> tuple[str, Optional[str]]:
    """§12.2 in full: generated ids -> (transcript, detected language or None).

    ``stop_ids`` defaults to the ids of ``<|im_end|>`` and ``<|endoftext|>``.
    """
    if stop_ids is None:
        stop_ids = _stop_ids_of(tokenizer)
    kept = drop_stop_id(ids, stop_ids)
    return clean_text(tokenizer.decode(kept, skip_special=False))


def language_tag_probability(
    ids: Iterable[int],
    logprobs: Iterable[float],
    tokenizer: "TextTokenizer",
) -> Optional[float]:
    """The model's probability for the language tag it wrote (auto mode):
    exp of the summed log-probabilities of the tag's tokens where the tag
    first appears in ``ids`` (the tag is ordinary BPE text, §8: ``<english>``
    is ``<``, ``english``, ``>``). None when no tag was written."""
    ids, logprobs = [int(i) for i in ids], [float(x) for x in logprobs]
    best: Optional[tuple[int, int]] = None  # (start, length) of the earliest tag
    for tag in LANGUAGE_TAG_STRINGS:
        seq = tokenizer.encode(tag)
        n = len(seq)
        for i in range(len(ids) - n + 1):
            if ids[i:i + n] == seq:
                if best is None or i < best[0]:
                    best = (i, n)
                break
    if best is None or len(logprobs) < best[0] + best[1]:
        return None
    start, n = best
    return float(math.exp(sum(logprobs[start:start + n])))
