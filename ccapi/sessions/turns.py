"""Running one turn: input in, events out, outcome recorded.

A turn runs as its own task, detached from the HTTP request that started it, so a
client that disconnects (or asked for ``background``) never cancels Claude mid-turn.
A turn *settles* when it ends or pauses on client tool calls; each HTTP request that
acts on the turn waits for the next settle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from ccapi.engine import EngineError, EnginePool, EngineSpec, TurnOutcome, TurnTranslator
from ccapi.engine.bridge import PermissionDecision, ToolOutcome
from ccapi.engine.translate import USAGE_KEYS, budget_exceeded
from ccapi.events import Event, EventType
from ccapi.ids import new_id, utcnow
from ccapi.limits import LimitBoard
from ccapi.observability.logs import log_soon
from ccapi.observability.metrics import Metrics
from ccapi.observability.tracing import Span, Tracing
from ccapi.sessions.changes import PLAN_APPROVED, session_updated
from ccapi.sessions.eventlog import EventLog
from ccapi.sessions.inputs import summarise
from ccapi.sessions.toolcalls import Decision, PendingCall, PendingPermission, ToolDesk, ToolResult
from ccapi.store import Store, TurnRecord
from ccapi.store.records import SessionRecord, TurnEnd

log = structlog.get_logger(__name__)

_TERMINAL_EVENT = {
    "completed": EventType.TURN_COMPLETED,
    "failed": EventType.TURN_FAILED,
    "interrupted": EventType.TURN_INTERRUPTED,
}
INTERRUPT_GRACE = 10.0
VERDICT_WAIT = 10.0
"""How long a built-in tool call waits for its round's message (``TurnRun.gate_tool``) before it runs anyway."""
LIMIT_MESSAGE = (
    "the turn stopped after {limit} rounds of Claude Code's own tools "
    "(CC_API_TOOL_MAX_TURNS; client tool calls do not count); send another turn to continue"
)
TURN_CRASHED = {"type": "internal", "message": "the gateway failed while running this turn; its log has the details"}
#: The events that show a turn's first output (what ``cc_api_time_to_first_token_seconds`` measures).
_FIRST_OUTPUT = frozenset({EventType.MESSAGE_DELTA, EventType.THINKING_DELTA, EventType.MESSAGE_COMPLETED})


@dataclass(frozen=True)
class TurnContext:
    """The collaborators a turn needs; shared by every turn of the process."""

    store: Store
    events: EventLog
    pool: EnginePool
    tool_timeout: float
    approval_timeout: float
    limits: LimitBoard = field(default_factory=LimitBoard)
    metrics: Metrics = field(default_factory=lambda: Metrics(process=False))
    tracing: Tracing | None = None
    release_lease_of: str | None = None
    """This host's id when a turn's end may let its session's lease go in the end's own commit: on a store no
    other host shares, and when no turn waits in the session's queue (``queued``) to run next under it."""
    queued: Callable[[str], int] = lambda _session_id: 0


class TurnRun:
    def __init__(
        self,
        ctx: TurnContext,
        session: SessionRecord,
        turn: TurnRecord,
        spec: EngineSpec,
        content: list[dict[str, Any]],
        own_tool_rounds: int | None = None,
    ) -> None:
        """``own_tool_rounds``: for a session with client tools, how many model rounds that use
        Claude Code's own tools the turn may take. Client tool calls are the client's own
        loop, not Claude Code turns, so they are not counted (Claude Code's ``max_turns``
        would count them, and cut the client's loop short)."""
        self.ctx = ctx
        self.session = session
        self.turn = turn
        self.spec = spec
        self.content = content
        self.started_seq = 0
        #: The terminal event is committed: the turn is over but for its task's last steps.
        self.ended = False
        #: Its commit also let the session's lease go (``TurnContext.release_lease_of``).
        self.lease_released = False
        #: Its end rows are queued: what it waits for is no longer recorded (a write after them would undo them).
        self._ending = False
        self.compaction: dict[str, Any] | None = None
        self.desk = ToolDesk(
            ctx.tool_timeout, self._report_timeout, ctx.approval_timeout, self._report_approval_timeout
        )
        self.task: asyncio.Task[TurnRecord] | None = None
        self._interrupt_reason: str | None = None
        self._own_tool_rounds = own_tool_rounds
        self._tool_rounds: set[str] = set()  # the model rounds (message ids) that called Claude Code's own tools
        self._verdicts: dict[str, asyncio.Future[bool]] = {}  # own tool call → its round is past the limit
        self._limit: dict[str, str] | None = None  # the turn was stopped at the limit (``max_turns``)
        self._stopping: asyncio.Task[None] | None = None
        self._translator = TurnTranslator()
        self._settled: asyncio.Future[TurnRecord] = asyncio.get_running_loop().create_future()
        self._submit_lock = asyncio.Lock()
        self._answers = 0  # submissions of answers so far (see ``_pause``)
        self._began = time.perf_counter()  # time to first token counts from here
        self._first_output: float | None = None
        self._span: Span | None = None

    # -- lifecycle seen from the sessions layer ----------------------------------
    async def begin(self) -> None:
        """Record ``turn.started`` (so the turn's first seq is known), then run in the background."""
        started = await self._emit(
            EventType.TURN_STARTED,
            {
                "number": self.turn.number,
                "kind": self.turn.kind,
                "input": summarise(self.content),
                "model": self.spec.model,
            },
        )
        self.started_seq = started.seq
        if self.ctx.tracing is None:
            self.task = asyncio.create_task(self._run(), name=f"turn-{self.turn.id}")
            return
        self._span = self.ctx.tracing.span(
            "cc_api.turn",
            {
                "session.id": self.session.id,
                "cc_api.turn.id": self.turn.id,
                "cc_api.turn.kind": self.turn.kind,
                "gen_ai.request.model": self.spec.model,
            },
        )
        with self._span.current():  # the turn's task, and a Claude Code process it starts, carry the span
            self.task = asyncio.create_task(self._run(), name=f"turn-{self.turn.id}")

    async def wait(self) -> TurnRecord:
        """The turn as of its next settle: finished, or paused on client tool calls."""
        return await asyncio.shield(self._settled)

    @property
    def settled(self) -> bool:
        """The turn stands at a settle: ended, or waiting for the client (an answer that left calls open)."""
        return self._settled.done()

    def stall(self, error: Exception) -> None:
        """Fail whoever waits for this settle (the store will not take its events); the next settle re-arms."""
        if not self._settled.done():
            self._settled.set_exception(error)
            self._settled.exception()  # retrieved: nobody may be waiting, and that is no error of its own

    async def submit(self, results: list[ToolResult]) -> int:
        """Hand client tool results to the waiting calls; returns the seq of the first
        ``tool_result`` event. Nothing is applied unless the whole submission is valid."""
        async with self._submit_lock:
            calls = self.desk.check(results)
            self._answered()
            first = 0
            for call, result in zip(calls, results, strict=True):
                event = await self._emit(
                    EventType.TOOL_RESULT,
                    {
                        "tool_call_id": call.tool_call_id,
                        "name": call.name,
                        "content": result.content,
                        "is_error": result.is_error,
                    },
                )
                first = first or event.seq
            self.desk.answer(calls, results)
            await self._still_pending()
            return first

    async def decide(self, decisions: list[Decision]) -> int:
        """Hand the client's permission decisions to the waiting checks; returns the seq of
        the first ``permission.resolved`` event. All or nothing, as for tool results."""
        async with self._submit_lock:
            requests = self.desk.check_decisions(decisions)
            self._answered()
            first = 0
            for request, decision in zip(requests, decisions, strict=True):
                event = await self._emit(EventType.PERMISSION_RESOLVED, _resolution(request, decision))
                first = first or event.seq
            self.desk.decide(requests, decisions)
            await self._still_pending()
            return first

    async def ask_permission(
        self, tool_name: str, input_: dict[str, Any], tool_use_id: str | None
    ) -> PermissionDecision:
        """Claude Code asks to run a built-in tool: pause the turn until the client decides."""
        request = self.desk.open_permission(new_id("perm"), tool_name, input_, tool_use_id)
        await self._emit(EventType.PERMISSION_REQUESTED, request.view())
        pause = await self._emit(
            EventType.TURN_REQUIRES_APPROVAL,
            {"permission_requests": [r.view() for r in self.desk.pending_permissions()]},
        )
        await self._pause(pause)
        decision = await self.desk.decision(request)
        if decision.allow and tool_name == "ExitPlanMode" and self.spec.permission_mode == "plan":
            await self._left_plan_mode()
        return decision

    async def _left_plan_mode(self) -> None:
        """Claude Code goes on in the ``default`` mode once its plan is approved: its live process, already there,
        counts as started so, and the session keeps that (no restart at the next turn) if it is still in plan mode.
        One switched to another mode during the turn (a ``PATCH`` Claude Code had not been switched by) keeps that
        mode, which its next turn starts under."""
        self.spec = replace(self.spec, permission_mode="default")
        engine = self.ctx.pool.get(self.session.id)
        if engine is not None:
            engine.spec = replace(engine.spec, permission_mode="default")
        stored = await self.ctx.store.get_session(self.session.id)
        # "plan" may have been the gateway's default: a mode unset at the turn's start and still unset is still that
        unset = stored is not None and stored.permission_mode is None and self.session.permission_mode is None
        if stored is None or (stored.permission_mode != "plan" and not unset):
            return
        fields = {"permission_mode": "default"}
        before = replace(stored, permission_mode="plan")
        await self.ctx.store.update_session(self.session.id, **fields, updated_at=utcnow())
        await self._emit(EventType.SESSION_UPDATED, session_updated(before, fields, PLAN_APPROVED))

    async def interrupt(self, reason: str) -> TurnRecord:
        """Stop the turn (also one waiting on tool results); it ends as ``turn.interrupted``."""
        self._interrupt_reason = reason
        engine = self.ctx.pool.get(self.session.id)
        if engine is not None and engine.busy:
            try:
                await asyncio.wait_for(engine.interrupt(), INTERRUPT_GRACE)
            except (EngineError, TimeoutError):
                log.warning("interrupt_failed", session_id=self.session.id, turn_id=self.turn.id)
        self.desk.cancel_all(f"the turn was interrupted: {reason}")
        assert self.task is not None
        done, _ = await asyncio.wait({self.task}, timeout=INTERRUPT_GRACE)
        if not done:
            self.task.cancel()
        return await asyncio.shield(self.task)

    # -- the turn itself ---------------------------------------------------------
    async def _run(self) -> TurnRecord:
        try:
            outcome = await self._drive()
        except asyncio.CancelledError:
            outcome = TurnOutcome("interrupted")
            await self.ctx.pool.discard(self.session.id)
        except Exception:  # a bug or a store failure still ends the turn, for everyone waiting on it
            log.exception("turn_crashed", session_id=self.session.id, turn_id=self.turn.id)
            outcome = TurnOutcome("failed", error=TURN_CRASHED)
            await self.ctx.pool.discard(self.session.id)
        # the turn's own time, as its client waited for it: Claude Code's ``duration_ms`` leaves out its start
        outcome = replace(outcome, duration_ms=round((time.perf_counter() - self._began) * 1000))
        # a compaction Claude Code ended without compacting says ``success`` (its reason as the text)
        not_compacted = self.turn.kind == "compact" and outcome.status == "completed" and self.compaction is None
        if self._limit is not None:  # stopped at the gate (Claude Code's result says success), or by the backstop
            outcome = replace(outcome, status="failed", error=self._limit)
        elif self._interrupt_reason and (outcome.status in ("interrupted", "failed") or not_compacted):
            outcome = replace(
                outcome, status="interrupted", error={"type": "interrupted", "message": self._interrupt_reason}
            )
        elif not_compacted:
            outcome = replace(outcome, status="failed", error=_not_compacted(outcome))
        self.desk.cancel_all("the turn ended")
        return await self._finish(outcome, self._translator.sdk_session_id)

    async def _drive(self) -> TurnOutcome:
        """Runs with the slot the service reserved; gives it back however the turn ends."""
        if self.spec.budget_left is not None and self.spec.budget_left <= 0:
            self.ctx.pool.release(self.session.id)
            return TurnOutcome("failed", error=budget_exceeded(self.spec.max_budget_usd))
        tracing, acquiring = self.ctx.tracing, None
        if tracing is not None:
            live = self.ctx.pool.get(self.session.id) is not None
            acquiring = tracing.span("cc_api.engine.acquire", {"cc_api.engine.was_live": live})
        try:
            engine = await self.ctx.pool.acquire(self.spec)
        except EngineError as exc:
            self.ctx.pool.release(self.session.id)
            if acquiring is not None:
                acquiring.end(exc.message)
            return TurnOutcome("failed", error={"type": exc.kind, "message": exc.message})
        except BaseException:  # cancelled (an interrupt while Claude Code starts), or worse: the slot goes back
            self.ctx.pool.release(self.session.id)
            if acquiring is not None:
                acquiring.end("cancelled while Claude Code started")
            raise
        if acquiring is not None:
            acquiring.end()
        translator = self._translator = TurnTranslator(prior_cost_usd=engine.reported_cost)
        try:
            if self._interrupt_reason is not None and not engine.sent_ahead:
                # interrupted while Claude Code started, with nothing in it to interrupt yet: the input never goes
                # (one sent ahead is in it already, and the interrupt reached it); a turn it re-runs as it starts
                # is stopped now, and its result read
                if not self.spec.continue_turn:
                    return TurnOutcome("interrupted")
                await engine.interrupt()
            async for message in engine.run(self.content):
                for item in translator.feed(message):
                    await self._handle(item.type, item.data)
        except EngineError as exc:
            await self.ctx.pool.discard(self.session.id)
            return TurnOutcome("failed", error={"type": exc.kind, "message": exc.message})
        finally:
            engine.generation = self.spec.generation + 1
            self.ctx.pool.release(self.session.id)
        if translator.result is not None and translator.result.total_cost_usd is not None:
            engine.reported_cost = translator.result.total_cost_usd
        return translator.outcome()

    async def _handle(self, type_: EventType, data: dict[str, Any]) -> None:
        if self._first_output is None and type_ in _FIRST_OUTPUT:
            self._first_output = time.perf_counter() - self._began
            self.ctx.metrics.first_token(self._first_output)
        if type_ == EventType.TOOL_CALL:
            await self.desk.announce(data["tool_call_id"], data["name"], data["input"])
        event = await self._emit(type_, data)
        if type_ == EventType.RATE_LIMIT:
            self.ctx.limits.record(data)
        elif type_ == EventType.TURN_REQUIRES_ACTION and self.desk.waiting():
            if self._past_limit():  # the round is stopped at the gate: its client calls are not the client's to run
                self.desk.cancel_all(LIMIT_MESSAGE.format(limit=self._own_tool_rounds))
            else:
                await self._pause(event)
        elif type_ == EventType.SESSION_COMPACTED:
            self.compaction = data
            self.ctx.metrics.compacted(str(data.get("trigger")))
        elif type_ == EventType.MESSAGE_COMPLETED and self._own_tool_rounds is not None:
            self._count_round(data)

    def _count_round(self, message: dict[str, Any]) -> None:
        """Counts the model rounds of the main thread that call Claude Code's own tools (a round's blocks arrive
        as messages of one id, one block each) and gives each such call its verdict for ``gate_tool``. A round
        past the limit whose calls the gate never saw (Claude Code refused them itself: an unknown tool, a bad
        input) is let go; the round after it is interrupted."""
        calls = [
            block["id"]
            for block in message.get("content", [])
            if block["type"] == "tool_use" and self._translator.is_own_tool(block["id"])
        ]
        if not calls or message.get("parent_tool_use_id") is not None:
            return
        self._tool_rounds.add(message.get("message_id") or message["uuid"])
        over = self._past_limit()
        for call in calls:
            verdict = self._verdict(call)
            if not verdict.done():
                verdict.set_result(over)
        if len(self._tool_rounds) > self._own_tool_rounds + 1 and self._stopping is None:  # type: ignore[operator]
            self._stop()
            self._stopping = asyncio.create_task(self._stop_at_limit())

    def _past_limit(self) -> bool:
        return self._own_tool_rounds is not None and len(self._tool_rounds) > self._own_tool_rounds

    def _verdict(self, tool_use_id: str) -> asyncio.Future[bool]:
        if tool_use_id not in self._verdicts:
            self._verdicts[tool_use_id] = asyncio.get_running_loop().create_future()
        return self._verdicts[tool_use_id]

    def _stop(self) -> str:
        """The turn ends at the limit (``max_turns``), however Claude Code then reports it."""
        message = LIMIT_MESSAGE.format(limit=self._own_tool_rounds)
        self._limit = {"type": "max_turns", "message": message}
        return message

    async def gate_tool(self, tool_use_id: str) -> str | None:
        """Claude Code is about to run one of its own tools: the limit's message if the call's round is past
        ``own_tool_rounds`` (Claude Code then stops the turn before the call runs). Claude Code sends the
        round's message before it asks, so the verdict comes as soon as this turn has read that message."""
        if self._own_tool_rounds is None:
            return None
        try:
            over = await asyncio.wait_for(asyncio.shield(self._verdict(tool_use_id)), VERDICT_WAIT)
        except TimeoutError:
            log.warning("tool_call_unseen", session_id=self.session.id, turn_id=self.turn.id, tool_use_id=tool_use_id)
            return None
        return self._stop() if over else None

    async def _stop_at_limit(self) -> None:
        """The backstop: Claude Code went on past a round the gate did not stop."""
        engine = self.ctx.pool.get(self.session.id)
        if engine is not None and engine.busy:
            try:
                await asyncio.wait_for(engine.interrupt(), INTERRUPT_GRACE)
            except (EngineError, TimeoutError):
                log.warning("interrupt_failed", session_id=self.session.id, turn_id=self.turn.id)

    async def _pause(self, event: Event) -> None:
        """Settle on what the turn now waits for (permission decisions before tool results)."""
        await self.ctx.events.flush()
        if self._ending:  # the turn ended meanwhile (an interrupt; a permission check still pausing): that stands
            return
        answers = self._answers
        recorded = await self._record_pending(event.seq)
        if answers != self._answers:  # a client that saw the pause answered meanwhile: it is over, and what was
            await self._record_pending()  # just recorded is stale
        elif recorded[0] == "running" or self._pending()[0] == "running":
            # an interrupt (or a timeout) answered what it waited for meanwhile: no pause to settle on; the turn goes
            # on to its end, which its waiters hear (they were answered "running", a status no turn settles at)
            await self._record(*self._pending())
        elif not self._ending:
            self._settle(*recorded, event.seq)

    async def _still_pending(self) -> None:
        """After an answer: record what the turn still waits for. If it still waits for something (the client
        answered some of the calls), the log says so again, with what is left: that event ends the answer's
        stream (and a streamed retry's), and the answer's reply says what is left, at once."""
        status, calls, requests = self._pending()
        pause = None
        if status == "requires_approval":  # said before any wait: ahead of an end an interrupt may bring meanwhile
            pause = await self._emit(EventType.TURN_REQUIRES_APPROVAL, {"permission_requests": requests})
        elif status == "requires_action":  # no model call since the pause: nothing in the round's usage
            pause = await self._emit(EventType.TURN_REQUIRES_ACTION, {"tool_calls": calls, "round_usage": {}})
        await self._record(status, calls, requests, None if pause is None else pause.seq)
        if pause is not None:
            await self.ctx.events.flush()  # the reply points at it: committed first, as in ``_pause``
            self._settle(status, calls, requests, pause.seq)

    def _settle(self, status: str, calls: list[dict[str, Any]], requests: list[dict[str, Any]], seq: int) -> None:
        if not self._settled.done():
            self._settled.set_result(
                replace(self.turn, status=status, tool_calls=calls, permission_requests=requests, last_event_seq=seq)
            )

    async def _record_pending(
        self, pause_seq: int | None = None
    ) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
        pending = self._pending()
        await self._record(*pending, pause_seq)
        return pending

    def _pending(self) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
        """The turn's status and what it waits for (permission decisions before tool results)."""
        calls = [call.view() for call in self.desk.waiting()]
        requests = [request.view() for request in self.desk.pending_permissions()]
        return "requires_approval" if requests else "requires_action" if calls else "running", calls, requests

    async def _record(
        self, status: str, calls: list[dict[str, Any]], requests: list[dict[str, Any]], pause_seq: int | None = None
    ) -> None:
        """``pause_seq``: the event the turn paused at, its ``last_event_seq`` while it waits, as the reply that
        settled there says (a turn running on has none; a pause recorded again without one keeps it)."""
        fields: dict[str, Any] = {"status": status, "tool_calls": calls, "permission_requests": requests}
        if status == "running" or pause_seq is not None:
            fields["last_event_seq"] = pause_seq
        # Not once the turn's end is queued: the store writes in order, and a pause written after the end would
        # leave the ended turn, and its session, reading as waiting (or running) for good.
        if not self._ending:
            await self.ctx.store.update_turn(self.turn.id, **fields)
        if not self._ending:
            await self.ctx.store.update_session(self.session.id, status=status, updated_at=utcnow())

    async def _report_timeout(self, call: PendingCall, outcome: ToolOutcome) -> None:
        await self._emit(
            EventType.TOOL_RESULT,
            {
                "tool_call_id": call.tool_call_id,
                "name": call.name,
                "content": outcome.content,
                "is_error": True,
                "timed_out": True,
            },
        )
        await self._after_timeout()

    async def _report_approval_timeout(self, request: PendingPermission, decision: PermissionDecision) -> None:
        await self._emit(
            EventType.PERMISSION_RESOLVED,
            {
                "request_id": request.request_id,
                "tool_name": request.tool_name,
                "behavior": "deny",
                "message": decision.message,
                "timed_out": True,
            },
        )
        await self._after_timeout()

    async def _after_timeout(self) -> None:
        if not self.desk.waiting() and not self.desk.pending_permissions():
            self._rearm()
            await self._record_pending()

    def _rearm(self) -> None:
        """Start a new settle cycle once the previous one has been delivered."""
        if self._settled.done():
            self._settled = asyncio.get_running_loop().create_future()

    def _answered(self) -> None:
        """The client answered (tool results, approvals): a new settle cycle, and a pause still being recorded
        no longer settles with what it saw (see ``_pause``)."""
        self._answers += 1
        self._rearm()

    async def _emit(self, type_: str, data: dict[str, Any]) -> Event:
        return await self.ctx.events.emit(self.session.id, self.turn.id, type_, data)

    async def _finish(self, outcome: TurnOutcome, sdk_session_id: str | None) -> TurnRecord:
        data: dict[str, Any] = {
            "status": outcome.status,
            "stop_reason": outcome.stop_reason,
            "usage": outcome.usage,
            "cost_usd": outcome.cost_usd,
            "duration_ms": outcome.duration_ms,
        }
        if outcome.round_usage:
            data["round_usage"] = outcome.round_usage
        if outcome.error:
            data["error"] = outcome.error
        if outcome.structured_output is not None:
            data["structured_output"] = outcome.structured_output
        final = await self._emit(_TERMINAL_EVENT[outcome.status], data)
        ended: dict[str, Any] = {
            "status": outcome.status,
            "completed_at": utcnow(),
            "output": outcome.output,
            "tool_calls": [],
            "permission_requests": [],
            "usage": outcome.usage,
            "cost_usd": outcome.cost_usd,
            "duration_ms": outcome.duration_ms,
            "stop_reason": outcome.stop_reason,
            "error": outcome.error,
            "last_event_seq": final.seq,
            "structured_output": outcome.structured_output,
        }
        record = replace(self.turn, **ended)
        session = {
            "status": "idle",
            "updated_at": record.completed_at,
            "sdk_session_id": sdk_session_id or self.session.sdk_session_id,
            # the session as this turn's lease found it: no other turn can have added to it since
            "usage": _add_usage(self.session.usage, outcome),
        }
        owner = None if self.ctx.queued(self.session.id) else self.ctx.release_lease_of
        self._ending = True
        self.ctx.events.end_turn(TurnEnd(record.id, self.session.id, ended, session, owner))  # one commit with `final`
        self.lease_released = owner is not None
        await self.ctx.events.flush()
        self.ended = True
        self._rearm()
        self._settled.set_result(record)
        # Counted and traced before anyone waiting on the settle runs (it wakes turns of the loop later), and
        # logged after: ``log_soon`` called before the settle ran ahead of the reply it is about (~0.5 ms a turn).
        duration = time.perf_counter() - self._began
        self.ctx.metrics.turn_ended(self.turn.kind, outcome.status, duration, outcome.usage, outcome.cost_usd)
        if self._span is not None:
            self._end_span(outcome)
        log_soon(
            log,
            "turn",
            session_id=self.session.id,
            turn_id=record.id,
            model=self.spec.model,
            status=record.status,
            stop_reason=record.stop_reason,
            duration_ms=record.duration_ms,
            cost_usd=record.cost_usd,
            **({"error": record.error} if record.error else {}),
            **record.usage,
        )
        return record

    def _end_span(self, outcome: TurnOutcome) -> None:
        assert self._span is not None
        usage = outcome.usage
        self._span.set(
            {
                "cc_api.turn.status": outcome.status,
                "gen_ai.usage.input_tokens": usage.get("input_tokens"),
                "gen_ai.usage.output_tokens": usage.get("output_tokens"),
                "cc_api.usage.cache_read_input_tokens": usage.get("cache_read_input_tokens"),
                "cc_api.usage.cache_creation_input_tokens": usage.get("cache_creation_input_tokens"),
                "cc_api.cost_usd": outcome.cost_usd,
                "cc_api.time_to_first_token_ms": None if self._first_output is None else self._first_output * 1000,
            }
        )
        error = outcome.error
        self._span.end(f"{error.get('type')}: {error.get('message')}" if error and outcome.status == "failed" else None)


def _resolution(request: PendingPermission, decision: Decision) -> dict[str, Any]:
    data: dict[str, Any] = {
        "request_id": request.request_id,
        "tool_name": request.tool_name,
        "behavior": "allow" if decision.allow else "deny",
    }
    if decision.message:
        data["message"] = decision.message
    if decision.updated_input is not None:
        data["updated_input"] = decision.updated_input
    if decision.for_session:
        data["scope"] = "session"
    return data


def _not_compacted(outcome: TurnOutcome) -> dict[str, Any]:
    """A compaction that ended without compacting: Claude Code says why in a message of its own, not an error."""
    said = " ".join(block["text"] for block in outcome.output if block.get("type") == "text").strip()
    return {"type": "compaction_failed", "message": said or "Claude Code ended the compaction without compacting"}


def _add_usage(total: dict[str, Any], outcome: TurnOutcome) -> dict[str, Any]:
    summed: dict[str, Any] = {key: int(total.get(key, 0)) + outcome.usage.get(key, 0) for key in USAGE_KEYS}
    summed["cost_usd"] = round(float(total.get("cost_usd", 0.0)) + (outcome.cost_usd or 0.0), 8)
    return summed
