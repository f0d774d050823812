"""The typed shapes ``ccapi.client`` returns and takes (sessions, turns, tool calls, permission requests and
decisions) and its error; import them from ``ccapi.client``."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


class CCAPIError(Exception):
    """An error answer of the gateway: its status and the envelope's type, message and details."""

    def __init__(self, status: int, type_: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {type_}: {message}")
        self.status, self.type, self.message, self.details = status, type_, message, details or {}

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by its fields (a process pool, a task queue, sends it back): ``args`` holds only the text."""
        return (type(self), (self.status, self.type, self.message, self.details), self.__dict__)


class CCAPIConnectionError(CCAPIError, httpx.TransportError):
    """No answer came: nothing listens at the URL, the connection dropped, or a timeout passed (``type``
    ``connection_error`` or ``timeout``, ``status`` 0, httpx's own error as ``__cause__``). Raised as
    ``connection_error(…)`` makes it: also an instance of httpx's own class (``httpx.ConnectError``, ...), under
    its name, which this client raised before, so code that catches those still does."""

    def __init__(self, error: httpx.TransportError) -> None:
        kind = "timeout" if isinstance(error, httpx.TimeoutException) else "connection_error"
        super().__init__(0, kind, f"{type(error).__name__}: {error}")
        # httpx's own handlers read ``exc.request`` (its docs' ``exc.request.url``): the request that got no answer
        with contextlib.suppress(RuntimeError):
            self.request = error.request
        self._error = error

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as ``connection_error`` makes it (its class is made at run time), from httpx's error without its
        request, whose headers hold the API key."""
        return (connection_error, (type(self._error)(*self._error.args),))


def connection_error(error: httpx.TransportError) -> CCAPIConnectionError:
    """``error`` as a ``CCAPIConnectionError`` that is also of ``error``'s own httpx class."""
    kind = type(error)
    if kind not in _CONNECTION_ERRORS:
        _CONNECTION_ERRORS[kind] = type(kind.__name__, (CCAPIConnectionError, kind), {"__module__": __name__})
    return _CONNECTION_ERRORS[kind](error)


_CONNECTION_ERRORS: dict[type[httpx.TransportError], type[CCAPIConnectionError]] = {}


@dataclass(frozen=True)
class Session:
    """A session as the gateway shows it; ``raw`` holds every field of the answer."""

    id: str
    status: str
    model: str
    tools: list[dict[str, Any]]
    metadata: dict[str, Any]
    turn_count: int
    last_event_seq: int
    raw: dict[str, Any] = field(repr=False)
    system_prompt: str | None = None
    permission_mode: str | None = None
    builtin_tools: str | list[str] | None = None
    max_budget_usd: float | None = None
    output_schema: dict[str, Any] | None = None
    #: Tokens and cost so far; ``context``: the context window's use (``get_session`` only, measured once a turn).
    usage: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] | None = None
    webhook: dict[str, Any] | None = None
    live: bool = False
    running_turn_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

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
            system_prompt=body.get("system_prompt"),
            permission_mode=body.get("permission_mode"),
            builtin_tools=body.get("builtin_tools"),
            max_budget_usd=body.get("max_budget_usd"),
            output_schema=body.get("output_schema"),
            usage=body.get("usage") or {},
            context=body.get("context"),
            webhook=body.get("webhook"),
            live=body.get("live", False),
            running_turn_id=body.get("running_turn_id"),
            created_at=body.get("created_at"),
            updated_at=body.get("updated_at"),
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

AsyncApprover = Callable[[PermissionRequest], "bool | Decision | Awaitable[bool | Decision]"]
"""``AsyncClient``'s approver: an ``Approver``, or a coroutine function answering the same."""


@dataclass(frozen=True)
class Turn:
    """A turn as it stands: settled (``completed``, ``failed``, ``interrupted``, with ``error`` saying why), waiting
    (``requires_action``, ``requires_approval``), or, answered at once (``background``), ``running`` or ``queued``
    with ``first_event_seq`` (follow it with ``stream_events(after=first_event_seq - 1)``)."""

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
    #: The model's (``end_turn``, ``max_tokens``, ``tool_use``, ...), once the turn ended.
    stop_reason: str | None = None
    cost_usd: float | None = None
    duration_ms: int | None = None
    first_event_seq: int | None = None

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
            stop_reason=body.get("stop_reason"),
            cost_usd=body.get("cost_usd"),
            duration_ms=body.get("duration_ms"),
            first_event_seq=body.get("first_event_seq"),
        )

    @property
    def text(self) -> str:
        return "".join(block.get("text", "") for block in self.output if block.get("type") == "text")

    @property
    def structured_output(self) -> Any:
        """The answer checked against the session's ``output_schema`` (``None`` without one)."""
        return self.raw.get("structured_output")


@dataclass(frozen=True)
class Compaction:
    """What ``compact`` did: ``status`` ``completed`` with the tokens before and after, or ``failed`` with
    ``error`` (Claude Code's reason)."""

    session_id: str
    turn_id: str
    status: str
    trigger: str | None
    pre_tokens: int | None
    post_tokens: int | None
    last_event_seq: int | None
    error: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Compaction:
        return cls(
            body["session_id"],
            body["turn_id"],
            body["status"],
            body.get("trigger"),
            body.get("pre_tokens"),
            body.get("post_tokens"),
            body.get("last_event_seq"),
            body.get("error"),
            body,
        )


@dataclass(frozen=True)
class WebhookDelivery:
    """One webhook delivery of a session's event: ``state`` ``pending``, ``delivered`` or ``failed``."""

    id: str
    event_seq: int
    event_type: str
    url: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> WebhookDelivery:
        return cls(
            body["id"],
            body["event_seq"],
            body["event_type"],
            body["url"],
            body["state"],
            body.get("attempts", 0),
            body.get("last_status"),
            body.get("last_error"),
            body,
        )
