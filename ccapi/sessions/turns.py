"""Running one turn: input in, events out, outcome recorded.

A turn runs as its own task, detached from the HTTP request that started it, so a
client that disconnects (or asked for ``background``) never cancels Claude mid-turn.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

import structlog

from ccapi.engine import EngineError, EnginePool, EngineSpec, PoolExhausted, TurnOutcome, TurnTranslator
from ccapi.events import EventType
from ccapi.ids import utcnow
from ccapi.sessions.eventlog import EventLog
from ccapi.sessions.inputs import summarise
from ccapi.store import SqlStore, TurnRecord
from ccapi.store.records import SessionRecord
from ccapi.engine.translate import USAGE_KEYS

log = structlog.get_logger(__name__)

_TERMINAL_EVENT = {
    "completed": EventType.TURN_COMPLETED,
    "failed": EventType.TURN_FAILED,
    "interrupted": EventType.TURN_INTERRUPTED,
}


@dataclass(frozen=True)
class TurnContext:
    """The collaborators a turn needs; shared by every turn of the process."""

    store: SqlStore
    events: EventLog
    pool: EnginePool


class TurnRun:
    def __init__(self, ctx: TurnContext, session: SessionRecord, turn: TurnRecord, spec: EngineSpec,
                 content: list[dict[str, Any]]) -> None:
        self.ctx = ctx
        self.session = session
        self.turn = turn
        self.spec = spec
        self.content = content
        self.started_seq = 0
        self._interrupt_reason: str | None = None
        self._translator = TurnTranslator()
        self.task: asyncio.Task[TurnRecord] | None = None

    async def begin(self) -> None:
        """Record ``turn.started`` (so the turn's first seq is known), then run in the background."""
        started = await self.ctx.events.emit(self.session.id, self.turn.id, EventType.TURN_STARTED, {
            "number": self.turn.number, "input": summarise(self.content), "model": self.spec.model,
        })
        self.started_seq = started.seq
        self.task = asyncio.create_task(self._run(), name=f"turn-{self.turn.id}")

    async def wait(self) -> TurnRecord:
        assert self.task is not None
        return await asyncio.shield(self.task)

    async def interrupt(self, reason: str) -> None:
        """Ask Claude Code to stop; the turn then ends as ``turn.interrupted``."""
        self._interrupt_reason = reason
        engine = self.ctx.pool.get(self.session.id)
        if engine is not None and engine.busy:
            try:
                await engine.interrupt()
            except EngineError:
                log.warning("interrupt_failed", session_id=self.session.id, turn_id=self.turn.id)

    async def _run(self) -> TurnRecord:
        began = time.monotonic()
        try:
            outcome = await self._drive()
        except asyncio.CancelledError:
            outcome = TurnOutcome("interrupted", error={"type": "interrupted",
                                                        "message": self._interrupt_reason or "cancelled"})
            await self.ctx.pool.discard(self.session.id)
        if outcome.duration_ms is None:
            outcome = replace(outcome, duration_ms=int((time.monotonic() - began) * 1000))
        if outcome.status == "interrupted" and self._interrupt_reason:
            outcome = replace(outcome, error={"type": "interrupted", "message": self._interrupt_reason})
        return await self._finish(outcome, self._translator.sdk_session_id)

    async def _drive(self) -> TurnOutcome:
        try:
            engine = await self.ctx.pool.acquire(self.spec)
        except PoolExhausted as exc:
            return TurnOutcome("failed", error={"type": "unavailable", "message": str(exc)})
        except EngineError as exc:
            return TurnOutcome("failed", error={"type": exc.kind, "message": exc.message})
        translator = self._translator = TurnTranslator(prior_cost_usd=engine.reported_cost)
        try:
            async for message in engine.run(self.content):
                for event in translator.feed(message):
                    await self.ctx.events.emit(self.session.id, self.turn.id, event.type, event.data)
        except EngineError as exc:
            await self.ctx.pool.discard(self.session.id)
            return TurnOutcome("failed", error={"type": exc.kind, "message": exc.message})
        finally:
            self.ctx.pool.release(self.session.id)
        if translator.result is not None and translator.result.total_cost_usd is not None:
            engine.reported_cost = translator.result.total_cost_usd
        return translator.outcome()

    async def _finish(self, outcome: TurnOutcome, sdk_session_id: str | None) -> TurnRecord:
        data: dict[str, Any] = {
            "status": outcome.status, "stop_reason": outcome.stop_reason, "usage": outcome.usage,
            "cost_usd": outcome.cost_usd, "duration_ms": outcome.duration_ms,
        }
        if outcome.error:
            data["error"] = outcome.error
        final = await self.ctx.events.emit(self.session.id, self.turn.id, _TERMINAL_EVENT[outcome.status], data)
        await self.ctx.events.flush()
        record = replace(
            self.turn, status=outcome.status, completed_at=utcnow(), output=outcome.output,
            usage=outcome.usage, cost_usd=outcome.cost_usd, duration_ms=outcome.duration_ms,
            stop_reason=outcome.stop_reason, error=outcome.error, last_event_seq=final.seq,
        )
        await self.ctx.store.update_turn(
            record.id, status=record.status, completed_at=record.completed_at, output=record.output,
            usage=record.usage, cost_usd=record.cost_usd, duration_ms=record.duration_ms,
            stop_reason=record.stop_reason, error=record.error, last_event_seq=record.last_event_seq,
        )
        session = await self.ctx.store.get_session(self.session.id)
        if session is not None:
            await self.ctx.store.update_session(
                session.id, status="idle", updated_at=record.completed_at,
                sdk_session_id=sdk_session_id or session.sdk_session_id,
                usage=_add_usage(session.usage, outcome),
            )
        log.info("turn", session_id=self.session.id, turn_id=record.id, model=self.spec.model,
                 status=record.status, stop_reason=record.stop_reason, duration_ms=record.duration_ms,
                 cost_usd=record.cost_usd, **record.usage)
        return record


def _add_usage(total: dict[str, Any], outcome: TurnOutcome) -> dict[str, Any]:
    summed: dict[str, Any] = {key: int(total.get(key, 0)) + outcome.usage.get(key, 0) for key in USAGE_KEYS}
    summed["cost_usd"] = round(float(total.get("cost_usd", 0.0)) + (outcome.cost_usd or 0.0), 8)
    return summed
