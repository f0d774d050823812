"""Records → JSON bodies, each of its declared shape (``ccapi.api.replies``). A record keeps some
fields looser than the reply states them (a status as ``str``, stored tool calls as plain dicts):
the casts below say what the store holds, at no cost on the turn's hot path."""

from __future__ import annotations

from typing import Literal, cast

from ccapi.api.replies import (
    BuiltinTools,
    DeliveryState,
    PermissionRequest,
    Session,
    SessionStatus,
    SessionWebhook,
    ToolCall,
    Turn,
    TurnAccepted,
    TurnStatus,
    Usage,
    WebhookDelivery,
)
from ccapi.ids import isoformat
from ccapi.sessions.mcp_servers import public_view
from ccapi.store import SessionRecord, TurnRecord, outbox


def session_view(record: SessionRecord, *, live: bool, running_turn_id: str | None) -> Session:
    return {
        "id": record.id,
        "object": "session",
        "status": cast(SessionStatus, record.status),
        "model": record.model,
        "system_prompt": record.system_prompt,
        "tools": record.tools,
        "metadata": record.metadata,
        "max_turns": record.max_turns,
        "cwd": record.cwd,
        "permission_mode": record.permission_mode,
        "builtin_tools": cast(BuiltinTools, record.builtin_tools),
        "max_budget_usd": record.max_budget_usd,
        "turn_count": record.turn_count,
        "last_event_seq": record.last_seq,
        "usage": record.usage,
        "webhook": cast("SessionWebhook | None", record.webhook),
        "mcp_servers": public_view(record.mcp_servers),
        "output_schema": record.output_schema,
        "live": live,
        "running_turn_id": running_turn_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def turn_view(record: TurnRecord) -> Turn:
    body: Turn = {
        "turn_id": record.id,
        "object": "turn",
        "session_id": record.session_id,
        "number": record.number,
        "kind": record.kind,
        "status": cast(TurnStatus, record.status),
        "output": record.output,
        "tool_calls": cast("list[ToolCall]", record.tool_calls),
        "permission_requests": cast("list[PermissionRequest]", record.permission_requests),
        "usage": cast(Usage, record.usage),
        "cost_usd": record.cost_usd,
        "duration_ms": record.duration_ms,
        "stop_reason": record.stop_reason,
        "last_event_seq": record.last_event_seq,
        "created_at": record.created_at,
        "completed_at": record.completed_at,
    }
    if record.error:
        body["error"] = record.error
    if record.structured_output is not None:
        body["structured_output"] = record.structured_output
    return body


def accepted_view(session_id: str, turn_id: str, status: Literal["running", "queued"], first_seq: int) -> TurnAccepted:
    """A background turn's ``202``: where to follow it in the event log."""
    return {
        "turn_id": turn_id,
        "object": "turn",
        "session_id": session_id,
        "status": status,
        "first_event_seq": first_seq,
        "events_url": f"/api/sessions/{session_id}/events/stream?after={first_seq - 1}",
    }


def webhook_delivery_view(delivery: outbox.WebhookDelivery, first_owed: int | None = None) -> WebhookDelivery:
    """A delivery as its session's owner sees it: never the signature or the secret. ``first_owed``: the seq of the
    first delivery its session still owes its URL; a later one waits for it, with no time of its own to go."""
    pending = delivery.state == outbox.PENDING
    waiting = pending and first_owed is not None and first_owed < delivery.seq
    return {
        "id": delivery.id,
        "object": "webhook.delivery",
        "session_id": delivery.session_id,
        "turn_id": delivery.turn_id,
        "event_seq": delivery.seq,
        "event_type": delivery.type,
        "url": delivery.url,
        "state": cast(DeliveryState, delivery.state),
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "last_attempt_at": delivery.last_attempt_at,
        "next_attempt_at": isoformat(delivery.next_attempt_at) if pending and not waiting else None,
        "waiting_for": outbox.delivery_id(delivery.session_id, first_owed)
        if waiting and first_owed is not None
        else None,
        "created_at": delivery.created_at,
        "completed_at": delivery.completed_at,
    }
