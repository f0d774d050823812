"""The event vocabulary: every observable thing a session does is one of these.

Events are the contract with clients (SPEC "Events"): the log, the SSE stream and
the turn replies are all built from them, so names live in one place.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import Any

import orjson


class EventType(enum.StrEnum):
    SESSION_CREATED = "session.created"
    SESSION_COMPACTED = "session.compacted"
    SESSION_UPDATED = "session.updated"
    TURN_QUEUED = "turn.queued"
    TURN_STARTED = "turn.started"
    TURN_REQUIRES_ACTION = "turn.requires_action"
    TURN_REQUIRES_APPROVAL = "turn.requires_approval"
    TURN_RETRYING = "turn.retrying"
    TURN_COMPLETED = "turn.completed"
    TURN_INTERRUPTED = "turn.interrupted"
    TURN_FAILED = "turn.failed"
    MESSAGE_DELTA = "message.delta"
    MESSAGE_COMPLETED = "message.completed"
    THINKING_DELTA = "thinking.delta"
    AGENT_TOOL_STARTED = "agent_tool.started"
    AGENT_TOOL_COMPLETED = "agent_tool.completed"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    PERMISSION_REQUESTED = "permission.requested"
    PERMISSION_RESOLVED = "permission.resolved"
    RATE_LIMIT = "rate_limit"


TERMINAL_TURN_EVENTS = frozenset({EventType.TURN_COMPLETED, EventType.TURN_INTERRUPTED, EventType.TURN_FAILED})
#: A turn that waits for its client: tool results, or permission decisions.
PAUSE_EVENTS = frozenset({EventType.TURN_REQUIRES_ACTION, EventType.TURN_REQUIRES_APPROVAL})


#: The token-level events: they come in bursts, many a second.
DELTA_EVENTS = frozenset({EventType.MESSAGE_DELTA, EventType.THINKING_DELTA})
#: Events a webhook may subscribe to: everything but the token-level deltas.
WEBHOOK_EVENT_TYPES = frozenset(EventType) - DELTA_EVENTS
#: What a subscription without ``events`` receives: the moments a background client must act on.
DEFAULT_WEBHOOK_EVENTS = (
    EventType.TURN_COMPLETED,
    EventType.TURN_REQUIRES_ACTION,
    EventType.TURN_REQUIRES_APPROVAL,
    EventType.TURN_FAILED,
    EventType.TURN_INTERRUPTED,
)


@dataclass(frozen=True)
class Event:
    """One entry of a session's durable log; ``seq`` is gap-free per session."""

    seq: int
    type: str
    session_id: str
    turn_id: str | None
    created_at: str
    data: dict[str, Any]

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Event:
        """The inverse of ``to_dict``: an event as the API serves it."""
        return cls(
            body["seq"],
            body["type"],
            body["session_id"],
            body.get("turn_id"),
            body["created_at"],
            body.get("data") or {},
        )

    @functools.cached_property
    def sse_frame(self) -> bytes:
        """The Server-Sent Events frame, encoded once however many subscribers stream the event."""
        return b"id: %d\nevent: %s\ndata: %s\n\n" % (self.seq, self.type.encode(), orjson.dumps(self.to_dict()))

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "seq": self.seq,
            "type": self.type,
            "session_id": self.session_id,
            "created_at": self.created_at,
            "data": self.data,
        }
        if self.turn_id is not None:
            body["turn_id"] = self.turn_id
        return body

    @property
    def ends_turn(self) -> bool:
        return self.type in TERMINAL_TURN_EVENTS or self.type in PAUSE_EVENTS


class EventBatch(list[Event]):
    """Consecutive events of one session that became ready together (one commit, or one page
    of the stored log). Its SSE frames are joined once, however many subscribers send it whole."""

    @functools.cached_property
    def sse_frames(self) -> bytes:
        return b"".join(event.sse_frame for event in self)
