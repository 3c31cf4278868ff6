"""Test helper: copy a GGUF file with one kind of damage or change, to check
that loaders reject bad files with typed errors."""

from __future__ import annotations

import gguf
import numpy as np


def rewrite(src, dst, *, arch=None, drop=(), drop_key=None, set_u32=None, shrink=None):
    """Copy ``src`` to ``dst`` (gguf-py reader -> writer) with changes:
    ``arch`` replaces general.architecture, ``drop`` removes tensors,
    ``drop_key`` removes a metadata key, ``set_u32`` overrides keys, and
    ``shrink`` names a float tensor whose last dimension loses one element."""
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(str(dst), arch or r.fields["general.architecture"].contents())
    set_u32 = dict(set_u32 or {})
    drop = {drop} if isinstance(drop, str) else set(drop)
    for name, field in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture" or name in set_u32 or name == drop_key:
            continue
        vt = field.types[0]
        if vt == gguf.GGUFValueType.ARRAY:
            w.add_array(name, field.contents())
        else:
            w.add_key_value(name, field.contents(), vt)
    for k, v in set_u32.items():
        w.add_uint32(k, v)
    for t in r.tensors:
        if t.name in drop:
            continue
        data = np.array(t.data)
        if t.name == shrink:
            w.add_tensor(t.name, data[..., :-1])
        else:
            w.add_tensor(t.name, data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst
