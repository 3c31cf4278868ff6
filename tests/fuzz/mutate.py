"""GGUF mutators: a mutant is a pure function of (fixture bytes, seed), so any
outcome can be reproduced from its seed alone.

Two families, stacked at random:

* structure-aware edits of the parsed file, re-serialised by gguf_raw so
  the damage is exactly the one intended: metadata values of the wrong type,
  out-of-range values (0, -1, 2^24, 2^31, NaN, inf), invalid UTF-8,
  duplicate / dropped / renamed keys and tensors, array lengths, tensor
  types (with the data resized, so offsets stay consistent), dimensions,
  offsets, counts, the version and the alignment;
* byte-level damage of the serialised file: bit flips, interesting integers
  written over header fields (counts, types, string lengths, dims, offsets),
  truncation, inserted or deleted bytes.
"""

from __future__ import annotations

import random
import struct

from . import gguf_raw as G

INTERESTING_INTS = [0, 1, -1, 2, 3, 7, 8, 16, 31, 32, 33, 63, 64, 127, 128, 255, 256, 1000, 4095, 4096, 65535, 65536,
                    1 << 20, 1 << 24, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32, 1 << 40, (1 << 63) - 1,
                    -(1 << 31), -(1 << 63)]
INTERESTING_FLOATS = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, -1.0, 1.0, 1e-45, 1e-30, 1e30, 3.4e38,
                      -1e-6, 1e12, 1e13, 2.0, 0.5]
BAD_UTF8 = [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe4\xb8", b"\xf4\x90\x80\x80", b"\x80", b"abc\xfe",
            b"\xf0\x9f\x98"]
# ggml types a weight can be retyped to: floats, quantized, integer, removed / out-of-range ids
RETYPE_TO = [0, 1, 30, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 39, 24, 25, 26, 27, 28, 4, 5, 31, 36, 43, 44, 99, -1,
             16, 17, 18, 19, 20, 21, 22, 23, 29, 34, 35, 40, 41, 42]
OTHER_ARCHS = [b"mimo2", b"mimo_asr", b"mimo_tokenizer", b"llama", b"qwen2", b"", b"mimo_asr\x00x"]


def _int(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.7:
        return rng.choice(INTERESTING_INTS)
    if r < 0.85:
        return rng.randint(-10, 10)
    return rng.getrandbits(rng.choice([8, 16, 32, 64])) - (1 << 63 if rng.random() < 0.2 else 0)


def _float(rng: random.Random) -> float:
    return rng.choice(INTERESTING_FLOATS) if rng.random() < 0.8 else rng.uniform(-1e6, 1e6)


def _bad_string(rng: random.Random, base: bytes = b"") -> bytes:
    bad = rng.choice(BAD_UTF8)
    if not base:
        return bad
    at = rng.randrange(len(base) + 1)
    return base[:at] + bad + base[at:]


def _scalar_of(rng: random.Random, vtype: int):
    if vtype in G.INT_TYPES:
        return _int(rng)
    if vtype == G.BOOL:
        return rng.choice([0, 1, 2, 255])
    if vtype in (G.F32, G.F64):
        return _float(rng)
    return rng.choice([b"", b"12", b"x" * rng.choice([1, 64, 4096]), _bad_string(rng, b"name")])


# ---------------------------------------------------------------------------
# structure-aware mutators: each edits a parsed Gguf in place and describes itself


def m_value(g: G.Gguf, rng: random.Random) -> str:
    kv = rng.choice(g.kvs)
    if kv.type == G.ARR:
        if not kv.value:
            kv.value = [_scalar_of(rng, kv.elem_type)]
        else:
            i = rng.randrange(len(kv.value))
            kv.value[i] = _scalar_of(rng, kv.elem_type) if kv.elem_type != G.STR else _bad_string(rng, kv.value[i])
        return f"value {kv.key!r}[elem]"
    kv.value = _scalar_of(rng, kv.type) if kv.type != G.STR else _bad_string(rng, kv.value) \
        if rng.random() < 0.5 else _scalar_of(rng, G.STR)
    return f"value {kv.key!r}={kv.value!r:.40}"


def m_type(g: G.Gguf, rng: random.Random) -> str:
    kv = rng.choice(g.kvs)
    old = kv.type
    choice = rng.random()
    if kv.type == G.ARR:
        if choice < 0.4 and kv.value:  # array -> scalar of its first element
            kv.type, kv.value = kv.elem_type, kv.value[0]
        elif choice < 0.7:  # another element type
            new = rng.choice([t for t in range(13) if t != G.ARR])
            kv.value = [v if isinstance(v, bytes) == (new == G.STR) else _scalar_of(rng, new) for v in kv.value]
            kv.elem_type = new
        else:  # a string
            kv.type, kv.value = G.STR, b"[1, 2, 3]"
    else:
        if choice < 0.35:  # scalar -> array of 0, 1, 2 or many
            n = rng.choice([0, 1, 2, 3, 100])
            kv.elem_type = kv.type
            kv.value = [kv.value] * n
            kv.type = G.ARR
        else:
            new = rng.choice([t for t in range(13) if t not in (G.ARR, old)])
            kv.type = new
            if isinstance(kv.value, bytes) != (new == G.STR):
                kv.value = b"4096" if new == G.STR else _scalar_of(rng, new)
    return f"type {kv.key!r} {old}->{kv.type}"


def m_raw_type(g: G.Gguf, rng: random.Random) -> str:
    """An unknown value type id, or an array of arrays, with the payload left as it was."""
    kv = rng.choice(g.kvs)
    payload = G.enc_kv(kv)[8 + len(kv.key) + 4:]
    bad = rng.choice([13, 14, 100, -1, 1 << 30, G.ARR])
    if kv.type == G.ARR and rng.random() < 0.5:  # bad element type
        payload = struct.pack("<i", bad) + payload[4:]
    else:
        kv.type = bad
    kv.raw_payload = payload
    return f"raw type {kv.key!r}={bad}"


def m_array_len(g: G.Gguf, rng: random.Random) -> str:
    arrays = [kv for kv in g.kvs if kv.type == G.ARR]
    if not arrays:
        return m_value(g, rng)
    kv = rng.choice(arrays)
    r = rng.random()
    if r < 0.3:
        kv.value = kv.value[: rng.randrange(len(kv.value) + 1)]
    elif r < 0.5:
        kv.value = []
    elif r < 0.8 and kv.value:
        kv.value = kv.value + [kv.value[-1]] * rng.choice([1, 2, 50])
    else:  # a count that the payload does not back
        n = rng.choice([len(kv.value) + 1, 1 << 32, (1 << 64) - 1, 1 << 26, 1 << 62])
        body = b"".join(G.enc_value(kv.elem_type, v) for v in kv.value)
        kv.raw_payload = struct.pack("<iQ", kv.elem_type, n & ((1 << 64) - 1)) + body
    return f"array len {kv.key!r}"


def m_duplicate_key(g: G.Gguf, rng: random.Random) -> str:
    kv = rng.choice(g.kvs).copy()
    if rng.random() < 0.5 and kv.type != G.ARR:
        kv.value = _scalar_of(rng, kv.type)
    g.kvs.insert(rng.randrange(len(g.kvs) + 1), kv)
    return f"dup key {kv.key!r}"


def m_drop_key(g: G.Gguf, rng: random.Random) -> str:
    kv = g.kvs.pop(rng.randrange(len(g.kvs)))
    return f"drop key {kv.key!r}"


def m_rename_key(g: G.Gguf, rng: random.Random) -> str:
    kv = rng.choice(g.kvs)
    old = kv.key
    kv.key = rng.choice([b"", _bad_string(rng, kv.key), kv.key + b"x", kv.key.upper(), b"k" * 70000,
                         rng.choice(g.kvs).key])
    return f"rename key {old!r}"


def m_architecture(g: G.Gguf, rng: random.Random) -> str:
    kv = g.find(b"general.architecture")
    if kv is None or kv.type != G.STR:
        return m_value(g, rng)
    kv.value = rng.choice(OTHER_ARCHS) if rng.random() < 0.5 else _bad_string(rng, kv.value)
    return f"arch={kv.value!r}"


def m_vocab(g: G.Gguf, rng: random.Random) -> str:
    names = [kv for kv in g.kvs if kv.key.startswith(b"tokenizer.") and kv.type == G.ARR]
    if not names:
        return m_value(g, rng)
    kv = rng.choice(names)
    if not kv.value:
        return m_array_len(g, rng)
    i = rng.randrange(len(kv.value))
    if kv.elem_type == G.STR:
        kv.value[i] = rng.choice([_bad_string(rng, kv.value[i]), b"", b"a", b" ", b"a b c", b"\x00", kv.value[0],
                                  b"<|im_end|>", b"x" * 1000])
    else:
        kv.value[i] = _int(rng)
    return f"vocab {kv.key!r}[{i}]"


def m_alignment(g: G.Gguf, rng: random.Random) -> str:
    value = rng.choice([0, 1, 3, 16, 48, 64, 4096, 1 << 20, 1 << 21, 1 << 31, (1 << 32) - 1])
    vtype = G.U32 if rng.random() < 0.7 else rng.choice([G.U64, G.I32, G.STR, G.F32])
    old = g.find(b"general.alignment")
    if old is not None:
        g.kvs.remove(old)
    g.kvs.insert(rng.randrange(len(g.kvs) + 1), G.KV(b"general.alignment", vtype,
                                                    b"32" if vtype == G.STR else value))
    if vtype == G.U32 and value and value & (value - 1) == 0 and value <= 4096 and rng.random() < 0.5:
        g.alignment = value  # a consistent layout for the new alignment
    return f"alignment {vtype}:{value}"


def m_version(g: G.Gguf, rng: random.Random) -> str:
    g.version = rng.choice([0, 1, 2, 4, 5, 0x03000000, 0xFFFFFFFF, 0x00010003])
    return f"version {g.version}"


def m_counts(g: G.Gguf, rng: random.Random) -> str:
    if rng.random() < 0.5:
        g.n_kv = rng.choice([len(g.kvs) - 1, len(g.kvs) + 1, 0, -1, 1 << 40, (1 << 63) - 1])
        return f"n_kv={g.n_kv}"
    g.n_tensors = rng.choice([len(g.tensors) - 1, len(g.tensors) + 1, 0, -1, 1 << 40, (1 << 63) - 1])
    return f"n_tensors={g.n_tensors}"


def _resize(t: G.Tensor, dims: list, ttype: int, rng: random.Random, cap: int) -> bool:
    """Give t new dims/type and data of the matching size (if that is small enough)."""
    if ttype not in G.GGML_TYPE_SIZE or any(d < 0 for d in dims):
        return False
    blck, _ = G.GGML_TYPE_SIZE[ttype]
    if dims and dims[0] % blck:
        return False
    try:
        n = G.nbytes(dims, ttype)
    except (OverflowError, ValueError):
        return False
    if n > cap:
        return False
    data = t.data[:n] if n <= len(t.data) else t.data + b"\0" * (n - len(t.data))
    t.dims, t.type, t.data = dims, ttype, data
    return True


def m_tensor_type(g: G.Gguf, rng: random.Random) -> str:
    t = rng.choice(g.tensors)
    new = rng.choice(RETYPE_TO)
    if rng.random() < 0.75 and _resize(t, list(t.dims), new, rng, cap=max(4 * len(t.data), 1 << 16)):
        return f"retype {t.name!r}->{new} (resized)"
    t.type = new  # data left as it was: sizes and offsets disagree
    return f"retype {t.name!r}->{new} (raw)"


def m_tensor_dims(g: G.Gguf, rng: random.Random) -> str:
    t = rng.choice(g.tensors)
    dims = list(t.dims)
    r = rng.random()
    if r < 0.2 and len(dims) > 1:
        rng.shuffle(dims)
    elif r < 0.35:
        dims.append(rng.choice([1, 2, 3]))
    elif r < 0.5 and dims:
        dims.pop()
    elif r < 0.6:
        dims = dims + [1] * (5 - len(dims)) if rng.random() < 0.5 else [1] * rng.choice([0, 5, 8, 1000])
    else:
        if dims:
            i = rng.randrange(len(dims))
            dims[i] = rng.choice([0, 1, 2, dims[i] - 1, dims[i] + 1, 2 * dims[i], 1 << 24, 1 << 31, 1 << 40,
                                  (1 << 63) - 1, -1, -(1 << 63)])
    if len(dims) <= 4 and rng.random() < 0.7 and _resize(t, dims, t.type, rng, cap=max(4 * len(t.data), 1 << 16)):
        return f"dims {t.name!r}={dims} (resized)"
    t.dims = dims
    return f"dims {t.name!r}={dims} (raw)"


def m_tensor_offset(g: G.Gguf, rng: random.Random) -> str:
    i = rng.randrange(len(g.tensors))
    t = g.tensors[i]
    base = sum((len(x.data) + g.alignment - 1) // g.alignment * g.alignment for x in g.tensors[:i])
    t.offset = rng.choice([base + 1, base - g.alignment, base + g.alignment, 0, 1 << 40, (1 << 64) - 1,
                           base + len(t.data), (1 << 63)])
    if t.offset < 0:
        t.offset = 0
    return f"offset {t.name!r}={t.offset}"


def m_tensor_name(g: G.Gguf, rng: random.Random) -> str:
    t = rng.choice(g.tensors)
    old = t.name
    r = rng.random()
    if r < 0.3:
        other = rng.choice(g.tensors)  # swap two names: shapes and roles disagree
        t.name, other.name = other.name, t.name
    else:
        t.name = rng.choice([rng.choice(g.tensors).name, b"", b"x" * 63, b"x" * 64, b"y" * 1000,
                             _bad_string(rng, t.name), t.name.replace(b"0", b"9"), t.name.replace(b".0.", b".00."),
                             t.name.replace(b".weight", b".bias")])
    return f"rename tensor {old!r}"


def m_drop_tensor(g: G.Gguf, rng: random.Random) -> str:
    t = g.tensors.pop(rng.randrange(len(g.tensors)))
    return f"drop tensor {t.name!r}"


def m_dup_tensor(g: G.Gguf, rng: random.Random) -> str:
    t = rng.choice(g.tensors)
    c = G.Tensor(t.name if rng.random() < 0.5 else t.name.replace(b"0", b"7", 1), list(t.dims), t.type, t.data)
    g.tensors.insert(rng.randrange(len(g.tensors) + 1), c)
    return f"dup tensor {c.name!r}"


def m_tensor_data(g: G.Gguf, rng: random.Random) -> str:
    floats = [t for t in g.tensors if t.type == G.GGML_F32 and t.data]
    if not floats:
        return m_tensor_type(g, rng)
    t = rng.choice(floats)
    v = rng.choice([float("nan"), float("inf"), -float("inf"), 1e38, 0.0])
    n = len(t.data) // 4
    if rng.random() < 0.5:
        t.data = struct.pack("<f", v) * n
    else:
        arr = bytearray(t.data)
        for _ in range(rng.randint(1, 8)):
            j = rng.randrange(n)
            arr[4 * j:4 * j + 4] = struct.pack("<f", v)
        t.data = bytes(arr)
    return f"data {t.name!r}={v}"


def m_hparam(g: G.Gguf, rng: random.Random) -> str:
    """An integer / float hyper-parameter of the model's own prefix set to an edge value."""
    arch = g.find(b"general.architecture")
    prefix = arch.value.split(b"_")[0] if arch is not None and isinstance(arch.value, bytes) else b""
    keys = [kv for kv in g.kvs if kv.key.startswith(prefix) and kv.key != b"general.architecture"
            and kv.type != G.STR]
    if not keys:
        return m_value(g, rng)
    kv = rng.choice(keys)
    if kv.type == G.ARR:
        if kv.value and kv.elem_type != G.STR:
            kv.value[rng.randrange(len(kv.value))] = _scalar_of(rng, kv.elem_type)
    else:
        kv.value = _scalar_of(rng, kv.type)
    return f"hparam {kv.key!r}={kv.value!r:.40}"


STRUCT_MUTATORS = [
    (m_hparam, 8), (m_value, 6), (m_type, 6), (m_raw_type, 2), (m_array_len, 3), (m_duplicate_key, 3),
    (m_drop_key, 3), (m_rename_key, 2), (m_architecture, 2), (m_vocab, 4), (m_alignment, 2), (m_version, 1),
    (m_counts, 2), (m_tensor_type, 8), (m_tensor_dims, 6), (m_tensor_offset, 3), (m_tensor_name, 3),
    (m_drop_tensor, 2), (m_dup_tensor, 2), (m_tensor_data, 2),
]

# ---------------------------------------------------------------------------
# byte-level mutators: edit the serialised bytes


def _header_end(lay: dict) -> int:
    return lay["data"]


def b_bitflip(buf: bytearray, lay: dict, rng: random.Random) -> str:
    end = min(_header_end(lay) if rng.random() < 0.9 else len(buf), len(buf))
    for _ in range(rng.randint(1, 8) if end else 0):
        i = rng.randrange(end)
        buf[i] ^= 1 << rng.randrange(8)
    return "bitflip"


def _field_positions(lay: dict, rng: random.Random) -> tuple[int, int]:
    """(position, width) of a header field: counts, a key's length / type, a value, a tensor info field."""
    r = rng.random()
    if r < 0.15:
        return rng.choice([(8, 8), (16, 8), (4, 4)])
    if r < 0.55 and lay["kv"]:
        start, type_at, value_at, end = rng.choice(lay["kv"])
        return rng.choice([(start, 8), (type_at, 4), (value_at, 4), (value_at, 8), (value_at + 4, 8)])
    if lay["tensor_info"]:
        start, ndims_at, type_at, offset_at, end = rng.choice(lay["tensor_info"])
        return rng.choice([(start, 8), (ndims_at, 4), (ndims_at + 4, 8), (type_at, 4), (offset_at, 8)])
    return (4, 4)


def b_field(buf: bytearray, lay: dict, rng: random.Random) -> str:
    pos, width = _field_positions(lay, rng)
    v = _int(rng) & ((1 << (8 * width)) - 1)
    if pos + width <= len(buf):
        buf[pos:pos + width] = v.to_bytes(width, "little")
    return f"field@{pos}:{width}={v}"


def b_truncate(buf: bytearray, lay: dict, rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4:
        n = rng.randrange(_header_end(lay) + 1)
    elif r < 0.7:
        n = rng.randrange(len(buf))
    else:  # just short of the end, or of a structure boundary
        edges = [_header_end(lay), len(buf)] + [e[-1] for e in lay["kv"][-3:]] + [e[-1] for e in lay["tensor_info"][-3:]]
        n = max(0, rng.choice(edges) - rng.choice([1, 2, 4, 8, 31, 32, 33]))
    del buf[n:]
    return f"truncate {n}"


def b_splice(buf: bytearray, lay: dict, rng: random.Random) -> str:
    at = rng.randrange(max(min(_header_end(lay), len(buf)), 1))
    if rng.random() < 0.5:
        n = rng.choice([1, 3, 4, 8, 17])
        del buf[at:at + n]
        return f"delete {n}@{at}"
    chunk = bytes(rng.getrandbits(8) for _ in range(rng.choice([1, 4, 8, 16])))
    buf[at:at] = chunk
    return f"insert {len(chunk)}@{at}"


BYTE_MUTATORS = [(b_bitflip, 5), (b_field, 6), (b_truncate, 3), (b_splice, 2)]


def _pick(rng: random.Random, table):
    total = sum(w for _, w in table)
    x = rng.uniform(0, total)
    for f, w in table:
        x -= w
        if x <= 0:
            return f
    return table[-1][0]


class Mutator:
    """Mutants of one fixture file."""

    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.parsed = G.parse(self.data)
        self.layout = G.layout(self.data)

    def mutant(self, seed: int) -> tuple[bytes, str]:
        rng = random.Random(seed)
        steps = []
        r = rng.random()
        if r < 0.75:  # structure-aware edits, sometimes with byte damage on top
            g = self.parsed.copy()
            for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
                mutator = _pick(rng, STRUCT_MUTATORS)
                try:
                    steps.append(mutator(g, rng))
                except (TypeError, ValueError, AttributeError, IndexError, KeyError) as exc:
                    # an edit that does not apply after an earlier one (e.g. an array made a raw payload)
                    steps.append(f"{mutator.__name__} skipped ({type(exc).__name__})")
            try:
                buf = bytearray(G.write(g))
            except (struct.error, OverflowError, ValueError, TypeError) as exc:  # an edit the writer cannot express
                steps.append(f"unwritable ({type(exc).__name__}); byte damage instead")
                buf = bytearray(self.data)
                steps.append(_pick(rng, BYTE_MUTATORS)(buf, self.layout, rng))
            if rng.random() < 0.15:
                steps.append(_pick(rng, BYTE_MUTATORS)(buf, G.layout(self.data), rng))
        else:
            buf = bytearray(self.data)
            for _ in range(rng.choice([1, 1, 2, 3])):
                steps.append(_pick(rng, BYTE_MUTATORS)(buf, self.layout, rng))
        return bytes(buf), "; ".join(steps)

