"""What goes on the wire, the same for ``Client`` and ``AsyncClient``: their defaults, request bodies and headers,
error answers, the SSE parser and tool results; the two clients differ only in their I/O."""

from __future__ import annotations

import contextlib
import inspect
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import orjson

from ccapi.client.shapes import (
    CCAPIConnectionError,
    CCAPIError,
    Decision,
    PermissionRequest,
    Session,
    ToolCall,
    ToolResult,
    Turn,
    WebhookDelivery,
    connection_error,
)
from ccapi.events import Event

T = TypeVar("T")


DEFAULT_URL = "http://127.0.0.1:8000"
#: A reply may wait for a whole turn (600 s without a byte); a connection is made in seconds or not at all: a gateway
#: that takes none (a firewall dropping it, a wedged host) is a ``CCAPIConnectionError`` (``timeout``) after 5 s.
DEFAULT_TIMEOUT = httpx.Timeout(600, connect=5)
#: Reconnections of one event stream in a row that bring no event before it raises (a connection that ends, dropped
#: or ended by the gateway, is followed by another ``RETRY_DELAY`` s times the count so far later).
STREAM_RETRIES = 5
RETRY_DELAY = 0.2

Tool = Callable[..., Any]


def discarded(_: Any) -> None:
    """A success whose body says nothing more (``DELETE``)."""


def headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def session_body(
    model: str | None,
    system_prompt: str | None,
    tools: Iterable[Mapping[str, Any]] | None,
    metadata: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """The named fields left out when ``None``; ``extra`` as given, so ``webhook=None`` opts out of the gateway's
    default webhook and ``max_budget_usd=None`` of its default cap."""
    named = {
        "model": model,
        "system_prompt": system_prompt,
        "tools": list(tools) if tools is not None else None,
        "metadata": dict(metadata) if metadata is not None else None,
    }
    return {key: value for key, value in named.items() if value is not None} | dict(extra)


def session_path(session_id: str, *tail: str) -> str:
    """``/api/sessions/<id>[/<tail>…]``, the id quoted as one path segment: an id with ``/``, ``?``, ``#`` or
    ``..`` in it names no other route or query (it is a 404 like any unknown id)."""
    if not session_id:
        raise ValueError("session_id must not be empty")
    return "/".join(("/api/sessions", segment(session_id), *tail))


def turn_path(session_id: str, turn_id: str) -> str:
    """``/api/sessions/<id>/turns/<turn id>``; an empty turn id is refused as an empty session id is (it named
    ``/turns/``, a ``405``)."""
    if not turn_id:
        raise ValueError("turn_id must not be empty")
    return session_path(session_id, "turns", segment(turn_id))


def segment(value: str) -> str:
    """``value`` quoted as one path segment."""
    # ``quote`` leaves ``.`` as it is, and httpx resolves a ``.`` or ``..`` segment (``/api/sessions/..`` is ``/api``)
    return "%2E" * len(value) if value in {".", ".."} else quote(value, safe="")


def interrupt_body(turn_id: str | None) -> dict[str, Any] | None:
    return {"turn_id": turn_id} if turn_id else None


def session_page(body: dict[str, Any]) -> tuple[list[Session], str | None]:
    return [Session.from_json(item) for item in body["data"]], body.get("next_after")


def event_page(body: dict[str, Any]) -> list[Event]:
    return [Event.from_dict(event) for event in body["data"]]


def delivery_page(body: dict[str, Any]) -> list[WebhookDelivery]:
    return [WebhookDelivery.from_json(delivery) for delivery in body["data"]]


def data(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(body["data"])


def health(response: httpx.Response) -> dict[str, Any]:
    """``/healthz``'s answer, its 503 (``"status": "unavailable"``: the store is unreachable or refuses writes)
    included: that is the answer a readiness probe asks for, not an error."""
    if response.status_code == 503:
        with contextlib.suppress(ValueError):
            body = response.json()
            if isinstance(body, dict) and body.get("status") == "unavailable":
                return body
    return parsed(response, dict)


def page_params(limit: int, after: str | None, status: Iterable[str] = ()) -> dict[str, str | int]:
    params: dict[str, str | int] = {"limit": limit}
    if after:
        params["after"] = after
    if statuses := names(status):
        params["status"] = statuses
    return params


def names(values: Iterable[str]) -> str:
    """A filter's names as the query writes them, ``a,b``: one name given as a string is that name, not its
    letters (``status="idle"``, ``types="turn.completed"``)."""
    return ",".join([values] if isinstance(values, str) else values)


def results_body(results: Iterable[ToolResult], background: bool = False) -> dict[str, Any]:
    return {"results": [result.to_json() for result in results], **background_flag(background)}


def decisions_body(decisions: Iterable[Decision], background: bool = False) -> dict[str, Any]:
    return {"decisions": [decision.to_json() for decision in decisions], **background_flag(background)}


def turn_body(input: str | list[dict[str, Any]], background: bool, queue: bool) -> dict[str, Any]:
    return {"input": input, **background_flag(background), **({"queue": True} if queue else {})}


def streamed_turn_body(input: str | list[dict[str, Any]], queue: bool) -> dict[str, Any]:
    return turn_body(input, False, queue) | {"stream": True}


def fork_body(turn_id: str | None, after_seq: int | None) -> dict[str, Any]:
    """Where a fork ends: a turn's end, the last reply at or before an event, or (neither) all of it."""
    body: dict[str, Any] = {"turn_id": turn_id, "after_seq": after_seq}
    return {key: value for key, value in body.items() if value is not None}


def compact_body(instructions: str | None) -> dict[str, Any]:
    return {"instructions": instructions} if instructions else {}


def deliveries_params(after: int, before: int | None, limit: int, newest_first: bool) -> dict[str, str | int]:
    params: dict[str, str | int] = {"after": after, "limit": limit, "order": "desc" if newest_first else "asc"}
    if before is not None:
        params["before"] = before
    return params


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
#: How long ``run_tools`` waits for a turn's record to show the event it settled at (it is written just after).
RECORD_WAIT = 5.0


def maybe_moved_on(error: CCAPIError) -> bool:
    """Whether ``run_tools``'s answer may have been refused because the turn moved on without it: interrupted, its
    call timed out (``CC_API_TOOL_TIMEOUT``, ``CC_API_APPROVAL_TIMEOUT``), answered by another client. The gateway
    says ``409`` (nothing waits, or that call was answered) or, once the turn waits on other calls, ``400`` (an id
    it no longer waits on)."""
    return error.status in (400, 409) and error.type in ("conflict", "invalid_request")


def moved(before: Turn, now: Turn) -> bool:
    """Whether the turn as it stands (``now``) is past the pause ``before`` answered."""
    return now.status != before.status or now.last_event_seq != before.last_event_seq


def settles(turn_id: str) -> Callable[[Event], bool]:
    """``stream_events``'s stop at the turn's next end or pause."""
    return lambda event: event.turn_id == turn_id and event.ends_turn


def recorded(now: Turn, end: Event | None) -> bool:
    """Whether the turn's record shows the event it settled at (the record is written just after the event)."""
    return end is None or (now.status != "running" and (now.last_event_seq or 0) >= end.seq)


def idempotency(key: str | None) -> dict[str, str]:
    """The ``Idempotency-Key`` header; a key must be 1 to 255 printable ASCII characters (a header carries no
    other)."""
    if key is None:
        return {}
    if not (1 <= len(key) <= 255 and key.isascii() and key.isprintable()):
        raise ValueError(f"idempotency_key must be 1 to 255 printable ASCII characters, got {key[:40]!r}")
    return {"Idempotency-Key": key}


def new_idempotency_key() -> str:
    return f"ccapi-client-{uuid.uuid4()}"


def events_params(after: int, limit: int, types: Iterable[str] | None) -> dict[str, str | int]:
    return {"after": after, "limit": limit, **types_param(types)}


def types_param(types: Iterable[str] | None) -> dict[str, str]:
    """``types``: only events of these types (their own seqs; an unknown name is a 400)."""
    if types is None:
        return {}
    return {"types": names(types)}


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """httpx's transport errors (nothing listening, a dropped connection, a timeout) as ``CCAPIConnectionError``."""
    try:
        yield
    except CCAPIConnectionError:
        raise
    except httpx.TransportError as exc:
        raise connection_error(exc) from exc


def parsed(response: httpx.Response, parse: Callable[[Any], T]) -> T:
    """A success's body through ``parse``; an answer that is not the gateway's (not JSON, or JSON of another
    shape: another server on the port) is a ``CCAPIError`` of type ``invalid_response``, not a ``KeyError``."""
    body = checked(response)
    try:
        return parse(body)
    except (KeyError, TypeError, AttributeError) as exc:
        raise _invalid(response) from exc


def checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        error = _envelope(response)
        if error is None:
            raise CCAPIError(response.status_code, "http_error", response.text[:500])
        raise CCAPIError(
            response.status_code, error.get("type", "error"), error.get("message", ""), error.get("details")
        )
    try:
        return response.json()
    except ValueError as exc:
        raise _invalid(response) from exc


def _invalid(response: httpx.Response) -> CCAPIError:
    return CCAPIError(response.status_code, "invalid_response", f"not a CC API answer: {response.text[:500]}")


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
    it is stopping, the session was deleted), is followed by another after ``delay`` seconds; once
    ``STREAM_RETRIES`` in a row brought no event, the stream raises instead. A session deleted is the next
    connection's 404."""

    def __init__(self, after: int = 0) -> None:
        self.last, self.retries, self.base_delay, self.failures = after, STREAM_RETRIES, RETRY_DELAY, 0

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"Accept": "text/event-stream", "Last-Event-ID": str(self.last), **(extra or {})}

    def fresh(self, event: Event) -> bool:
        """Whether ``event`` is new (a replay begins again from its first event); counts it as seen."""
        if event.seq <= self.last:
            return False
        self.last, self.failures = event.seq, 0
        return True

    def ended(self, error: httpx.TransportError | None = None) -> None:
        """A connection ended, with ``error`` or (``None``) as the gateway ended it; raises past the retries."""
        self.failures += 1
        if self.failures <= self.retries:
            return
        if error is not None:
            raise connection_error(error) from error
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
    return ToolResult(call.tool_call_id, outcome if isinstance(outcome, str) else as_json(outcome))


def as_json(value: Any) -> str:
    """``value`` as JSON text, whatever JSON can say: keys that are not strings (``{1: "one"}``) as their text and
    integers past 64 bits (``math.factorial(25)``) whole, as ``json.dumps`` writes them (orjson refuses both);
    anything else JSON has no word for as its ``str``."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError: an integer past 64 bits
        return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def unknown_tool(call: ToolCall) -> ToolResult:
    return ToolResult(call.tool_call_id, f"no tool named {call.name!r} is available", is_error=True)


RESUMABLE = (httpx.TransportError,)


class TurnEnd:
    """``stream_turn``'s stop: the settling event (an end or a pause) of the turn its first event names."""

    def __init__(self) -> None:
        self.turn_id: str | None = None

    def __call__(self, event: Event) -> bool:
        self.turn_id = self.turn_id or event.turn_id
        return event.turn_id == self.turn_id and event.ends_turn
