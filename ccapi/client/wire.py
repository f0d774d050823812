"""What goes on the wire, the same for ``Client`` and ``AsyncClient``: request bodies and headers, error answers,
the SSE parser and tool results; the two clients differ only in their I/O."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from ccapi.client.shapes import CCAPIError, Decision, PermissionRequest, Session, ToolCall, ToolResult
from ccapi.events import Event


def headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def session_body(
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


def session_path(session_id: str, *tail: str) -> str:
    """``/api/sessions/<id>[/<tail>…]``, the id quoted as one path segment: an id with ``/``, ``?``, ``#`` or
    ``..`` in it names no other route or query (it is a 404 like any unknown id)."""
    if not session_id:
        raise ValueError("session_id must not be empty")
    return "/".join(("/api/sessions", _segment(session_id), *tail))


def _segment(value: str) -> str:
    # ``quote`` leaves ``.`` as it is, and httpx resolves a ``.`` or ``..`` segment (``/api/sessions/..`` is ``/api``)
    return "%2E" * len(value) if value in {".", ".."} else quote(value, safe="")


def interrupt_body(turn_id: str | None) -> dict[str, Any] | None:
    return {"turn_id": turn_id} if turn_id else None


def session_page(body: dict[str, Any]) -> tuple[list[Session], str | None]:
    return [Session.from_json(item) for item in body["data"]], body.get("next_after")


def page_params(limit: int, after: str | None) -> dict[str, str | int]:
    return {"limit": limit, "after": after} if after else {"limit": limit}


def results_body(results: Iterable[ToolResult], background: bool = False) -> dict[str, Any]:
    return {"results": [result.to_json() for result in results], **background_flag(background)}


def decisions_body(decisions: Iterable[Decision], background: bool = False) -> dict[str, Any]:
    return {"decisions": [decision.to_json() for decision in decisions], **background_flag(background)}


def turn_body(input: str | list[dict[str, Any]], background: bool, queue: bool) -> dict[str, Any]:
    return {"input": input, **background_flag(background), **({"queue": True} if queue else {})}


def background_flag(background: bool) -> dict[str, Any]:
    """``background``: the gateway answers at once (status ``running``); the events tell the rest."""
    return {"background": True} if background else {}


def decision(request: PermissionRequest, answer: object) -> Decision:
    """An ``approve`` callback's answer as a decision: a ``Decision`` as it is, anything else as allow or deny by its
    truth. An awaitable (from an ``async def`` approve given to ``Client``) is refused: it would read as "allow"."""
    if isinstance(answer, Decision):
        return answer
    return Decision(request.request_id, bool(not_awaitable(answer, "approve")))


def not_awaitable(value: Any, what: str) -> Any:
    """``value``, unless it is awaitable, which ``Client`` cannot await: a ``TypeError`` then (a coroutine is closed
    first, without the "never awaited" warning)."""
    if not inspect.isawaitable(value):
        return value
    if inspect.iscoroutine(value):
        value.close()
    raise TypeError(f"{what} returned an awaitable ({type(value).__name__}): Client cannot await it; use AsyncClient")


def refuse_coroutine_functions(approve: object, tools: Mapping[str, object]) -> None:
    """``Client.run_tools`` refuses ``async def`` callbacks before it sends anything (see ``not_awaitable``)."""
    named = {"approve": approve} | {f"tool {name!r}": tool for name, tool in tools.items()}
    for what, function in named.items():
        if inspect.iscoroutinefunction(function):
            raise TypeError(f"{what} is a coroutine function: Client cannot await it; use AsyncClient")


WAITING = ("requires_action", "requires_approval")


def idempotency(key: str | None) -> dict[str, str]:
    """The ``Idempotency-Key`` header; a key must be 1 to 255 printable ASCII characters (a header carries no
    other)."""
    if key is None:
        return {}
    if not (1 <= len(key) <= 255 and key.isascii() and key.isprintable()):
        raise ValueError(f"idempotency_key must be 1 to 255 printable ASCII characters, got {key[:40]!r}")
    return {"Idempotency-Key": key}


def events_params(after: int, limit: int, types: Iterable[str] | None) -> dict[str, str | int]:
    """``types``: only events of these types (their own seqs; an unknown name is a 400)."""
    params: dict[str, str | int] = {"after": after, "limit": limit}
    if types is not None:
        params["types"] = ",".join([types] if isinstance(types, str) else types)
    return params


def checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        error = _envelope(response)
        if error is None:
            raise CCAPIError(response.status_code, "http_error", response.text[:500])
        raise CCAPIError(
            response.status_code, error.get("type", "error"), error.get("message", ""), error.get("details")
        )
    return response.json()


def _envelope(response: httpx.Response) -> dict[str, Any] | None:
    """The gateway's error envelope; ``None`` for another server's answer (a proxy's, another app's on the port),
    which is often JSON too, as ``{"error": "Not Found"}``."""
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


class SSEParser:
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


class Follow:
    """Where a followed event stream stands between its connections: the last seq seen (the next connection's
    ``Last-Event-ID``), and how many connections in a row ended without an event.

    A connection that ends, dropped (``RESUMABLE``) or ended by the gateway (it cut off a reader that fell behind,
    it is stopping, the session was deleted), is followed by another after ``delay`` seconds; once ``retries`` in a
    row brought no event, the stream raises instead. A session deleted is the next connection's 404."""

    def __init__(self, after: int, retries: int, delay: float) -> None:
        self.last, self.retries, self.base_delay, self.failures = after, retries, delay, 0

    def headers(self) -> dict[str, str]:
        return {"Accept": "text/event-stream", "Last-Event-ID": str(self.last)}

    def seen(self, event: Event) -> None:
        self.last, self.failures = event.seq, 0

    def ended(self, error: BaseException | None = None) -> None:
        """A connection ended, with ``error`` or (``None``) as the gateway ended it; raises past the retries."""
        self.failures += 1
        if self.failures <= self.retries:
            return
        if error is not None:
            raise error
        raise CCAPIError(
            0, "stream_ended", f"the gateway ended the event stream {self.failures} times in a row without an event"
        )

    @property
    def delay(self) -> float:
        return self.base_delay * self.failures


def tool_result(call: ToolCall, outcome: Any, error: BaseException | None) -> ToolResult:
    """A callable's return value as a tool result: strings as they are, anything else as
    JSON; an exception becomes an error result Claude can read."""
    if error is not None:
        return ToolResult(call.tool_call_id, f"{type(error).__name__}: {error}", is_error=True)
    content = outcome if isinstance(outcome, str) else orjson.dumps(outcome, default=str).decode()
    return ToolResult(call.tool_call_id, content)


def unknown_tool(call: ToolCall) -> ToolResult:
    return ToolResult(call.tool_call_id, f"no tool named {call.name!r} is available", is_error=True)


RESUMABLE = (httpx.TransportError,)
