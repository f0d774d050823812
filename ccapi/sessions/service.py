"""Session and turn logic: the one place that decides what a request does.

Routes call this; this calls the store, the event log and the engine pool. It owns the
rule "one turn per session at a time" and the turns running in this process, to which
Claude Code's client-tool calls and permission requests are routed (``specs``). What new
sessions and turns start as is ``creation``; lease keeping and recovery are ``lease`` and ``recovery``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from ccapi.config import Settings
from ccapi.engine import EnginePool, PoolExhausted
from ccapi.engine.local_copy import forget_local_copy
from ccapi.errors import Conflict, InvalidRequest, NotFound, Unavailable
from ccapi.events import Event, EventType
from ccapi.ids import is_safe_id, new_id, utcnow
from ccapi.limits import LimitBoard
from ccapi.observability.metrics import Metrics
from ccapi.observability.tracing import Tracing
from ccapi.sessions.changes import session_updated, webhook_ended
from ccapi.sessions.context import context_usage
from ccapi.sessions.creation import (
    branched_transcript,
    created_event,
    fork_point,
    same_settings,
    seeded_transcript,
    session_record,
    turn_record,
)
from ccapi.sessions.eventlog import EventLog
from ccapi.sessions.idempotency import NEW_INPUT, Idempotency, Opening, Replay, earlier_turn, opening_event
from ccapi.sessions.lease import (
    LEASE_HANDOVER_PAUSE,
    LEASE_HANDOVER_TRIES,
    RETRY_AFTER_SECONDS,
    between_turns,
    keep_leases,
    take_lease,
)
from ccapi.sessions.params import ForkPoint, History, NewSession, TurnRequest
from ccapi.sessions.queue import QueuedTurn, TurnQueues
from ccapi.sessions.recovery import close_stranded_queued, sweep_orphans
from ccapi.sessions.retention import COMPAT_MARK, Retention, keep_expiring
from ccapi.sessions.specs import EngineSpecs
from ccapi.sessions.toolcalls import Decision, ToolResult
from ccapi.sessions.turns import TurnContext, TurnRun
from ccapi.store import SessionRecord, Store, TurnRecord
from ccapi.store.base import OPEN_TURN_STATES
from ccapi.store.outbox import WebhookDelivery
from ccapi.store.transcripts import TranscriptMirror

T = TypeVar("T")


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
        #: Turns waiting behind a running turn (see ``queue``).
        self.queues = TurnQueues(events, self.metrics)
        self._ctx = TurnContext(
            store,
            events,
            pool,
            settings.tool_timeout,
            settings.approval_timeout,
            self.limits,
            self.metrics,
            tracing,
            # alone on its store, a host lets a session's lease go with the turn's end; with others, only after
            # its queue had its say (below), so no other host can step in before a turn queued here
            release_lease_of=None if store.shared else settings.owner_id,
            queued=self.queues.waiting,
        )
        self._transcripts = TranscriptMirror(store, events)
        self._running: dict[str, TurnRun] = {}
        self._closing = False
        self._owner = settings.owner_id
        self._caretaker: asyncio.Task[None] | None = None
        self._expiry: asyncio.Task[None] | None = None
        self._releases: set[asyncio.Task[None]] = set()  # held so the loop cannot drop them mid-flight
        self._unawaited: set[asyncio.Future[Any]] = set()  # ``_keyed`` work whose caller may be gone: held likewise
        #: Held only while in use, so no id (least of all one a client made up) keeps a lock for ever.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._specs = EngineSpecs(settings, self._transcripts, self._running)
        events.on_stall(self._stalled)
        self.permissions = self._specs.permissions
        self.sandbox = self._specs.sandbox

    def _lock(self, session_id: str) -> asyncio.Lock:
        lock = self._locks.get(session_id)
        if lock is None:
            lock = self._locks[session_id] = asyncio.Lock()
        return lock

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        """Install the launcher that starts Claude Code clean, close what a crash left open, then
        keep this host's leases alive and watch for turns orphaned by hosts that died."""
        self._specs.install_launcher()
        await self._specs.reap_leftovers()
        await self.sweep_orphans()
        await close_stranded_queued(self.store, self.events, self._owner, self.metrics)
        care = keep_leases(self.store, self._owner, self.settings.lease_ttl, self._running, self.sweep_orphans)
        self._caretaker = asyncio.create_task(care, name="ccapi-lease-caretaker")
        expiry = keep_expiring(self, Retention.from_settings(self.settings))
        self._expiry = asyncio.create_task(expiry, name="ccapi-session-expiry")

    async def sweep_orphans(self) -> None:
        await sweep_orphans(
            self.store,
            self.events,
            self._owner,
            self.settings.lease_ttl,
            self._running,
            self._lock,
            self.queues.turn_ids,
            self.metrics,
        )

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
        self._refuse_if_stalled()
        self._specs.check_cwd(params.cwd)
        now = utcnow()
        cwd = self._specs.cwd(params.cwd)
        sdk_session_id = await branched_transcript(self._transcripts, fork, cwd) if fork else None
        if history is not None:
            sdk_session_id = await seeded_transcript(self._transcripts, history, params.model, cwd, sdk_session_id)
        record = session_record(params, session_id or new_id("sess"), sdk_session_id, now)
        await self.store.create_session(record)
        self.metrics.session_created()
        created = created_event(record, fork, forked_from, history)
        await self.events.emit(record.id, None, EventType.SESSION_CREATED, created)
        await self.events.flush(bounded=True)
        return await self.get(record.id)

    async def change(self, session_id: str, fields: dict[str, Any]) -> SessionRecord:
        """Change the spending cap, model, permission mode, system prompt, tools or webhook; the next turn
        runs with them (a live engine started otherwise is replaced by a resumed one on the same
        transcript: ``EngineSpec.process_key``, which a webhook is not part of). The events committed after
        it owe deliveries to the new webhook (the store reads it as it commits them); those owed before stay
        owed to the old one. While another host runs a turn of it, a 409."""
        async with self._lock(session_id):
            return await self._change(session_id, fields)

    async def _change(self, session_id: str, fields: dict[str, Any]) -> SessionRecord:
        """``change``, with the session's lock held (a turn starting with changes holds it already)."""
        before = await self.get(session_id)
        fields = {name: value for name, value in fields.items() if getattr(before, name) != value}
        if not fields:  # it has these options already: nothing to record, no Claude Code to restart
            return before
        async with self._between_turns(session_id):
            if not await self._switch_live(dataclasses.replace(before, **fields), fields):
                self.pool.hold(session_id)  # its live engine is checked against the new options at its next turn
            await self.store.update_session(session_id, **fields, updated_at=utcnow())
            data = session_updated(before, fields, "request")
            await self.events.emit(session_id, None, EventType.SESSION_UPDATED, data)
            await self.events.flush(bounded=True)
        return await self.get(session_id)

    async def _switch_live(self, after: SessionRecord, fields: Mapping[str, Any]) -> bool:
        """A change of the permission mode alone, applied to the session's Claude Code running on this host (in a
        turn or idle) as it runs: the running turn's next permission check is under the new mode, and the next turn
        does not restart it. The mode it runs under is the one a new process would start with (``bypassPermissions``
        is ``default`` where Claude Code refuses it). Whether it was applied: not when anything else a process
        starts with changed too, when no process of the session runs here (another host's, if any, restarts at its
        next turn), or when the process cannot switch (``LiveEngine.set_permission_mode``)."""
        engine = self.pool.get(after.id)
        if "permission_mode" not in fields or engine is None:
            return False
        spec = self._specs.spec(after)
        if (
            engine.spec.process_key
            != dataclasses.replace(spec, permission_mode=engine.spec.permission_mode).process_key
        ):
            return False
        if engine.spec.permission_mode != spec.permission_mode and not await engine.set_permission_mode(
            spec.permission_mode
        ):
            return False
        run = self._running.get(after.id)
        if run is not None:  # the turn runs under it from now on (``TurnRun.ask_permission`` reads it)
            run.spec = dataclasses.replace(run.spec, permission_mode=spec.permission_mode)
        return True

    def _between_turns(self, session_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        return between_turns(self.store, self.events, session_id, self._owner, self.settings.lease_ttl)

    async def _not_elsewhere(self, session_id: str) -> None:
        """Before saying that nothing of the session runs here: on a shared store, a 409 naming the host that runs
        its turn, if one does (the continuation, interrupt or compaction was sent to the wrong host: "not waiting
        for tool results" sent its client looking for a fault that was not there)."""
        if self.store.shared:
            async with self._between_turns(session_id):
                pass

    async def park(self, session_id: str) -> None:
        """Stop the session's live Claude Code now, not at idle eviction: a one-off request has
        been answered. A later turn resumes it."""
        if session_id not in self._running:
            await self.pool.discard(session_id)

    async def fork(
        self, session_id: str, turn_id: str | None = None, after_seq: int | None = None, compat: bool = False
    ) -> SessionRecord:
        """A new session that holds this one's conversation up to the end of turn ``turn_id``
        (or of the last assistant message at or before event ``after_seq``; by default all of
        it) and nothing after: branch, regenerate or undo without replaying anything. Unless it
        goes on with a ``compat`` conversation, the fork is its user's own: it loses the compat
        mark, which would have it deleted after ``CC_API_COMPAT_RETENTION`` unused."""
        source = await self.get(session_id)
        if after_seq is not None and after_seq > source.last_seq:  # another log's seq: not "all of it", silently
            raise InvalidRequest(
                f"after_seq {after_seq} is past this session's log: its last event is {source.last_seq}",
                {"last_event_seq": source.last_seq},
            )
        if turn_id is not None:
            turn = await self.get_turn(session_id, turn_id)
            if turn.last_event_seq is None or turn.status not in ("completed", "interrupted", "failed"):
                raise Conflict("that turn has not ended yet; fork at a turn that has", {"turn_id": turn_id})
            after_seq = turn.last_event_seq
        point, forked_from = await fork_point(self.store, source, after_seq)
        settings = same_settings(source)
        if not compat and COMPAT_MARK in settings.metadata:
            settings = dataclasses.replace(
                settings, metadata={k: v for k, v in settings.metadata.items() if k != COMPAT_MARK}
            )
        return await self.create(settings, fork=point, forked_from=forked_from)

    async def get(self, session_id: str) -> SessionRecord:
        _check_id(session_id)
        record = await self.store.get_session(session_id)
        if record is None:
            raise NotFound(f"no session {session_id!r}")
        return record

    async def list_sessions(
        self, limit: int, after: str | None, statuses: Sequence[str] | None = None
    ) -> list[SessionRecord]:
        """A page after session ``after`` (of the sessions in one of ``statuses``, if given); one deleted since is
        a 400, not an empty last page that would end a client's listing early without a word."""
        if after is not None and not is_safe_id(after):
            raise InvalidRequest("after must be a session id")
        page = await self.store.list_sessions(limit, after, statuses)
        if not page and after is not None and await self.store.get_session(after) is None:
            raise InvalidRequest(
                f"after names no session ({after!r} may have been deleted): list from the start again",
                {"after": after},
            )
        return page

    async def delete(self, session_id: str) -> None:
        await self.get(session_id)
        await self.queues.withdraw_all("session deleted", session_id)  # one waiting for a slot lets the lock go
        async with self._lock(session_id):  # nothing queues or starts meanwhile
            await self.queues.withdraw_all("session deleted", session_id)
            run = self._running.get(session_id)
            if run is not None:
                await run.interrupt("session deleted")
            # on a shared store, not while another host runs its turn (a 409 naming it): deleted under it, that turn
            # ran on, calling the model, and wrote its events for a session that was gone
            async with self._between_turns(session_id):
                session = await self._remove(session_id)
        await self._forget(session)

    async def webhook_gone(self, session_id: str, previous: dict[str, Any]) -> None:
        """Record in the session's log that its receiver's ``410 Gone`` ended its ``previous`` webhook (the store
        has cleared it), as a ``PATCH`` records a change: with the session's lock held, between its turns (on a
        shared store, once no other host runs one: ``between_turns``)."""
        while True:
            try:
                async with self._lock(session_id):
                    if await self.store.get_session(session_id) is None:  # deleted meanwhile
                        return
                    async with self._between_turns(session_id):
                        await self.events.emit(session_id, None, EventType.SESSION_UPDATED, webhook_ended(previous))
                        await self.events.flush(bounded=True)
                    return
            except Conflict:  # another host runs a turn of it: after its end
                await asyncio.sleep(self.settings.lease_ttl / 3)

    async def expire(self, session_id: str, last_used: str) -> bool:
        """Delete the session as ``delete`` does if it is idle, nothing waits in its queue and nobody has used it
        since ``last_used`` (a retention sweep's): checked under its lock, so no turn starts between the check and
        the delete (on a shared store, nor on another host: ``between_turns``). Whether it did."""
        try:
            async with self._lock(session_id), self._between_turns(session_id):
                session = await self.store.get_session(session_id)
                if (
                    session is None
                    or session.updated_at != last_used
                    or session.status in OPEN_TURN_STATES
                    or session_id in self._running
                    or self.queues.waiting(session_id)
                ):
                    return False
                session = await self._remove(session_id)
        except Conflict:  # another host runs a turn of it: used after all
            return False
        await self._forget(session)
        return True

    async def _remove(self, session_id: str) -> SessionRecord:
        """Delete the session's data, with its lock held and nothing running; returns the session as it was."""
        session = await self.get(session_id)  # as an interrupted turn left it (its transcript id)
        await self.pool.discard(session_id)
        await self.events.flush(bounded=True)  # a store that refuses writes will not delete either
        await self.store.delete_session(session_id)
        return session

    async def _forget(self, session: SessionRecord) -> None:
        """What a deleted session leaves outside its store rows: its transcript, local copy, numbering, followers."""
        if session.sdk_session_id:
            await self.store.delete_transcript(None, session.sdk_session_id, None)
            await forget_local_copy(session.sdk_session_id)
        self.events.forget(session.id)
        self.events.end_follows(session.id)

    async def context_usage(self, session: SessionRecord) -> dict[str, Any] | None:
        return await context_usage(self.store, self.pool, session, session.id in self._running)

    # -- turns -----------------------------------------------------------------
    def running(self, session_id: str) -> TurnRun | None:
        return self._running.get(session_id)

    async def start_turn(
        self, session_id: str, request: TurnRequest, idempotency: Idempotency | None = None
    ) -> TurnRun | QueuedTurn | Replay:
        """Start a turn — or, with ``request.queue`` while one runs, queue it behind (see
        ``queue``) — or, for a retried ``Idempotency-Key``, return a ``Replay`` of the turn the
        first request started (the live run while it still runs, the queued turn while it waits),
        never running twice. With a key, starting and recording it is not cut short by the
        caller's cancellation (``_keyed``)."""
        _check_id(session_id)  # before any store sees it: a key lookup builds a path or a bounded column
        return await self._keyed(self._start_turn(session_id, request, idempotency), idempotency)

    async def _start_turn(
        self, session_id: str, request: TurnRequest, idempotency: Idempotency | None
    ) -> TurnRun | QueuedTurn | Replay:
        async with self._lock(session_id):
            if idempotency is not None:
                earlier = await self._replay(session_id, idempotency, NEW_INPUT)
                if earlier is not None:
                    return earlier
            await self._after_ended(session_id)
            content = list(request.content)
            queued = await self._queue(session_id, content, request.queue, request.changes)
            if queued is None and request.changes:
                await self._change(session_id, dict(request.changes))
            run = queued or await self._start(session_id, content, kind="input")
            if idempotency is not None:
                turn_id = run.turn_id if isinstance(run, QueuedTurn) else run.turn.id
                await idempotency.remember(self.store, session_id, turn_id)
            return run

    async def _keyed(self, work: Coroutine[Any, Any, T], idempotency: Idempotency | None) -> T:
        """Run ``work``; with a key, to its end even if the request awaiting it is cancelled (its client went away):
        a turn it starts, or tool results it hands over, are recorded with the request's ``Idempotency-Key``, so
        the retry finds them instead of running the input again. Its outcome is then the retry's to learn."""
        if idempotency is None:
            return await work
        task = asyncio.ensure_future(work)
        self._unawaited.add(task)
        task.add_done_callback(self._done_alone)
        return await asyncio.shield(task)

    def _done_alone(self, task: asyncio.Future[Any]) -> None:
        self._unawaited.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: an error its caller, gone, was not there to answer with

    async def _queue(
        self, session_id: str, content: list[dict[str, Any]], queue: bool, changes: Mapping[str, Any] | None
    ) -> QueuedTurn | None:
        """Queue the turn behind the running one (``queue``), or ``None``: it may start now."""
        ahead = self._running.get(session_id)
        if queue and (ahead is not None or self.queues.waiting(session_id)):
            self._refuse_new_turns()
            self.limits.check()  # it could not start either
        return await self.queues.admit(session_id, content, queue, ahead, changes)

    async def create_and_start(
        self, params: NewSession, request: TurnRequest, fork: ForkPoint | None = None, history: History | None = None
    ) -> TurnRun:
        """A new session (branched at ``fork``, holding ``history``, if given) and its first
        turn; empty input continues from the tool results the history ends in. The session is
        created only once a live slot is free, so a request answered 503 (or 429) leaves no empty
        session behind."""
        self._refuse_new_turns()
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
            await self._not_elsewhere(session_id)  # its first turn may be running on another host
            raise Conflict("nothing to compact yet: the session has no conversation")
        command = "/compact" + (f" {instructions}" if instructions else "")
        async with self._lock(session_id):
            if waiting := self.queues.waiting(session_id):
                raise Conflict("turns are queued in this session; compact once they have run", {"queued": waiting})
            return await self._start(session_id, [{"type": "text", "text": command}], kind="compact")

    async def submit_tool_results(
        self, session_id: str, results: list[ToolResult], idempotency: Idempotency | None = None
    ) -> tuple[TurnRun | Replay, int]:
        """Continue the paused turn; returns it and the seq of its first ``tool_result``."""
        opening = Opening.answering(EventType.TOOL_RESULT, "tool_call_id", (r.tool_call_id for r in results))
        work = self._continue(session_id, idempotency, "tool results", lambda run: run.submit(results), opening)
        return await self._keyed(work, idempotency)

    async def submit_decisions(
        self, session_id: str, decisions: list[Decision], idempotency: Idempotency | None = None
    ) -> tuple[TurnRun | Replay, int]:
        """Answer the turn's permission requests; returns it and the seq of its first ``permission.resolved``."""
        opening = Opening.answering(EventType.PERMISSION_RESOLVED, "request_id", (d.request_id for d in decisions))
        work = self._continue(
            session_id, idempotency, "permission decisions", lambda run: run.decide(decisions), opening
        )
        return await self._keyed(work, idempotency)

    async def _continue(
        self,
        session_id: str,
        idempotency: Idempotency | None,
        what: str,
        apply: Callable[[TurnRun], Awaitable[int]],
        opening: Opening,
    ) -> tuple[TurnRun | Replay, int]:
        """A retried key gets a ``Replay`` (and 0): its answer begins at ``opening``."""
        await self.get(session_id)
        async with self._lock(session_id):
            if idempotency is not None:
                earlier = await self._replay(session_id, idempotency, opening)
                if earlier is not None:
                    return earlier, 0
            run = self._running.get(session_id)
            if run is None:
                await self._not_elsewhere(session_id)
                raise Conflict(f"this session is not waiting for {what}")
            first_seq = await apply(run)
            if idempotency is not None:
                await idempotency.remember(self.store, session_id, run.turn.id)
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
            if run is None:
                await self._not_elsewhere(session_id)
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
            await self.get(session_id)  # a mistyped session is named as such, not as a turn it lacks
            raise NotFound(f"no turn {turn_id!r} in session {session_id!r}")
        return turn

    async def _replay(self, session_id: str, idempotency: Idempotency, opening: Opening) -> Replay | None:
        run = self._running.get(session_id)
        earlier = await earlier_turn(self.store, session_id, idempotency, run, self.queues, self.get_turn)
        return None if earlier is None else Replay(earlier, opening)

    async def replay_opening(self, replay: Replay) -> Event | None:
        """The event a retried key's first answer began with (``Opening``), from the log."""
        await self.events.flush(bounded=True)  # what the first request added may still be on its way to the store
        return await opening_event(self.store, replay)

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
        queued: QueuedTurn | None = None,
    ) -> TurnRun:
        """Start a turn (``queued``: the one that waited for it); ``reserved`` when the caller already holds the
        session's live slot. While a usage window is rejected it is refused at once: Claude would refuse it anyway."""
        self._refuse_new_turns()
        self.limits.check()
        await self._after_ended(session_id)
        if session_id in self._running:
            raise Conflict(
                "a turn is already running in this session; wait for it, or interrupt it",
                {"turn_id": self._running[session_id].turn.id},
            )
        if not reserved:
            await self._reserve(session_id)
        ahead = False
        with self._specs.turn_starting(session_id):
            try:
                self._refuse_new_turns()  # the slot came free because shutdown interrupted its turn: not for a new one
                # alone on its store, a warm session's input goes to Claude Code while its turn is recorded
                ahead = kind == "input" and bool(content) and not self.store.shared
                ahead = ahead and self.pool.send_ahead(session_id, content)
                make_turn = functools.partial(turn_record, content=content, kind=kind, queued=queued)
                session, turn = await take_lease(
                    self.store,
                    self.events,
                    session_id,
                    make_turn,
                    self._owner,
                    self.settings.lease_ttl,
                    self.queues.turn_ids(),
                    self.metrics,
                )
            except BaseException:
                await self._drop_ahead(session_id, ahead)
                raise
            spec = self._specs.spec(session)
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
            await self._drop_ahead(session_id, ahead)
            await self.store.release_lease(session_id, self._owner)
            raise
        assert run.task is not None
        run.task.add_done_callback(lambda _: self._forget_run(run))
        return run

    async def _drop_ahead(self, session_id: str, ahead: bool) -> None:
        """A turn that will not run gives its slot back; Claude Code, if its input was sent ahead, is stopped."""
        if ahead:
            await self.pool.discard(session_id)
        self.pool.release(session_id)

    async def _after_ended(self, session_id: str) -> None:
        """A turn whose end is committed (a streamed reply has shown ``turn.completed``) is no
        longer running: let it finish its last steps instead of answering the next turn 409."""
        run = self._running.get(session_id)
        if run is not None and run.ended and run.task is not None:  # its done callback forgets it
            await asyncio.wait({run.task}, timeout=LEASE_HANDOVER_TRIES * LEASE_HANDOVER_PAUSE)

    def _refuse_new_turns(self) -> None:
        """While the gateway shuts down, or its store refuses the events a turn would write."""
        if self._closing:
            raise Unavailable(
                "the gateway is shutting down; retry in a moment", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
            )
        self._refuse_if_stalled()

    def _refuse_if_stalled(self) -> None:
        """Nothing new (a session, a turn) starts while the store refuses the events it would write."""
        if self.events.stalled is not None:
            raise self.events.stall_error()

    def _stalled(self) -> None:
        """The store refuses the events every running turn's reply waits on: answer those replies 503 now
        (the turns go on, and settle once their events are written)."""
        for session_id, run in self._running.items():
            run.stall(self.events.stall_error(session_id=session_id, turn_id=run.turn.id))

    def _forget_run(self, run: TurnRun) -> None:
        if self._running.get(run.session.id) is run:
            del self._running[run.session.id]
        release = asyncio.get_running_loop().create_task(self._release_if_idle(run.session.id, run.lease_released))
        self._releases.add(release)
        release.add_done_callback(self._releases.discard)

    async def _release_if_idle(self, session_id: str, released: bool) -> None:
        """Start the next queued turn; else let other hosts drive the session between turns —
        unless a new turn already started here, or the turn's end already let the lease go."""
        async with self._lock(session_id):
            if session_id in self._running:
                return
            started = False
            try:
                started = await self.queues.drain(session_id, self._start_queued)
            finally:
                if not started and not released:
                    await self.store.release_lease(session_id, self._owner)

    async def _start_queued(self, queued: QueuedTurn) -> TurnRun:
        """Start a queued turn; it can be withdrawn while it waits for its live slot."""
        self._refuse_new_turns()
        self.limits.check()
        await queued.withdrawable(self._reserve(queued.session_id))
        try:
            if queued.changes:
                await self._change(queued.session_id, dict(queued.changes))
            return await self._start(queued.session_id, queued.content, "input", reserved=True, queued=queued)
        except BaseException:
            self.pool.release(queued.session_id)  # a no-op once the turn has taken the slot over
            raise

    # -- events ----------------------------------------------------------------
    async def events_page(self, session_id: str, after: int, limit: int, types: list[str] | None) -> list[Event]:
        await self.check_position(session_id, after)
        return await self.store.list_events(session_id, after=after, limit=limit, types=types)

    async def check_position(self, session_id: str, after: int) -> None:
        """``after`` (a page's, or a stream's ``Last-Event-ID``) is a seq this session's log has reached: one past its
        last event never came from it (another gateway's database, one restored from a backup), and reading on from
        there would skip every event up to it, silently."""
        last = (await self.get(session_id)).last_seq
        if after > last:
            raise InvalidRequest(
                f"this session's log has no event {after}: its last is {last} (read it again from 0)",
                {"last_event_seq": last},
            )

    async def webhooks_page(
        self, session_id: str, after: int, limit: int, before: int | None = None, newest_first: bool = False
    ) -> list[WebhookDelivery]:
        await self.get(session_id)
        return await self.store.list_webhooks(session_id, after, limit, before, newest_first)

    async def first_owed_seqs(self, session_id: str) -> dict[str, int]:
        """Of each URL the session still owes deliveries, the seq of the one that may go (read after a page: what
        was done by then is not waited for)."""
        return await self.store.first_owed_seqs(session_id)

    # -- shutdown --------------------------------------------------------------
    async def shutdown(self) -> None:
        """Interrupt running turns and record them, so a restart finds no turn left running;
        then end the SSE streams, once they have been sent those last events. Turns still
        queued for a slot are answered 503 instead of starting."""
        self._closing = True
        for task in (self._caretaker, self._expiry):
            if task is not None:
                task.cancel()
        await self.queues.withdraw_all("the gateway is shutting down")
        runs = list(self._running.values())
        await asyncio.gather(*(run.interrupt("gateway shutting down") for run in runs), return_exceptions=True)
        await self.events.flush()
        self.events.end_follows()


def _check_id(session_id: str) -> None:
    if not is_safe_id(session_id):
        raise NotFound(f"no session {session_id!r}")
