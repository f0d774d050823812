"""A small typed Python client for CC API's native API, sync (``Client``) and async
(``AsyncClient``), on httpx.

Sessions, turns, tool results and the event log, plus the two things every client
otherwise writes itself: an event stream that reconnects with ``Last-Event-ID`` after a
dropped connection (no event lost, none repeated), and a tool loop that answers client
tool calls with Python callables until the turn completes::

    from ccapi.client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as cc:
        session = cc.create_session(tools=[{"name": "add", "input_schema": {"type": "object"}}])
        turn = cc.run_tools(session.id, "What is 2 + 3?", {"add": lambda a, b: a + b})
        print(turn.text)

A webhook receiver checks a delivery with ``verify_webhook(secret, headers, body)``, which
returns the event or raises ``WebhookVerificationError``.

The request building and response parsing are shared; only the I/O differs between the
two clients.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

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
#: Reconnection attempts for one event stream before the error is raised.
STREAM_RETRIES = 5
RETRY_DELAY = 0.2

Tool = Callable[..., Any]


class CCAPIError(Exception):
    """An error answer of the gateway: its status and the envelope's type, message and details."""

    def __init__(self, status: int, type_: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {type_}: {message}")
        self.status, self.type, self.message, self.details = status, type_, message, details or {}


@dataclass(frozen=True)
class Session:
    id: str
    status: str
    model: str
    tools: list[dict[str, Any]]
    metadata: dict[str, Any]
    turn_count: int
    last_event_seq: int
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Session:
        return cls(
            body["id"],
            body["status"],
            body["model"],
            body.get("tools", []),
            body.get("metadata") or {},
            body.get("turn_count", 0),
            body.get("last_event_seq", 0),
            body,
        )


@dataclass(frozen=True)
class ToolCall:
    tool_call_id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    tool_call_id: str
    content: str | list[dict[str, Any]]
    is_error: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"tool_call_id": self.tool_call_id, "content": self.content, "is_error": self.is_error}


@dataclass(frozen=True)
class PermissionRequest:
    """A built-in tool call that waits for approval (turn status ``requires_approval``)."""

    request_id: str
    tool_name: str
    input: dict[str, Any]
    tool_use_id: str | None = None


@dataclass(frozen=True)
class Decision:
    request_id: str
    allow: bool
    message: str | None = None
    updated_input: dict[str, Any] | None = None
    #: With ``allow``: Claude Code stops asking for this tool while the session's process lives.
    for_session: bool = False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"request_id": self.request_id, "behavior": "allow" if self.allow else "deny"}
        if self.message:
            body["message"] = self.message
        if self.updated_input is not None:
            body["updated_input"] = self.updated_input
        if self.for_session:
            body["scope"] = "session"
        return body


Approver = Callable[[PermissionRequest], "bool | Decision"]
"""Answers a permission request: True allows, False denies, a ``Decision`` says more."""


@dataclass(frozen=True)
class Turn:
    turn_id: str
    session_id: str
    status: str
    output: list[dict[str, Any]]
    tool_calls: list[ToolCall]
    usage: dict[str, Any]
    last_event_seq: int | None
    error: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False)
    permission_requests: list[PermissionRequest] = field(default_factory=list)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Turn:
        calls = [ToolCall(c["tool_call_id"], c["name"], c["input"]) for c in body.get("tool_calls") or []]
        requests = [
            PermissionRequest(r["request_id"], r["tool_name"], r["input"], r.get("tool_use_id"))
            for r in body.get("permission_requests") or []
        ]
        return cls(
            body["turn_id"],
            body["session_id"],
            body["status"],
            body.get("output") or [],
            calls,
            body.get("usage") or {},
            body.get("last_event_seq"),
            body.get("error"),
            body,
            requests,
        )

    @property
    def text(self) -> str:
        return "".join(block.get("text", "") for block in self.output if block.get("type") == "text")


# -- shared: requests, responses, SSE, tools ------------------------------------------------
def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _session_body(
    model: str | None,
    system_prompt: str | None,
    tools: Iterable[Mapping[str, Any]] | None,
    metadata: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    body = {
        "model": model,
        "system_prompt": system_prompt,
        "tools": list(tools) if tools is not None else None,
        "metadata": dict(metadata) if metadata is not None else None,
        **extra,
    }
    return {key: value for key, value in body.items() if value is not None}


def _results_body(results: Iterable[ToolResult]) -> dict[str, Any]:
    return {"results": [result.to_json() for result in results]}


def _decisions_body(decisions: Iterable[Decision]) -> dict[str, Any]:
    return {"decisions": [decision.to_json() for decision in decisions]}


def _decide(approve: Approver, request: PermissionRequest) -> Decision:
    answer = approve(request)
    if isinstance(answer, Decision):
        return answer
    return Decision(request.request_id, bool(answer))


WAITING = ("requires_action", "requires_approval")


def _idempotency(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} if key else {}


def _checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            raise CCAPIError(response.status_code, "http_error", response.text[:500]) from None
        raise CCAPIError(
            response.status_code, error.get("type", "error"), error.get("message", ""), error.get("details")
        )
    return response.json()


class _SSEParser:
    """Server-Sent Events lines → native events (comments and keep-alives skipped)."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        if line == "":
            data, self._data = self._data, []
            return Event.from_dict(orjson.loads("\n".join(data))) if data else None
        if line.startswith("data:"):
            self._data.append(line[5:].removeprefix(" "))
        return None


def _stream_headers(last_seq: int) -> dict[str, str]:
    return {"Accept": "text/event-stream", "Last-Event-ID": str(last_seq)}


def _tool_result(call: ToolCall, outcome: Any, error: BaseException | None) -> ToolResult:
    """A callable's return value as a tool result: strings as they are, anything else as
    JSON; an exception becomes an error result Claude can read."""
    if error is not None:
        return ToolResult(call.tool_call_id, f"{type(error).__name__}: {error}", is_error=True)
    content = outcome if isinstance(outcome, str) else orjson.dumps(outcome, default=str).decode()
    return ToolResult(call.tool_call_id, content)


def _unknown_tool(call: ToolCall) -> ToolResult:
    return ToolResult(call.tool_call_id, f"no tool named {call.name!r} is available", is_error=True)


_RESUMABLE = (httpx.TransportError,)


# -- sync ---------------------------------------------------------------------------------
class Client:
    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 600,
        http: httpx.Client | None = None,
    ) -> None:
        self._http = http or httpx.Client(base_url=base_url, timeout=timeout)
        self._http.headers.update(_headers(api_key))

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
        body = _session_body(model, system_prompt, tools, metadata, extra)
        return Session.from_json(_checked(self._http.post("/api/sessions", json=body)))

    def get_session(self, session_id: str) -> Session:
        return Session.from_json(_checked(self._http.get(f"/api/sessions/{session_id}")))

    def delete_session(self, session_id: str) -> None:
        _checked(self._http.delete(f"/api/sessions/{session_id}"))

    def send(
        self,
        session_id: str,
        input: str | list[dict[str, Any]],
        *,  # the API's own name
        idempotency_key: str | None = None,
    ) -> Turn:
        """Send new input; returns the turn once it ends (``completed``, or ``failed`` /
        ``interrupted`` with ``error`` saying why) or pauses for tool results or approvals."""
        return Turn.from_json(
            _checked(
                self._http.post(
                    f"/api/sessions/{session_id}/turns", json={"input": input}, headers=_idempotency(idempotency_key)
                )
            )
        )

    def submit_tool_results(
        self, session_id: str, results: Iterable[ToolResult], *, idempotency_key: str | None = None
    ) -> Turn:
        return Turn.from_json(
            _checked(
                self._http.post(
                    f"/api/sessions/{session_id}/tool-results",
                    json=_results_body(results),
                    headers=_idempotency(idempotency_key),
                )
            )
        )

    def decide(self, session_id: str, decisions: Iterable[Decision], *, idempotency_key: str | None = None) -> Turn:
        """Allow or deny the built-in tool calls the turn waits on; returns the turn as it settles next."""
        return Turn.from_json(
            _checked(
                self._http.post(
                    f"/api/sessions/{session_id}/permissions",
                    json=_decisions_body(decisions),
                    headers=_idempotency(idempotency_key),
                )
            )
        )

    def interrupt(self, session_id: str) -> Turn:
        return Turn.from_json(_checked(self._http.post(f"/api/sessions/{session_id}/interrupt")))

    def events(self, session_id: str, *, after: int = 0, limit: int = 100) -> list[Event]:
        body = _checked(self._http.get(f"/api/sessions/{session_id}/events", params={"after": after, "limit": limit}))
        return [Event.from_dict(event) for event in body["data"]]

    def stream_events(
        self, session_id: str, *, after: int = 0, until: Callable[[Event], bool] | None = None
    ) -> Iterator[Event]:
        """The session's events after ``after``, live, until ``until`` says an event was the
        last. A dropped connection is resumed from the last event seen (``Last-Event-ID``).

        To follow a turn to its end, stop on ``lambda e: e.ends_turn``: true for
        ``turn.completed``, ``turn.failed``, ``turn.interrupted`` and a pause that needs an
        answer. Waiting for ``turn.completed`` alone would wait forever on a failed turn."""
        last, failures = after, 0
        while True:
            parser = _SSEParser()
            try:
                with self._http.stream(
                    "GET", f"/api/sessions/{session_id}/events/stream", headers=_stream_headers(last)
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        _checked(response)
                    for line in response.iter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        last, failures = event.seq, 0
                        yield event
                        if until is not None and until(event):
                            return
                return  # the gateway ended the stream (it is stopping)
            except _RESUMABLE:
                failures += 1
                if failures > STREAM_RETRIES:
                    raise
                time.sleep(RETRY_DELAY * failures)

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
        interrupted turn is returned at once, its ``error`` saying why."""
        turn = self.send(session_id, input)
        for _ in range(max_rounds):
            if turn.status not in WAITING or (turn.status == "requires_approval" and approve is None):
                return turn
            if turn.status == "requires_approval":
                assert approve is not None
                turn = self.decide(session_id, [_decide(approve, r) for r in turn.permission_requests])
                continue
            turn = self.submit_tool_results(session_id, [self._call(tools, call) for call in turn.tool_calls])
        raise CCAPIError(0, "tool_loop", f"the turn still waits for tools after {max_rounds} rounds")

    @staticmethod
    def _call(tools: Mapping[str, Tool], call: ToolCall) -> ToolResult:
        tool = tools.get(call.name)
        if tool is None:
            return _unknown_tool(call)
        try:
            return _tool_result(call, tool(**call.input), None)
        except Exception as exc:  # noqa: BLE001 - the tool's failure is Claude's to read, not the loop's to raise
            return _tool_result(call, None, exc)


# -- async --------------------------------------------------------------------------------
class AsyncClient:
    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 600,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._http.headers.update(_headers(api_key))

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
        body = _session_body(model, system_prompt, tools, metadata, extra)
        return Session.from_json(_checked(await self._http.post("/api/sessions", json=body)))

    async def get_session(self, session_id: str) -> Session:
        return Session.from_json(_checked(await self._http.get(f"/api/sessions/{session_id}")))

    async def delete_session(self, session_id: str) -> None:
        _checked(await self._http.delete(f"/api/sessions/{session_id}"))

    async def send(
        self, session_id: str, input: str | list[dict[str, Any]], *, idempotency_key: str | None = None
    ) -> Turn:
        response = await self._http.post(
            f"/api/sessions/{session_id}/turns", json={"input": input}, headers=_idempotency(idempotency_key)
        )
        return Turn.from_json(_checked(response))

    async def submit_tool_results(
        self, session_id: str, results: Iterable[ToolResult], *, idempotency_key: str | None = None
    ) -> Turn:
        response = await self._http.post(
            f"/api/sessions/{session_id}/tool-results",
            json=_results_body(results),
            headers=_idempotency(idempotency_key),
        )
        return Turn.from_json(_checked(response))

    async def decide(
        self, session_id: str, decisions: Iterable[Decision], *, idempotency_key: str | None = None
    ) -> Turn:
        response = await self._http.post(
            f"/api/sessions/{session_id}/permissions",
            json=_decisions_body(decisions),
            headers=_idempotency(idempotency_key),
        )
        return Turn.from_json(_checked(response))

    async def interrupt(self, session_id: str) -> Turn:
        return Turn.from_json(_checked(await self._http.post(f"/api/sessions/{session_id}/interrupt")))

    async def events(self, session_id: str, *, after: int = 0, limit: int = 100) -> list[Event]:
        response = await self._http.get(f"/api/sessions/{session_id}/events", params={"after": after, "limit": limit})
        return [Event.from_dict(event) for event in _checked(response)["data"]]

    async def stream_events(
        self, session_id: str, *, after: int = 0, until: Callable[[Event], bool] | None = None
    ) -> AsyncIterator[Event]:
        """As ``Client.stream_events``."""
        last, failures = after, 0
        while True:
            parser = _SSEParser()
            try:
                async with self._http.stream(
                    "GET", f"/api/sessions/{session_id}/events/stream", headers=_stream_headers(last)
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        _checked(response)
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        last, failures = event.seq, 0
                        yield event
                        if until is not None and until(event):
                            return
                return
            except _RESUMABLE:
                failures += 1
                if failures > STREAM_RETRIES:
                    raise
                await asyncio.sleep(RETRY_DELAY * failures)

    async def run_tools(
        self,
        session_id: str,
        input: str | list[dict[str, Any]],
        tools: Mapping[str, Tool | Callable[..., Awaitable[Any]]],
        *,
        approve: Approver | None = None,
        max_rounds: int = 32,
    ) -> Turn:
        """As ``Client.run_tools``; a tool may be a coroutine function."""
        turn = await self.send(session_id, input)
        for _ in range(max_rounds):
            if turn.status not in WAITING or (turn.status == "requires_approval" and approve is None):
                return turn
            if turn.status == "requires_approval":
                assert approve is not None
                turn = await self.decide(session_id, [_decide(approve, r) for r in turn.permission_requests])
                continue
            turn = await self.submit_tool_results(session_id, [await self._call(tools, c) for c in turn.tool_calls])
        raise CCAPIError(0, "tool_loop", f"the turn still waits for tools after {max_rounds} rounds")

    @staticmethod
    async def _call(tools: Mapping[str, Callable[..., Any]], call: ToolCall) -> ToolResult:
        tool = tools.get(call.name)
        if tool is None:
            return _unknown_tool(call)
        try:
            outcome = tool(**call.input)
            if inspect.isawaitable(outcome):
                outcome = await outcome
            return _tool_result(call, outcome, None)
        except Exception as exc:  # noqa: BLE001 - as in Client._call
            return _tool_result(call, None, exc)
