"""`mimo-ggml quantize`: re-encode a GGUF's matrices with ggml's quantizers.

What is kept as it is: 1-D tensors (norms, biases), conv kernels (3-D audio
tensors), MoE router matrices (``ffn_gate_inp``), RVQ codebooks and their
training buffers, tensors that are already quantized (e.g. MXFP4 experts)
and anything whose row width is not a multiple of the block size — those
fall back to Q8_0 (for 32-multiples) or keep their type, as CrispASR's
quantizer does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import InvalidArgumentError, ModelLoadError
from .common import PlannedTensor, write_gguf

log = logging.getLogger("mimo_ggml")

QUANT_TYPES = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_K", "q5_K", "q6_K")
_FLOAT_TYPES = ("F32", "F16", "BF16")


def _normalise_type(name: str) -> str:
    for t in QUANT_TYPES:
        if name.lower() == t.lower():
            return t
    raise InvalidArgumentError(f"quantization type must be one of {', '.join(QUANT_TYPES)}; got {name!r}")


def _keep(name: str, n_dims: int) -> bool:
    if n_dims < 2 or not name.endswith(".weight"):
        return True  # biases, norms, codebooks (".embed"), sinks, buffers
    lowered = name.lower()
    if "ffn_gate_inp" in lowered:
        return True  # MoE router: routing is computed in F32 (spec/moe.md), a rounded router flips expert choices
    return "norm" in lowered or "conv" in lowered or "down_sample_layer" in lowered


def quantize_gguf(src: str | Path, dst: str | Path, qtype: str) -> Path:
    import gguf

    from .. import _core

    qtype = _normalise_type(qtype)
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"input GGUF not found: {src}")
    if src.resolve() == dst.resolve():
        raise InvalidArgumentError("the output path must differ from the input path")
    try:
        reader = gguf.GGUFReader(src)
    except Exception as exc:  # gguf-py raises ValueError/struct errors on bad files
        raise ModelLoadError(f"{src} is not a readable GGUF file: {exc}") from None
    arch = reader.fields["general.architecture"].contents()
    block = {t: _core.type_info(t)[1] for t in (qtype, "q8_0")}

    def byte_shape_of(shape, target):
        return (*shape[:-1], int(_core.type_info(target)[2]) * (shape[-1] // block[target]))

    plans: list[PlannedTensor] = []
    counts: dict[str, int] = {}
    for t in reader.tensors:
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))  # PyTorch order
        src_type = t.tensor_type.name
        target = None
        if src_type in _FLOAT_TYPES and not _keep(t.name, len(shape)):
            width = shape[-1]
            if width % block[qtype] == 0:
                target = qtype
            elif width % block["q8_0"] == 0:
                target = "q8_0"
        if target is None:
            plans.append(_copy_plan(t, shape))
            counts[src_type] = counts.get(src_type, 0) + 1
            continue
        def produce(t=t, shape=shape, target=target):
            rows = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(-1, shape[-1])
            return _core.quantize(rows.astype(np.float32), target).reshape(byte_shape_of(shape, target))

        plans.append(PlannedTensor(t.name, byte_shape_of(shape, target), target, produce))
        counts[target] = counts.get(target, 0) + 1

    def metadata(w) -> None:
        for name, field in reader.fields.items():
            if name.startswith("GGUF.") or name in ("general.architecture", "general.file_type"):
                continue
            vt = field.types[0]
            if vt == gguf.GGUFValueType.ARRAY:
                sub = field.types[-1] if len(field.types) > 1 else None
                w.add_key_value(name, field.contents(), vt, sub_type=sub)
            else:
                w.add_key_value(name, field.contents(), vt)
        w.add_uint32("general.quantization_version", gguf.GGML_QUANT_VERSION)
        w.add_uint32("general.file_type", _FILE_TYPES.get(qtype, 0))

    out = write_gguf(dst, arch, metadata, plans)
    log.info("mimo-ggml quantize: %s -> %s (%s)", src, dst, ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return out


def _copy_plan(t, shape) -> PlannedTensor:
    name = t.tensor_type.name
    if name == "F32":
        return PlannedTensor(t.name, shape, "f32", lambda t=t: np.asarray(t.data))
    if name == "F16":
        return PlannedTensor(t.name, shape, "f16", lambda t=t: np.asarray(t.data))
    if name == "BF16":
        return PlannedTensor(t.name, shape, "bf16", lambda t=t: np.asarray(t.data).view(np.uint16))
    data = np.asarray(t.data)  # already-quantized blocks: copy the bytes
    return PlannedTensor(t.name, tuple(data.shape), name.lower() if name != "MXFP4" else "MXFP4",
                         lambda d=data: d)


# llama.cpp's LLAMA_FTYPE numbering, written as general.file_type
_FILE_TYPES = {"q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "q4_K": 15, "q5_K": 17, "q6_K": 18}
