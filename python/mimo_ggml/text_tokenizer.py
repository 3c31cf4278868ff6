"""Byte-level BPE text tokenizer built from a GGUF vocabulary (spec asr.md §8.5, §12.2).

Owns: :class:`TextTokenizer` (encode / decode / id look-ups for the Qwen2-style
vocabulary that MiMo GGUF files carry as ``tokenizer.ggml.tokens`` and
``tokenizer.ggml.merges``), :class:`IncrementalDetokenizer` (streaming
decode that never splits a UTF-8 character) and the GPT-2 byte<->unicode
tables.

Encoding is delegated to the ``tokenizers`` library, configured to behave
like Hugging Face's Qwen2 fast tokenizer: added tokens are split out first
(longest match, not normalised), the rest is NFC-normalised, pre-split with
the Qwen2 regex (pieces kept, "isolated"), mapped to byte-level characters
and merged by rank.  No BOS/EOS is ever added.  Decoding is done here in
Python so that its rules (added tokens verbatim, invalid UTF-8 -> U+FFFD, no
clean-up of spaces) are explicit.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Sequence
from typing import Optional

from .errors import InvalidArgumentError, ModelLoadError

__all__ = [
    "QWEN2_SPLIT_PATTERN",
    "TextTokenizer",
    "IncrementalDetokenizer",
    "bytes_to_unicode",
    "token_str_to_bytes",
]

# Pre-tokenisation regex of Qwen2 (spec §8.5 step 2); single digits are pieces.
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

ENDOFTEXT = "<|endoftext|>"
# Vocabulary padding rows ("[PAD151673]") are not real tokens.
_PAD_PLACEHOLDER = re.compile(r"\[PAD\d+\]\Z")

# GGUF token types (llama.cpp's llama_token_type) that mark added tokens.
_TOKEN_TYPE_CONTROL = 3
_TOKEN_TYPE_USER_DEFINED = 4


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table.

    Printable Latin-1 bytes stand for themselves; the other 68 bytes are
    shifted to code points from U+0100 upward, in byte order.
    """
    keep = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table: dict[int, str] = {}
    shifted = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shifted)
            shifted += 1
    return table


_BYTE_TO_CHAR = bytes_to_unicode()
_CHAR_TO_BYTE = {c: b for b, c in _BYTE_TO_CHAR.items()}
# str.translate table: byte-level character -> the Latin-1 character of its byte,
# so that .encode("latin-1") yields the raw bytes in one C-level pass.
_TO_LATIN1 = {ord(c): b for c, b in _CHAR_TO_BYTE.items()}
_ALPHABET = frozenset(_CHAR_TO_BYTE)


def token_str_to_bytes(token: str) -> bytes:
    """Raw bytes of a byte-level token string.

    Characters outside the GPT-2 alphabet (malformed vocabularies only) are
    kept as their own UTF-8, as Hugging Face's ByteLevel decoder does.
    """
    if _ALPHABET.issuperset(token):
        return token.translate(_TO_LATIN1).encode("latin-1")
    out = bytearray()
    for ch in token:
        b = _CHAR_TO_BYTE.get(ch)
        if b is None:
            out += ch.encode("utf-8")
        else:
            out.append(b)
    return bytes(out)


def _split_merge(line: object, index: int) -> tuple[str, str]:
    if not isinstance(line, str):
        raise ModelLoadError(f"tokenizer merge #{index} is not a string: {line!r}")
    left, sep, right = line.partition(" ")
    # Byte-level tokens never contain a literal space, so exactly one is expected.
    if not sep or not left or not right or " " in right:
        raise ModelLoadError(f"tokenizer merge #{index} is not an 'a b' pair: {line!r}")
    return left, right


class TextTokenizer:
    """Qwen2-style byte-level BPE over a GGUF vocabulary.

    ``tokens[i]`` is the string of id ``i`` (byte-level form for ordinary
    tokens, literal text for added tokens); ``merges`` are ``"a b"`` pairs in
    rank order.  Added tokens are, when ``token_types`` is given, those of
    type CONTROL or USER_DEFINED; otherwise every token from the id of
    ``<|endoftext|>`` upward except ``[PAD…]`` placeholders (the layout of
    the MiMo files, which carry no type array).
    """

    def __init__(
        self,
        tokens: Sequence[str],
        merges: Sequence[str],
        *,
        token_types: Optional[Sequence[int]] = None,
    ) -> None:
        # Imported here so that importing the package stays cheap.
        from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers

        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence):
            raise InvalidArgumentError("tokens must be a sequence of strings")
        if isinstance(merges, (str, bytes)) or not isinstance(merges, Sequence):
            raise InvalidArgumentError("merges must be a sequence of 'a b' strings")
        tokens = list(tokens)
        if not tokens:
            raise ModelLoadError("tokenizer vocabulary is empty")
        for i, t in enumerate(tokens):
            if not isinstance(t, str) or not t:
                raise ModelLoadError(f"tokenizer token #{i} is not a non-empty string: {t!r}")
        self._tokens: list[str] = tokens

        # First occurrence wins for duplicated strings (ids stay those of the list).
        vocab: dict[str, int] = {}
        for i, t in enumerate(tokens):
            vocab.setdefault(t, i)
        self._vocab = vocab

        self._added: dict[str, int] = self._find_added(tokens, token_types)
        self._added_ids = frozenset(self._added.values())

        pairs = [_split_merge(m, i) for i, m in enumerate(merges)]
        for i, (a, b) in enumerate(pairs):
            for piece in (a, b, a + b):
                if piece not in vocab:
                    raise ModelLoadError(
                        f"tokenizer merge #{i} {a!r} {b!r} uses {piece!r}, which is not in the vocabulary"
                    )
        self._n_merges = len(pairs)

        bpe = models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False)
        tk = Tokenizer(bpe)
        tk.normalizer = normalizers.NFC()
        tk.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False, trim_offsets=False),
            ]
        )
        # Added tokens are matched verbatim before normalisation; since every
        # string is already in the model vocabulary its id is reused.
        tk.add_special_tokens(
            [
                AddedToken(s, special=True, normalized=False, single_word=False, lstrip=False, rstrip=False)
                for s in sorted(self._added, key=self._added.__getitem__)
            ]
        )
        for s, i in self._added.items():
            if tk.token_to_id(s) != i:
                raise ModelLoadError(f"added token {s!r} did not keep id {i}")
        self._tk = tk
        self._id_bytes: Optional[list[bytes]] = None

    @staticmethod
    def _find_added(tokens: list[str], token_types: Optional[Sequence[int]]) -> dict[str, int]:
        added: dict[str, int] = {}
        if token_types is not None:
            if len(token_types) != len(tokens):
                raise ModelLoadError(
                    f"token type array has {len(token_types)} entries for {len(tokens)} tokens"
                )
            for i, (t, ty) in enumerate(zip(tokens, token_types)):
                if int(ty) in (_TOKEN_TYPE_CONTROL, _TOKEN_TYPE_USER_DEFINED) and not _PAD_PLACEHOLDER.match(t):
                    added.setdefault(t, i)
            return added
        try:
            start = tokens.index(ENDOFTEXT)
        except ValueError:
            return added
        for i in range(start, len(tokens)):
            t = tokens[i]
            if not _PAD_PLACEHOLDER.match(t):
                added.setdefault(t, i)
        return added

    @classmethod
    def from_gguf_fields(
        cls,
        tokens: Sequence[str],
        merges: Sequence[str],
        token_types: Optional[Sequence[int]] = None,
    ) -> "TextTokenizer":
        """Build from ``tokenizer.ggml.tokens`` / ``.merges`` (and optionally ``.token_type``)."""
        return cls(tokens, merges, token_types=token_types)

    # -- look-ups ---------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids (rows of the vocabulary, placeholders included)."""
        return len(self._tokens)

    @property
    def n_merges(self) -> int:
        return self._n_merges

    @property
    def added_tokens(self) -> dict[str, int]:
        """Added (special) token string -> id, in a new dict."""
        return dict(self._added)

    def is_special(self, token_id: int) -> bool:
        """True for added tokens (the ones ``decode(skip_special=True)`` drops)."""
        return token_id in self._added_ids

    def token_to_id(self, token: str) -> Optional[int]:
        """Id of a vocabulary string (byte-level form), or None if absent."""
        if not isinstance(token, str):
            raise InvalidArgumentError(f"token must be a string, got {type(token).__name__}")
        return self._vocab.get(token)

    def id_to_token(self, token_id: int) -> str:
        """Vocabulary string of an id (byte-level form for ordinary tokens)."""
        return self._tokens[self._check_id(token_id)]

    def _check_id(self, token_id: object) -> int:
        try:
            i = int(token_id)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"token id must be an integer, got {token_id!r}") from None
        if i != token_id or not 0 <= i < len(self._tokens):
            raise InvalidArgumentError(f"token id {token_id!r} is outside the vocabulary [0, {len(self._tokens)})")
        return i

    # -- encode -------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` (added tokens split out first; no BOS/EOS)."""
        if not isinstance(text, str):
            raise InvalidArgumentError(f"text must be a string, got {type(text).__name__}")
        if not text:
            return []
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates (e.g. from a bad decode with surrogateescape)
            raise InvalidArgumentError(
                f"text is not valid Unicode: {exc.reason} at index {exc.start}; pass text decoded from UTF-8"
            ) from None
        return list(self._tk.encode(text, add_special_tokens=False).ids)

    # -- decode -------------------------------------------------------------

    def token_bytes(self, token_id: int) -> bytes:
        """Raw bytes one id contributes to decoded text (added tokens verbatim)."""
        return self._bytes_table()[self._check_id(token_id)]

    def _bytes_table(self) -> list[bytes]:
        # Built on first decode: prompt-only users never pay for it.
        if self._id_bytes is None:
            table = [token_str_to_bytes(t) for t in self._tokens]
            for s, i in self._added.items():
                table[i] = s.encode("utf-8")
            self._id_bytes = table
        return self._id_bytes

    def _ids(self, ids: Iterable[int]) -> list[int]:
        if isinstance(ids, (str, bytes)):
            raise InvalidArgumentError("ids must be a sequence of integers")
        try:
            seq = list(ids)
        except TypeError:
            raise InvalidArgumentError("ids must be a sequence of integers") from None
        return [self._check_id(i) for i in seq]

    def decode_bytes(self, ids: Iterable[int], skip_special: bool = False) -> bytes:
        table = self._bytes_table()
        checked = self._ids(ids)
        if skip_special:
            checked = [i for i in checked if i not in self._added_ids]
        return b"".join(table[i] for i in checked)

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        """Text of ``ids``: byte-level decode, added tokens verbatim (or dropped
        with ``skip_special``), invalid UTF-8 replaced by U+FFFD, no space clean-up."""
        return self.decode_bytes(ids, skip_special).decode("utf-8", errors="replace")

    def detokenizer(self, skip_special: bool = False) -> "IncrementalDetokenizer":
        return IncrementalDetokenizer(self, skip_special=skip_special)

    def __repr__(self) -> str:
        return f"TextTokenizer(vocab_size={self.vocab_size}, merges={self._n_merges}, added={len(self._added)})"


class IncrementalDetokenizer:
    """Streaming decode: feed ids, get the newly completed text.

    A multi-byte UTF-8 character split across tokens is held back until it is
    complete; invalid sequences become U+FFFD exactly as in
    :meth:`TextTokenizer.decode`, so the concatenation of every ``feed``
    result and ``finish()`` equals ``decode(all_ids)``.
    """

    def __init__(self, tokenizer: TextTokenizer, skip_special: bool = False) -> None:
        self._tokenizer = tokenizer
        self._skip_special = skip_special
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._finished = False

    def feed(self, ids: int | Iterable[int]) -> str:
        """Add one id or several; return the text they complete (maybe "")."""
        if self._finished:
            raise InvalidArgumentError("this detokenizer has finished; make a new one")
        if isinstance(ids, Iterable) and not isinstance(ids, (str, bytes)):
            data = self._tokenizer.decode_bytes(ids, self._skip_special)
        else:
            data = self._tokenizer.decode_bytes([ids], self._skip_special)  # type: ignore[list-item]
        return self._decoder.decode(data, final=False)

    def finish(self) -> str:
        """Flush: a dangling incomplete character becomes U+FFFD."""
        if self._finished:
            return ""
        self._finished = True
        return self._decoder.decode(b"", final=True)
