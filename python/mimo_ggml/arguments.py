"""Conversion of user arguments before they cross into native code.

Python checks only what a value *is* (an integer, a real number, a string)
so that a wrong type gives :class:`InvalidArgumentError` naming the
parameter instead of a binding signature dump; the allowed *ranges* are
checked once, by the native code that uses the value.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence

from .errors import InvalidArgumentError

__all__ = ["cli_devices", "device_arguments", "integer", "optional_integer", "real", "text"]


def integer(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentError(f"{name} must be an integer, got {value!r}")
    return int(value)


def optional_integer(name: str, value) -> Optional[int]:
    """An integer, or None (the native default)."""
    return None if value is None else integer(name, value)


def real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
        raise InvalidArgumentError(f"{name} must be a number, got {value!r}")
    return float(value)


def text(name: str, value, choices: Optional[tuple[str, ...]] = None) -> str:
    if not isinstance(value, str) or (choices is not None and value not in choices):
        allowed = f" ({', '.join(repr(c) for c in choices)})" if choices else ""
        raise InvalidArgumentError(f"{name} must be a string{allowed}, got {value!r}")
    return value


def device_arguments(device, devices: Optional[Sequence[str]] = None,
                     layer_split: Optional[Sequence[float]] = None) -> dict:
    """The keyword arguments a native model takes for where it runs: one
    ``device``, or ``devices`` (a list such as ``["cpu", "rpc:HOST:PORT"]``)
    whose layers are split in proportion to ``layer_split`` (equal shares
    when None). Which combinations are allowed is the native code's check."""
    out = {"device": text("device", device)}
    if devices is not None:
        if isinstance(devices, (str, bytes)) or not isinstance(devices, Sequence):
            raise InvalidArgumentError(f"devices must be a list of device names such as ['cpu', "
                                       f"'rpc:127.0.0.1:50052'], got {devices!r}")
        out["devices"] = [text("devices[%d]" % i, d) for i, d in enumerate(devices)]
        if not out["devices"]:
            raise InvalidArgumentError("devices must name at least one device, e.g. ['cpu']")
    if layer_split is not None:
        if isinstance(layer_split, (str, bytes)) or not isinstance(layer_split, Sequence):
            raise InvalidArgumentError(f"layer_split must be a list of numbers (one share per device), "
                                       f"got {layer_split!r}")
        out["layer_split"] = [real("layer_split[%d]" % i, v) for i, v in enumerate(layer_split)]
    return out


def cli_devices(device: str, rpc: Optional[Sequence[str]], layer_split: Optional[Sequence[float]]) -> dict:
    """Where a command-line run goes: ``--device`` alone, or with ``--rpc
    A,B`` the local device followed by those servers, the layers split over
    them (by ``--layer-split`` shares, else equally)."""
    if not rpc:
        if layer_split:
            raise InvalidArgumentError("--layer-split needs --rpc HOST:PORT[,...]: the devices to split the layers over")
        return {"device": device}
    return {"devices": [device] + [f"rpc:{e}" for e in rpc], "layer_split": list(layer_split) if layer_split else None}
