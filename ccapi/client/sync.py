"""The native API, blocking: ``Client`` (see ``ccapi.client``)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Any, TypeVar

import httpx

from ccapi.client import wire
from ccapi.client.shapes import (
    Approver,
    CCAPIError,
    Compaction,
    Decision,
    Session,
    ToolCall,
    ToolResult,
    Turn,
    WebhookDelivery,
)
from ccapi.events import Event

T = TypeVar("T")


class Client:
    """The native API, blocking. Each method is one request (``stream_events``, ``stream_turn`` and ``run_tools``
    a few); no thread runs behind your back. Errors raise ``CCAPIError``: the gateway's answer, or, when none came,
    ``CCAPIConnectionError``."""

    def __init__(
        self,
        base_url: str = wire.DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = wire.DEFAULT_TIMEOUT,
        http: httpx.Client | None = None,
    ) -> None:
        self._http = http or httpx.Client(base_url=base_url, timeout=timeout)
        self._http.headers.update(wire.headers(api_key))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, parse: Callable[[Any], T], **options: Any) -> T:
        with wire.translated():
            response = self._http.request(method, path, **options)
        return wire.parsed(response, parse)

    def create_session(
        self,
        *,
        model: str | None = None,
        system_prompt: str | None = None,
        tools: Iterable[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> Session:
        """``extra``: any other field of ``POST /api/sessions`` (``builtin_tools``, ``permission_mode``,
        ``output_schema``, ``webhook``, ...), sent as given: ``webhook=None`` opts out of the gateway's default."""
        body = wire.session_body(model, system_prompt, tools, metadata, extra)
        return self._request("POST", "/api/sessions", Session.from_json, json=body)

    def get_session(self, session_id: str) -> Session:
        return self._request("GET", wire.session_path(session_id), Session.from_json)

    def list_sessions(
        self, *, limit: int = 20, after: str | None = None, status: Iterable[str] = ()
    ) -> tuple[list[Session], str | None]:
        """A page of sessions, newest first (only those in one of ``status``, if given: ``["requires_approval"]``),
        and the cursor of the next page (``None``: no more)."""
        params = wire.page_params(limit, after, status)
        return self._request("GET", "/api/sessions", wire.session_page, params=params)

    def update_session(self, session_id: str, **changes: Any) -> Session:
        """``PATCH``: ``max_budget_usd``, ``model``, ``permission_mode``, ``system_prompt`` or ``output_schema`` for
        the next turn (``None`` clears the cap, the prompt or the schema)."""
        return self._request("PATCH", wire.session_path(session_id), Session.from_json, json=changes)

    def fork_session(self, session_id: str, *, turn_id: str | None = None, after_seq: int | None = None) -> Session:
        """A new session holding this one's conversation up to the end of ``turn_id``, or the last reply at or
        before event ``after_seq``, by default all of it."""
        path = wire.session_path(session_id, "fork")
        return self._request("POST", path, Session.from_json, json=wire.fork_body(turn_id, after_seq))

    def delete_session(self, session_id: str) -> None:
        self._request("DELETE", wire.session_path(session_id), wire.discarded)

    def models(self) -> list[dict[str, Any]]:
        return self._request("GET", "/api/models", wire.data)

    def limits(self) -> dict[str, Any]:
        """``GET /api/limits``: the account kind and, on a subscription, its usage windows."""
        return self._request("GET", "/api/limits", dict)

    def health(self) -> dict[str, Any]:
        """``GET /healthz``, also when it says ``"status": "unavailable"`` (its 503); ``CCAPIConnectionError`` when
        nothing answers at the URL."""
        with wire.translated():
            response = self._http.get("/healthz")
        return wire.health(response)

    def send(
        self,
        session_id: str,
        input: str | list[dict[str, Any]],
        *,  # the API's own name
        idempotency_key: str | None = None,
        background: bool = False,
        queue: bool = False,
    ) -> Turn:
        """Send new input; returns the turn once it ends (``completed``, or ``failed`` /
        ``interrupted`` with ``error`` saying why) or pauses for tool results or approvals (at
        once, ``running`` or ``queued`` with its ``first_event_seq``, with ``background``). With
        ``queue``, input sent while a turn runs waits behind it instead of a 409."""
        return self._request(
            "POST",
            wire.session_path(session_id, "turns"),
            Turn.from_json,
            json=wire.turn_body(input, background, queue),
            headers=wire.idempotency(idempotency_key),
        )

    def stream_turn(
        self,
        session_id: str,
        input: str | list[dict[str, Any]],
        *,
        idempotency_key: str | None = None,
        queue: bool = False,
    ) -> Generator[Event, None, None]:
        """Send new input and yield the turn's events as they come (``"stream": true``), up to the one where it
        ends or pauses. A connection that ends before that is resumed by sending the same request again with its
        ``Idempotency-Key`` (one is made up when none is given): the gateway replays the same events, and those
        already yielded are skipped, so none is lost or repeated, across a gateway restart too. A queued turn
        whose connection drops stays queued (it has a key): the retry rejoins it."""
        key = wire.idempotency(idempotency_key or wire.new_idempotency_key())
        body = wire.streamed_turn_body(input, queue)
        path = wire.session_path(session_id, "turns")
        return self._follow(wire.Follow(), wire.TurnEnd(), "POST", path, key, json=body)

    def submit_tool_results(
        self,
        session_id: str,
        results: Iterable[ToolResult],
        *,
        idempotency_key: str | None = None,
        background: bool = False,
    ) -> Turn:
        """Answer the client tool calls the turn waits on; returns the turn as it settles next (at once,
        ``running``, with ``background``)."""
        return self._request(
            "POST",
            wire.session_path(session_id, "tool-results"),
            Turn.from_json,
            json=wire.results_body(results, background),
            headers=wire.idempotency(idempotency_key),
        )

    def decide(
        self,
        session_id: str,
        decisions: Iterable[Decision],
        *,
        idempotency_key: str | None = None,
        background: bool = False,
    ) -> Turn:
        """Allow or deny the built-in tool calls the turn waits on; returns the turn as it settles next."""
        return self._request(
            "POST",
            wire.session_path(session_id, "permissions"),
            Turn.from_json,
            json=wire.decisions_body(decisions, background),
            headers=wire.idempotency(idempotency_key),
        )

    def interrupt(self, session_id: str, turn_id: str | None = None) -> Turn:
        """Stop the running turn, or the one ``turn_id`` names (a queued one is withdrawn)."""
        path = wire.session_path(session_id, "interrupt")
        return self._request("POST", path, Turn.from_json, json=wire.interrupt_body(turn_id))

    def compact(self, session_id: str, instructions: str | None = None) -> Compaction:
        """Claude Code's compaction now; returns the tokens before and after (or ``failed`` with the reason)."""
        path = wire.session_path(session_id, "compact")
        return self._request("POST", path, Compaction.from_json, json=wire.compact_body(instructions))

    def get_turn(self, session_id: str, turn_id: str) -> Turn:
        """One turn as it stands (``queued`` while it waits behind another)."""
        return self._request("GET", wire.turn_path(session_id, turn_id), Turn.from_json)

    def events(
        self, session_id: str, *, after: int = 0, limit: int = 100, types: Iterable[str] | None = None
    ) -> list[Event]:
        """A page of the session's event log: up to ``limit`` events after ``after`` (only those of ``types``, when
        given). A page shorter than ``limit`` is the last for now; the next starts after the last event's seq."""
        params = wire.events_params(after, limit, types)
        return self._request("GET", wire.session_path(session_id, "events"), wire.event_page, params=params)

    def stream_events(
        self,
        session_id: str,
        *,
        after: int = 0,
        until: Callable[[Event], bool] | None = None,
        types: Iterable[str] | None = None,
    ) -> Generator[Event, None, None]:
        """The session's events after ``after`` (only those of ``types``, when given), live, until
        ``until`` says an event was the last (without ``until``, until you stop iterating). Every
        event comes once, in order: a connection that ends, dropped or ended by the gateway (it
        cuts off a reader that falls too far behind, and ends its streams when it stops), is
        resumed from the last event seen (``Last-Event-ID``). It raises ``CCAPIError`` 404 once
        the session is deleted, and the last error once ``STREAM_RETRIES`` connections in a row
        brought no event (waiting ``RETRY_DELAY`` s longer before each: about 3 s of a gateway that
        does not answer).

        To follow a turn to its end, stop on ``lambda e: e.ends_turn``: true for
        ``turn.completed``, ``turn.failed``, ``turn.interrupted`` and a pause that needs an
        answer. Waiting for ``turn.completed`` alone would wait forever on a failed turn."""
        path = wire.session_path(session_id, "events", "stream")
        follow = wire.Follow(after)
        return self._follow(follow, until, "GET", path, params=wire.types_param(types))

    def _follow(
        self,
        follow: wire.Follow,
        until: Callable[[Event], bool] | None,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Generator[Event, None, None]:
        """An SSE answer's events, its request made again whenever its connection ends before ``until`` matched."""
        while True:
            parser = wire.SSEParser()
            try:
                with self._http.stream(method, path, headers=follow.headers(headers), **options) as response:
                    if response.status_code >= 400:
                        response.read()
                        wire.checked(response)
                    for line in response.iter_lines():
                        event = parser.feed(line)
                        if event is None or not follow.fresh(event):
                            continue
                        yield event
                        if until is not None and until(event):
                            return
                follow.ended()  # by the gateway: a cut-off, a restart or a deleted session (404 next)
            except wire.RESUMABLE as exc:
                follow.ended(exc)
            time.sleep(follow.delay)

    def webhook_deliveries(
        self,
        session_id: str,
        *,
        after: int = 0,
        before: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[WebhookDelivery]:
        """A page of the session's webhook deliveries, in event order after event ``after``, or newest first
        before event ``before``; page on with the last delivery's ``event_seq``."""
        params = wire.deliveries_params(after, before, limit, newest_first)
        return self._request("GET", wire.session_path(session_id, "webhooks"), wire.delivery_page, params=params)

    def run_tools(
        self,
        session_id: str,
        input: str | list[dict[str, Any]],
        tools: Mapping[str, wire.Tool],
        *,
        approve: Approver | None = None,
        max_rounds: int = 32,
    ) -> Turn:
        """Send ``input`` and answer every client tool call with ``tools[name](**input)``,
        and every permission request with ``approve`` (without it, a turn waiting for
        approval is returned as it is), until the turn is no longer waiting. A failed or
        interrupted turn is returned at once, its ``error`` saying why. A turn that moves on
        without an answer the loop was working out (interrupted meanwhile, a call that timed
        out, answered by another client: the gateway refuses the late answer) is followed from
        where it went: returned once it ends, or its next calls answered. Parallel calls run one
        after the other. Coroutine functions (and awaitable answers) are refused with
        ``TypeError``: ``AsyncClient`` awaits them."""
        wire.refuse_coroutine_functions(approve, tools)
        turn = self.send(session_id, input)
        for _ in range(max_rounds):
            if turn.status not in wire.WAITING or (turn.status == "requires_approval" and approve is None):
                return turn
            if turn.status == "requires_approval":
                assert approve is not None
                decisions = [wire.decision(r, approve(r)) for r in turn.permission_requests]
                answer: Callable[[], Turn] = functools.partial(self.decide, session_id, decisions)
            else:
                results = [self._run_tool(tools, call) for call in turn.tool_calls]
                answer = functools.partial(self.submit_tool_results, session_id, results)
            try:
                turn = answer()
            except CCAPIError as exc:
                turn = self._moved_on(session_id, turn, exc)
        raise CCAPIError(0, "tool_loop", f"the turn still waits for tools after {max_rounds} rounds")

    def _moved_on(self, session_id: str, paused: Turn, error: CCAPIError) -> Turn:
        """The turn past the pause ``paused``, when the gateway refused ``run_tools``'s answer because the turn moved
        on without it (interrupted, its call timed out, answered elsewhere): settled, or paused again. Any other
        refusal is ``error``, raised."""
        if not wire.maybe_moved_on(error):
            raise error
        now = self.get_turn(session_id, paused.turn_id)
        if not wire.moved(paused, now):
            raise error
        end = None
        if now.status == "running":
            after = paused.last_event_seq or 0
            for event in self.stream_events(session_id, after=after, until=wire.settles(paused.turn_id)):
                end = event
        deadline = time.monotonic() + wire.RECORD_WAIT
        while not wire.recorded(now, end) and time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.get_turn(session_id, paused.turn_id)
        return now

    @staticmethod
    def _run_tool(tools: Mapping[str, wire.Tool], call: ToolCall) -> ToolResult:
        tool = tools.get(call.name)
        if tool is None:
            return wire.unknown_tool(call)
        try:
            outcome = tool(**call.input)
        except Exception as exc:  # noqa: BLE001 - the tool's failure is Claude's to read, not the loop's to raise
            return wire.tool_result(call, None, exc)
        outcome = wire.not_awaitable(outcome, f"tool {call.name!r}")
        try:
            return wire.tool_result(call, outcome, None)
        except Exception as exc:  # noqa: BLE001 - an answer JSON cannot carry (a cycle): as AsyncClient, Claude's to read
            return wire.tool_result(call, None, exc)
