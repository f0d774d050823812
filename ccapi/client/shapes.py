"""The typed shapes ``ccapi.client`` returns and takes (sessions, turns, tool calls, permission requests and
decisions) and its error; import them from ``ccapi.client``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


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

AsyncApprover = Callable[[PermissionRequest], "bool | Decision | Awaitable[bool | Decision]"]
"""``AsyncClient``'s approver: an ``Approver``, or a coroutine function answering the same."""


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

    @property
    def structured_output(self) -> Any:
        """The answer checked against the session's ``output_schema`` (``None`` without one)."""
        return self.raw.get("structured_output")
