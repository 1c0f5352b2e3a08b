"""Running many transfers as coroutines on an fsspec filesystem's own event loop.

An async fsspec filesystem (s3fs) runs its event loop in a thread of its own; each of its
blocking methods hops into that thread and back. A transfer of many objects instead runs
one coroutine per object on that loop: no hop per request, and each request costs only
what the store's client library costs.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import wait
from contextlib import asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_CLEANUP_TIMEOUT_S = 60.0
"""After Ctrl-C, how long to let cancelled transfers clean up (abort uploads, delete temps)."""


def run(loop: asyncio.AbstractEventLoop, start: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine ``start()`` on ``loop`` (running in another thread); return its result.

    If the waiting thread is interrupted (Ctrl-C), the coroutine is cancelled and given time
    to clean up before the interruption goes on; its own errors are re-raised here.
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:  # no loop runs in this thread: the usual case
        running = None
    if running is loop:
        raise RuntimeError("a coroutine cannot be waited for from its own event loop")
    finished = threading.Event()
    state: dict[str, Any] = {"task": None, "cancelled": False}

    async def runner() -> T:
        try:
            if state["cancelled"]:
                raise asyncio.CancelledError
            state["task"] = asyncio.current_task()
            return await start()
        finally:
            finished.set()

    def cancel() -> None:  # on the loop, so it cannot race with runner's first step
        state["cancelled"] = True
        if state["task"] is not None:
            state["task"].cancel()

    future = asyncio.run_coroutine_threadsafe(runner(), loop)
    try:
        # Wait in short steps: a signal (Ctrl-C) is then handled promptly on every platform.
        while not wait([future], timeout=0.5).done:
            pass
    except BaseException:
        loop.call_soon_threadsafe(cancel)
        finished.wait(_CLEANUP_TIMEOUT_S)
        raise
    return future.result()


async def gather_or_cancel(coroutines: Iterable[Awaitable[None]]) -> None:
    """Run the coroutines concurrently; on the first error cancel the others, wait, re-raise."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    if not tasks:
        return
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        # Let every task run its cleanup (temp files, aborted uploads) before returning.
        await asyncio.wait(tasks)
    # The tasks that ended the wait first: their error is the one to re-raise.
    raise_first(sorted(tasks, key=lambda task: task not in done))


def errors_of(tasks: Iterable[asyncio.Future[Any]]) -> list[BaseException]:
    """The errors of the finished tasks, each retrieved (asyncio logs an error nobody
    retrieved as lost: a multi-line "Task exception was never retrieved")."""
    errors = [task.exception() for task in tasks if task.done() and not task.cancelled()]
    return [error for error in errors if error is not None]


def raise_first(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Retrieve the outcome of every finished task, then raise the first error, if any."""
    errors = errors_of(tasks)
    if errors:
        raise errors[0]


class ByteBudget:
    """A semaphore counted in bytes, first come first served, for coroutines of one loop.

    A request larger than the limit is counted as the whole limit, so it runs alone.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, size: int) -> int:
        """Wait until ``size`` bytes are free and take them; return what to :meth:`release`."""
        size = min(size, self._limit)
        if not self._waiters and self._used + size <= self._limit:
            self._used += size
            return size
        entry = (size, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            await entry[1]
        except asyncio.CancelledError:
            if entry in self._waiters:
                self._waiters.remove(entry)
            elif entry[1].done() and not entry[1].cancelled():
                self.release(size)  # granted just as we were cancelled: give it back
            raise
        return size

    def release(self, size: int) -> None:
        self._used -= size
        while self._waiters:
            wanted, waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            if self._used + wanted > self._limit:
                break
            self._waiters.popleft()
            self._used += wanted
            waiter.set_result(None)

    @asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        taken = await self.acquire(size)
        try:
            yield
        finally:
            self.release(taken)
