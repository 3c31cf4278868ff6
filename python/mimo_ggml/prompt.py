"""The ASR prompt of MiMo-V2.5-ASR (spec asr.md §7, §8).

Owns: language-argument normalisation, the pinned instruction text, the
segment sequence of §8.2 turned into one text id per LM position
(:class:`AsrPrompt`, what the runtime consumes), resolution of the special
ids the decode loop needs (:class:`AsrSpecialIds`), the [9, 4G] prompt
matrix of §8.1 (kept for reference tests and debugging) and the
repeat-last-frame padding of codes to a multiple of 4 (§7).

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
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from .errors import InvalidArgumentError, ModelLoadError

if TYPE_CHECKING:
    from .text_tokenizer import TextTokenizer

__all__ = [
    "GROUP_SIZE",
    "N_AUDIO_CHANNELS",
    "DEFAULT_EMPTY_IDS",
    "TEXT_FILLER",
    "INSTRUCTION_EN",
    "INSTRUCTION_ZH",
    "LANGUAGE_TAGS",
    "AsrPrompt",
    "AsrSpecialIds",
    "normalize_language",
    "default_instruction",
    "build_asr_prompt",
    "pad_codes",
    "prompt_matrix",
]

GROUP_SIZE = 4  # code frames per LM position
N_AUDIO_CHANNELS = 8
# Per-channel "no code here" ids of the eight RVQ channels (§8.1).
DEFAULT_EMPTY_IDS: tuple[int, ...] = (1024, 1024, 128, 128, 128, 128, 128, 128)
# Row-0 filler in the non-first columns of a group; never read by the model.
TEXT_FILLER = -100

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


def build_asr_prompt(
    tokenizer: "TextTokenizer",
    n_audio_groups: int,
    language: Optional[str] = "auto",
    instruction: Optional[str] = None,
) -> AsrPrompt:
    """The §8.2 prompt for ``n_audio_groups`` groups of 4 code frames.

    ``instruction`` overrides the pinned instruction text (None keeps it).
    """
    lang = normalize_language(language)
    if instruction is None:
        instruction = default_instruction(lang)
    elif not isinstance(instruction, str):
        raise InvalidArgumentError(f"instruction must be a string or None, got {type(instruction).__name__}")
    if isinstance(n_audio_groups, bool) or not isinstance(n_audio_groups, (int, np.integer)):
        raise InvalidArgumentError(f"n_audio_groups must be an integer, got {n_audio_groups!r}")
    n_audio_groups = int(n_audio_groups)
    if n_audio_groups < 1:
        raise InvalidArgumentError(f"n_audio_groups must be at least 1, got {n_audio_groups}")

    special = AsrSpecialIds.from_tokenizer(tokenizer)
    head = tokenizer.encode(_USER_PREFIX)
    tail: list[int] = []
    # Separate encode calls: BPE must not merge across segment boundaries.
    for segment in (instruction, _TURN_END, _ASSISTANT_PREFIX, _NO_THINK + LANGUAGE_TAGS[lang]):
        tail += tokenizer.encode(segment)

    ids = np.empty(len(head) + n_audio_groups + 2 + len(tail), dtype=np.int32)
    n = len(head)
    ids[:n] = head
    ids[n] = special.sosp
    ids[n + 1:n + 1 + n_audio_groups] = special.empty
    ids[n + 1 + n_audio_groups] = special.eosp
    ids[n + 2 + n_audio_groups:] = tail
    ids.setflags(write=False)
    return AsrPrompt(
        text_ids=ids,
        audio_start=n + 1,
        n_audio_groups=n_audio_groups,
        language=lang,
        instruction=instruction,
    )


def _as_codes(codes: object) -> np.ndarray:
    arr = np.asarray(codes)
    if arr.ndim != 2 or arr.shape[1] != N_AUDIO_CHANNELS:
        raise InvalidArgumentError(f"codes must have shape [T, {N_AUDIO_CHANNELS}], got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InvalidArgumentError(f"codes must be integers, got dtype {arr.dtype}")
    return arr


def pad_codes(codes: object, group_size: int = GROUP_SIZE) -> np.ndarray:
    """Pad [T, 8] codes to a multiple of ``group_size`` frames by repeating the last frame (§7)."""
    arr = _as_codes(codes)
    if group_size < 1:
        raise InvalidArgumentError(f"group_size must be positive, got {group_size}")
    t = arr.shape[0]
    if t == 0:
        raise InvalidArgumentError("codes are empty: there is no last frame to repeat")
    extra = (-t) % group_size
    if extra == 0:
        return arr.copy()
    return np.concatenate([arr, np.repeat(arr[-1:], extra, axis=0)], axis=0)


def prompt_matrix(
    prompt: AsrPrompt,
    codes: object,
    empty_ids: Sequence[int] = DEFAULT_EMPTY_IDS,
) -> np.ndarray:
    """The int64 [9, 4G] model input of §8.1.

    Row 0 has each group's text id in its first column and -100 elsewhere;
    rows 1..8 hold the codes of channel c at the audio groups' columns and
    that channel's empty id everywhere else.  ``codes`` must already be
    padded: shape [4 * n_audio_groups, 8].
    """
    arr = _as_codes(codes)
    empty = np.asarray(empty_ids, dtype=np.int64)
    if empty.shape != (N_AUDIO_CHANNELS,):
        raise InvalidArgumentError(f"empty_ids must have {N_AUDIO_CHANNELS} entries, got {empty.shape}")
    want = GROUP_SIZE * prompt.n_audio_groups
    if arr.shape[0] != want:
        raise InvalidArgumentError(
            f"codes have {arr.shape[0]} frames but the prompt has {prompt.n_audio_groups} audio groups "
            f"({want} frames); pad them with pad_codes() first"
        )
    g = prompt.n_groups
    m = np.empty((1 + N_AUDIO_CHANNELS, GROUP_SIZE * g), dtype=np.int64)
    m[0, :] = TEXT_FILLER
    m[0, ::GROUP_SIZE] = prompt.text_ids
    m[1:, :] = empty[:, None]
    lo = GROUP_SIZE * prompt.audio_start
    m[1:, lo:lo + want] = arr.T
    return m
