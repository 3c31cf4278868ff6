"""A small GGUF v3 reader and writer that keeps every field editable, so the
fuzzer and the regression generators can build files that no well-behaved
writer would: wrong value types, duplicate keys, bad offsets, absurd counts,
invalid UTF-8. Written for the tests from the GGUF layout (magic, version,
tensor count, metadata count, metadata entries, tensor infos, padding to the
alignment, tensor data); it is not a general-purpose library.
"""

from __future__ import annotations

import copy
import struct
from dataclasses import dataclass, field
from typing import Optional

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B",
              U64: "<Q", I64: "<q", F64: "<d"}
INT_TYPES = (U8, I8, U16, I16, U32, I32, U64, I64)

# ggml tensor types: (block size, bytes per block) of the ones the fixtures use or the fuzzer picks
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0, GGML_I8, GGML_I16, GGML_I32, GGML_I64, GGML_F64, GGML_BF16 = (
    0, 1, 2, 8, 24, 25, 26, 27, 28, 30)
GGML_TYPE_SIZE = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 30: (1, 2), 39: (32, 17),
}


@dataclass
class KV:
    key: bytes
    type: int                    # value type; ARR for arrays
    value: object                # scalar (int/float/bytes for STR) or list for arrays
    elem_type: int = -1          # for arrays
    raw_payload: Optional[bytes] = None  # if set, written verbatim after the type field(s)

    def copy(self) -> "KV":
        return copy.deepcopy(self)


@dataclass
class Tensor:
    name: bytes
    dims: list                   # ggml order
    type: int
    data: bytes
    offset: Optional[int] = None  # None: computed on write (back to back, aligned)


@dataclass
class Gguf:
    version: int = 3
    kvs: list = field(default_factory=list)
    tensors: list = field(default_factory=list)
    n_tensors: Optional[int] = None  # None: len(tensors)
    n_kv: Optional[int] = None       # None: len(kvs)
    alignment: int = 32              # used for layout; the key general.alignment is a KV like any other

    def copy(self) -> "Gguf":
        return copy.deepcopy(self)

    def find(self, key: bytes) -> Optional[KV]:
        return next((kv for kv in self.kvs if kv.key == key), None)

    def tensor(self, name: bytes) -> Optional[Tensor]:
        return next((t for t in self.tensors if t.name == name), None)


def _read_str(buf: bytes, pos: int) -> tuple[bytes, int]:
    (n,) = struct.unpack_from("<Q", buf, pos)
    pos += 8
    return buf[pos:pos + n], pos + n


def _read_value(buf: bytes, pos: int, vtype: int):
    if vtype == STR:
        return _read_str(buf, pos)
    fmt = SCALAR_FMT[vtype]
    (v,) = struct.unpack_from(fmt, buf, pos)
    return v, pos + struct.calcsize(fmt)


def nbytes(dims, ggml_type: int) -> int:
    blck, size = GGML_TYPE_SIZE[ggml_type]
    n = 1
    for d in dims:
        n *= d
    return n // blck * size


def parse(buf: bytes) -> Gguf:
    """Parse a well-formed GGUF (the fixtures)."""
    assert buf[:4] == b"GGUF"
    version, n_tensors, n_kv = struct.unpack_from("<Iqq", buf, 4)
    pos = 24
    g = Gguf(version=version)
    for _ in range(n_kv):
        key, pos = _read_str(buf, pos)
        (vtype,) = struct.unpack_from("<i", buf, pos)
        pos += 4
        if vtype == ARR:
            elem, n = struct.unpack_from("<iQ", buf, pos)
            pos += 12
            vals = []
            for _ in range(n):
                v, pos = _read_value(buf, pos, elem)
                vals.append(v)
            g.kvs.append(KV(key, ARR, vals, elem))
        else:
            v, pos = _read_value(buf, pos, vtype)
            g.kvs.append(KV(key, vtype, v))
    al = g.find(b"general.alignment")
    if al is not None:
        g.alignment = int(al.value)
    infos = []
    for _ in range(n_tensors):
        name, pos = _read_str(buf, pos)
        (nd,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        dims = list(struct.unpack_from("<%dq" % nd, buf, pos))
        pos += 8 * nd
        ttype, off = struct.unpack_from("<iQ", buf, pos)
        pos += 12
        infos.append((name, dims, ttype, off))
    data_start = (pos + g.alignment - 1) // g.alignment * g.alignment
    for name, dims, ttype, off in infos:
        start = data_start + off
        g.tensors.append(Tensor(name, dims, ttype, buf[start:start + nbytes(dims, ttype)]))
    return g


def enc_str(b: bytes) -> bytes:
    return struct.pack("<Q", len(b)) + b


def enc_value(vtype: int, v) -> bytes:
    if vtype == STR:
        return enc_str(v if isinstance(v, bytes) else str(v).encode())
    fmt = SCALAR_FMT[vtype]
    if vtype == F32 or vtype == F64:
        return struct.pack(fmt, float(v))
    bits = struct.calcsize(fmt) * 8
    v = int(v)
    if fmt[-1].isupper():  # unsigned: wrap
        v &= (1 << bits) - 1
    else:
        v = (v + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))
    return struct.pack(fmt, v)


def enc_kv(kv: KV) -> bytes:
    out = enc_str(kv.key) + struct.pack("<i", kv.type)
    if kv.raw_payload is not None:
        return out + kv.raw_payload
    if kv.type == ARR:
        vals = list(kv.value)
        out += struct.pack("<iQ", kv.elem_type, len(vals))
        return out + b"".join(enc_value(kv.elem_type, v) for v in vals)
    return out + enc_value(kv.type, kv.value)


def write(g: Gguf) -> bytes:
    """Serialise; offsets that are None are laid out back to back (aligned)."""
    al = g.alignment
    head = [b"GGUF", struct.pack("<Iqq", g.version,
                                 len(g.tensors) if g.n_tensors is None else g.n_tensors,
                                 len(g.kvs) if g.n_kv is None else g.n_kv)]
    head += [enc_kv(kv) for kv in g.kvs]
    data = bytearray()
    infos = []
    for t in g.tensors:
        pad = (-len(data)) % al
        data += b"\0" * pad
        off = len(data) if t.offset is None else t.offset
        data += t.data
        infos.append(enc_str(t.name) + struct.pack("<I", len(t.dims)) +
                     b"".join(struct.pack("<q", d) for d in t.dims) + struct.pack("<iQ", t.type, off & (2**64 - 1)))
    header = b"".join(head + infos)
    header += b"\0" * ((-len(header)) % al)
    data += b"\0" * ((-len(data)) % al)
    return header + bytes(data)


def layout(buf: bytes) -> dict:
    """Byte ranges of a well-formed file's fields, for targeted overwrites:
    {'header': (0, 24), 'kv': [(start, type_at, value_at, end)], 'tensor_info': [(start, ndims_at, type_at,
    offset_at, end)], 'data': data_start}."""
    pos = 24
    _, n_tensors, n_kv = struct.unpack_from("<Iqq", buf, 4)
    kvs, infos = [], []
    alignment = 32
    for _ in range(n_kv):
        start = pos
        key, pos = _read_str(buf, pos)
        type_at = pos
        (vtype,) = struct.unpack_from("<i", buf, pos)
        pos += 4
        value_at = pos
        if vtype == ARR:
            elem, n = struct.unpack_from("<iQ", buf, pos)
            pos += 12
            for _ in range(n):
                _, pos = _read_value(buf, pos, elem)
        else:
            v, pos = _read_value(buf, pos, vtype)
            if key == b"general.alignment":
                alignment = int(v)
        kvs.append((start, type_at, value_at, pos))
    for _ in range(n_tensors):
        start = pos
        _, pos = _read_str(buf, pos)
        ndims_at = pos
        (nd,) = struct.unpack_from("<I", buf, pos)
        pos += 4 + 8 * nd
        type_at = pos
        pos += 4
        offset_at = pos
        pos += 8
        infos.append((start, ndims_at, type_at, offset_at, pos))
    return {"header": (0, 24), "kv": kvs, "tensor_info": infos,
            "data": (pos + alignment - 1) // alignment * alignment}
