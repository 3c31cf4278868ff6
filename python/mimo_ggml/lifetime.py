"""Deterministic release of native memory: :class:`Closeable`, the base of
every handle that owns native objects (models, sessions, low-level
handles). ``close()`` frees now; ``with`` closes at the end of the block."""

from __future__ import annotations

from typing import TypeVar

__all__ = ["Closeable"]

T = TypeVar("T", bound="Closeable")


class Closeable:
    def close(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
