"""Records → JSON bodies. The API's response shapes live here and nowhere else."""

from __future__ import annotations

from typing import Any

from ccapi.store import SessionRecord, TurnRecord


def session_view(record: SessionRecord, *, live: bool, running_turn_id: str | None) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "session",
        "status": record.status,
        "model": record.model,
        "system_prompt": record.system_prompt,
        "tools": record.tools,
        "metadata": record.metadata,
        "max_turns": record.max_turns,
        "cwd": record.cwd,
        "permission_mode": record.permission_mode,
        "builtin_tools": record.builtin_tools,
        "max_budget_usd": record.max_budget_usd,
        "turn_count": record.turn_count,
        "last_event_seq": record.last_seq,
        "usage": record.usage,
        "live": live,
        "running_turn_id": running_turn_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def turn_view(record: TurnRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "turn_id": record.id,
        "object": "turn",
        "session_id": record.session_id,
        "number": record.number,
        "kind": record.kind,
        "status": record.status,
        "output": record.output,
        "tool_calls": record.tool_calls,
        "permission_requests": record.permission_requests,
        "usage": record.usage,
        "cost_usd": record.cost_usd,
        "duration_ms": record.duration_ms,
        "stop_reason": record.stop_reason,
        "last_event_seq": record.last_event_seq,
        "created_at": record.created_at,
        "completed_at": record.completed_at,
    }
    if record.error:
        body["error"] = record.error
    return body
