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
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ccapi.errors import ApiError, Conflict
from ccapi.events import EventType
from ccapi.ids import new_id, utcnow
from ccapi.sessions.eventlog import EventLog
from ccapi.sessions.inputs import summarise
from ccapi.sessions.turns import TurnRun
from ccapi.store import TurnRecord

#: Turns that may wait behind one session's running turn; the next one is a 409.
MAX_QUEUED = 4


@dataclass(eq=False)
class QueuedTurn:
    """A turn waiting for its session; ``outcome`` resolves to its run when it starts, or
    to its record (``interrupted`` or ``failed``, number 0) when it never will."""

    session_id: str
    turn_id: str
    content: list[dict[str, Any]]
    created_at: str = field(default_factory=utcnow)
    queued_seq: int = 0
    outcome: asyncio.Future[TurnRun | TurnRecord] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    async def started(self) -> TurnRun | TurnRecord:
        return await asyncio.shield(self.outcome)

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
    """Every session's queue in this process."""

    def __init__(self, events: EventLog, limit: int = MAX_QUEUED) -> None:
        self._events = events
        self.limit = limit
        self._queues: dict[str, deque[QueuedTurn]] = {}
        self._withdrawing: set[asyncio.Task[TurnRecord | None]] = set()  # held so the loop cannot drop them

    def waiting(self, session_id: str) -> int:
        return len(self._queues.get(session_id, ()))

    def turn_ids(self) -> set[str]:
        return {turn.turn_id for queue in self._queues.values() for turn in queue}

    def find(self, session_id: str, turn_id: str | None = None, seq: int | None = None) -> QueuedTurn | None:
        """The queued turn with this id (or whose ``turn.queued`` is event ``seq``)."""
        for turn in self._queues.get(session_id, ()):
            if turn.turn_id == turn_id or (seq is not None and turn.queued_seq == seq):
                return turn
        return None

    async def enqueue(self, session_id: str, content: list[dict[str, Any]], behind: str | None) -> QueuedTurn:
        queue = self._queues.setdefault(session_id, deque())
        if len(queue) >= self.limit:
            raise Conflict(
                f"a turn is running in this session and its queue is full ({self.limit} turns wait); "
                "retry when one has started, or interrupt",
                {"queued": len(queue), "limit": self.limit, "running_turn_id": behind},
            )
        turn = QueuedTurn(session_id, new_id("turn"), content)
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

    def next(self, session_id: str) -> QueuedTurn | None:
        """Take the turn to start next out of the queue."""
        queue = self._queues.get(session_id)
        if not queue:
            return None
        turn = queue.popleft()
        if not queue:
            del self._queues[session_id]
        return turn

    def _take(self, turn: QueuedTurn) -> bool:
        queue = self._queues.get(turn.session_id)
        if queue is None or turn not in queue:
            return False
        queue.remove(turn)
        if not queue:
            del self._queues[turn.session_id]
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

    async def withdraw(self, turn: QueuedTurn, reason: str) -> TurnRecord | None:
        """Take a turn out before it starts; ``None`` when it is no longer queued."""
        if not self._take(turn):
            return None
        return await self.end(turn, EventType.TURN_INTERRUPTED, {"type": "cancelled", "message": reason})

    async def end(self, turn: QueuedTurn, type_: EventType, error: dict[str, Any]) -> TurnRecord:
        """Record that a turn taken out of the queue will never run, and tell its waiter."""
        status = type_.removeprefix("turn.")
        final = await self._events.emit(
            turn.session_id, turn.turn_id, type_, {"status": status, "queued": True, "error": error}
        )
        await self._events.flush()
        record = turn.record(status, completed_at=utcnow(), error=error, last_event_seq=final.seq)
        if not turn.outcome.done():
            turn.outcome.set_result(record)
        return record

    async def fail(self, turn: QueuedTurn, exc: ApiError) -> None:
        """A turn taken out to start that could not (no live slot, shutdown, a spent window)."""
        await self.end(turn, EventType.TURN_FAILED, {"type": exc.type, "message": exc.message})

    async def withdraw_all(self, reason: str, session_id: str | None = None) -> None:
        """Withdraw every queued turn (of one session, or of all)."""
        for sid in [session_id] if session_id else list(self._queues):
            for turn in list(self._queues.get(sid, ())):
                await self.withdraw(turn, reason)
