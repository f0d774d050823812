"""Closing turns that nobody drives any more: left running by a crash of this gateway,
or by another host that died holding the session's lease."""

from __future__ import annotations

import structlog

from ccapi.events import EventType
from ccapi.ids import utcnow
from ccapi.sessions.eventlog import EventLog
from ccapi.store import Store, TurnRecord

log = structlog.get_logger(__name__)

RESTART_ERROR = {
    "type": "gateway_restarted",
    "message": "the gateway running this turn stopped before it ended; send the input again",
}


async def close_orphaned_turn(store: Store, events: EventLog, turn: TurnRecord) -> None:
    """Record ``turn.failed`` and free the session; the caller holds the session's lease.
    The seq counter is reloaded first: the events before it may come from another host."""
    await events.flush()
    events.forget(turn.session_id)
    final = await events.emit(
        turn.session_id, turn.id, EventType.TURN_FAILED, {"status": "failed", "error": RESTART_ERROR}
    )
    await events.flush()
    await store.update_turn(
        turn.id,
        status="failed",
        completed_at=utcnow(),
        error=RESTART_ERROR,
        tool_calls=[],
        permission_requests=[],
        last_event_seq=final.seq,
    )
    await store.update_session(turn.session_id, status="idle")
    log.warning("orphaned_turn_closed", session_id=turn.session_id, turn_id=turn.id)
