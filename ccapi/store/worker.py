"""The store's one thread: backend calls run there in order, and each wakes its caller's event loop directly.

``loop.run_in_executor`` on a one-thread pool did the same through a ``concurrent.futures`` future chained to an
asyncio one (locks, a condition, callbacks both ways): ~100 µs a trip on this project's 2-core reference machine,
against ~30 µs for a queue and ``call_soon_threadsafe``. A turn makes a few trips, on its critical path.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class StoreThread:
    """Runs calls one at a time, first in first out, on a thread started with the first call. A call whose
    caller was cancelled before it started is skipped, as a pool's queued future would be."""

    def __init__(self, name: str = "ccapi-store") -> None:
        self._name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError("the store is closed")
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((loop, future, fn, args))
        return await future

    def close(self) -> None:
        """Finish the calls already queued, then stop the thread (refusing new calls)."""
        self._closed = True
        if self._thread is not None:
            self._calls.put(None)
            self._thread.join()

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            loop, future, fn, args = call
            if future.cancelled():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, whatever it is
                _deliver(loop, _fail, future, exc)
            else:
                _deliver(loop, _succeed, future, result)


def _deliver(loop: asyncio.AbstractEventLoop, settle: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(settle, *args)
    except RuntimeError:  # the loop has closed: nobody waits any more
        pass


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
