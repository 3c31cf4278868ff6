"""Tests of mimo_ggml.text_tokenizer: a tiny hand-made vocabulary checked
against a plain-Python reference BPE written here, and the real Qwen2
vocabulary (MiMo layout) checked against spec asr.md §8.3 ids and against
tiktoken's own encoder of the same ranks."""

from __future__ import annotations

import os
import random
import sys
import unicodedata

import pytest

from mimo_ggml.errors import InvalidArgumentError, ModelLoadError
from mimo_ggml.text_tokenizer import IncrementalDetokenizer, TextTokenizer, bytes_to_unicode

try:
    from . import text_vocab
except ImportError:  # tests/ is not a package: import the helper by path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import text_vocab

regex = pytest.importorskip("regex")


# --------------------------------------------------------------------------
# tiny vocabulary + independent reference encoder


def _tiny_byte_chars() -> list[str]:
    # Same GPT-2 table as text_vocab's own copy (independent of the package).
    return text_vocab._byte_table()


TINY_MERGE_PAIRS = [
    ("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("l", "l"), ("he", "ll"), ("hell", "o"),
    ("Ġ", "w"), ("o", "r"), ("Ġw", "or"), ("l", "d"), ("Ġwor", "ld"),
    ("a", "b"), ("b", "c"), ("ab", "c"), ("Ċ", "Ċ"), ("Ġ", "Ġ"),
    ("ä", "¸"), ("ä¸", "ĸ"), ("ç", "ķ"), ("çķ", "Į"),
    ("'", "s"), ("1", "2"), ("<", "t"), ("<t", "ool"), ("o", "o"), ("oo", "l"), ("t", "ool"),
]
TINY_ADDED = ["<|endoftext|>", "<tool>", "<tool_call>", "<|im_end|>"]


def tiny_vocab() -> tuple[list[str], list[str]]:
    tokens = list(_tiny_byte_chars())
    for a, b in TINY_MERGE_PAIRS:
        if a + b not in tokens:
            tokens.append(a + b)
    tokens += TINY_ADDED + ["[PAD999]"]
    merges = [f"{a} {b}" for a, b in TINY_MERGE_PAIRS]
    return tokens, merges


def reference_encode(text: str, tokens: list[str], merges: list[str], added: list[str]) -> list[int]:
    """Spec §8.5 written out naively: added tokens (leftmost, longest), NFC,
    regex pieces, byte-level chars, lowest-rank merge first."""
    ids = {t: i for i, t in reversed(list(enumerate(tokens)))}
    rank = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
    table = _tiny_byte_chars()
    pat = regex.compile(text_vocab.QWEN_PAT)

    def bpe(piece: str) -> list[int]:
        parts = [table[b] for b in piece.encode("utf-8")]
        while len(parts) > 1:
            ranked = [(rank.get((parts[i], parts[i + 1]), None), i) for i in range(len(parts) - 1)]
            ranked = [(r, i) for r, i in ranked if r is not None]
            if not ranked:
                break
            _, i = min(ranked)
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        return [ids[p] for p in parts]

    out: list[int] = []
    pos = 0
    while pos < len(text):
        best = None
        for s in added:
            j = text.find(s, pos)
            if j >= 0 and (best is None or j < best[0] or (j == best[0] and len(s) > len(best[1]))):
                best = (j, s)
        end = best[0] if best else len(text)
        for piece in pat.findall(unicodedata.normalize("NFC", text[pos:end])):
            out += bpe(piece)
        if best is None:
            break
        out.append(ids[best[1]])
        pos = best[0] + len(best[1])
    return out


@pytest.fixture(scope="module")
def tiny():
    tokens, merges = tiny_vocab()
    return TextTokenizer.from_gguf_fields(tokens, merges), tokens, merges


def test_byte_table_is_gpt2():
    table = bytes_to_unicode()
    assert [table[b] for b in range(256)] == _tiny_byte_chars()
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"


def test_tiny_known_cases(tiny):
    tk, tokens, merges = tiny
    tid = tk.token_to_id
    assert tk.encode("hello") == [tid("hello")]
    assert tk.encode(" the world") == [tid("Ġthe"), tid("Ġworld")]
    # "ab" (rank 11) beats "bc" (rank 12), then "ab c".
    assert tk.encode("abc") == [tid("abc")]
    # longest added token wins over its prefix
    assert tk.encode("<tool_call>") == [tid("<tool_call>")]
    assert tk.encode("<tool>") == [tid("<tool>")]
    # placeholders are not added tokens
    assert tid("[PAD999]") not in tk.encode("[PAD999]")
    assert set(tk.added_tokens) == set(TINY_ADDED)
    assert tk.vocab_size == len(tokens) and tk.n_merges == len(merges)


def test_tiny_matches_reference(tiny):
    tk, tokens, merges = tiny
    rng = random.Random(1234)
    pool = [
        "hello", " world", "the", " ", "  ", "\n", "\n\n", "\r\n", "\t", "abc", "ab", "bc",
        "世界", "中", "e\u0301", "é", "'s", "'S", "12", "123", "4", "!?", " ...", "<", ">",
        "<tool>", "<tool_call>", "<|endoftext|>", "<|im_end|>", "[PAD999]", "tool", "x",
    ]
    for _ in range(300):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(1, 12)))
        assert tk.encode(text) == reference_encode(text, tokens, merges, TINY_ADDED), repr(text)


def test_tiny_decode(tiny):
    tk, _, _ = tiny
    for text in ["hello world", "世界 <|im_end|>\n", "a\u00e9b"]:
        assert tk.decode(tk.encode(text)) == text
    eot = tk.token_to_id("<|endoftext|>")
    assert tk.decode(tk.encode("hi<|endoftext|>"), skip_special=True) == "hi"
    assert tk.is_special(eot) and not tk.is_special(tk.token_to_id("hello"))


def test_token_types_select_added_tokens(tiny):
    _, tokens, merges = tiny
    types = [1] * len(tokens)
    types[tokens.index("<tool>")] = 3  # only this one is CONTROL
    tk = TextTokenizer(tokens, merges, token_types=types)
    assert tk.added_tokens == {"<tool>": tokens.index("<tool>")}
    assert tk.token_to_id("<|im_end|>") not in tk.encode("<|im_end|>")
    with pytest.raises(ModelLoadError):
        TextTokenizer(tokens, merges, token_types=types[:-1])


def test_bad_inputs(tiny):
    tk, tokens, merges = tiny
    with pytest.raises(ModelLoadError):
        TextTokenizer(tokens, merges + ["nosuch token"])
    with pytest.raises(ModelLoadError):
        TextTokenizer(tokens, ["abc"])
    with pytest.raises(ModelLoadError):
        TextTokenizer([], [])
    with pytest.raises(InvalidArgumentError):
        TextTokenizer("abc", merges)
    with pytest.raises(InvalidArgumentError):
        tk.encode(b"bytes")
    with pytest.raises(InvalidArgumentError):
        tk.decode([tk.vocab_size])
    with pytest.raises(InvalidArgumentError):
        tk.decode([-1])
    with pytest.raises(InvalidArgumentError):
        tk.id_to_token(10**9)
    assert tk.token_to_id("no such token") is None
    assert tk.encode("") == []
    assert tk.decode([]) == ""


# --------------------------------------------------------------------------
# the real Qwen2 vocabulary in the MiMo layout


@pytest.fixture(scope="session")
def qwen():
    return text_vocab.qwen_text_tokenizer()


@pytest.fixture(scope="session")
def tiktoken_enc():
    pytest.importorskip("tiktoken")
    return text_vocab.tiktoken_encoding()


SPEC_IDS = [  # spec §8.3 (facts)
    ("<|im_start|>user\n", [151644, 872, 198]),
    ("Please transcribe this audio file", [5501, 1356, 3114, 419, 7699, 1034]),
    ("请将这段语音转换为文字", [14880, 44063, 107083, 105761, 105359, 17714, 87335]),
    ("<|im_end|>\n", [151645, 198]),
    ("<|im_start|>assistant\n", [151644, 77091, 198]),
    ("<think>\n\n</think>\n", [13708, 766, 1339, 522, 26865, 397]),
    ("<think>\n\n</think>\n<english>", [13708, 766, 1339, 522, 26865, 397, 27, 29120, 29]),
    ("<think>\n\n</think>\n<chinese>", [13708, 766, 1339, 522, 26865, 397, 27, 331, 7346, 29]),
    ("将音频内容转换成文字格式", [44063, 111268, 43815, 105359, 12857, 87335, 68805]),
]


@pytest.mark.parametrize("text,ids", SPEC_IDS, ids=[repr(t) for t, _ in SPEC_IDS])
def test_spec_prompt_ids(qwen, text, ids):
    assert qwen.encode(text) == ids
    assert qwen.decode(ids) == text


def test_special_token_layout(qwen):
    assert qwen.vocab_size == 151680
    for i, s in enumerate(text_vocab.MIMO_SPECIAL_TOKENS):
        assert qwen.token_to_id(s) == 151643 + i
        assert qwen.id_to_token(151643 + i) == s
        assert qwen.encode(s) == [151643 + i]
    assert len(qwen.added_tokens) == 30
    assert qwen.id_to_token(151679) == "[PAD151679]"
    assert 151673 not in qwen.encode("[PAD151673]")
    # <think> and the language tags are ordinary text, not added tokens
    assert qwen.token_to_id("<think>") is None
    assert qwen.encode("<|im_start|><|im_end|><|empty|>") == [151644, 151645, 151667]
    assert qwen.decode([151671, 151672]) == "<|eostm|><|eot|>"
    assert qwen.id_to_token(1597) == "ĠAnd"  # spec §15 step-0 argmax


MULTILINGUAL = [
    "And so, my fellow Americans, ask not what your country can do for you.",
    "Ask what you can do for your country.",
    "I'm sure they'll say it's DON'T, WE'VE and YOU'D.",
    "请将这段语音转换为文字，谢谢！今天天气很好。",
    "東京は日本の首都です。カタカナとひらがな。",
    "안녕하세요, 만나서 반갑습니다.",
    "Привет, как дела? Ёжик в тумане.",
    "Ünïcödé Straße — façade, naïve café.",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "Emoji: 😀🎉👍🏽 and symbols ∑∫√ ≠ ≤.",
    "Numbers 1234567890 and 3.14159, 1e-10, 0x1F.",
    "def f(x):\n    return x**2  # comment\n\n\n\tindent\r\nwindows\r\n",
    "   leading and trailing spaces   ",
    "multiple     spaces\n\n\nand\n newlines \n",
    "<think>\n\n</think>\n<english>And so",
    "mixed中文English混合123abc",
]


def test_agrees_with_tiktoken_on_multilingual_text(qwen, tiktoken_enc):
    for text in MULTILINGUAL:
        text = unicodedata.normalize("NFC", text)  # tiktoken has no normaliser
        assert qwen.encode(text) == tiktoken_enc.encode_ordinary(text), repr(text)


def test_agrees_with_tiktoken_on_random_text(qwen, tiktoken_enc):
    rng = random.Random(7)
    pool = (
        list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        + list(" \t\n\r.,;:!?'\"()[]{}<>-_/\\@#$%^&*+=~`|")
        + list("éèüößñçàøåæ中文字语音转换日本語한국어русскийعربي😀🎉")
        + ["'s", "'ll", "'RE", "  ", "\n\n", "\r\n", "...", "<|"]
    )
    for _ in range(200):
        text = unicodedata.normalize("NFC", "".join(rng.choice(pool) for _ in range(rng.randint(1, 40))))
        assert qwen.encode(text) == tiktoken_enc.encode_ordinary(text), repr(text)


def test_nfc_normalisation(qwen):
    decomposed = "cafe\u0301 nai\u0308ve"
    composed = unicodedata.normalize("NFC", decomposed)
    assert composed != decomposed
    assert qwen.encode(decomposed) == qwen.encode(composed)


def test_specials_split_before_bpe(qwen, tiktoken_enc):
    text = "Hi<|im_end|>\n<tool_call>x</tool_call><|endoftext|>"
    want = tiktoken_enc.encode(text, allowed_special="all")
    assert qwen.encode(text) == want
    assert qwen.decode(want) == text
    assert qwen.decode(want, skip_special=True) == "Hi\nx"


def test_decode_round_trip(qwen):
    for text in MULTILINGUAL:
        text = unicodedata.normalize("NFC", text)
        assert qwen.decode(qwen.encode(text)) == text


def test_invalid_utf8_becomes_replacement(qwen, tiktoken_enc):
    # A lone lead byte of a 3-byte character, then a complete character.
    lead = qwen.token_to_id(bytes_to_unicode()[0xE4])
    assert lead is not None
    assert qwen.decode([lead]) == "\ufffd"
    assert qwen.decode([lead] + qwen.encode("ok")) == "\ufffdok"
    ids = qwen.encode("中")
    assert qwen.decode(ids) == "中"
    raw = b"".join(qwen.token_bytes(i) for i in ids)
    assert raw == "中".encode("utf-8")


def test_incremental_detokenizer_matches_decode(qwen):
    rng = random.Random(3)
    # Byte-level tokens for high bytes make partial characters likely.
    high = [qwen.token_to_id(bytes_to_unicode()[b]) for b in range(0x80, 0x100)]
    texts = [qwen.encode(unicodedata.normalize("NFC", t)) for t in MULTILINGUAL]
    for trial in range(200):
        if trial % 2:
            ids = rng.choice(texts)
        else:
            ids = [rng.choice(high) if rng.random() < 0.5 else rng.randrange(151643) for _ in range(rng.randint(1, 20))]
            ids += [151645] if rng.random() < 0.3 else []
        det = IncrementalDetokenizer(qwen)
        pieces = [det.feed(i) for i in ids]
        assert "".join(pieces) + det.finish() == qwen.decode(ids)


def test_incremental_detokenizer_never_splits_characters(qwen):
    text = "语音转换😀 emoji 👍🏽 mixed"
    # Encode byte by byte so that every multi-byte character spans several ids.
    ids = [qwen.token_to_id(bytes_to_unicode()[b]) for b in text.encode("utf-8")]
    det = qwen.detokenizer()
    pieces = [det.feed(i) for i in ids]
    assert "\ufffd" not in "".join(pieces)
    assert "".join(pieces) + det.finish() == text
    # feeding a batch is the same as feeding one by one
    det2 = qwen.detokenizer()
    assert det2.feed(ids) + det2.finish() == text
    # a dangling lead byte is flushed as U+FFFD
    det3 = qwen.detokenizer()
    assert det3.feed(ids[:1]) == ""
    assert det3.finish() == "\ufffd"
