"""Read small tensors from a ``torch.save`` file without torch.

A ``torch.save`` file (the default zip format since torch 1.6) is a zip
archive with one top folder ``<name>/`` holding

* ``data.pkl``: a pickle of the saved object in which every tensor is a call
  ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and
  every storage a *persistent id* ``("storage", <torch.XStorage>, key,
  location, numel)``;
* ``data/<key>``: the raw bytes of each storage (``byteorder`` says which
  byte order; absent means little-endian).

The unpickler below resolves only the handful of globals such a file needs
(the rebuild functions, the float storage classes, ``OrderedDict``), so
loading an untrusted file cannot run code.  Tensors come back as float32
numpy arrays (BF16 and F16 widen exactly).  Offsets and strides are
element counts, as torch writes them.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelLoadError, ModelNotFoundError, UnsupportedModelError
from .common import bf16_to_f32

__all__ = ["load_torch_zip"]

# torch storage class -> (numpy dtype of the raw little-endian bytes, decode to float32)
_STORAGES = {
    "BFloat16Storage": (np.dtype("<u2"), bf16_to_f32),
    "HalfStorage": (np.dtype("<f2"), lambda a: a.astype(np.float32)),
    "FloatStorage": (np.dtype("<f4"), lambda a: a.astype(np.float32)),
}


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass(frozen=True)
class _Storage:
    values: np.ndarray  # float32, the whole storage
    what: str


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, _Storage):
        raise ModelLoadError("torch pickle: a tensor refers to something that is not a storage")
    size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(storage_offset)
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise ModelLoadError(f"{storage.what}: invalid tensor view (offset {offset}, size {size}, stride {stride})")
    n = storage.values.shape[0]
    if 0 in size:
        return np.zeros(size, dtype=np.float32)
    last = offset + sum((d - 1) * s for d, s in zip(size, stride))
    if offset >= n or last >= n:
        raise ModelLoadError(
            f"{storage.what}: tensor view (offset {offset}, size {size}, stride {stride}) "
            f"reaches past its storage of {n} elements"
        )
    item = storage.values.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage.values[offset:], shape=size, strides=tuple(s * item for s in stride), writeable=False
    )
    return np.array(view, dtype=np.float32)  # a copy: the result does not alias the storage


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    return data  # an nn.Parameter is its tensor for our purposes


# (module, name) -> what the unpickler may construct; everything else is refused
_ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, what: str):
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix, self._what = archive, prefix, what

    def find_class(self, module: str, name: str):
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsupportedModelError(
                f"{self._what}: the pickle uses {module}.{name}, which this reader does not allow "
                f"(it reads plain tensors of {', '.join(sorted(_STORAGES))} in dicts/lists)"
            ) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ModelLoadError(f"{self._what}: unexpected persistent id {pid!r}")
        _, stype, key, _location, numel = pid
        if not isinstance(stype, _StorageType):
            raise UnsupportedModelError(f"{self._what}: storage of type {stype!r} is not supported")
        raw_dtype, decode = _STORAGES[stype.name]
        entry = f"{self._prefix}data/{key}"
        try:
            raw = self._archive.read(entry)
        except KeyError:
            raise ModelLoadError(f"{self._what}: storage {entry} is missing from the archive") from None
        if len(raw) < int(numel) * raw_dtype.itemsize:
            raise ModelLoadError(
                f"{self._what}: storage {entry} has {len(raw)} bytes, expected {int(numel) * raw_dtype.itemsize}"
            )
        values = decode(np.frombuffer(raw, dtype=raw_dtype, count=int(numel)))
        return _Storage(values, f"{self._what} ({entry})")


def load_torch_zip(path: str | Path):
    """The object saved in a ``torch.save`` zip file, tensors as float32 numpy arrays.

    Raises ModelNotFoundError for a missing file, ModelLoadError for a
    truncated or inconsistent one and UnsupportedModelError for the legacy
    (non-zip) format, big-endian files, non-float storages or any global
    outside the allowed handful.
    """
    path = Path(path)
    what = str(path)
    if not path.is_file():
        raise ModelNotFoundError(f"{path} not found")
    if not zipfile.is_zipfile(path):
        raise UnsupportedModelError(
            f"{path} is not a zip archive: only torch.save's default (zip) format is read, "
            "not the legacy pickle-only format"
        )
    with zipfile.ZipFile(path) as archive:
        pkls = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise ModelLoadError(f"{path}: expected one <name>/data.pkl in the archive, found {len(pkls)}")
        prefix = pkls[0][: -len("data.pkl")]
        if prefix + "byteorder" in archive.namelist():
            order = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
            if order != "little":
                raise UnsupportedModelError(f"{path}: byte order {order!r}; only little-endian files are read")
        try:
            return _Unpickler(archive.read(pkls[0]), archive, prefix, what).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            raise ModelLoadError(f"{path}: corrupt torch pickle ({exc})") from None
