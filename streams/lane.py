"""The worker's one lane for state, which can say who holds it, since when, and what that holder is waiting for.

Batches of every agent and the timers that touch state run one at a time (`streams.app.Worker._run_batch`). A lane
held for long means everything else waits: the worker logs the holder's await chain (`Lane.stall`), so an operator
(or a test's log) sees what it waits for instead of a worker that silently stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any


class Lane:
    """An `asyncio.Lock` that remembers its holder (a task) and when it took the lane."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = asyncio.Lock()
        self._clock = clock
        self.holder: asyncio.Task[Any] | None = None
        self.since: float | None = None

    async def __aenter__(self) -> Lane:
        await self._lock.acquire()
        self.holder, self.since = asyncio.current_task(), self._clock()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.holder, self.since = None, None
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def stall(self, longer_than_s: float) -> tuple[float, str] | None:
        """(seconds held, the holder's await chain) if the lane has been held longer than `longer_than_s`."""
        since, holder = self.since, self.holder
        if since is None or holder is None:
            return None
        held = self._clock() - since
        if held <= longer_than_s:
            return None
        return held, " -> ".join(await_chain(holder.get_coro()))


def await_chain(awaitable: Any) -> list[str]:
    """Where a suspended coroutine is, and what it awaits, down to the future at the bottom."""
    chain: list[str] = []
    while awaitable is not None and len(chain) < 40:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            kind = type(awaitable).__name__
            chain.append("a future" if kind == "FutureIter" else repr(awaitable)[:300])
            break
        chain.append(f"{frame.f_code.co_name} ({frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno})")
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return chain
