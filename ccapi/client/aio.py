"""The native API on asyncio: ``AsyncClient``, method for method ``Client`` (see ``ccapi.client``)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import httpx

from ccapi.client import wire
from ccapi.client.shapes import (
    AsyncApprover,
    CCAPIError,
    Compaction,
    Decision,
    PermissionRequest,
    Session,
    ToolCall,
    ToolResult,
    Turn,
    WebhookDelivery,
)
from ccapi.events import Event

T = TypeVar("T")


class AsyncClient:
    """``Client``'s methods, with the same arguments, to await (``stream_events`` and ``stream_turn``: to iterate
    with ``async for``)."""

    def __init__(
        self,
        base_url: str = wire.DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = wire.DEFAULT_TIMEOUT,
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

    async def _request(self, method: str, path: str, parse: Callable[[Any], T], **options: Any) -> T:
        with wire.translated():
            response = await self._http.request(method, path, **options)
        return wire.parsed(response, parse)

    async def create_session(
        self,
        *,
        model: str | None = None,
        system_prompt: str | None = None,
        tools: Iterable[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> Session:
        """As ``Client.create_session``."""
        body = wire.session_body(model, system_prompt, tools, metadata, extra)
        return await self._request("POST", "/api/sessions", Session.from_json, json=body)

    async def get_session(self, session_id: str) -> Session:
        return await self._request("GET", wire.session_path(session_id), Session.from_json)

    async def list_sessions(
        self, *, limit: int = 20, after: str | None = None, status: Iterable[str] = ()
    ) -> tuple[list[Session], str | None]:
        """As ``Client.list_sessions``."""
        params = wire.page_params(limit, after, status)
        return await self._request("GET", "/api/sessions", wire.session_page, params=params)

    async def update_session(self, session_id: str, **changes: Any) -> Session:
        """As ``Client.update_session``."""
        return await self._request("PATCH", wire.session_path(session_id), Session.from_json, json=changes)

    async def fork_session(
        self, session_id: str, *, turn_id: str | None = None, after_seq: int | None = None
    ) -> Session:
        """As ``Client.fork_session``."""
        path = wire.session_path(session_id, "fork")
        return await self._request("POST", path, Session.from_json, json=wire.fork_body(turn_id, after_seq))

    async def delete_session(self, session_id: str) -> None:
        await self._request("DELETE", wire.session_path(session_id), wire.discarded)

    async def models(self) -> list[dict[str, Any]]:
        return await self._request("GET", "/api/models", wire.data)

    async def limits(self) -> dict[str, Any]:
        """As ``Client.limits``."""
        return await self._request("GET", "/api/limits", dict)

    async def health(self) -> dict[str, Any]:
        """As ``Client.health``."""
        with wire.translated():
            response = await self._http.get("/healthz")
        return wire.health(response)

    async def send(
        self,
        session_id: str,
        input: str | list[dict[str, Any]],
        *,  # the API's own name
        idempotency_key: str | None = None,
        background: bool = False,
        queue: bool = False,
    ) -> Turn:
        """As ``Client.send``."""
        return await self._request(
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
    ) -> AsyncGenerator[Event, None]:
        """As ``Client.stream_turn``."""
        key = wire.idempotency(idempotency_key or wire.new_idempotency_key())
        body = wire.streamed_turn_body(input, queue)
        path = wire.session_path(session_id, "turns")
        return self._follow(wire.Follow(), wire.TurnEnd(), "POST", path, key, json=body)

    async def submit_tool_results(
        self,
        session_id: str,
        results: Iterable[ToolResult],
        *,
        idempotency_key: str | None = None,
        background: bool = False,
    ) -> Turn:
        """As ``Client.submit_tool_results``."""
        return await self._request(
            "POST",
            wire.session_path(session_id, "tool-results"),
            Turn.from_json,
            json=wire.results_body(results, background),
            headers=wire.idempotency(idempotency_key),
        )

    async def decide(
        self,
        session_id: str,
        decisions: Iterable[Decision],
        *,
        idempotency_key: str | None = None,
        background: bool = False,
    ) -> Turn:
        """As ``Client.decide``."""
        return await self._request(
            "POST",
            wire.session_path(session_id, "permissions"),
            Turn.from_json,
            json=wire.decisions_body(decisions, background),
            headers=wire.idempotency(idempotency_key),
        )

    async def interrupt(self, session_id: str, turn_id: str | None = None) -> Turn:
        """As ``Client.interrupt``."""
        path = wire.session_path(session_id, "interrupt")
        return await self._request("POST", path, Turn.from_json, json=wire.interrupt_body(turn_id))

    async def compact(self, session_id: str, instructions: str | None = None) -> Compaction:
        """As ``Client.compact``."""
        path = wire.session_path(session_id, "compact")
        return await self._request("POST", path, Compaction.from_json, json=wire.compact_body(instructions))

    async def get_turn(self, session_id: str, turn_id: str) -> Turn:
        """As ``Client.get_turn``."""
        return await self._request("GET", wire.turn_path(session_id, turn_id), Turn.from_json)

    async def events(
        self, session_id: str, *, after: int = 0, limit: int = 100, types: Iterable[str] | None = None
    ) -> list[Event]:
        """As ``Client.events``."""
        params = wire.events_params(after, limit, types)
        return await self._request("GET", wire.session_path(session_id, "events"), wire.event_page, params=params)

    def stream_events(
        self,
        session_id: str,
        *,
        after: int = 0,
        until: Callable[[Event], bool] | None = None,
        types: Iterable[str] | None = None,
    ) -> AsyncGenerator[Event, None]:
        """As ``Client.stream_events``."""
        path = wire.session_path(session_id, "events", "stream")
        follow = wire.Follow(after)
        return self._follow(follow, until, "GET", path, params=wire.types_param(types))

    async def _follow(
        self,
        follow: wire.Follow,
        until: Callable[[Event], bool] | None,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> AsyncGenerator[Event, None]:
        """An SSE answer's events, its request made again whenever its connection ends before ``until`` matched."""
        while True:
            parser = wire.SSEParser()
            try:
                async with self._http.stream(method, path, headers=follow.headers(headers), **options) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        wire.checked(response)
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is None or not follow.fresh(event):
                            continue
                        yield event
                        if until is not None and until(event):
                            return
                follow.ended()  # by the gateway: a cut-off, a restart or a deleted session (404 next)
            except wire.RESUMABLE as exc:
                follow.ended(exc)
            await asyncio.sleep(follow.delay)

    async def webhook_deliveries(
        self,
        session_id: str,
        *,
        after: int = 0,
        before: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[WebhookDelivery]:
        """As ``Client.webhook_deliveries``."""
        params = wire.deliveries_params(after, before, limit, newest_first)
        return await self._request("GET", wire.session_path(session_id, "webhooks"), wire.delivery_page, params=params)

    async def run_tools(
        self,
        session_id: str,
        input: str | list[dict[str, Any]],
        tools: Mapping[str, wire.Tool | Callable[..., Awaitable[Any]]],
        *,
        approve: AsyncApprover | None = None,
        max_rounds: int = 32,
    ) -> Turn:
        """As ``Client.run_tools``; a tool and ``approve`` may be coroutine functions, and the tools of parallel calls
        run concurrently (``asyncio.gather``; the requests of one approval pause are asked one at a time)."""
        turn = await self.send(session_id, input)
        for _ in range(max_rounds):
            if turn.status not in wire.WAITING or (turn.status == "requires_approval" and approve is None):
                return turn
            if turn.status == "requires_approval":
                assert approve is not None
                decisions = [await self._decision(approve, r) for r in turn.permission_requests]
                answer: Awaitable[Turn] = self.decide(session_id, decisions)
            else:  # parallel calls run concurrently, as Claude made them
                results = await asyncio.gather(*(self._run_tool(tools, call) for call in turn.tool_calls))
                answer = self.submit_tool_results(session_id, results)
            try:
                turn = await answer
            except CCAPIError as exc:
                turn = await self._moved_on(session_id, turn, exc)
        raise CCAPIError(0, "tool_loop", f"the turn still waits for tools after {max_rounds} rounds")

    async def _moved_on(self, session_id: str, paused: Turn, error: CCAPIError) -> Turn:
        """As ``Client._moved_on``."""
        if not wire.maybe_moved_on(error):
            raise error
        now = await self.get_turn(session_id, paused.turn_id)
        if not wire.moved(paused, now):
            raise error
        end = None
        if now.status == "running":
            after = paused.last_event_seq or 0
            async for event in self.stream_events(session_id, after=after, until=wire.settles(paused.turn_id)):
                end = event
        deadline = time.monotonic() + wire.RECORD_WAIT
        while not wire.recorded(now, end) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            now = await self.get_turn(session_id, paused.turn_id)
        return now

    @staticmethod
    async def _decision(approve: AsyncApprover, request: PermissionRequest) -> Decision:
        answer = approve(request)
        return wire.decision(request, await answer if inspect.isawaitable(answer) else answer)

    @staticmethod
    async def _run_tool(tools: Mapping[str, Callable[..., Any]], call: ToolCall) -> ToolResult:
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
