"""Plain frozen records that cross the store boundary, so no peewee row leaks upward."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SessionRecord:
    id: str
    created_at: str
    updated_at: str
    model: str
    system_prompt: str | None
    tools: list[dict[str, Any]]
    metadata: dict[str, Any]
    max_turns: int | None
    cwd: str | None
    permission_mode: str | None
    status: str
    sdk_session_id: str | None
    turn_count: int
    last_seq: int
    usage: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] | None = None
    builtin_tools: str | list[str] = "all"
    """``"all"``, ``"none"`` or tool names; sessions from before the policy existed ran with all."""
    max_budget_usd: float | None = None
    webhook: dict[str, Any] | None = None
    """``{"url", "events"}``: where this session's events are delivered, signed."""
    mcp_servers: dict[str, Any] | None = None
    """The session's own MCP servers, as Claude Code takes them (``ccapi.sessions.mcp_servers``)."""
    output_schema: dict[str, Any] | None = None
    """The JSON schema its answers must match (a compat request's structured output format), if any."""


@dataclass(frozen=True)
class TurnRecord:
    id: str
    session_id: str
    number: int
    status: str
    input: Any
    created_at: str
    kind: str = "input"
    completed_at: str | None = None
    output: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    permission_requests: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    cost_usd: float | None = None
    duration_ms: int | None = None
    stop_reason: str | None = None
    error: dict[str, Any] | None = None
    last_event_seq: int | None = None
    structured_output: Any = None
    """The answer checked against the session's ``output_schema``, when it has one."""


@dataclass(frozen=True)
class TurnEnd:
    """The fields a turn's end sets on its own row and on its session's, written in the same
    transaction as its terminal event: one commit, and no reader sees the event without them."""

    turn_id: str
    session_id: str
    turn: dict[str, Any]
    session: dict[str, Any]
    release_lease_of: str | None = None
    """The host whose lease on the session this commit lets go, saving the trip that would follow it."""


@dataclass(frozen=True)
class TranscriptLines:
    """Lines to append to one Claude Code transcript (the SDK ``SessionStore`` mirror)."""

    project_key: str
    session_id: str
    subpath: str
    entries: list[dict[str, Any]]
