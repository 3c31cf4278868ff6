"""N sessions of one model behind a bounded queue: :class:`SessionPool`.

A request first *reserves* a place (:meth:`SessionPool.reserve`, at once:
:class:`QueueFull` when every session is busy and ``max_queue`` requests
already wait), then runs its work on the next free session in the pool's
own worker threads (:meth:`Lease.run`). Sessions are handed out in arrival
order. A session goes back to the pool only when the thread using it has
returned, even when the request that asked for it was cancelled, so no two
requests ever share a session.

Runs on one asyncio event loop; only the work itself runs in threads.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

from ..errors import GenerationCancelled

__all__ = ["CancelToken", "Lease", "QueueFull", "SessionPool"]


class QueueFull(Exception):
    """Every session is busy and the queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, pool: str, retry_after: int):
        super().__init__(f"every {pool} session is busy and the queue is full; retry in {retry_after} s")
        self.pool, self.retry_after = pool, retry_after


class CancelToken:
    """Set (from the event loop) when a request's client goes away; read from
    worker threads with :meth:`is_set`, awaited on the loop with :meth:`wait`."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._async = asyncio.Event()

    def set(self) -> None:
        self.event.set()
        self._async.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    async def wait(self) -> None:
        await self._async.wait()


class SessionPool:
    """``sessions`` (opened by the caller) shared by requests, at most
    ``max_queue`` of them waiting."""

    def __init__(self, name: str, sessions: Sequence[Any], max_queue: int):
        if not sessions:
            raise ValueError("a pool needs at least one session")
        self.name = name
        self.sessions = list(sessions)
        self.size = len(self.sessions)
        self.max_queue = int(max_queue)
        self._free: asyncio.Queue = asyncio.Queue()
        for s in self.sessions:
            self._free.put_nowait(s)
        self.waiting = 0  # reserved, no session yet
        self.busy = 0  # holding a session
        self.cancelled_queued = 0  # requests whose client left before they got a session
        self._mean_s = 1.0  # running mean of the work's duration, for Retry-After
        self._executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix=f"mimo-{name}")

    @property
    def queue_depth(self) -> int:
        return self.waiting

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the mean work time times the
        rounds of work ahead."""
        rounds = (self.waiting + self.busy) / self.size
        return max(1, math.ceil(self._mean_s * max(rounds, 1.0)))

    def reserve(self) -> "Lease":
        """A place in the queue, or QueueFull at once."""
        if self.busy + self.waiting >= self.size + self.max_queue:
            raise QueueFull(self.name, self.retry_after())
        self.waiting += 1
        return Lease(self)

    async def _acquire(self, cancel: Optional[CancelToken]):
        if cancel is None:
            return await self._free.get()
        get = asyncio.ensure_future(self._free.get())
        stop = asyncio.ensure_future(cancel.wait())
        try:
            await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not get.done():
                get.cancel()
        if get.done() and not get.cancelled():
            if cancel.is_set():  # it arrived together with the cancel: hand it on
                self._free.put_nowait(get.result())
                return None
            return get.result()
        return None

    def _release(self, session, seconds: float) -> None:
        self.busy -= 1
        self._mean_s = 0.8 * self._mean_s + 0.2 * seconds
        self._free.put_nowait(session)

    def close(self) -> None:
        """Wait for running work, then close every session."""
        self._executor.shutdown(wait=True)
        for s in self.sessions:
            close = getattr(s, "close", None)
            if close is not None:
                close()
        self.sessions = []


class Lease:
    """One request's place in a pool (from :meth:`SessionPool.reserve`)."""

    def __init__(self, pool: SessionPool):
        self._pool = pool
        self._waiting = True

    def _leave_queue(self) -> None:
        if self._waiting:
            self._waiting = False
            self._pool.waiting -= 1

    async def run(self, fn: Callable[[Any], Any], cancel: Optional[CancelToken] = None):
        """``fn(session)`` in a worker thread on the next free session; its
        result. If ``cancel`` is set while waiting, raises GenerationCancelled
        without running ``fn``; if the awaiting task is cancelled while ``fn``
        runs, ``cancel`` is set and the session returns when ``fn`` does."""
        pool = self._pool
        try:
            session = await pool._acquire(cancel)
        finally:
            self._leave_queue()
        if session is None:
            pool.cancelled_queued += 1
            raise GenerationCancelled("the client went away while the request was queued")
        pool.busy += 1
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(pool._executor, fn, session)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if cancel is not None:
                cancel.set()
            raise
        finally:
            def release(f=None):
                if f is not None and not f.cancelled():
                    f.exception()  # retrieved: nobody awaits it any more
                pool._release(session, time.perf_counter() - start)

            if future.done():
                release()
            else:  # cancelled while fn runs: the thread still holds the session
                future.add_done_callback(release)

    def close(self) -> None:
        """Give the place back if :meth:`run` never took it (an error before)."""
        self._leave_queue()
