"""Session and turn logic: the one place that decides what a request does.

Routes call this; this calls the store, the event log and the engine pool. It owns the
rule "one turn per session at a time", the turns running in this process, and the
routing of Claude Code's client-tool calls to the turn that is waiting for them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from claude_agent_sdk import ClaudeSDKError

from ccapi.childproc import install_launcher
from ccapi.config import Settings
from ccapi.engine import EnginePool, EngineSpec, PoolExhausted
from ccapi.engine.bridge import PermissionDecision, ToolOutcome
from ccapi.engine.errors import EngineError
from ccapi.engine.fork import fork_transcript
from ccapi.engine.history import write_history
from ccapi.engine.sandbox import SandboxPolicy
from ccapi.engine.spec import MODEL_ONLY_ENV, engine_environment, find_cli, message_limit
from ccapi.errors import Conflict, InvalidRequest, NotFound, Unavailable
from ccapi.events import Event, EventType
from ccapi.ids import is_safe_id, new_id, utcnow
from ccapi.limits import LimitBoard
from ccapi.observability.metrics import Metrics
from ccapi.observability.tracing import Tracing
from ccapi.privacy import state_paths
from ccapi.sessions.eventlog import EventLog
from ccapi.sessions.idempotency import Idempotency, earlier_turn
from ccapi.sessions.lease import (
    LEASE_HANDOVER_PAUSE,
    LEASE_HANDOVER_TRIES,
    RETRY_AFTER_SECONDS,
    take_lease,
)
from ccapi.sessions.params import ForkPoint, History, NewSession, TurnRequest
from ccapi.sessions.queue import QueuedTurn, TurnQueues
from ccapi.sessions.recovery import close_orphaned_turn, close_stranded_queued
from ccapi.sessions.toolcalls import Decision, ToolResult
from ccapi.sessions.turns import TurnContext, TurnRun
from ccapi.store import SessionRecord, Store, TurnRecord
from ccapi.store.outbox import WebhookDelivery
from ccapi.store.transcripts import TranscriptMirror
from ccapi.toolpolicy import PermissionPolicy, as_json, parse_builtin_tools

log = structlog.get_logger(__name__)


class SessionService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        events: EventLog,
        pool: EnginePool,
        limits: LimitBoard | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.events = events
        self.pool = pool
        #: Subscription windows as Claude Code reported them; a rejected one refuses new turns.
        self.limits = limits or LimitBoard()
        #: What the sessions and compat layers record for ``/metrics``.
        self.metrics = metrics or Metrics(process=False)
        self._ctx = TurnContext(
            store, events, pool, settings.tool_timeout, settings.approval_timeout, self.limits, self.metrics, tracing
        )
        self._transcripts = TranscriptMirror(store, events)
        self._running: dict[str, TurnRun] = {}
        #: Turns waiting behind a running turn (see ``queue``).
        self.queues = TurnQueues(events)
        self._closing = False
        self._owner = settings.owner_id
        self._caretaker: asyncio.Task[None] | None = None
        self._releases: set[asyncio.Task[None]] = set()  # held so the loop cannot drop them mid-flight
        #: Held only while in use, so no id (least of all one a client made up) keeps a lock for ever.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.permissions = PermissionPolicy.detect()
        self.sandbox = SandboxPolicy.detect(settings.sandbox, state_paths(settings), settings.sandbox_domains)
        self._env: Mapping[str, str] = engine_environment(
            settings.upstream_url,
            settings.tool_timeout,
            mock_model=settings.mock_model,
            retries=settings.upstream_retries,
            timeout=settings.upstream_timeout,
        )
        self._cli: str | None = None

    def _lock(self, session_id: str) -> asyncio.Lock:
        lock = self._locks.get(session_id)
        if lock is None:
            lock = self._locks[session_id] = asyncio.Lock()
        return lock

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        """Install the launcher that starts Claude Code clean, close what a crash left open, then
        keep this host's leases alive and watch for turns orphaned by hosts that died."""
        settings = self.settings
        try:
            cli = find_cli()
        except ClaudeSDKError:  # no Claude Code at all: no child can start, and turns say why
            pass
        else:
            self._cli = str(install_launcher(settings.paths.run_dir, cli, settings.child_umask, settings.pass_env))
        await self.sweep_orphans()
        await close_stranded_queued(self.store, self.events, self._owner)
        self._caretaker = asyncio.create_task(self._care(), name="ccapi-lease-caretaker")

    async def _care(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_ttl / 3)
            try:
                await self.store.renew_leases(self._owner, list(self._running), self.settings.lease_ttl)
                await self.sweep_orphans()
            except Exception:  # a database hiccup must not end the caretaker
                log.exception("lease_care_failed")

    async def sweep_orphans(self) -> None:
        for turn in await self.store.orphaned_turns(self._owner):
            if turn.session_id in self._running:
                continue
            async with self._lock(turn.session_id):
                if await self.store.acquire_lease(turn.session_id, self._owner, self.settings.lease_ttl) is None:
                    await close_orphaned_turn(self.store, self.events, turn, self.queues.turn_ids())
                    await self.store.release_lease(turn.session_id, self._owner)

    # -- sessions --------------------------------------------------------------
    async def create(
        self,
        params: NewSession,
        session_id: str | None = None,
        fork: ForkPoint | None = None,
        forked_from: dict[str, Any] | None = None,
        history: History | None = None,
    ) -> SessionRecord:
        """A new session; with ``fork``, one that continues a copy of that conversation up
        to that point (``forked_from`` says where, in its ``session.created`` event); with
        ``history``, one whose transcript holds those messages (after the fork's)."""
        now = utcnow()
        sdk_session_id = await self._branch(fork, params.cwd) if fork else None
        if history is not None:
            sdk_session_id = await self._write(history, params, sdk_session_id)
        record = SessionRecord(
            id=session_id or new_id("sess"),
            created_at=now,
            updated_at=now,
            model=params.model,
            system_prompt=params.system_prompt,
            tools=list(params.tools),
            metadata=params.metadata,
            max_turns=params.max_turns,
            cwd=params.cwd,
            permission_mode=params.permission_mode,
            status="idle",
            sdk_session_id=sdk_session_id,
            turn_count=0,
            last_seq=0,
            usage={},
            builtin_tools=as_json(params.builtin_tools),
            max_budget_usd=params.max_budget_usd,
            webhook=params.webhook,
            mcp_servers=params.mcp_servers,
        )
        await self.store.create_session(record)
        self.metrics.session_created()
        created: dict[str, Any] = {
            "model": record.model,
            "tools": [tool["name"] for tool in record.tools],
            "metadata": record.metadata,
            "builtin_tools": record.builtin_tools,
        }
        if fork is not None:
            created["forked_from"] = forked_from or {"session_id": fork.session_id}
        if history is not None:
            created["history_messages"] = len(history.messages)
        await self.events.emit(record.id, None, EventType.SESSION_CREATED, created)
        await self.events.flush()
        return await self.get(record.id)

    async def change(self, session_id: str, fields: dict[str, Any]) -> SessionRecord:
        """Change the spending cap, model, permission mode, system prompt or tools; the next turn
        runs with them (a live engine started otherwise is replaced by a resumed one on the same
        transcript: ``EngineSpec.process_key``)."""
        await self.get(session_id)
        await self.store.update_session(session_id, **fields, updated_at=utcnow())
        return await self.get(session_id)

    async def park(self, session_id: str) -> None:
        """Stop the session's live Claude Code now, not at idle eviction: a one-off request has
        been answered. A later turn resumes it."""
        if session_id not in self._running:
            await self.pool.discard(session_id)

    async def fork(self, session_id: str, turn_id: str | None = None, after_seq: int | None = None) -> SessionRecord:
        """A new session that holds this one's conversation up to the end of turn ``turn_id``
        (or of the last assistant message at or before event ``after_seq``; by default all of
        it) and nothing after: branch, regenerate or undo without replaying anything."""
        source = await self.get(session_id)
        if turn_id is not None:
            turn = await self.get_turn(session_id, turn_id)
            if turn.last_event_seq is None or turn.status in ("running", "requires_action"):
                raise Conflict("that turn has not ended yet; fork at a turn that has", {"turn_id": turn_id})
            after_seq = turn.last_event_seq
        bound = source.last_seq if after_seq is None else after_seq
        message = await self._last_message(session_id, bound)
        if message is None or not message.data.get("uuid"):
            raise Conflict(
                "there is no reply to fork at: the session has no assistant message at or before that point",
                {"after_seq": bound},
            )
        if any(block.get("type") == "tool_use" for block in message.data.get("content", [])):
            raise Conflict(
                "the assistant message at that point waits for tool results; fork at a turn that has ended",
                {"seq": message.seq},
            )
        if source.sdk_session_id is None:
            raise Conflict("the session's first turn has not ended yet; fork once it has")
        params = NewSession(
            model=source.model,
            system_prompt=source.system_prompt,
            tools=tuple(source.tools),
            metadata=source.metadata,
            max_turns=source.max_turns,
            cwd=source.cwd,
            permission_mode=source.permission_mode,
            builtin_tools=parse_builtin_tools(source.builtin_tools),
            max_budget_usd=source.max_budget_usd,
            webhook=source.webhook,
            mcp_servers=source.mcp_servers,
        )
        return await self.create(
            params,
            fork=ForkPoint(source.id, source.sdk_session_id, message.data["uuid"]),
            forked_from={"session_id": source.id, "seq": message.seq},
        )

    async def _last_message(self, session_id: str, bound: int) -> Event | None:
        """The last top-level ``message.completed`` event at or before seq ``bound``."""
        found, after = None, 0
        while after < bound:
            page = await self.store.list_events(
                session_id, after=after, limit=500, types=[EventType.MESSAGE_COMPLETED.value]
            )
            for event in page:
                if event.seq <= bound and event.data.get("parent_tool_use_id") is None:
                    found = event
            if len(page) < 500:
                break
            after = page[-1].seq
        return found

    async def _branch(self, fork: ForkPoint, cwd: str | None) -> str:
        """The SDK session id of a copy of ``fork``'s conversation up to its message."""
        try:
            return await fork_transcript(self._transcripts, fork.sdk_session_id, fork.uuid, self._cwd(cwd))
        except EngineError as exc:
            raise Conflict(exc.message, {"sdk_session_id": fork.sdk_session_id}) from None

    async def _write(self, history: History, params: NewSession, after: str | None) -> str:
        """The SDK session id of a transcript holding ``history`` (after ``after``'s)."""
        cwd = self._cwd(params.cwd)
        try:
            return await write_history(self._transcripts, history.messages, history.uuids, params.model, cwd, after)
        except EngineError as exc:
            raise Conflict(exc.message, {"sdk_session_id": after}) from None

    async def get(self, session_id: str) -> SessionRecord:
        _check_id(session_id)
        record = await self.store.get_session(session_id)
        if record is None:
            raise NotFound(f"no session {session_id!r}")
        return record

    async def list_sessions(self, limit: int, after: str | None) -> list[SessionRecord]:
        if after is not None and not is_safe_id(after):
            raise InvalidRequest("after must be a session id")
        return await self.store.list_sessions(limit, after)

    async def delete(self, session_id: str) -> None:
        await self.get(session_id)
        await self.queues.withdraw_all("session deleted", session_id)  # one waiting for a slot lets the lock go
        async with self._lock(session_id):  # nothing queues or starts meanwhile
            await self.queues.withdraw_all("session deleted", session_id)
            run = self._running.get(session_id)
            if run is not None:
                await run.interrupt("session deleted")
            session = await self.get(session_id)  # as the interrupted turn left it (its transcript id)
            await self.pool.discard(session_id)
            await self.events.flush()
            await self.store.delete_session(session_id)
        if session.sdk_session_id:
            await self.store.delete_transcript(None, session.sdk_session_id, None)
        self.events.forget(session_id)
        self.events.end_follows(session_id)

    async def context_usage(self, session: SessionRecord) -> dict[str, Any] | None:
        """Context-window usage as of turn ``as_of_turn``. Measured by the live engine at
        most once per turn (it costs Claude Code a round of token counting) and stored,
        so an evicted or restarted session still reports its last measurement."""
        stored = session.context
        if stored and stored.get("as_of_turn") == session.turn_count:
            return stored
        engine = self.pool.get(session.id)
        if engine is None or engine.busy or session.id in self._running:
            return stored
        usage = await engine.context_usage()
        if usage is None:
            return stored
        usage["as_of_turn"] = session.turn_count
        await self.store.update_session(session.id, context=usage)
        return usage

    # -- turns -----------------------------------------------------------------
    def running(self, session_id: str) -> TurnRun | None:
        return self._running.get(session_id)

    async def start_turn(
        self, session_id: str, request: TurnRequest, idempotency: Idempotency | None = None
    ) -> TurnRun | TurnRecord | QueuedTurn:
        """Start a turn — or, with ``request.queue`` while one runs, queue it behind (see
        ``queue``) — or, for a retried ``Idempotency-Key``, return the turn the first request
        started (the live run while it still runs, the queued turn while it waits), never
        running twice."""
        _check_id(session_id)  # before any store sees it: a key lookup builds a path or a bounded column
        async with self._lock(session_id):
            if idempotency is not None:
                earlier = await self._replay(session_id, idempotency)
                if earlier is not None:
                    return earlier
            await self._after_ended(session_id)
            content = list(request.content)
            queued = await self._queue(session_id, content, request.queue)
            run = queued or await self._start(session_id, content, kind="input")
            if idempotency is not None:
                turn_id = run.turn_id if isinstance(run, QueuedTurn) else run.turn.id
                await self.store.save_idempotency_key(
                    session_id, idempotency.key, idempotency.fingerprint, turn_id, utcnow()
                )
            return run

    async def _queue(self, session_id: str, content: list[dict[str, Any]], queue: bool) -> QueuedTurn | None:
        """Queue the turn behind the running one (``queue``), or ``None``: it may start now."""
        ahead = self._running.get(session_id)
        if queue and (ahead is not None or self.queues.waiting(session_id)):
            self._refuse_if_closing()
            self.limits.check()  # it could not start either
        return await self.queues.admit(session_id, content, queue, ahead)

    async def create_and_start(
        self, params: NewSession, request: TurnRequest, fork: ForkPoint | None = None, history: History | None = None
    ) -> TurnRun:
        """A new session (branched at ``fork``, holding ``history``, if given) and its first
        turn; empty input continues from the tool results the history ends in. The session is
        created only once a live slot is free, so a request answered 503 (or 429) leaves no empty
        session behind."""
        self._refuse_if_closing()
        self.limits.check()
        session_id = new_id("sess")
        await self._reserve(session_id)
        try:
            await self.create(params, session_id, fork, history=history)
            async with self._lock(session_id):
                return await self._start(session_id, list(request.content), kind="input", reserved=True)
        except BaseException:
            self.pool.release(session_id)  # a no-op once the turn has taken the slot over
            raise

    async def compact(self, session_id: str, instructions: str | None) -> TurnRun:
        session = await self.get(session_id)
        if session.sdk_session_id is None and self.pool.get(session_id) is None:
            raise Conflict("nothing to compact yet: the session has no conversation")
        command = "/compact" + (f" {instructions}" if instructions else "")
        async with self._lock(session_id):
            if waiting := self.queues.waiting(session_id):
                raise Conflict("turns are queued in this session; compact once they have run", {"queued": waiting})
            return await self._start(session_id, [{"type": "text", "text": command}], kind="compact")

    async def submit_tool_results(
        self, session_id: str, results: list[ToolResult], idempotency: Idempotency | None = None
    ) -> tuple[TurnRun | TurnRecord, int]:
        """Continue the paused turn; returns it and the seq of its first ``tool_result``."""
        return await self._continue(session_id, idempotency, "tool results", lambda run: run.submit(results))

    async def submit_decisions(
        self, session_id: str, decisions: list[Decision], idempotency: Idempotency | None = None
    ) -> tuple[TurnRun | TurnRecord, int]:
        """Answer the turn's permission requests; returns it and the seq of its first ``permission.resolved``."""
        return await self._continue(session_id, idempotency, "permission decisions", lambda run: run.decide(decisions))

    async def _continue(
        self, session_id: str, idempotency: Idempotency | None, what: str, apply: Callable[[TurnRun], Awaitable[int]]
    ) -> tuple[TurnRun | TurnRecord, int]:
        await self.get(session_id)
        async with self._lock(session_id):
            if idempotency is not None:
                earlier = await self._replay(session_id, idempotency)
                if earlier is not None:
                    return (earlier.record("queued") if isinstance(earlier, QueuedTurn) else earlier), 0
            run = self._running.get(session_id)
            if run is None:
                raise Conflict(f"this session is not waiting for {what}")
            first_seq = await apply(run)
            if idempotency is not None:
                await self.store.save_idempotency_key(
                    session_id, idempotency.key, idempotency.fingerprint, run.turn.id, utcnow()
                )
            return run, first_seq

    async def interrupt(
        self, session_id: str, reason: str = "interrupted by the client", turn_id: str | None = None
    ) -> TurnRecord:
        """Stop the running turn, or the turn ``turn_id`` names: the running one, or a queued
        one, which is withdrawn before it starts. The turns queued behind a stopped turn go on."""
        await self.get(session_id)
        if turn_id is not None:
            queued = self.queues.find(session_id, turn_id)
            if queued is not None:
                outcome = await self.queues.withdraw(queued, reason) or await queued.started()  # it has its slot
                if isinstance(outcome, TurnRecord):
                    return outcome
        run = self._running.get(session_id)
        if run is None or (turn_id is not None and run.turn.id != turn_id):
            raise Conflict(
                "no turn is running in this session"
                if turn_id is None
                else f"turn {turn_id!r} is neither running nor queued in this session",
                {"turn_id": turn_id} if turn_id else None,
            )
        return await run.interrupt(reason)

    def abandon_queued(self, session_id: str, seq: int) -> bool:
        """The client of the turn queued at event ``seq`` went away: withdraw it, unless it started
        (whether it was withdrawn)."""
        return self.queues.abandon_queued(session_id, seq)

    async def get_turn(self, session_id: str, turn_id: str) -> TurnRecord:
        queued = self.queues.find(session_id, turn_id)
        if queued is not None:
            return queued.record("queued")
        turn = await self.store.get_turn(turn_id) if is_safe_id(turn_id) else None
        if turn is None or turn.session_id != session_id:
            raise NotFound(f"no turn {turn_id!r} in session {session_id!r}")
        return turn

    async def _replay(self, session_id: str, idempotency: Idempotency) -> TurnRun | TurnRecord | QueuedTurn | None:
        run = self._running.get(session_id)
        return await earlier_turn(self.store, session_id, idempotency, run, self.queues, self.get_turn)

    async def _reserve(self, session_id: str) -> None:
        try:
            await self.pool.reserve(session_id)
        except PoolExhausted as exc:
            raise Unavailable(
                f"{exc}; retry shortly",
                {"max_live": self.pool.max_live},
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None

    async def _start(
        self,
        session_id: str,
        content: list[dict[str, Any]],
        kind: str,
        reserved: bool = False,
        turn_id: str | None = None,
    ) -> TurnRun:
        """Start a turn; ``reserved`` when the caller already holds the session's live slot.
        While a usage window is rejected it is refused at once: Claude would refuse it anyway."""
        self._refuse_if_closing()
        self.limits.check()
        await self._after_ended(session_id)
        if session_id in self._running:
            raise Conflict(
                "a turn is already running in this session; wait for it, or interrupt it",
                {"turn_id": self._running[session_id].turn.id},
            )
        if not reserved:
            await self._reserve(session_id)
        try:
            self._refuse_if_closing()  # the slot came free because shutdown interrupted its turn: not for a new one
            make_turn = functools.partial(_new_turn, content=content, kind=kind, turn_id=turn_id)
            session, turn = await take_lease(
                self.store,
                self.events,
                session_id,
                make_turn,
                self._owner,
                self.settings.lease_ttl,
                self.queues.turn_ids(),
            )
        except BaseException:
            self.pool.release(session_id)
            raise
        spec = self._spec(session)
        if not content:  # Claude Code goes on from the tool results its transcript ends in
            spec = dataclasses.replace(spec, continue_turn=True)
        run = TurnRun(
            self._ctx,
            session,
            turn,
            spec,
            content,
            own_tool_rounds=self.settings.tool_max_turns if spec.max_turns is None else None,
        )
        self._running[session_id] = run
        try:
            await run.begin()
        except BaseException:
            self._running.pop(session_id, None)
            self.pool.release(session_id)
            await self.store.release_lease(session_id, self._owner)
            raise
        assert run.task is not None
        run.task.add_done_callback(lambda _: self._forget_run(run))
        return run

    async def _after_ended(self, session_id: str) -> None:
        """A turn whose end is committed (a streamed reply has shown ``turn.completed``) is no
        longer running: let it finish its last steps instead of answering the next turn 409."""
        run = self._running.get(session_id)
        if run is not None and run.ended and run.task is not None:  # its done callback forgets it
            await asyncio.wait({run.task}, timeout=LEASE_HANDOVER_TRIES * LEASE_HANDOVER_PAUSE)

    def _refuse_if_closing(self) -> None:
        if self._closing:
            raise Unavailable(
                "the gateway is shutting down; retry in a moment", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
            )

    def _forget_run(self, run: TurnRun) -> None:
        if self._running.get(run.session.id) is run:
            del self._running[run.session.id]
        release = asyncio.get_running_loop().create_task(self._release_if_idle(run.session.id))
        self._releases.add(release)
        release.add_done_callback(self._releases.discard)

    async def _release_if_idle(self, session_id: str) -> None:
        """Start the next queued turn; else let other hosts drive the session between turns —
        unless a new turn already started here."""
        async with self._lock(session_id):
            if session_id in self._running:
                return
            started = False
            try:
                started = await self.queues.drain(session_id, self._start_queued)
            finally:
                if not started:
                    await self.store.release_lease(session_id, self._owner)

    async def _start_queued(self, queued: QueuedTurn) -> TurnRun:
        """Start a queued turn; it can be withdrawn while it waits for its live slot."""
        self._refuse_if_closing()
        self.limits.check()
        await queued.withdrawable(self._reserve(queued.session_id))
        try:
            return await self._start(queued.session_id, queued.content, "input", reserved=True, turn_id=queued.turn_id)
        except BaseException:
            self.pool.release(queued.session_id)  # a no-op once the turn has taken the slot over
            raise

    async def _resolve_tool(self, session_id: str, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        run = self._running.get(session_id)
        if run is None:
            return ToolOutcome("no turn is waiting for this tool call", is_error=True)
        return await run.desk.resolve(name, arguments)

    async def _ask_permission(
        self, session_id: str, tool_name: str, input_: dict[str, Any], tool_use_id: str | None
    ) -> PermissionDecision:
        run = self._running.get(session_id)
        if run is None:
            return PermissionDecision(False, "no turn of this session is running")
        return await run.ask_permission(tool_name, input_, tool_use_id)

    def _cwd(self, cwd: str | None) -> str | None:
        """A session's working directory: its own, else the gateway's ``CC_API_CWD``."""
        return cwd or (str(self.settings.cwd) if self.settings.cwd else None)

    def _spec(self, session: SessionRecord) -> EngineSpec:
        has_tools = bool(session.tools)
        settings = self.settings
        builtin_tools = parse_builtin_tools(session.builtin_tools)
        requested_mode = session.permission_mode or (
            settings.tool_permission_mode if has_tools else settings.permission_mode
        )
        return EngineSpec(
            session_id=session.id,
            model=session.model,
            system_prompt=session.system_prompt,
            cwd=self._cwd(session.cwd),
            permission_mode=self.permissions.mode_for(requested_mode, builtin_tools),
            # with client tools the turn counts only Claude Code's own tool rounds (see TurnRun)
            max_turns=session.max_turns or (None if has_tools else settings.max_turns),
            resume=session.sdk_session_id,
            generation=session.turn_count,
            env=self._env if builtin_tools != "none" else {**self._env, **MODEL_ONLY_ENV},
            tools=tuple(session.tools),
            resolve_tool=functools.partial(self._resolve_tool, session.id),
            transcripts=self._transcripts,
            max_message_bytes=message_limit(settings.max_body_bytes),
            cli_path=self._cli,
            builtin_tools=builtin_tools,
            max_budget_usd=session.max_budget_usd,
            mcp_servers=session.mcp_servers or {},
            spent_usd=float(session.usage.get("cost_usd", 0.0)),
            ask_permission=functools.partial(self._ask_permission, session.id),
            sandbox=self.sandbox.settings,
            denied_tools=self.sandbox.denied_tools,
        )

    # -- events ----------------------------------------------------------------
    async def events_page(self, session_id: str, after: int, limit: int, types: list[str] | None) -> list[Event]:
        await self.get(session_id)
        return await self.store.list_events(session_id, after=after, limit=limit, types=types)

    async def webhooks_page(self, session_id: str, after: int, limit: int) -> list[WebhookDelivery]:
        await self.get(session_id)
        return await self.store.list_webhooks(session_id, after, limit)

    # -- shutdown --------------------------------------------------------------
    async def shutdown(self) -> None:
        """Interrupt running turns and record them, so a restart finds no turn left running;
        then end the SSE streams, once they have been sent those last events. Turns still
        queued for a slot are answered 503 instead of starting."""
        self._closing = True
        if self._caretaker is not None:
            self._caretaker.cancel()
        await self.queues.withdraw_all("the gateway is shutting down")
        runs = list(self._running.values())
        await asyncio.gather(*(run.interrupt("gateway shutting down") for run in runs), return_exceptions=True)
        await self.events.flush()
        self.events.end_follows()


def _check_id(session_id: str) -> None:
    if not is_safe_id(session_id):
        raise NotFound(f"no session {session_id!r}")


def _new_turn(session: SessionRecord, content: list[dict[str, Any]], kind: str, turn_id: str | None) -> TurnRecord:
    return TurnRecord(
        id=turn_id or new_id("turn"),
        session_id=session.id,
        number=session.turn_count + 1,
        status="running",
        input=content,
        created_at=utcnow(),
        kind=kind,
    )
