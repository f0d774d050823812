"""A bounded pool of live engines, one per session, with LRU and idle eviction.

A Claude Code process holds ~200 MB, so the number of live processes is bounded by
``CC_API_MAX_LIVE`` no matter how many sessions exist. A turn first *reserves* a slot
(waiting in a fair FIFO queue when every slot is running a turn), then gets its
session's engine, started — after evicting the least recently used idle engine — if it
is not live. An evicted session resumes through the SDK on its next turn. Engines that
run a turn (including one waiting for client tool results) are never evicted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from typing import Any

import structlog

from ccapi.engine.live import LiveEngine
from ccapi.engine.spec import EngineSpec
from ccapi.observability.metrics import Metrics

log = structlog.get_logger(__name__)

#: Sessions whose process this pool evicted, remembered so their next start counts as ``eviction``.
_EVICTED_REMEMBERED = 4096


class PoolExhausted(Exception):
    """Every live slot ran a turn for longer than the caller could wait."""


class FairSlots:
    """A counting semaphore that hands freed slots to waiters strictly in arrival order,
    with a bounded queue, so a burst can neither starve early callers nor grow without limit."""

    def __init__(self, size: int, max_waiting: int) -> None:
        self._free = size
        self._max_waiting = max_waiting
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, wait: float) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        if len(self._waiters) >= self._max_waiting:
            raise PoolExhausted(f"{len(self._waiters)} turns are already queued for a live Claude session")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), wait)
        except (TimeoutError, asyncio.CancelledError):
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted at the last moment: pass it on
            else:
                self._waiters.remove(waiter)
                waiter.cancel()
            raise PoolExhausted(f"no live Claude session slot became free within {wait:g} s") from None

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the next waiter
                return
        self._free += 1


class EnginePool:
    def __init__(
        self,
        max_live: int,
        idle_timeout: float,
        queue_timeout: float = 30.0,
        max_queued: int = 64,
        metrics: Metrics | None = None,
    ) -> None:
        self.max_live = max_live
        self.idle_timeout = idle_timeout
        self.queue_timeout = queue_timeout
        self._slots = FairSlots(max_live, max_queued)
        self._engines: OrderedDict[str, LiveEngine] = OrderedDict()
        self._reserved: set[str] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._metrics = metrics or Metrics(process=False)
        self._evicted: OrderedDict[str, bool] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def live_count(self) -> int:
        return len(self._engines)

    @property
    def queued(self) -> int:
        return self._slots.waiting

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_idle(), name="ccapi-engine-reaper")

    async def reserve(self, session_id: str) -> None:
        """Hold one of ``max_live`` turn slots for the session until ``release``."""
        await self._slots.acquire(self.queue_timeout)
        self._reserved.add(session_id)

    def release(self, session_id: str) -> None:
        """End the session's turn: its engine stays live but idle, and the slot is freed."""
        if session_id not in self._reserved:
            return
        self._reserved.discard(session_id)
        engine = self._engines.get(session_id)
        if engine is not None:
            engine.busy = False
            engine.last_used = time.monotonic()
        self._slots.release()

    def send_ahead(self, session_id: str, content: list[dict[str, Any]]) -> bool:
        """Send a turn's input to the reserved session's live engine before the turn's record is
        written, so Claude Code starts on it meanwhile; ``acquire`` then hands that engine to the
        turn as it is. Only an idle engine whose session's options are as it started with
        (``hold``) takes input ahead, and not one under a spending cap (the turn checks what is
        left first). False when the input was not sent."""
        assert session_id in self._reserved, "reserve() a slot before sending input ahead"
        engine = self._engines.get(session_id)
        if engine is None or engine.busy or engine.held or engine.exited or engine.spec.max_budget_usd is not None:
            return False
        engine.busy = True
        engine.send_ahead(content)
        return True

    def hold(self, session_id: str) -> None:
        """The session's options change: its live engine takes no input ahead any more (its next
        turn checks it against them, and replaces it if they differ)."""
        engine = self._engines.get(session_id)
        if engine is not None:
            engine.held = True

    async def acquire(self, spec: EngineSpec) -> LiveEngine:
        """The reserved session's live engine, started (after an eviction) when needed; the one
        the turn's input was sent ahead to (``send_ahead``) as it is."""
        assert spec.session_id in self._reserved, "reserve() a slot before acquiring an engine"
        engine = self._engines.get(spec.session_id)
        if engine is not None and engine.sent_ahead:
            return engine
        reason = "eviction" if self._evicted.pop(spec.session_id, False) else "resume"
        if engine is not None and engine.exited:  # ended between the watch's word and this turn
            await self.discard(spec.session_id)
            engine = None
        if engine is not None and (
            engine.generation != spec.generation or engine.spec.process_key != spec.process_key or spec.continue_turn
        ):
            await self.discard(spec.session_id)  # turns ran elsewhere, settings changed, or a re-run: resume instead
            engine, reason = None, "restart"
        if engine is None:
            victim = self._evictable() if len(self._engines) >= self.max_live else None
            engine = LiveEngine(spec, on_exit=self._exited)
            self._engines[spec.session_id] = engine  # counts against the bound while it starts
            engine.busy = True
            if victim is not None:
                await self._evict(victim)
            try:
                await engine.start()
            except BaseException:
                self._engines.pop(spec.session_id, None)
                raise
            log.info("engine_started", session_id=spec.session_id, live=len(self._engines), resume=bool(spec.resume))
            self._metrics.engine_started(reason if spec.resume and spec.generation else "new")  # a fork's first: new
        self._engines.move_to_end(spec.session_id)
        engine.busy = True
        return engine

    def _exited(self, engine: LiveEngine) -> None:
        """A Claude Code process ended by itself (killed, out of memory): no longer live. An idle one is let go at
        once, and the session's next turn resumes in a new one (it failed on the dead one); a turn running on it
        fails, and its end lets it go."""
        session_id = engine.spec.session_id
        log.warning("engine_exited", session_id=session_id, busy=engine.busy, stderr=engine.stderr_tail[-500:])
        if self._engines.get(session_id) is not engine or engine.busy or session_id in self._reserved:
            return
        del self._engines[session_id]
        closing = asyncio.create_task(engine.close(), name=f"engine-close-{session_id}")  # what it started, reaped
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def get(self, session_id: str) -> LiveEngine | None:
        return self._engines.get(session_id)

    async def discard(self, session_id: str) -> None:
        engine = self._engines.pop(session_id, None)
        if engine is not None:
            await engine.close()
            log.info("engine_stopped", session_id=session_id, live=len(self._engines))

    async def _evict(self, session_id: str) -> None:
        """Stop an idle engine to free its slot, or because it idled out; it resumes when needed."""
        await self.discard(session_id)
        self._metrics.evicted()
        self._evicted[session_id] = True
        if len(self._evicted) > _EVICTED_REMEMBERED:
            self._evicted.popitem(last=False)

    def _evictable(self) -> str:
        """The least recently used engine without a turn; one exists whenever a slot is reserved."""
        for session_id, engine in self._engines.items():
            if not engine.busy and session_id not in self._reserved:
                return session_id
        raise AssertionError("a reserved slot guarantees an idle engine to evict")

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(min(self.idle_timeout / 4, 30.0))
            cutoff = time.monotonic() - self.idle_timeout
            for session_id, engine in list(self._engines.items()):
                # looked at as the sweep reaches it: an eviction before it awaited a process's end, and meanwhile
                # this engine may have been replaced by a new one, which a turn has just used
                if self._engines.get(session_id) is not engine:
                    continue
                if not engine.busy and session_id not in self._reserved and engine.last_used < cutoff:
                    await self._evict(session_id)

    async def close(self) -> None:
        if self._reaper:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await asyncio.gather(*(self.discard(sid) for sid in list(self._engines)))
        await asyncio.gather(*self._closing, return_exceptions=True)  # dead ones' leftovers: reaped, come what may
