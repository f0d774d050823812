"""Compat requests onto native sessions: pick the session, feed it only what is new.

A request is routed, in order of precedence, to:

1. the session of ``previous_response_id`` (Responses): its input items are all new (an
   earlier response than its session's latest is continued in a branch at its turn's end);
2. a pinned session (``x-cc-session-id`` or ``metadata.cc_session_id``): the messages
   after its head, or — when the index does not know the history — the messages after
   the last assistant message;
   (a client's own conversation key — ``prompt_cache_key``, a ``session_id`` /
   ``x-session-affinity`` header, ``metadata.user_id`` — narrows steps 3 and 4 to the
   sessions that served that key or none)
3. the session whose head is the longest prefix of the conversation (see ``affinity``),
   whatever the request's options (of heads it holds equally, the one it replays most, then
   the line rather than a side branch whose pruned poll it skips): the history is the
   conversation; the system prompt, model, tools and output schema are options of each request. A new turn runs
   with the request's options (a changed prompt or model restarts Claude Code on the same transcript, so the
   model sees the prompt the client sent now; a changed tool set likewise). A request
   with another system prompt *and* other tools over the session's history is a side
   request (a memory flush, a heartbeat poll): it goes to a branch at the session's last
   turn end, with its own options, and the session keeps its line;
4. a new session branched from the session that shares most of the history, at the last
   turn end both share: the messages after that point are written into its transcript
   and only the newest input is sent;
5. a fresh session, created with the request's model, system prompt and tools, whose
   Claude Code transcript is the history, written as messages (see ``seed``): its first
   turn is only the newest input. Nothing is flattened into text but a tool result whose
   call the history lacks (logged as ``compat.flattened``).

What is new must be one user message (a new turn, queued behind the session's running turn
if there is one, though not behind a turn paused on client tool calls) or the answers to
every tool call the session waits for (the paused turn continues; the answers may name the
calls by ids the client rewrote). Anything else — an assistant message the session never wrote, results for
calls it is not waiting for — means the client's history is not the session's: an unpinned
request then starts a fresh session (the log says why at info level), an explicit one is
a 409. A session paused on tool calls that the request shows the client has gone past (or
retried from before) will never get its answers: it is interrupted at once and its Claude
Code stopped, freeing its live slot, instead of waiting out ``CC_API_TOOL_TIMEOUT``; so is
one whose opening a request with its options shares but which the request goes on without
(a client's compaction dropped its pending calls), and every line a seeded fresh session
(step 5, more than one message) replaces: a compression that rewrote even the opening, so
the lines of the request's conversation key — or, without one, of its model and tool set —
are the ones it left (``AffinityIndex.replaced``). An idle session left so stops its Claude
Code (it resumes if the client comes back); a session the request goes on from whole (the
line a side branch came from) is not left. One-off requests do not hold the pool either: a
side request's branch, and a fresh session for a single message without tools (a summary, a
title), stop their Claude Code once they have answered (``options.is_one_off``) — one that
paused on the client's tool calls, once its turn ends after their results; a later turn
resumes them. Everything runs through ``SessionService``, so the native event log records
it all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

import structlog

from ccapi.catalog import ModelCatalog
from ccapi.compat.affinity import (
    MAX_HEADS,
    AffinityIndex,
    Fork,
    Head,
    conversation_key,
    head_from_json,
    head_json,
    same_options,
    side,
)
from ccapi.compat.conversation import Conversation, Message
from ccapi.compat.errors import PreviousResponseNotFound
from ccapi.compat.exchange import CompatRequest, Exchange, ResponseRef
from ccapi.compat.matching import native_answers
from ccapi.compat.openai_responses import FORMAT as RESPONSES_FORMAT
from ccapi.compat.options import Basis, is_one_off, session_params
from ccapi.compat.reply import Reply, ReplyBuilder
from ccapi.compat.retries import Answering
from ccapi.compat.seed import seed
from ccapi.compat.stops import StopCut
from ccapi.errors import ApiError, Conflict, InvalidRequest, NotFound, Unavailable
from ccapi.events import TERMINAL_TURN_EVENTS, EventType
from ccapi.ids import isoformat, parse_time, utcnow
from ccapi.sessions import ForkPoint, NewSession, SessionService, TurnRequest, TurnRun
from ccapi.sessions.inputs import not_a_command
from ccapi.sessions.queue import QueuedTurn
from ccapi.store import SessionRecord

log = structlog.get_logger(__name__)

#: How far apart hosts' clocks may be: heads another host saved this long before the last
#: full load are read again on a miss (the ones already known are skipped).
_CLOCK_SKEW = 300.0

#: How long a released paused turn may take to end before its process is stopped.
_RELEASE_WAIT = 10.0

#: The events a compat reply ends at.
_SETTLES = [EventType.TURN_REQUIRES_ACTION.value, *(e.value for e in TERMINAL_TURN_EVENTS)]
#: The events a compat reply (a response) begins at.
_RESPONSE_STARTS = [
    EventType.TURN_STARTED.value,
    EventType.TURN_QUEUED.value,
    EventType.TOOL_RESULT.value,
    EventType.PERMISSION_RESOLVED.value,
]


def _options(settings: NewSession | SessionRecord) -> dict[str, Any]:
    """What a compat request sets of a session each time (``SessionService.change`` takes them as they are)."""
    return {
        "model": settings.model,
        "system_prompt": settings.system_prompt,
        "tools": list(settings.tools),
        "output_schema": settings.output_schema,
    }


@dataclass(frozen=True)
class _Target:
    session_id: str
    suffix: tuple[Message, ...]
    explicit: bool
    head: Head | None = None
    """The head the request matched (``None``: a pinned session the index does not know)."""
    marks: tuple[ForkPoint | None, ...] = ()
    """The marks of the request's messages before ``suffix`` (see ``affinity``)."""
    options: bool = False
    """The request's options (system prompt, model, tools, output schema) differ from the session's: a new
    turn runs with the request's (Claude Code restarts on the same transcript)."""
    branched: bool = False
    """The session was forked for this request (a ``previous_response_id`` that is no longer its session's latest
    response): routed as a fork, not a warm request."""


class CompatRouter:
    def __init__(self, service: SessionService, catalog: ModelCatalog) -> None:
        self._service = service
        self._catalog = catalog
        self._index = AffinityIndex()
        self._loaded = False
        self._synced: dict[str, str] = {}  # conversation key ("" for all) → when the store was last read
        self._collectors: set[asyncio.Task[None]] = set()
        self._one_offs: set[str] = set()  # one-off sessions paused on the client's tool calls
        self._answering = Answering()
        service.events.on_deleted(self._deleted)

    async def send(self, request: CompatRequest) -> Exchange:
        """The exchange that answers ``request`` (a retry of one still being answered joins it)."""
        conversation = request.conversation
        if not conversation.messages or conversation.messages[-1].role == "assistant":
            raise InvalidRequest("the conversation must end with a user message or tool results")
        return await self._answering.answer(request, lambda: self._answer(request))

    def leave(self, exchange: Exchange) -> None:
        """A request gave up on its exchange: once none waits, a turn still queued for it is withdrawn."""
        self._answering.leave(exchange, lambda: self._service.abandon_queued(exchange.session_id, exchange.first_seq))

    async def _answer(self, request: CompatRequest) -> Exchange:
        conversation = request.conversation
        if not self._loaded:
            self._loaded = True
            await self._load(None)
        target, passed, fork = await self._target(request)
        if target is None and fork is None and _seeded(conversation):  # the client rewrote its line
            passed += self._index.replaced(conversation, request.affinity_key)
        passed = tuple(dict.fromkeys(passed))
        await self._release(
            self._gone_past(passed, conversation.messages) if request.format == RESPONSES_FORMAT else passed
        )
        # a one-off paused on the client's tool calls is still one when their answers come
        one_off = is_one_off(conversation, target is None, fork) or (
            target is not None and target.session_id in self._one_offs
        )
        session_id, from_seq, basis = await self._feed(request, target, fork)
        exchange = Exchange(session_id, conversation.model, from_seq)
        task = asyncio.create_task(
            self._collect(request, exchange, from_seq, basis, one_off), name=f"compat-{session_id}"
        )
        self._collectors.add(task)
        task.add_done_callback(self._collectors.discard)
        task.add_done_callback(lambda _: exchange.settled_callback())
        return exchange

    async def _target(self, request: CompatRequest) -> tuple[_Target | None, tuple[str, ...], Fork | None]:
        """The session to feed (``None``: a new one, branched at the fork if there is one),
        and the sessions the request left behind."""
        messages = request.conversation.messages
        if request.previous is not None:
            session_id, branched = await self._continuing(request.previous)
            options = await self._options_differ(session_id, request)
            return _Target(session_id, messages, explicit=True, options=options, branched=branched), (), None
        if request.pinned_session is not None:
            await self._service.get(request.pinned_session)
            head = self._index.head_of(request.pinned_session)
            match = head.shared(messages) if head is not None else None
            if head is not None and match is not None and match.whole(head, messages):
                suffix, options = messages[match.replayed :], not same_options(head, request.conversation)
                target = _Target(head.session_id, suffix, True, head=head, marks=match.marks, options=options)
                return target, (), None
            options = await self._options_differ(request.pinned_session, request)
            suffix = _after_last_assistant(messages)
            return _Target(request.pinned_session, suffix, explicit=True, options=options), (), None
        lookup = self._index.lookup(request.conversation, request.affinity_key)
        stale = lookup.match is None or len(messages) > lookup.match.replayed + 1  # moved on elsewhere?
        if stale and await self._load(conversation_key(request.conversation)):
            lookup = self._index.lookup(request.conversation, request.affinity_key)
        if lookup.head is None or lookup.match is None:
            log.info(
                "compat_affinity_miss",
                format=request.format,
                messages=len(messages),
                reason=lookup.miss,
                fork_from=lookup.fork.source.session_id if lookup.fork else None,
            )
            return None, lookup.passed, lookup.fork
        head, match = lookup.head, lookup.match
        if side(head, request.conversation):
            keep = match.fork_at(messages)
            if keep:  # a branch answers it, the session keeps its line
                return None, lookup.passed, Fork(head, keep, match.marks[:keep])
        # the head stays findable while its session is fed: a concurrent request on the same
        # conversation (a heartbeat during a user turn) queues behind the running turn
        target = _Target(
            head.session_id,
            messages[match.replayed :],
            explicit=False,
            head=head,
            marks=match.marks,
            options=not same_options(head, request.conversation),
        )
        return target, lookup.passed, None

    async def _options_differ(self, session_id: str, request: CompatRequest) -> bool:
        """Whether the request's model, system prompt, tools or output schema are not the session's: for a
        session the request names (``previous_response_id``, a pinned session) rather than one its history matched.
        They are options of each request (OpenAI carries no instructions or tools over either)."""
        session = await self._service.get(session_id)
        return _options(session) != _options(self._params(request))

    async def _continuing(self, ref: ResponseRef) -> tuple[str, bool]:
        """The session that continues a response: its own while it is that session's latest
        response (or still running), else a fork at the end of its turn — OpenAI's branching (and whether it is
        that fork)."""
        service = self._service
        try:
            session = await service.get(ref.session_id)
        except NotFound:
            raise PreviousResponseNotFound(ref.id) from None
        if ref.seq > session.last_seq:
            raise PreviousResponseNotFound(ref.id)
        first = await service.events_page(session.id, ref.seq - 1, 1, None)
        if not first or first[0].seq != ref.seq or first[0].type not in _RESPONSE_STARTS or not first[0].turn_id:
            raise PreviousResponseNotFound(ref.id)
        turn_id, after = first[0].turn_id, ref.seq - 1
        while True:  # its settle: the first of its turn's (a queued turn's may follow others')
            settles = await service.events_page(session.id, after, 100, _SETTLES)
            settle = next((e for e in settles if e.turn_id == turn_id), None)
            if settle is not None or len(settles) < 100:
                break
            after = settles[-1].seq
        paused = settle is not None and settle.type == EventType.TURN_REQUIRES_ACTION
        # a turn queued behind a paused one changes nothing until that one ends: its answers still go to it
        later = [kind for kind in _RESPONSE_STARTS if not (paused and kind == EventType.TURN_QUEUED)]
        if settle is None or not await service.events_page(session.id, settle.seq, 1, later):
            return session.id, False
        if paused:
            raise Conflict(
                "previous_response_id names a response that called tools, and its conversation has gone on "
                "since: a conversation cannot be branched inside a tool call; continue from its latest response",
                {"session_id": session.id},
            )
        forked = await service.fork(session.id, turn_id=turn_id, compat=True)
        log.info("compat_previous_response_forked", session_id=forked.id, source=session.id, turn_id=turn_id)
        return forked.id, True

    async def _load(self, key: str | None) -> bool:
        """Take in the heads the store holds (of one conversation key, or all at start-up)
        that this process does not: other hosts' and earlier runs'. Sessions running here
        are this process's own business. Returns whether any head came in."""
        found, now = False, utcnow()
        synced = self._synced.get(key or "", self._synced.get(""))
        since = isoformat(parse_time(synced) - _CLOCK_SKEW) if synced else ""
        for data in reversed(await self._service.store.load_compat_heads(key, MAX_HEADS, since)):
            head = head_from_json(data)
            known = self._index.head_of(head.session_id)
            if self._service.running(head.session_id) is None and (known is None or known.consumed < head.consumed):
                self._index.advance(head)
                found = True
        if len(self._synced) > MAX_HEADS:
            self._synced = {"": self._synced[""]}
        self._synced[key or ""] = now
        return found

    def _deleted(self, session_id: str) -> None:
        """The session was deleted (by a client, or expired): its head goes with it, or every conversation that ever
        ended with its session deleted would stay in memory (and be compared with each request) until ``MAX_HEADS``
        of them pushed it out. The store's copy went with the session's rows."""
        self._index.forget(session_id)
        self._one_offs.discard(session_id)

    async def _forget(self, session_id: str) -> None:
        self._index.forget(session_id)
        await self._service.store.delete_compat_head(session_id)

    def _gone_past(self, session_ids: tuple[str, ...], messages: tuple[Message, ...]) -> tuple[str, ...]:
        """Of the sessions a Responses request left behind, those it went past. One paused on the client's tool
        calls is kept when the request only repeats the input that paused it (all of the request is in its
        history): another run of the same task must not cost the first the answers it still waits for, which come
        by ``previous_response_id`` (its calls time out if they never do). A Chat or Messages client that re-sends
        the request has given up on the calls (Hermes does): its paused session is let go, and its slot with it."""
        gone = []
        for session_id in session_ids:
            run, head = self._service.running(session_id), self._index.head_of(session_id)
            paused = run is not None and bool(run.desk.waiting()) and head is not None
            if not (paused and head is not None and head.shared(messages).replayed == len(messages)):
                gone.append(session_id)
        return tuple(gone)

    async def _release(self, session_ids: tuple[str, ...]) -> None:
        """Let go of sessions the client has gone on without: interrupt those paused on tool
        calls whose answers will never come, and stop the Claude Code of those and of idle ones (a line a
        client's compaction or regeneration left; if it does come back, it resumes). Their
        live slots come free before this request needs one."""
        for session_id in session_ids:
            run = self._service.running(session_id)
            if run is None:
                await self._service.park(session_id)
                continue
            if not run.desk.waiting():
                continue
            await self._forget(session_id)
            self._one_offs.discard(session_id)
            log.info("compat_paused_session_released", session_id=session_id)
            try:
                await self._service.interrupt(
                    session_id, "the client's conversation went on without this session's pending tool calls"
                )
            except (Conflict, NotFound):
                pass  # it ended meanwhile
            if run.task is not None:  # the turn lets go of the session just after it ends
                await asyncio.wait({run.task}, timeout=_RELEASE_WAIT)
            await self._service.park(session_id)  # nor does it keep its Claude Code

    async def _feed(self, request: CompatRequest, target: _Target | None, fork: Fork | None) -> tuple[str, int, Basis]:
        """Start the turn (or continue the paused one); returns the session, the first seq
        and what the session knew before."""
        conversation = request.conversation
        if target is not None:
            fed = await self._feed_session(request, target)
            if fed is not None:
                self._service.metrics.compat_routed(request.format, "fork" if target.branched else "warm")
                first_seq, queued = fed
                new_turn, head = target.suffix[0].role == "user", target.head
                if new_turn or head is None:
                    return (
                        target.session_id,
                        first_seq,
                        Basis.of(conversation, target.marks, target.suffix if queued else None),
                    )
                return target.session_id, first_seq, Basis.kept(head, target.marks)  # a paused turn goes on
            await self._release((target.session_id,))
        if fork is not None:
            try:
                session_id, first_seq, marks = await self._fresh(request, fork)
                self._service.metrics.compat_routed(request.format, "fork")
                return session_id, first_seq, Basis.of(conversation, fork.marks + marks)
            except Conflict as exc:  # the source transcript is gone: seed instead
                log.info("compat_fork_failed", source=fork.source.session_id, reason=exc.message)
        session_id, first_seq, marks = await self._fresh(request)
        self._service.metrics.compat_routed(request.format, "seeded" if _seeded(conversation) else "new")
        return session_id, first_seq, Basis.of(conversation, marks)

    async def _feed_session(self, request: CompatRequest, target: _Target) -> tuple[int, bool] | None:
        """The first seq of what was fed, and whether its turn queued behind a running one
        (not behind a turn paused on the client's own tool calls: a client that sends new
        input instead of their answers has gone past them)."""
        service, suffix = self._service, target.suffix
        run = service.running(target.session_id)
        new = suffix[0] if len(suffix) == 1 else None
        try:
            if new is not None and new.role == "user" and (run is None or not run.desk.waiting()):
                changes = None
                if target.options:  # applied as the turn starts: a turn withdrawn while it waits changes nothing
                    changes = _options(self._params(request))
                    log.info("compat_options_applied", session_id=target.session_id)
                started = await service.start_turn(
                    target.session_id,
                    TurnRequest(not_a_command(new.content), False, False, queue=True, changes=changes),
                )
                if isinstance(started, QueuedTurn):
                    return started.queued_seq, True
                assert isinstance(started, TurnRun)  # a Replay only answers a replayed Idempotency-Key
                return started.started_seq, False
            waiting = {call.tool_call_id for call in run.desk.waiting()} if run is not None else set()
            answers = native_answers(new.answers, waiting) if new is not None and new.role == "tool" else None
            if answers is not None:
                _, first_seq = await service.submit_tool_results(target.session_id, answers)
                return first_seq, False
        except NotFound:
            if target.explicit:
                raise
            if await service.store.get_session(target.session_id) is None:  # deleted by another host: its head too
                self._index.forget(target.session_id)
            return None
        why, busy = _mismatch(suffix, waiting)
        if target.explicit:  # the request named its session: what does not fit it is the request's fault but a busy one
            details = {"session_id": target.session_id, "waiting_for": sorted(waiting)}
            if busy:
                raise Conflict(why, details)
            raise InvalidRequest(why, details, param="input" if request.format == RESPONSES_FORMAT else "messages")
        log.info("compat_affinity_miss", session_id=target.session_id, reason=f"the history matches, but {why}")
        return None

    async def _fresh(
        self, request: CompatRequest, fork: Fork | None = None
    ) -> tuple[str, int, tuple[ForkPoint | None, ...]]:
        """A new session, branched at ``fork`` (if any), whose transcript holds the messages
        after it but the newest user input, which is its first turn (see ``seed``); returns
        it, the turn's first seq and the marks of the seeded messages."""
        conversation = request.conversation
        params = self._params(request)
        planted = seed(conversation.messages[fork.keep :] if fork else conversation.messages)
        run = await self._service.create_and_start(
            params,
            TurnRequest(not_a_command(planted.input), False, False),
            fork.point if fork else None,
            planted.history,
        )
        session = run.session
        if fork is not None:
            log.info("compat_forked", session_id=session.id, source=fork.source.session_id, kept=fork.keep)
        if planted.flattened:
            self._service.metrics.compat_flattened(request.format)
            log.info(
                "compat.flattened",
                session_id=session.id,
                reason="tool results whose calls are not in the history became text",
                count=len(planted.flattened),
            )
        marks = tuple(
            ForkPoint(session.id, session.sdk_session_id, point) if point and session.sdk_session_id else None
            for point in planted.points
        )
        return session.id, run.started_seq, marks

    def _params(self, request: CompatRequest) -> NewSession:
        settings = self._service.settings
        return session_params(request.conversation, request.format, self._catalog, settings, request.builtin_tools)

    async def _collect(
        self, request: CompatRequest, exchange: Exchange, from_seq: int, basis: Basis, one_off: bool
    ) -> None:
        service = self._service
        builder = ReplyBuilder(exchange.session_id, structured=request.conversation.output_schema is not None)
        cut = StopCut(request.stop)
        try:
            async for event in service.events.follow(
                exchange.session_id, from_seq - 1, service.settings.keepalive_seconds
            ):
                if event is None:
                    exchange.push(None)
                    continue
                for delta in (cut_delta for built in builder.feed(event) for cut_delta in cut.feed(built)):
                    if isinstance(delta, Reply):
                        await self._turn_released(delta)
                        await self._record(request, delta, basis)
                        if one_off and delta.status == "requires_action":
                            self._one_offs.add(delta.session_id)
                        elif one_off:
                            self._one_offs.discard(delta.session_id)
                            await self._service.park(delta.session_id)
                    exchange.push(delta)
                    if isinstance(delta, Reply):
                        return
            exchange.fail(Unavailable("the gateway is shutting down; retry shortly"))
        except Exception as exc:  # noqa: BLE001 - the reply must always settle, or a client would wait forever
            exchange.fail(exc if isinstance(exc, ApiError) else Unavailable(f"the reply could not be read: {exc}"))

    async def _turn_released(self, reply: Reply) -> None:
        """A turn's last event comes out just before the session lets go of the turn; the
        client's next request must find the session free, so the reply waits for that."""
        run = self._service.running(reply.session_id)
        if reply.status != "requires_action" and run is not None and run.turn.id == reply.turn_id and run.task:
            await asyncio.wait({run.task})

    async def _record(self, request: CompatRequest, reply: Reply, basis: Basis) -> None:
        """The session's new head: the request's conversation plus this reply, marked where
        it can be branched. A failed reply leaves none, so the client's retry starts clean
        rather than repeating input."""
        if not reply.ran:  # withdrawn from the queue: the session never saw it
            return
        if reply.failed or request.previous is not None:
            await self._forget(reply.session_id)
            return
        conversation = request.conversation
        mark = None
        if reply.uuid is not None:
            session = await self._service.store.get_session(reply.session_id)
            if session is not None and session.sdk_session_id:
                mark = ForkPoint(session.id, session.sdk_session_id, reply.uuid)
        if basis.queued is not None:
            await self._record_queued(reply, basis, mark)
            return
        count = len(conversation.messages)
        marks = (*basis.marks[:count], *[None] * (count - len(basis.marks)), mark)
        head = Head(
            reply.session_id,
            conversation_key(conversation),
            basis.system,
            (*conversation.messages, reply.message()),
            marks,
            request.affinity_key,
            basis.model,
            basis.tools,
            basis.output,
        )
        self._index.advance(head)
        await self._service.store.save_compat_head(head.session_id, head.key, head_json(head), utcnow())

    async def _record_queued(self, reply: Reply, basis: Basis, mark: ForkPoint | None) -> None:
        """A queued turn's head: the session's head when it ran (the turn it waited behind
        has recorded its own by then), its new messages and its reply, under its options."""
        prior, new = self._index.head_of(reply.session_id), basis.queued or ()
        if prior is None:
            return
        head = replace(
            prior,
            system=basis.system,
            messages=(*prior.messages, *new, reply.message()),
            marks=(*prior.marks, *[None] * len(new), mark),
            model=basis.model,
            tools=basis.tools,
            output=basis.output,
        )
        self._index.advance(head)
        await self._service.store.save_compat_head(head.session_id, head.key, head_json(head), utcnow())


def _seeded(conversation: Conversation) -> bool:
    """A request that a new session takes in as a history: more than its first user message."""
    return len(conversation.messages) > 1 or conversation.messages[-1].role != "user"


def _after_last_assistant(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    return messages[last + 1 :]


def _mismatch(suffix: tuple[Message, ...], waiting: set[str]) -> tuple[str, bool]:
    """Why ``suffix`` cannot go on the session, and whether only because a turn runs (a ``409``; the rest are the
    request's fault, a ``400``, as OpenAI answers input without the outputs its function calls wait for: SDKs retry
    a ``409``, to no end)."""
    if not suffix:
        return "nothing new to send: the conversation must end with a user message or tool results", False
    if waiting:
        return "the session waits for the results of its pending tool calls; send exactly those", False
    if any(m.role == "assistant" for m in suffix):
        return "the new messages include assistant turns this session never produced", False
    if len(suffix) == 1 and suffix[0].role == "tool":
        return "the session is not waiting for these tool results", False
    return "the session is busy with a turn; wait for it to finish", True
