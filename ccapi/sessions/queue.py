"""Turns waiting behind a session's running turn: bounded, visible in the log, cancellable.

A session runs one turn at a time. A request that asks to queue (``"queue": true`` on a
native ``POST /turns``; every compat request that continues a busy session) while a turn
runs waits here instead of getting a 409. A turn paused on tool results or approvals is
still running: what queues behind it starts once that turn has ended.

A queued turn has its id at once and the log records ``turn.queued`` (its ``position``,
1 = next, and the turn it waits ``behind``); it gets its ``turn.started`` when the turn
before it has ended. Until then it is not a turn record (it has no number and has not
touched the session) and lives in this process only. So each way it can go without
running leaves one terminal event for its id and nothing else: ``turn.interrupted``
(``queued: true``) when it is withdrawn (``POST /interrupt`` naming it, a client that goes
away from a waiting reply, shutdown), ``turn.failed`` (``queued: true``) when it cannot
start, or when a crash lost it (see ``recovery``).

While the next turn starts (it may wait for a live slot) it stays visible (``find``) and,
until it has its slot, withdrawable; it starts in the context it was queued in, so its
span and its Claude Code join its own request's trace, not the previous turn's.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from ccapi.errors import ApiError, Conflict, Unavailable
from ccapi.events import EventType
from ccapi.ids import new_id, utcnow
from ccapi.observability.metrics import Metrics
from ccapi.sessions.eventlog import EventLog
from ccapi.sessions.inputs import summarise
from ccapi.sessions.turns import TurnRun
from ccapi.store import TurnRecord

log = structlog.get_logger(__name__)

#: Turns that may wait behind one session's running turn; the next one is a 409.
MAX_QUEUED = 4
#: What a waiter hears when something unexpected stopped its turn (the exception itself is logged).
START_FAILED = "the queued turn could not start; send the input again"


@dataclass(eq=False)
class QueuedTurn:
    """A turn waiting for its session; ``outcome`` resolves to its run when it starts, or
    to its record (``interrupted`` or ``failed``, number 0) when it never will."""

    session_id: str
    turn_id: str
    content: list[dict[str, Any]]
    changes: Mapping[str, Any] | None = None
    """The session options it changes as it starts (``TurnRequest.changes``)."""
    created_at: str = field(default_factory=utcnow)
    queued_seq: int = 0
    outcome: asyncio.Future[TurnRun | TurnRecord] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    #: The queuing request's context (its trace span, its log fields): the turn starts in it.
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    #: Set the moment it is taken out for good (withdrawn or failed): it gets no second end.
    ended: bool = False
    _slot: asyncio.Future[None] | None = None

    async def started(self) -> TurnRun | TurnRecord:
        return await asyncio.shield(self.outcome)

    async def withdrawable(self, step: Awaitable[None]) -> None:
        """Wait for ``step`` (a live slot) while ``TurnQueues.withdraw`` may still cancel it."""
        self._slot = asyncio.ensure_future(step)
        try:
            await self._slot
        except asyncio.CancelledError:
            if not self.ended:
                raise
            raise Unavailable("withdrawn before it started") from None  # not the caller's own cancellation
        finally:
            self._slot = None

    def record(self, status: str, **fields: Any) -> TurnRecord:
        """The turn as ``GET /turns/{id}`` and the reply show it: not numbered, never run."""
        return TurnRecord(
            id=self.turn_id,
            session_id=self.session_id,
            number=0,
            status=status,
            input=self.content,
            created_at=self.created_at,
            **fields,
        )


class TurnQueues:
    """Every session's queue in this process, and the turn each is starting."""

    def __init__(self, events: EventLog, metrics: Metrics, limit: int = MAX_QUEUED) -> None:
        self._events = events
        self._metrics = metrics
        self.limit = limit
        self._queues: dict[str, deque[QueuedTurn]] = {}
        self._starting: dict[str, QueuedTurn] = {}
        self._withdrawing: set[asyncio.Task[TurnRecord | None]] = set()  # held so the loop cannot drop them

    def waiting(self, session_id: str) -> int:
        return len(self._queues.get(session_id, ()))

    @property
    def waiting_count(self) -> int:
        """Turns waiting in every session's queue (``cc_api_waiting_turns``)."""
        return sum(len(queue) for queue in self._queues.values())

    def _all(self, session_id: str | None = None) -> list[QueuedTurn]:
        sessions = [session_id] if session_id else list({*self._starting, *self._queues})
        found = [self._starting[sid] for sid in sessions if sid in self._starting]
        return [turn for turn in found + [t for sid in sessions for t in self._queues.get(sid, ())] if not turn.ended]

    def turn_ids(self) -> set[str]:
        return {turn.turn_id for turn in self._all()}

    def find(self, session_id: str, turn_id: str | None = None, seq: int | None = None) -> QueuedTurn | None:
        """The queued (or starting) turn with this id (or whose ``turn.queued`` is event ``seq``)."""
        for turn in self._all(session_id):
            if turn.turn_id == turn_id or (seq is not None and turn.queued_seq == seq):
                return turn
        return None

    async def admit(
        self,
        session_id: str,
        content: list[dict[str, Any]],
        queue: bool,
        behind: TurnRun | None,
        changes: Mapping[str, Any] | None = None,
    ) -> QueuedTurn | None:
        """``None`` when the turn may start now; else queue it behind ``behind`` and the turns
        already waiting — or, without ``queue``, the 409 it always was."""
        if behind is None and not self.waiting(session_id):
            return None
        if not queue:
            raise Conflict(
                "a turn is already running in this session; wait for it, interrupt it, or send with queue: true",
                {"turn_id": behind.turn.id if behind else None, "queued": self.waiting(session_id)},
            )
        return await self.enqueue(session_id, content, behind.turn.id if behind else None, changes)

    async def enqueue(
        self,
        session_id: str,
        content: list[dict[str, Any]],
        behind: str | None,
        changes: Mapping[str, Any] | None = None,
    ) -> QueuedTurn:
        queue = self._queues.setdefault(session_id, deque())
        if len(queue) >= self.limit:
            raise Conflict(
                f"a turn is running in this session and its queue is full ({self.limit} turns wait); "
                "retry when one has started, or interrupt",
                {"queued": len(queue), "limit": self.limit, "running_turn_id": behind},
            )
        turn = QueuedTurn(session_id, new_id("turn"), content, changes)
        queue.append(turn)
        event = await self._events.emit(
            session_id,
            turn.turn_id,
            EventType.TURN_QUEUED,
            {"position": len(queue), "behind": behind, "kind": "input", "input": summarise(content)},
        )
        await self._events.flush()
        turn.queued_seq = event.seq
        return turn

    async def drain(self, session_id: str, start: Callable[[QueuedTurn], Coroutine[Any, Any, TurnRun]]) -> bool:
        """Start the session's queued turns in order until one runs (``True``); ``False`` when
        none is left to. ``start`` runs in the context the turn was queued in. Whatever goes
        wrong (a store write that fails too), every waiter hears an outcome."""
        turn = None
        try:
            while (turn := self._next(session_id)) is not None:
                try:
                    run = await asyncio.get_running_loop().create_task(start(turn), context=turn.context)
                except Exception as exc:  # noqa: BLE001 - whatever stops it, its waiter must hear why
                    if not turn.ended:  # else withdrawn while it waited for its slot: it has its end
                        await self._fail_quietly(turn, exc)
                    continue
                finally:
                    self._starting.pop(session_id, None)
                turn.outcome.set_result(run)
                return True
            return False
        except BaseException:  # cut short (cancelled, or worse): neither it nor those behind will start
            stopped = [turn] if turn is not None and not turn.ended else []
            for waiting in stopped + [t for t in self._all(session_id) if self._take(t)]:
                await self._fail_quietly(waiting, Unavailable(START_FAILED))
            raise

    def _next(self, session_id: str) -> QueuedTurn | None:
        """Take the turn to start next out of the queue; it is the session's starting turn."""
        queue = self._queues.get(session_id)
        if not queue:
            return None
        turn = self._starting[session_id] = queue.popleft()
        if not queue:
            del self._queues[session_id]
        return turn

    def _take(self, turn: QueuedTurn) -> bool:
        """Take a turn out before it starts: from its queue, or while it waits for its slot."""
        if turn.ended:
            return False
        queue = self._queues.get(turn.session_id)
        if queue is not None and turn in queue:
            queue.remove(turn)
            if not queue:
                del self._queues[turn.session_id]
        elif self._starting.get(turn.session_id) is turn and turn._slot is not None and not turn._slot.done():
            turn._slot.cancel()
        else:
            return False
        turn.ended = True
        return True

    def abandon(self, turn: QueuedTurn) -> None:
        """The client waiting for a queued turn went away: withdraw it if it has not started
        (in a task of its own: the caller is being cancelled)."""
        if turn.outcome.done():
            return
        task = asyncio.get_running_loop().create_task(
            self.withdraw(turn, "the client went away before the turn started")
        )
        self._withdrawing.add(task)
        task.add_done_callback(self._withdrawing.discard)

    def abandon_queued(self, session_id: str, seq: int) -> bool:
        """``abandon`` the turn whose ``turn.queued`` is event ``seq``, if it still waits (whether it did)."""
        turn = self.find(session_id, seq=seq)
        if turn is not None:
            self.abandon(turn)
        return turn is not None

    async def withdraw(self, turn: QueuedTurn, reason: str) -> TurnRecord | None:
        """Take a turn out before it starts; ``None`` when it is no longer queued (or has its slot)."""
        if not self._take(turn):
            return None
        return await self.end(turn, EventType.TURN_INTERRUPTED, {"type": "cancelled", "message": reason})

    async def end(self, turn: QueuedTurn, type_: EventType, error: dict[str, Any]) -> TurnRecord:
        """Record that a turn taken out of the queue will never run, and tell its waiter."""
        turn.ended = True
        status = type_.removeprefix("turn.")
        try:
            final = await self._events.emit(
                turn.session_id, turn.turn_id, type_, {"status": status, "queued": True, "error": error}
            )
            await self._events.flush()
        except BaseException:  # its waiter hears it even when the log could not take it
            if not turn.outcome.done():
                turn.outcome.set_result(turn.record(status, completed_at=utcnow(), error=error))
            raise
        record = turn.record(status, completed_at=utcnow(), error=error, last_event_seq=final.seq)
        self._metrics.turn_ended(record.kind, status, None)
        if not turn.outcome.done():
            turn.outcome.set_result(record)
        return record

    async def _fail_quietly(self, turn: QueuedTurn, exc: Exception) -> None:
        """A turn taken out to start that could not (no live slot, shutdown, a spent window,
        another host's lease); anything but an ``ApiError`` is logged and told in fixed words."""
        if isinstance(exc, ApiError):
            error = {"type": exc.type, "message": exc.message}
        else:
            log.error("queued_turn_start_failed", session_id=turn.session_id, turn_id=turn.turn_id, exc_info=exc)
            error = {"type": "unavailable", "message": START_FAILED}
        try:
            await self.end(turn, EventType.TURN_FAILED, error)
        except Exception:  # the store failed too: the waiter has been told all the same
            log.exception("queued_turn_end_not_recorded", session_id=turn.session_id, turn_id=turn.turn_id)

    async def withdraw_all(self, reason: str, session_id: str | None = None) -> None:
        """Withdraw every queued turn (of one session, or of all), and one waiting for its slot."""
        for turn in self._all(session_id):
            await self.withdraw(turn, reason)
