"""Plumbing every converter shares: reading Hugging Face checkpoint folders
(config.json + safetensors, sharded or not) without torch, and writing GGUF
tensors in the dtypes our loaders accept.

safetensors files are parsed directly (8-byte header length, JSON header,
raw little-endian data) and memory-mapped, so a converter touches one tensor
at a time and BF16 / FP8 payloads need no framework that knows those dtypes.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import ModelLoadError, ModelNotFoundError

# safetensors dtype name -> numpy dtype of the raw storage
_RAW_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,  # widened to float32 by `tensor()`
    "F8_E4M3": np.uint8,  # decoded by fp8_e4m3_to_f32 where a converter needs it
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    """BF16 bit patterns (uint16) -> float32, exactly."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


@dataclass(frozen=True)
class _Entry:
    file: Path
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


class Checkpoint:
    """A Hugging Face model folder: ``config.json`` plus safetensors weights.

    ``tensor(name)`` returns float tensors as float32 (BF16/F16 widened
    exactly) and everything else in its stored dtype; ``raw(name)`` returns the
    stored bits untouched (FP8 bytes, packed int4 words, E8M0 scales).
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ModelNotFoundError(
                f"checkpoint folder not found: {self.folder} "
                "(expected a Hugging Face model folder with config.json and *.safetensors)"
            )
        config_path = self.folder / "config.json"
        if not config_path.is_file():
            raise ModelLoadError(f"{self.folder} has no config.json; is it a Hugging Face checkpoint folder?")
        self.config: dict = json.loads(config_path.read_text(encoding="utf-8"))
        self._entries: dict[str, _Entry] = {}
        self._maps: dict[Path, np.memmap] = {}
        files = sorted(self.folder.glob("*.safetensors"))
        if not files:
            raise ModelLoadError(f"{self.folder} holds no *.safetensors files")
        for f in files:
            self._index_file(f)

    def _index_file(self, path: Path) -> None:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) != 8:
                raise ModelLoadError(f"{path} is not a safetensors file (too short)")
            (n,) = struct.unpack("<Q", head)
            try:
                header = json.loads(fh.read(n))
            except ValueError as exc:
                raise ModelLoadError(f"{path} has a corrupt safetensors header: {exc}") from None
        data_start = 8 + n
        for name, info in header.items():
            if name == "__metadata__":
                continue
            if info["dtype"] not in _RAW_DTYPES:
                raise ModelLoadError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
            b, e = info["data_offsets"]
            self._entries[name] = _Entry(path, info["dtype"], tuple(info["shape"]), data_start + b, data_start + e)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return list(self._entries)

    def dtype(self, name: str) -> str:
        return self._entry(name).dtype

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entry(name).shape

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise ModelLoadError(f"checkpoint {self.folder} has no tensor {name!r}") from None

    def raw(self, name: str) -> np.ndarray:
        e = self._entry(name)
        mm = self._maps.get(e.file)
        if mm is None:
            mm = self._maps[e.file] = np.memmap(e.file, dtype=np.uint8, mode="r")
        return mm[e.begin : e.end].view(_RAW_DTYPES[e.dtype]).reshape(e.shape)

    def tensor(self, name: str) -> np.ndarray:
        e = self._entry(name)
        raw = self.raw(name)
        if e.dtype == "BF16":
            return bf16_to_f32(raw)
        if e.dtype in ("F16", "F64"):
            return raw.astype(np.float32)
        return np.asarray(raw)

    def items(self, prefix: str = "") -> Iterator[str]:
        return (n for n in self._entries if n.startswith(prefix))


def float_dtype_for(array_ndim: int, requested: str) -> str:
    """1-D tensors (norms, biases) always stay F32; matrices take the requested type."""
    return "f32" if array_ndim <= 1 else requested


# ---------------------------------------------------------------------------
# Streaming GGUF output: tensors are described first and produced one at a
# time while the file is written, so converting a 15 GB checkpoint never
# holds more than one tensor in memory.

@dataclass
class PlannedTensor:
    name: str
    shape: tuple[int, ...]  # PyTorch order (slowest first); for raw blocks the byte shape
    ggml_type: str  # "f32", "f16", "bf16", or a ggml quantized type name for raw bytes
    produce: "object"  # () -> np.ndarray in the final dtype (uint8 bytes for quantized types)
    raw: bool = False  # produce() gives the final bytes (uint8, byte shape) whatever the type


_NP_OUT = {"f32": np.float32, "f16": np.float16}


def planned_nbytes(t: PlannedTensor) -> int:
    itemsize = 1 if t.raw else {"f32": 4, "f16": 2, "bf16": 2}.get(t.ggml_type, 1)
    return int(np.prod(t.shape, dtype=np.int64)) * itemsize


def write_gguf(path: str | Path, arch: str, metadata, tensors: list[PlannedTensor]) -> Path:
    """Write a GGUF file — the one writer every converter uses: ``metadata(writer)``
    adds the key/values (a gguf.GGUFWriter), then each planned tensor is
    produced and written in order. It streams into ``PATH.part`` and renames
    it into place at the end, so a failed conversion leaves nothing under
    the final name."""
    import gguf  # imported here: only converters need gguf-py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    writer = gguf.GGUFWriter(str(tmp), arch)
    try:
        metadata(writer)
        for t in tensors:
            if t.raw:
                writer.add_tensor_info(t.name, t.shape, np.dtype(np.uint8), planned_nbytes(t),
                                       raw_dtype=gguf.GGMLQuantizationType[t.ggml_type.upper()])
            elif t.ggml_type in _NP_OUT:
                writer.add_tensor_info(t.name, t.shape, np.dtype(_NP_OUT[t.ggml_type]), planned_nbytes(t))
            elif t.ggml_type == "bf16":
                writer.add_tensor_info(
                    t.name, t.shape, np.dtype(np.uint16), planned_nbytes(t), raw_dtype=gguf.GGMLQuantizationType.BF16
                )
            else:  # quantized blocks: shape is the byte shape (rows..., row_bytes)
                raw = gguf.GGMLQuantizationType[t.ggml_type.upper()]
                writer.add_tensor_info(t.name, t.shape, np.dtype(np.uint8), planned_nbytes(t), raw_dtype=raw)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in tensors:
            data = np.ascontiguousarray(t.produce())
            if t.raw:
                if data.dtype != np.uint8 or tuple(data.shape) != tuple(t.shape):
                    raise ModelLoadError(f"internal: {t.name} produced {data.dtype}{data.shape}, planned bytes {t.shape}")
            elif t.ggml_type in _NP_OUT:
                data = data.astype(_NP_OUT[t.ggml_type], copy=False)
            elif t.ggml_type == "bf16":
                data = f32_to_bf16(data) if data.dtype != np.uint16 else data
            if data.nbytes != planned_nbytes(t):
                raise ModelLoadError(
                    f"internal: tensor {t.name} produced {data.nbytes} bytes, planned {planned_nbytes(t)}"
                )
            writer.write_tensor_data(data)
        writer.close()
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)  # a half-written file never carries the final name
    return path


def f32_to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> BF16 bit patterns (uint16), round to nearest even; NaN stays a quiet NaN."""
    x = np.asarray(x, dtype=np.float32)
    u = np.ascontiguousarray(x).view(np.uint32).astype(np.uint64)  # 64-bit: no wrap near 0xFFFF....
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        rounded[nan] = ((u[nan] >> 16).astype(np.uint16) & 0x8000) | 0x7FC0
    return rounded
