"""Generators of the malformed GGUF files that crashed (or misreported) the
loader before it was hardened, one per failure class and variant. Each case
edits a fixture file (asr: the tiny MiMo-V2.5-ASR GGUF; tokenizer: the tiny
audio tokenizer; mimo2: the tiny MoE text model) and names the typed error
(a mimo_ggml.errors class) and the words its message must contain.

tests/test_gguf_hardening.py loads every case; the fuzzer's own finds are
reproduced from their seeds by ``gguf_fuzz.py --kind K --seed S``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

from . import gguf_raw as G


@dataclass(frozen=True)
class Case:
    name: str
    kind: str                      # which fixture: asr | tokenizer | mimo2
    edit: Callable                 # edits a parsed Gguf in place, or (raw=True) maps bytes -> bytes
    error: str                     # class name in mimo_ggml.errors
    match: str                     # regex the message must match
    raw: bool = False


def build(case: Case, fixture: bytes) -> bytes:
    if case.raw:
        return case.edit(fixture)
    g = G.parse(fixture)
    case.edit(g)
    return G.write(g)


# -- edit helpers -----------------------------------------------------------

def set_kv(key: str, vtype: int, value, elem_type: int = -1):
    def edit(g: G.Gguf):
        kv = g.find(key.encode())
        new = G.KV(key.encode(), vtype, value, elem_type)
        if kv is None:
            g.kvs.append(new)
        else:
            g.kvs[g.kvs.index(kv)] = new
    return edit


def drop_kv(key: str):
    def edit(g: G.Gguf):
        g.kvs.remove(g.find(key.encode()))
    return edit


def retype(name: str, ggml_type: int):
    """Give a tensor another type, with data of the matching size (so the file is otherwise consistent)."""
    def edit(g: G.Gguf):
        t = g.tensor(name.encode())
        t.type = ggml_type
        n = G.nbytes(t.dims, ggml_type)
        t.data = (t.data * (n // max(len(t.data), 1) + 1))[:n]
    return edit


def set_string_entry(key: str, index: int, value: bytes):
    def edit(g: G.Gguf):
        g.find(key.encode()).value[index] = value
    return edit


def both(*edits):
    def edit(g):
        for e in edits:
            e(g)
    return edit


def raw_at(fn):
    """A bytes -> bytes edit with the file's layout at hand: fn(buf: bytearray, layout) -> bytes."""
    def edit(data: bytes) -> bytes:
        return bytes(fn(bytearray(data), G.layout(data)))
    return edit


def data_offset(g: G.Gguf, i: int) -> int:
    """Where tensor i's data starts (relative to the data section) in a back-to-back layout."""
    return sum(-(-len(t.data) // g.alignment) * g.alignment for t in g.tensors[:i])


def set_offset(i: int, at: Callable):
    def edit(g: G.Gguf):
        g.tensors[i].offset = at(g)
    return edit


def _u64(buf, pos, v):
    buf[pos:pos + 8] = struct.pack("<Q", v & (2**64 - 1))
    return buf


def _u32(buf, pos, v):
    buf[pos:pos + 4] = struct.pack("<I", v & (2**32 - 1))
    return buf


ASR_LAYERS = "mimo_asr.llm.num_layers"
TOK_LAYERS = "mimo_tok.encoder_layers"

CASES = [
    # --- class 1: tensor types an op cannot use ---------------------------------------------
    *[Case(f"matmul weight as {n}", "asr", retype("model.layers.2.ffn.gate.weight", t), "ModelLoadError",
           rf"model\.layers\.2\.ffn\.gate\.weight' has type {n}, which CPU cannot use as a matmul weight; "
           r"allowed: f32, f16, .*q8_0")
      for n, t in (("i8", G.GGML_I8), ("i16", G.GGML_I16), ("i32", G.GGML_I32), ("i64", G.GGML_I64),
                   ("f64", G.GGML_F64))],
    Case("matmul weight as q8_K (no CPU dot kernel)", "asr", retype("model.layers.0.attn.o.weight", 15),
         "ModelLoadError", r"attn\.o\.weight' has type q8_K"),
    Case("attention k weight as i64 (mimo2)", "mimo2", retype("blk.0.attn_k.weight", G.GGML_I64), "ModelLoadError",
         r"blk\.0\.attn_k\.weight' has type i64"),
    Case("norm as i32", "asr", retype("model.layers.1.attn_norm.weight", G.GGML_I32), "ModelLoadError",
         r"attn_norm\.weight' has type i32.*float vector"),
    Case("embedding table as i32", "asr", retype("llm.embed.weight", G.GGML_I32), "ModelLoadError",
         r"llm\.embed\.weight' has type i32.*get_rows"),
    Case("speech embedding table as f64", "asr", retype("audio.emb.3.weight", G.GGML_F64), "ModelLoadError",
         r"audio\.emb\.3\.weight' has type f64"),
    Case("tokenizer matmul weight as i32", "tokenizer", retype("enc.blk.2.attn.o.weight", G.GGML_I32),
         "ModelLoadError", r"enc\.blk\.2\.attn\.o\.weight' has type i32"),
    Case("conv kernel as i16", "tokenizer", retype("encoder.conv1.weight", G.GGML_I16), "ModelLoadError",
         r"conv1\.weight' has type i16.*convolution kernel"),
    Case("expert weights as i8", "mimo2", retype("blk.1.ffn_up_exps.weight", G.GGML_I8), "ModelLoadError",
         r"ffn_up_exps\.weight' has type i8.*mul_mat_id"),

    # --- class 2: metadata of the wrong type --------------------------------------------------
    Case("integer key as a string", "asr", set_kv("mimo_asr.llm.hidden_size", G.STR, b"256"), "ModelLoadError",
         r"'mimo_asr\.llm\.hidden_size' has type str, expected an integer"),
    Case("integer key as an array of 2", "asr", set_kv(ASR_LAYERS, G.ARR, [3, 3], G.U32), "ModelLoadError",
         r"num_layers' has type array\[2\] of u32, expected an integer"),
    Case("integer key as an array of 1", "tokenizer", set_kv(TOK_LAYERS, G.ARR, [4], G.I32), "ModelLoadError",
         r"encoder_layers' has type array\[1\] of i32, expected an integer"),
    Case("integer key as an empty array", "mimo2", set_kv("mimo2.embedding_length", G.ARR, [], G.U32),
         "ModelLoadError", r"embedding_length' has type array\[0\] of u32"),
    Case("integer key as a float", "mimo2", set_kv("mimo2.block_count", G.F32, 3.0), "ModelLoadError",
         r"block_count' has type f32, expected an integer"),
    Case("float key as a string", "asr", set_kv("mimo_asr.llm.rope_theta", G.STR, b"640000"), "ModelLoadError",
         r"rope_theta' has type str, expected a number"),
    Case("float key as an array", "asr", set_kv("mimo_asr.llm.rope_theta", G.ARR, [1.0, 2.0], G.F32),
         "ModelLoadError", r"rope_theta' has type array\[2\] of f32, expected a number"),
    Case("bool key as a string", "mimo2", set_kv("mimo2.expert_weights_norm", G.STR, b"true"), "ModelLoadError",
         r"expert_weights_norm' has type str, expected a bool"),
    Case("per-layer array of strings", "mimo2",
         set_kv("mimo2.attention.head_count_kv", G.ARR, [b"1", b"2", b"1"], G.STR), "ModelLoadError",
         r"head_count_kv' has type array\[3\] of str, expected an array of integers"),
    Case("architecture as an integer", "asr", set_kv("general.architecture", G.U32, 7), "ModelLoadError",
         r"general\.architecture' has type u32, expected a string"),
    Case("vocabulary as a string", "mimo2", set_kv("tokenizer.ggml.tokens", G.STR, b"abc"), "ModelLoadError",
         r"tokenizer\.ggml\.tokens' has type str, expected an array of strings"),
    Case("alignment as a string (a ggml assert)", "tokenizer", set_kv("general.alignment", G.STR, b"32"),
         "ModelLoadError", r"general\.alignment' has type str, expected u32"),
    Case("u64 value past int64", "asr", set_kv(ASR_LAYERS, G.U64, 2**64 - 1), "ModelLoadError",
         r"num_layers' = 18446744073709551615 does not fit"),

    # --- class 3: values out of range ----------------------------------------------------------
    Case("2^24 layers", "asr", set_kv(ASR_LAYERS, G.U32, 1 << 24), "ModelLoadError",
         r"num_layers' = 16777216 is out of range"),
    Case("4000 layers, 3 present", "asr", set_kv(ASR_LAYERS, G.U32, 4000), "ModelLoadError",
         r"num_layers' = 4000, but the file holds tensors of 3"),
    Case("layers near 2^31", "tokenizer", set_kv(TOK_LAYERS, G.U32, 2**31 - 1), "ModelLoadError",
         r"encoder_layers' = 2147483647 is out of range"),
    Case("mimo2 block count 2^31", "mimo2", set_kv("mimo2.block_count", G.U32, 2**31), "ModelLoadError",
         r"block_count' = 2147483648 is out of range"),
    Case("zero heads", "asr", set_kv("mimo_asr.llm.num_heads", G.U32, 0), "ModelLoadError",
         r"num_heads' = 0 is out of range"),
    Case("negative heads (i32)", "mimo2", set_kv("mimo2.attention.head_count", G.I32, -4), "ModelLoadError",
         r"head_count' = -4 is out of range"),
    Case("heads not dividing", "asr", set_kv("mimo_asr.llm.num_kv_heads", G.U32, 3), "ModelLoadError",
         r"inconsistent LM hyper-parameters"),
    Case("vocabulary 2^31", "asr", set_kv("mimo_asr.llm.vocab_size", G.U32, 2**31), "ModelLoadError",
         r"vocab_size' = 2147483648 is out of range"),
    Case("vocabulary vs embedding rows", "asr", set_kv("mimo_asr.llm.vocab_size", G.U32, 600), "ModelLoadError",
         r"llm\.embed\.weight' has shape \(256, 512\), expected \(256, 600\)"),
    Case("more tokens than embedding rows", "asr",
         lambda g: g.find(b"tokenizer.ggml.tokens").value.append(b"extra"), "ModelLoadError",
         r"tokenizer\.ggml\.tokens' has 513 entries, but the model's embedding has only 512 rows"),
    Case("NaN rope theta", "asr", set_kv("mimo_asr.llm.rope_theta", G.F32, float("nan")), "ModelLoadError",
         r"rope_theta' = nan is not a finite"),
    Case("negative rope theta", "mimo2", set_kv("mimo2.rope.freq_base_swa", G.F32, -10000.0), "ModelLoadError",
         r"freq_base_swa' = -10000 is out of range"),
    Case("infinite eps (f64)", "tokenizer", set_kv("mimo_tok.layer_norm_eps", G.F64, float("inf")),
         "ModelLoadError", r"layer_norm_eps' = inf is not a finite"),
    Case("negative eps", "asr", set_kv("mimo_asr.llm.rms_norm_eps", G.F32, -1e-6), "ModelLoadError",
         r"rms_norm_eps' = -1e-06 is out of range"),
    Case("zero eps", "mimo2", set_kv("mimo2.attention.layer_norm_rms_epsilon", G.F32, 0.0), "ModelLoadError",
         r"layer_norm_rms_epsilon' = 0 is out of range"),
    Case("audio.input_layers = 0", "asr", set_kv("mimo_asr.audio.input_layers", G.U32, 0), "ModelLoadError",
         r"input_layers' = 0 is out of range"),
    Case("negative codebook size", "tokenizer", set_kv("mimo_tok.codebook_size.3", G.I32, -6), "ModelLoadError",
         r"codebook_size\.3' = -6 is out of range"),
    Case("huge codebook size", "tokenizer", set_kv("mimo_tok.codebook_size.3", G.U32, 510671053),
         "ModelLoadError", r"codebook_size\.3' = 510671053 is out of range"),
    Case("huge speech vocabulary", "asr", set_kv("mimo_asr.audio.speech_vocab.2", G.U64, 1 << 40),
         "ModelLoadError", r"speech_vocab\.2' = 1099511627776 is out of range"),
    Case("empty id past the table", "asr", set_kv("mimo_asr.audio.speech_zeroemb.4", G.U64, 1 << 32),
         "ModelLoadError", r"empty id 4294967296"),
    Case("eos id past the vocabulary", "mimo2", set_kv("tokenizer.ggml.eos_token_id", G.U32, 300), "ModelLoadError",
         r"eos_token_id' = 300 is outside the vocabulary"),
    Case("more experts used than experts", "mimo2", set_kv("mimo2.expert_used_count", G.U32, 5), "ModelLoadError",
         r"expert_used_count"),
    Case("odd rope dims", "mimo2", set_kv("mimo2.rope.dimension_count", G.U32, 63), "ModelLoadError",
         r"rope\.dimension_count 63 must be even"),

    # --- class 4: undecodable strings ------------------------------------------------------------
    Case("architecture not UTF-8", "asr", set_kv("general.architecture", G.STR, b"mimo_\xffasr"), "ModelLoadError",
         r"general\.architecture' holds a string that is not valid UTF-8"),
    Case("vocabulary token not UTF-8", "mimo2", set_string_entry("tokenizer.ggml.tokens", 17, b"a\xc0\x80b"),
         "ModelLoadError", r"tokenizer\.ggml\.tokens' entry 17 is not valid UTF-8"),
    Case("merge not UTF-8 (surrogate)", "asr", set_string_entry("tokenizer.ggml.merges", 3, b"\xed\xa0\x80 x"),
         "ModelLoadError", r"tokenizer\.ggml\.merges' entry 3 is not valid UTF-8"),
    Case("tensor name not UTF-8", "tokenizer",
         lambda g: setattr(g.tensor(b"enc.blk.1.fc1.weight"), "name", b"enc.blk.1.fc1.\xfeeight"), "ModelLoadError",
         r"lacks the tensor 'enc\.blk\.1\.fc1\.weight'"),

    # --- class 5: specific messages for a malformed header ----------------------------------------
    Case("duplicate key", "asr", lambda g: g.kvs.append(g.find(b"mimo_asr.llm.num_heads").copy()), "ModelLoadError",
         r"duplicate metadata key 'mimo_asr\.llm\.num_heads' \(entries 4 and 39\)"),
    Case("duplicate tensor", "mimo2",
         lambda g: g.tensors.append(G.Tensor(b"blk.1.ffn_norm.weight", [64], 0, b"\0" * 256)), "ModelLoadError",
         r"duplicate tensor 'blk\.1\.ffn_norm\.weight'"),
    Case("unknown tensor type", "asr", lambda g: setattr(g.tensor(b"model.layers.0.attn.o.weight"), "type", 99),
         "ModelLoadError", r"attn\.o\.weight' has unknown ggml type 99"),
    Case("removed tensor type", "mimo2", lambda g: setattr(g.tensor(b"blk.2.ffn_norm.weight"), "type", 4),
         "ModelLoadError", r"has unknown ggml type 4"),
    Case("five dimensions", "tokenizer", lambda g: g.tensor(b"enc.norm.weight").dims.extend([1, 1, 1, 1]),
         "ModelLoadError", r"enc\.norm\.weight' has 5 dimensions"),
    Case("negative dimension", "asr", lambda g: setattr(g.tensor(b"llm.final_norm.weight"), "dims", [-256]),
         "ModelLoadError", r"final_norm\.weight' has a negative dimension"),
    Case("row not a multiple of the block", "mimo2",
         lambda g: setattr(g.tensor(b"blk.1.attn_sinks.weight"), "type", G.GGML_Q8_0), "ModelLoadError",
         r"attn_sinks\.weight' of type q8_0 has rows of 4 elements, not a multiple of its block size 32"),
    Case("misaligned offset", "asr", set_offset(6, lambda g: data_offset(g, 6) + 4), "ModelLoadError",
         r"has data offset \d+, which is not a multiple of the alignment 32"),
    Case("overlapping offset", "mimo2", set_offset(3, lambda g: data_offset(g, 2)), "ModelLoadError",
         r"'blk\.0\.attn_k\.weight' has data offset \d+, which overlaps tensor 'blk\.0\.attn_q\.weight'"),
    Case("offset past the end", "tokenizer", lambda g: setattr(g.tensors[-1], "offset", 1 << 40), "ModelLoadError",
         r"has data offset 1099511627776, which leaves a gap"),
    Case("tensor out of the file (truncated)", "asr", lambda data: data[:-5000], "ModelLoadError",
         r"is truncated: tensor .* needs bytes \d+\.\.\d+ but the file has", raw=True),
    Case("header truncated inside the vocabulary", "mimo2", raw_at(lambda b, lay: b[:lay["kv"][31][2] + 50]),
         "ModelLoadError", r"corrupt or truncated GGUF header: .*'tokenizer\.ggml\.tokens'", raw=True),
    Case("header truncated inside a tensor info", "asr", raw_at(lambda b, lay: b[:lay["tensor_info"][3][0] + 4]),
         "ModelLoadError", r"corrupt or truncated GGUF header: the file \(\d+ bytes\) ends inside tensor info 3",
         raw=True),
    Case("absurd tensor count", "asr", raw_at(lambda b, lay: _u64(b, 8, 1 << 40)), "ModelLoadError",
         r"claims 1099511627776 tensors", raw=True),
    Case("negative metadata count", "tokenizer", raw_at(lambda b, lay: _u64(b, 16, -1)), "ModelLoadError",
         r"claims \d+ tensors and -1 metadata entries", raw=True),
    Case("absurd string length", "mimo2", raw_at(lambda b, lay: _u64(b, lay["kv"][1][0], 1 << 60)),
         "ModelLoadError", r"the key of metadata entry 1 is said to be 1152921504606846976 bytes long", raw=True),
    Case("absurd array count", "asr", raw_at(lambda b, lay: _u64(b, lay["kv"][37][2] + 4, 1 << 62)),
         "ModelLoadError", r"'tokenizer\.ggml\.tokens' claims an array of 4611686018427387904 str elements",
         raw=True),
    Case("unknown value type", "mimo2", raw_at(lambda b, lay: _u32(b, lay["kv"][5][1], 13)), "ModelLoadError",
         r"'mimo2\.context_length' has unknown GGUF value type 13", raw=True),
    Case("array of arrays", "asr", raw_at(lambda b, lay: _u32(b, lay["kv"][38][2], G.ARR)), "ModelLoadError",
         r"'tokenizer\.ggml\.merges' has unknown GGUF value type 9 \(as an array element type\)", raw=True),
    Case("empty key", "tokenizer", lambda g: setattr(g.kvs[3], "key", b""), "ModelLoadError",
         r"metadata entry 3 has an empty key"),
    Case("tensor name with a NUL byte (ggml would read another name)", "mimo2",
         lambda g: setattr(g.tensor(b"blk.0.ffn_norm.weight"), "name", b"blk.0.ffn\x00norm.weight"), "ModelLoadError",
         r"tensor name 'blk\.0\.ffn\\x00norm\.weight' contains a NUL byte"),
    Case("tensor name too long", "asr", lambda g: setattr(g.tensors[2], "name", b"n" * 64), "ModelLoadError",
         r"tensor name 'n+' is 64 bytes long; ggml allows at most 63"),
    Case("alignment not a power of two", "mimo2", set_kv("general.alignment", G.U32, 48), "ModelLoadError",
         r"general\.alignment = 48; it must be a power of two"),
    Case("GGUF v1", "asr", raw_at(lambda b, lay: _u32(b, 4, 1)), "UnsupportedModelError",
         r"GGUF version 1; versions 2 and 3 are supported", raw=True),
    Case("GGUF v4", "tokenizer", raw_at(lambda b, lay: _u32(b, 4, 4)), "UnsupportedModelError",
         r"GGUF version 4", raw=True),
    Case("byte-swapped version", "mimo2", raw_at(lambda b, lay: _u32(b, 4, 0x03000000)), "UnsupportedModelError",
         r"other byte order", raw=True),
    Case("version 0", "asr", raw_at(lambda b, lay: _u32(b, 4, 0)), "ModelLoadError",
         r"corrupt or truncated GGUF header: version 0", raw=True),
]
