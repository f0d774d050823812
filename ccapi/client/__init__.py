"""A small typed Python client for CC API's native API, sync (``Client``) and async
(``AsyncClient``), on httpx.

Sessions, turns, tool results and the event log, plus the two things every client
otherwise writes itself: an event stream that reconnects with ``Last-Event-ID`` whenever
its connection ends, dropped or ended by the gateway (no event lost, none repeated), and a
tool loop that answers client tool calls with Python callables until the turn completes::

    from ccapi.client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as cc:
        session = cc.create_session(tools=[{"name": "add", "input_schema": {"type": "object"}}])
        turn = cc.run_tools(session.id, "What is 2 + 3?", {"add": lambda a, b: a + b})
        print(turn.text)

A webhook receiver checks a delivery with ``verify_webhook(secret, headers, body)``, which
returns the event or raises ``WebhookVerificationError``.

The request building and response parsing are shared (``wire``); only the I/O differs
between the two clients. The shapes they return and take are ``shapes``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

import httpx

from ccapi.client import wire
from ccapi.client.shapes import (
    Approver,
    AsyncApprover,
    CCAPIError,
    Decision,
    PermissionRequest,
    Session,
    ToolCall,
    ToolResult,
    Turn,
)
from ccapi.events import Event
from ccapi.webhooks.signing import WebhookVerificationError, verify_webhook

__all__ = [
    "AsyncClient",
    "CCAPIError",
    "Client",
    "Decision",
    "Event",
    "PermissionRequest",
    "Session",
    "ToolCall",
    "ToolResult",
    "Turn",
    "WebhookVerificationError",
    "verify_webhook",
]

DEFAULT_URL = "http://127.0.0.1:8000"
#: A reply may wait for a whole turn (600 s without a byte); a connection is made in seconds or not at all: a gateway
#: that takes none (a firewall dropping it, a wedged host) is a ``httpx.ConnectTimeout`` after 5 s, as in httpx.
DEFAULT_TIMEOUT = httpx.Timeout(600, connect=5)
#: Reconnections of one event stream in a row that bring no event before it raises (a connection that ends, dropped
#: or ended by the gateway, is followed by another ``RETRY_DELAY`` s times the count so far later).
STREAM_RETRIES = 5
RETRY_DELAY = 0.2

Tool = Callable[..., Any]


# -- sync ---------------------------------------------------------------------------------
class Client:
    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
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

    def create_session(
        self,
        *,
        model: str | None = None,
        system_prompt: str | None = None,
        tools: Iterable[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> Session:
        body = wire.session_body(model, system_prompt, tools, metadata, extra)
        return Session.from_json(wire.checked(self._http.post("/api/sessions", json=body)))

    def get_session(self, session_id: str) -> Session:
        return Session.from_json(wire.checked(self._http.get(wire.session_path(session_id))))

    def list_sessions(self, *, limit: int = 20, after: str | None = None) -> tuple[list[Session], str | None]:
        """A page of sessions, newest first, and the cursor of the next page (``None``: no more)."""
        return wire.session_page(wire.checked(self._http.get("/api/sessions", params=wire.page_params(limit, after))))

    def update_session(self, session_id: str, **changes: Any) -> Session:
        """``PATCH``: ``max_budget_usd``, ``model`` or ``permission_mode`` for the next turn."""
        return Session.from_json(wire.checked(self._http.patch(wire.session_path(session_id), json=changes)))

    def models(self) -> list[dict[str, Any]]:
        return list(wire.checked(self._http.get("/api/models"))["data"])

    def health(self) -> dict[str, Any]:
        """``GET /healthz``; raises ``httpx.TransportError`` when nothing answers at the URL."""
        return dict(wire.checked(self._http.get("/healthz")))

    def delete_session(self, session_id: str) -> None:
        wire.checked(self._http.delete(wire.session_path(session_id)))

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
        once, ``running``, with ``background``). With ``queue``, input sent while a turn runs
        waits behind it instead of a 409."""
        return Turn.from_json(
            wire.checked(
                self._http.post(
                    wire.session_path(session_id, "turns"),
                    json=wire.turn_body(input, background, queue),
                    headers=wire.idempotency(idempotency_key),
                )
            )
        )

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
        return Turn.from_json(
            wire.checked(
                self._http.post(
                    wire.session_path(session_id, "tool-results"),
                    json=wire.results_body(results, background),
                    headers=wire.idempotency(idempotency_key),
                )
            )
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
        return Turn.from_json(
            wire.checked(
                self._http.post(
                    wire.session_path(session_id, "permissions"),
                    json=wire.decisions_body(decisions, background),
                    headers=wire.idempotency(idempotency_key),
                )
            )
        )

    def interrupt(self, session_id: str, turn_id: str | None = None) -> Turn:
        """Stop the running turn, or the one ``turn_id`` names (a queued one is withdrawn)."""
        return Turn.from_json(
            wire.checked(self._http.post(wire.session_path(session_id, "interrupt"), json=wire.interrupt_body(turn_id)))
        )

    def events(
        self, session_id: str, *, after: int = 0, limit: int = 100, types: Iterable[str] | None = None
    ) -> list[Event]:
        """A page of the session's event log: up to ``limit`` events after ``after`` (only those of ``types``, when
        given). A page shorter than ``limit`` is the last for now; the next starts after the last event's seq."""
        params = wire.events_params(after, limit, types)
        body = wire.checked(self._http.get(wire.session_path(session_id, "events"), params=params))
        return [Event.from_dict(event) for event in body["data"]]

    def stream_events(
        self, session_id: str, *, after: int = 0, until: Callable[[Event], bool] | None = None
    ) -> Iterator[Event]:
        """The session's events after ``after``, live, until ``until`` says an event was the
        last (without ``until``, until you stop iterating). Every event comes once, in order: a
        connection that ends, dropped or ended by the gateway (it cuts off a reader that falls
        too far behind, and ends its streams when it stops), is resumed from the last event seen
        (``Last-Event-ID``). It raises ``CCAPIError`` 404 once the session is deleted, and the
        last error once ``STREAM_RETRIES`` connections in a row brought no event (waiting
        ``RETRY_DELAY`` s longer before each: about 3 s of a gateway that does not answer).

        To follow a turn to its end, stop on ``lambda e: e.ends_turn``: true for
        ``turn.completed``, ``turn.failed``, ``turn.interrupted`` and a pause that needs an
        answer. Waiting for ``turn.completed`` alone would wait forever on a failed turn."""
        follow = wire.Follow(after, STREAM_RETRIES, RETRY_DELAY)
        while True:
            parser = wire.SSEParser()
            try:
                with self._http.stream(
                    "GET", wire.session_path(session_id, "events", "stream"), headers=follow.headers()
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        wire.checked(response)
                    for line in response.iter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        follow.seen(event)
                        yield event
                        if until is not None and until(event):
                            return
                follow.ended()  # by the gateway: a cut-off, a restart or a deleted session (404 next)
            except wire.RESUMABLE as exc:
                follow.ended(exc)
            time.sleep(follow.delay)

    def run_tools(
        self,
        session_id: str,
        input: str | list[dict[str, Any]],
        tools: Mapping[str, Tool],
        *,
        approve: Approver | None = None,
        max_rounds: int = 32,
    ) -> Turn:
        """Send ``input`` and answer every client tool call with ``tools[name](**input)``,
        and every permission request with ``approve`` (without it, a turn waiting for
        approval is returned as it is), until the turn is no longer waiting. A failed or
        interrupted turn is returned at once, its ``error`` saying why. Coroutine functions
        (and awaitable answers) are refused with ``TypeError``: ``AsyncClient`` awaits them."""
        wire.refuse_coroutine_functions(approve, tools)
        turn = self.send(session_id, input)
        for _ in range(max_rounds):
            if turn.status not in wire.WAITING or (turn.status == "requires_approval" and approve is None):
                return turn
            if turn.status == "requires_approval":
                assert approve is not None
                turn = self.decide(session_id, [wire.decision(r, approve(r)) for r in turn.permission_requests])
                continue
            turn = self.submit_tool_results(session_id, [self._call(tools, call) for call in turn.tool_calls])
        raise CCAPIError(0, "tool_loop", f"the turn still waits for tools after {max_rounds} rounds")

    @staticmethod
    def _call(tools: Mapping[str, Tool], call: ToolCall) -> ToolResult:
        tool = tools.get(call.name)
        if tool is None:
            return wire.unknown_tool(call)
        try:
            outcome = tool(**call.input)
        except Exception as exc:  # noqa: BLE001 - the tool's failure is Claude's to read, not the loop's to raise
            return wire.tool_result(call, None, exc)
        return wire.tool_result(call, wire.not_awaitable(outcome, f"tool {call.name!r}"), None)


# -- async --------------------------------------------------------------------------------
class AsyncClient:
    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._http.headers.update(wire.headers(api_key))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def create_session(
        self,
        *,
        model: str | None = None,
        system_prompt: str | None = None,
        tools: Iterable[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> Session:
        body = wire.session_body(model, system_prompt, tools, metadata, extra)
        return Session.from_json(wire.checked(await self._http.post("/api/sessions", json=body)))

    async def get_session(self, session_id: str) -> Session:
        return Session.from_json(wire.checked(await self._http.get(wire.session_path(session_id))))

    async def list_sessions(self, *, limit: int = 20, after: str | None = None) -> tuple[list[Session], str | None]:
        return wire.session_page(
            wire.checked(await self._http.get("/api/sessions", params=wire.page_params(limit, after)))
        )

    async def update_session(self, session_id: str, **changes: Any) -> Session:
        return Session.from_json(wire.checked(await self._http.patch(wire.session_path(session_id), json=changes)))

    async def models(self) -> list[dict[str, Any]]:
        return list(wire.checked(await self._http.get("/api/models"))["data"])

    async def health(self) -> dict[str, Any]:
        """``GET /healthz``; raises ``httpx.TransportError`` when nothing answers at the URL."""
        return dict(wire.checked(await self._http.get("/healthz")))

    async def delete_session(self, session_id: str) -> None:
        wire.checked(await self._http.delete(wire.session_path(session_id)))

    async def send(
        self,
        session_id: str,
        input: str | list[dict[str, Any]],
        *,
        idempotency_key: str | None = None,
        background: bool = False,
        queue: bool = False,
    ) -> Turn:
        response = await self._http.post(
            wire.session_path(session_id, "turns"),
            json=wire.turn_body(input, background, queue),
            headers=wire.idempotency(idempotency_key),
        )
        return Turn.from_json(wire.checked(response))

    async def submit_tool_results(
        self,
        session_id: str,
        results: Iterable[ToolResult],
        *,
        idempotency_key: str | None = None,
        background: bool = False,
    ) -> Turn:
        response = await self._http.post(
            wire.session_path(session_id, "tool-results"),
            json=wire.results_body(results, background),
            headers=wire.idempotency(idempotency_key),
        )
        return Turn.from_json(wire.checked(response))

    async def decide(
        self,
        session_id: str,
        decisions: Iterable[Decision],
        *,
        idempotency_key: str | None = None,
        background: bool = False,
    ) -> Turn:
        response = await self._http.post(
            wire.session_path(session_id, "permissions"),
            json=wire.decisions_body(decisions, background),
            headers=wire.idempotency(idempotency_key),
        )
        return Turn.from_json(wire.checked(response))

    async def interrupt(self, session_id: str, turn_id: str | None = None) -> Turn:
        response = await self._http.post(wire.session_path(session_id, "interrupt"), json=wire.interrupt_body(turn_id))
        return Turn.from_json(wire.checked(response))

    async def events(
        self, session_id: str, *, after: int = 0, limit: int = 100, types: Iterable[str] | None = None
    ) -> list[Event]:
        params = wire.events_params(after, limit, types)
        response = await self._http.get(wire.session_path(session_id, "events"), params=params)
        return [Event.from_dict(event) for event in wire.checked(response)["data"]]

    async def stream_events(
        self, session_id: str, *, after: int = 0, until: Callable[[Event], bool] | None = None
    ) -> AsyncGenerator[Event, None]:
        """As ``Client.stream_events``."""
        follow = wire.Follow(after, STREAM_RETRIES, RETRY_DELAY)
        while True:
            parser = wire.SSEParser()
            try:
                async with self._http.stream(
                    "GET", wire.session_path(session_id, "events", "stream"), headers=follow.headers()
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        wire.checked(response)
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        follow.seen(event)
                        yield event
                        if until is not None and until(event):
                            return
                follow.ended()
            except wire.RESUMABLE as exc:
                follow.ended(exc)
            await asyncio.sleep(follow.delay)

    async def run_tools(
        self,
        session_id: str,
        input: str | list[dict[str, Any]],
        tools: Mapping[str, Tool | Callable[..., Awaitable[Any]]],
        *,
        approve: AsyncApprover | None = None,
        max_rounds: int = 32,
    ) -> Turn:
        """As ``Client.run_tools``; a tool and ``approve`` may be coroutine functions."""
        turn = await self.send(session_id, input)
        for _ in range(max_rounds):
            if turn.status not in wire.WAITING or (turn.status == "requires_approval" and approve is None):
                return turn
            if turn.status == "requires_approval":
                assert approve is not None
                turn = await self.decide(
                    session_id, [await self._decision(approve, r) for r in turn.permission_requests]
                )
                continue
            turn = await self.submit_tool_results(session_id, [await self._call(tools, c) for c in turn.tool_calls])
        raise CCAPIError(0, "tool_loop", f"the turn still waits for tools after {max_rounds} rounds")

    @staticmethod
    async def _decision(approve: AsyncApprover, request: PermissionRequest) -> Decision:
        answer = approve(request)
        return wire.decision(request, await answer if inspect.isawaitable(answer) else answer)

    @staticmethod
    async def _call(tools: Mapping[str, Callable[..., Any]], call: ToolCall) -> ToolResult:
        tool = tools.get(call.name)
        if tool is None:
            return wire.unknown_tool(call)
        try:
            outcome = tool(**call.input)
            if inspect.isawaitable(outcome):
                outcome = await outcome
            return wire.tool_result(call, outcome, None)
        except Exception as exc:  # noqa: BLE001 - as in Client._call
            return wire.tool_result(call, None, exc)
