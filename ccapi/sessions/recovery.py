"""Start-up repair after a crash: no turn stays ``running`` with nobody running it."""

from __future__ import annotations

import structlog

from ccapi.events import EventType
from ccapi.ids import utcnow
from ccapi.sessions.eventlog import EventLog
from ccapi.store import Store

log = structlog.get_logger(__name__)

RESTART_ERROR = {"type": "gateway_restarted",
                 "message": "the gateway stopped while this turn was running; send the input again"}


async def close_orphaned_turns(store: Store, events: EventLog) -> None:
    for turn in await store.open_turns():
        final = await events.emit(turn.session_id, turn.id, EventType.TURN_FAILED,
                                  {"status": "failed", "error": RESTART_ERROR})
        await events.flush()
        await store.update_turn(turn.id, status="failed", completed_at=utcnow(), error=RESTART_ERROR,
                                last_event_seq=final.seq)
        await store.update_session(turn.session_id, status="idle")
        log.warning("turn_closed_after_restart", session_id=turn.session_id, turn_id=turn.id)
