"""The [9, 4G] prompt matrix of spec asr.md §8.1 and the padding of codes
to whole groups (§7), as the official pipeline builds them: the reference
the tests compare the native pipeline's rows with (the runtime never builds
the matrix; it pads codes natively)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mimo_ggml.errors import InvalidArgumentError
from mimo_ggml.prompt import AsrPrompt

GROUP_SIZE = 4  # code frames per LM position
N_AUDIO_CHANNELS = 8
# Per-channel "no code here" ids of the eight RVQ channels (§8.1).
DEFAULT_EMPTY_IDS: tuple[int, ...] = (1024, 1024, 128, 128, 128, 128, 128, 128)
# Row-0 filler in the non-first columns of a group; never read by the model.
TEXT_FILLER = -100



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
