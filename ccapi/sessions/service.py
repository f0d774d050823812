"""Session and turn logic: the one place that decides what a request does.

Routes call this; this calls the store, the event log and the engine pool. It owns the
rule "one turn per session at a time" and the set of turns running in this process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog

from ccapi.config import Settings
from ccapi.engine import EnginePool, EngineSpec
from ccapi.engine.spec import engine_environment
from ccapi.errors import Conflict, InvalidRequest, NotFound
from ccapi.events import EventType
from ccapi.ids import is_safe_id, new_id, utcnow
from ccapi.sessions.eventlog import EventLog
from ccapi.sessions.params import NewSession, TurnRequest
from ccapi.sessions.turns import TurnContext, TurnRun
from ccapi.store import SessionRecord, SqlStore, TurnRecord

log = structlog.get_logger(__name__)


class SessionService:
    def __init__(self, settings: Settings, store: SqlStore, events: EventLog, pool: EnginePool) -> None:
        self.settings = settings
        self.store = store
        self.events = events
        self.pool = pool
        self._ctx = TurnContext(store, events, pool)
        self._running: dict[str, TurnRun] = {}
        self._env: Mapping[str, str] = engine_environment(settings.upstream_url, settings.mock_model)

    # -- sessions --------------------------------------------------------------
    async def create(self, params: NewSession) -> SessionRecord:
        now = utcnow()
        record = SessionRecord(
            id=new_id("sess"), created_at=now, updated_at=now, model=params.model,
            system_prompt=params.system_prompt, tools=list(params.tools), metadata=params.metadata,
            max_turns=params.max_turns, cwd=params.cwd, permission_mode=params.permission_mode,
            status="idle", sdk_session_id=None, turn_count=0, last_seq=0, usage={},
        )
        await self.store.create_session(record)
        await self.events.emit(record.id, None, EventType.SESSION_CREATED, {
            "model": record.model, "tools": [tool["name"] for tool in record.tools], "metadata": record.metadata,
        })
        await self.events.flush()
        return await self.get(record.id)

    async def get(self, session_id: str) -> SessionRecord:
        record = await self.store.get_session(session_id) if is_safe_id(session_id) else None
        if record is None:
            raise NotFound(f"no session {session_id!r}")
        return record

    async def list(self, limit: int, after: str | None) -> list[SessionRecord]:
        if after is not None and not is_safe_id(after):
            raise InvalidRequest("after must be a session id")
        return await self.store.list_sessions(limit, after)

    async def delete(self, session_id: str) -> None:
        await self.get(session_id)
        run = self._running.get(session_id)
        if run is not None:
            await run.interrupt("session deleted")
            await asyncio.wait({run.task}, timeout=10) if run.task else None
        await self.pool.discard(session_id)
        await self.events.flush()
        await self.store.delete_session(session_id)
        self.events.forget(session_id)

    # -- turns -----------------------------------------------------------------
    def running(self, session_id: str) -> TurnRun | None:
        return self._running.get(session_id)

    async def start_turn(self, session_id: str, request: TurnRequest) -> TurnRun:
        session = await self.get(session_id)
        if session_id in self._running:
            raise Conflict("a turn is already running in this session; wait for it, or interrupt it",
                           {"turn_id": self._running[session_id].turn.id})
        turn = TurnRecord(
            id=new_id("turn"), session_id=session_id, number=session.turn_count + 1, status="running",
            input=list(request.content), created_at=utcnow(),
        )
        run = TurnRun(self._ctx, session, turn, self._spec(session), list(request.content))
        self._running[session_id] = run
        try:
            await self.store.create_turn(turn)
            await self.store.update_session(session_id, status="running", updated_at=turn.created_at)
            await run.begin()
        except BaseException:
            self._running.pop(session_id, None)
            raise
        assert run.task is not None
        run.task.add_done_callback(lambda _: self._running.pop(session_id, None))
        return run

    async def get_turn(self, session_id: str, turn_id: str) -> TurnRecord:
        turn = await self.store.get_turn(turn_id) if is_safe_id(turn_id) else None
        if turn is None or turn.session_id != session_id:
            raise NotFound(f"no turn {turn_id!r} in session {session_id!r}")
        return turn

    def _spec(self, session: SessionRecord) -> EngineSpec:
        has_tools = bool(session.tools)
        settings = self.settings
        return EngineSpec(
            session_id=session.id,
            model=session.model,
            system_prompt=session.system_prompt,
            cwd=session.cwd or (str(settings.cwd) if settings.cwd else None),
            permission_mode=session.permission_mode
            or (settings.tool_permission_mode if has_tools else settings.permission_mode),
            max_turns=session.max_turns or (settings.tool_max_turns if has_tools else settings.max_turns),
            resume=session.sdk_session_id,
            env=self._env,
        )

    # -- events ----------------------------------------------------------------
    async def events_page(self, session_id: str, after: int, limit: int, types: list[str] | None) -> list[Any]:
        await self.get(session_id)
        return await self.store.list_events(session_id, after=after, limit=limit, types=types)

    # -- shutdown --------------------------------------------------------------
    async def shutdown(self, grace: float = 8.0) -> None:
        """Interrupt running turns and record them, so a restart finds no turn left running."""
        runs = list(self._running.values())
        for run in runs:
            await run.interrupt("gateway shutting down")
        tasks = {run.task for run in runs if run.task}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
        await self.events.flush()
