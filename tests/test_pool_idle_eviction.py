"""The pool's idle eviction sweep, in-process: which Claude Code processes it stops is not reachable over HTTP at the
moment that matters (while it waits for an earlier process to end)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from ccapi.engine.pool import EnginePool


class _Engine:
    """What the sweep reads of a live engine; ``on_close`` runs while it closes (as a process takes time to end)."""

    def __init__(self, session_id: str, idle_for: float, on_close: Any = None) -> None:
        self.spec = SimpleNamespace(session_id=session_id)
        self.busy = False
        self.last_used = time.monotonic() - idle_for
        self.closed = asyncio.Event()
        self._on_close = on_close

    async def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
        await asyncio.sleep(0.01)
        self.closed.set()


def test_the_idle_sweep_spares_an_engine_started_while_it_stopped_another() -> None:
    """Two sessions idle out together; while the sweep stops the first one's process, the second session gets a
    new process (its options changed) and a turn on it: the sweep must not stop that fresh process as the idle
    one it listed."""

    async def scenario() -> None:
        pool = EnginePool(max_live=2, idle_timeout=4.0)
        fresh = _Engine("sess_b", idle_for=0)

        def replace_b() -> None:
            pool._engines["sess_b"] = fresh

        first = _Engine("sess_a", idle_for=100, on_close=replace_b)
        pool._engines["sess_a"] = first
        pool._engines["sess_b"] = _Engine("sess_b", idle_for=100)
        pool.start()
        try:
            await asyncio.wait_for(first.closed.wait(), 5)
            await asyncio.sleep(0.1)  # the sweep goes on to the next session it listed
            assert pool.get("sess_a") is None
            assert pool.get("sess_b") is fresh and not fresh.closed.is_set()
        finally:
            await pool.close()

    asyncio.run(scenario())
