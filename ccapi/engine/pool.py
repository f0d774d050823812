"""A bounded pool of live engines, one per session, with LRU and idle eviction.

A Claude Code process holds ~200 MB, so the number of live processes is bounded by
``CC_API_MAX_LIVE`` no matter how many sessions exist; an evicted session resumes
through the SDK on its next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict

import structlog

from ccapi.engine.live import LiveEngine
from ccapi.engine.spec import EngineSpec

log = structlog.get_logger(__name__)


class PoolExhausted(Exception):
    """Every live slot is running a turn; the caller should retry later."""


class EnginePool:
    def __init__(self, max_live: int, idle_timeout: float) -> None:
        self.max_live = max_live
        self.idle_timeout = idle_timeout
        self._engines: OrderedDict[str, LiveEngine] = OrderedDict()
        self._lock = asyncio.Lock()
        self._reaper: asyncio.Task[None] | None = None

    @property
    def live_count(self) -> int:
        return len(self._engines)

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_idle(), name="ccapi-engine-reaper")

    async def acquire(self, spec: EngineSpec) -> LiveEngine:
        """The session's live engine (started if needed), marked busy."""
        async with self._lock:
            engine = self._engines.get(spec.session_id)
            if engine is None:
                await self._make_room()
                engine = LiveEngine(spec)
                await engine.start()
                self._engines[spec.session_id] = engine
                log.info("engine_started", session_id=spec.session_id, live=len(self._engines),
                         resume=bool(spec.resume))
            self._engines.move_to_end(spec.session_id)
            engine.busy = True
            return engine

    def release(self, session_id: str) -> None:
        engine = self._engines.get(session_id)
        if engine is not None:
            engine.busy = False
            engine.last_used = time.monotonic()

    def get(self, session_id: str) -> LiveEngine | None:
        return self._engines.get(session_id)

    async def discard(self, session_id: str) -> None:
        engine = self._engines.pop(session_id, None)
        if engine is not None:
            await engine.close()
            log.info("engine_stopped", session_id=session_id, live=len(self._engines))

    async def _make_room(self) -> None:
        if len(self._engines) < self.max_live:
            return
        for session_id, engine in self._engines.items():  # least recently used first
            if not engine.busy:
                await self.discard(session_id)
                return
        raise PoolExhausted(f"all {self.max_live} live Claude sessions are running turns")

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(min(self.idle_timeout / 4, 30.0))
            cutoff = time.monotonic() - self.idle_timeout
            for session_id, engine in list(self._engines.items()):
                if not engine.busy and engine.last_used < cutoff:
                    await self.discard(session_id)

    async def close(self) -> None:
        if self._reaper:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await asyncio.gather(*(self.discard(sid) for sid in list(self._engines)))
