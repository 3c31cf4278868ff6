"""Conversion of user arguments before they cross into native code.

Python checks only what a value *is* (an integer, a real number, a string)
so that a wrong type gives :class:`InvalidArgumentError` naming the
parameter instead of a binding signature dump; the allowed *ranges* are
checked once, by the native code that uses the value.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

from .errors import InvalidArgumentError

__all__ = ["integer", "optional_integer", "real", "text"]


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
