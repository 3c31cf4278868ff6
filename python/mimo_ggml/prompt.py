"""The ASR prompt of MiMo-V2.5-ASR (spec asr.md §7, §8).

Owns: language-argument normalisation, the pinned instruction text, the
segment sequence of §8.2 as the prompt ids before and after the audio groups
(:func:`asr_prompt_parts`, what the native pipeline consumes; it inserts one
row per audio group between them) or as one text id per LM position
(:class:`AsrPrompt`), and resolution of the special ids the decode loop
needs (:class:`AsrSpecialIds`). The [9, 4G] matrix of §8.1 and the padding
of codes (§7) live in tests/reference, the native pipeline pads codes itself.

Segments (each tokenised on its own, so merges never cross them):

1. ``<|im_start|>user\\n``
2. audio: ``<|sosp|>``, one ``<|empty|>`` group per 4 code frames, ``<|eosp|>``
3. INSTRUCTION
4. ``<|im_end|>\\n``
5. ``<|im_start|>assistant\\n``
6. ``<think>\\n\\n</think>\\n`` + LANGUAGE_TAG
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

from .errors import InvalidArgumentError, ModelLoadError

if TYPE_CHECKING:
    from .text_tokenizer import TextTokenizer

__all__ = [
    "INSTRUCTION_EN",
    "INSTRUCTION_ZH",
    "LANGUAGE_TAGS",
    "AsrPrompt",
    "AsrSpecialIds",
    "normalize_language",
    "default_instruction",
    "asr_prompt_parts",
    "build_asr_prompt",
]

INSTRUCTION_EN = "Please transcribe this audio file"
INSTRUCTION_ZH = "请将这段语音转换为文字"
LANGUAGE_TAGS = {"auto": "", "en": "<english>", "zh": "<chinese>"}

_USER_PREFIX = "<|im_start|>user\n"
_TURN_END = "<|im_end|>\n"
_ASSISTANT_PREFIX = "<|im_start|>assistant\n"
_NO_THINK = "<think>\n\n</think>\n"

_LANGUAGE_ALIASES = {
    "auto": "auto",
    "en": "en",
    "english": "en",
    "zh": "zh",
    "chinese": "zh",
}


def normalize_language(language: Optional[str]) -> str:
    """Map a user language argument to ``"auto"``, ``"en"`` or ``"zh"``.

    Accepts those three plus ``"english"`` / ``"chinese"`` (any case) and None
    (= auto).
    """
    if language is None:
        return "auto"
    if isinstance(language, str):
        code = _LANGUAGE_ALIASES.get(language.strip().lower())
        if code is not None:
            return code
    raise InvalidArgumentError(
        f"unsupported language {language!r}; accepted values: "
        "'auto', 'en' (or 'english'), 'zh' (or 'chinese')"
    )


def default_instruction(language: Optional[str]) -> str:
    """The pinned instruction: English for en, the Chinese sentence otherwise (§8.2)."""
    return INSTRUCTION_EN if normalize_language(language) == "en" else INSTRUCTION_ZH


def _require_id(tokenizer: "TextTokenizer", token: str) -> int:
    i = tokenizer.token_to_id(token)
    if i is None:
        raise ModelLoadError(f"the model vocabulary has no {token!r} token (legacy or foreign GGUF?)")
    return i


@dataclass(frozen=True)
class AsrSpecialIds:
    """Special ids of the ASR vocabulary, resolved from its strings (§8.4)."""

    endoftext: int
    im_start: int
    im_end: int
    sosp: int
    eosp: int
    empty: int
    eostm: int
    eot: int

    @classmethod
    def from_tokenizer(cls, tokenizer: "TextTokenizer") -> "AsrSpecialIds":
        return cls(
            endoftext=_require_id(tokenizer, "<|endoftext|>"),
            im_start=_require_id(tokenizer, "<|im_start|>"),
            im_end=_require_id(tokenizer, "<|im_end|>"),
            sosp=_require_id(tokenizer, "<|sosp|>"),
            eosp=_require_id(tokenizer, "<|eosp|>"),
            empty=_require_id(tokenizer, "<|empty|>"),
            eostm=_require_id(tokenizer, "<|eostm|>"),
            eot=_require_id(tokenizer, "<|eot|>"),
        )

    @property
    def stop_ids(self) -> tuple[int, int]:
        """Generation ends on either of these (§12.1 step 3)."""
        return (self.im_end, self.endoftext)


@dataclass(frozen=True, eq=False)  # eq off: ndarray fields do not compare to a bool
class AsrPrompt:
    """One text id per LM position, with where the audio groups sit.

    ``text_ids[g]`` is row 0 of the §8.1 matrix at column ``4g``; the audio
    groups ``audio_start … audio_start + n_audio_groups - 1`` hold the
    ``<|empty|>`` id and take their input from the speech codes instead.
    """

    text_ids: np.ndarray  # int32 [G]
    audio_start: int
    n_audio_groups: int
    language: str = "auto"
    instruction: str = ""

    @property
    def n_groups(self) -> int:
        """G, the number of LM positions of the prompt."""
        return int(self.text_ids.shape[0])

    @property
    def audio_stop(self) -> int:
        """One past the last audio group."""
        return self.audio_start + self.n_audio_groups

    def is_speech(self) -> np.ndarray:
        """Boolean [G]: True at the audio groups (§9 step 1)."""
        mask = np.zeros(self.n_groups, dtype=bool)
        mask[self.audio_start:self.audio_stop] = True
        return mask


def asr_prompt_parts(
    tokenizer: "TextTokenizer",
    language: Optional[str] = "auto",
    instruction: Optional[str] = None,
) -> tuple[list[int], list[int]]:
    """The §8.2 prompt ids before the audio groups (through ``<|sosp|>``) and
    after them (from ``<|eosp|>``). ``instruction`` overrides the pinned
    instruction text (None keeps it)."""
    lang = normalize_language(language)
    if instruction is None:
        instruction = default_instruction(lang)
    elif not isinstance(instruction, str):
        raise InvalidArgumentError(f"instruction must be a string or None, got {type(instruction).__name__}")
    special = AsrSpecialIds.from_tokenizer(tokenizer)
    prefix = tokenizer.encode(_USER_PREFIX) + [special.sosp]
    suffix = [special.eosp]
    # Separate encode calls: BPE must not merge across segment boundaries.
    for segment in (instruction, _TURN_END, _ASSISTANT_PREFIX, _NO_THINK + LANGUAGE_TAGS[lang]):
        suffix += tokenizer.encode(segment)
    return prefix, suffix


def build_asr_prompt(
    tokenizer: "TextTokenizer",
    n_audio_groups: int,
    language: Optional[str] = "auto",
    instruction: Optional[str] = None,
) -> AsrPrompt:
    """The §8.2 prompt for ``n_audio_groups`` groups of code frames, one text
    id per LM position (``<|empty|>`` at the audio groups)."""
    if isinstance(n_audio_groups, bool) or not isinstance(n_audio_groups, (int, np.integer)):
        raise InvalidArgumentError(f"n_audio_groups must be an integer, got {n_audio_groups!r}")
    n_audio_groups = int(n_audio_groups)
    if n_audio_groups < 1:
        raise InvalidArgumentError(f"n_audio_groups must be at least 1, got {n_audio_groups}")
    lang = normalize_language(language)
    prefix, suffix = asr_prompt_parts(tokenizer, lang, instruction)
    empty = AsrSpecialIds.from_tokenizer(tokenizer).empty
    ids = np.asarray(prefix + [empty] * n_audio_groups + suffix, dtype=np.int32)
    ids.setflags(write=False)
    return AsrPrompt(
        text_ids=ids,
        audio_start=len(prefix),
        n_audio_groups=n_audio_groups,
        language=lang,
        instruction=default_instruction(lang) if instruction is None else instruction,
    )
