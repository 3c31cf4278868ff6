"""One operation at a time per session: :class:`OperationLock`.

A session (ASR or text) holds per-request state — a KV cache, the prompt
prefix it remembers — so two operations on one session must not interleave.
Whole operations are serialized: a second thread waits until the first one
finishes. The same thread starting a second operation while its first is
still open (an unfinished stream) gets :class:`InvalidArgumentError` instead
of a deadlock. Several sessions on one shared model run in parallel.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from .errors import InvalidArgumentError

__all__ = ["OperationLock"]


class OperationLock:
    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self._owner: int | None = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        if self._owner == threading.get_ident():
            raise InvalidArgumentError(
                f"this {self._what} is already busy in this thread (an unfinished stream?); finish or close that "
                f"first, or open another session on the same model for parallel work"
            )
        with self._lock:
            self._owner = threading.get_ident()
            try:
                yield
            finally:
                self._owner = None
