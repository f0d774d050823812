"""Closing turns that nobody drives any more: left running by a crash of this gateway,
or by another host that died holding the session's lease."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection

import structlog

from ccapi.events import EventType
from ccapi.ids import utcnow
from ccapi.observability.metrics import Metrics
from ccapi.sessions.eventlog import EventLog
from ccapi.store import Store, TurnRecord
from ccapi.store.base import OPEN_TURN_STATES

log = structlog.get_logger(__name__)

RESTART_ERROR = {
    "type": "gateway_restarted",
    "message": "the gateway running this turn stopped before it ended; send the input again",
}
QUEUED_RESTART_ERROR = {
    "type": "gateway_restarted",
    "message": "the gateway stopped before this queued turn started; it will not run: send the input again",
}
_TURN_MARKS = [
    EventType.TURN_QUEUED.value,
    EventType.TURN_STARTED.value,
    EventType.TURN_COMPLETED.value,
    EventType.TURN_INTERRUPTED.value,
    EventType.TURN_FAILED.value,
]


async def close_orphaned_turn(
    store: Store, events: EventLog, turn: TurnRecord, metrics: Metrics, live_queued: Collection[str] = ()
) -> None:
    """Record ``turn.failed`` and free the session; the caller holds the session's lease.
    The seq counter is reloaded first: the events before it may come from another host.
    Turns that were queued behind it (and are not ``live_queued`` here) went with it. Each counts
    as a failed turn (``metrics``) on the host that closes it."""
    await events.flush()
    events.forget(turn.session_id)
    final = await events.emit(
        turn.session_id, turn.id, EventType.TURN_FAILED, {"status": "failed", "error": RESTART_ERROR}
    )
    await events.flush()
    ended = utcnow()
    await store.update_turn(
        turn.id,
        status="failed",
        completed_at=ended,
        error=RESTART_ERROR,
        tool_calls=[],
        permission_requests=[],
        last_event_seq=final.seq,
    )
    # used until now, as a turn's end says: a turn that ran (or waited for its client) longer than the session's
    # retention would otherwise leave it looking unused since that turn began, and the sweep would delete it at once
    await store.update_session(turn.session_id, status="idle", updated_at=ended)
    metrics.turn_ended(turn.kind, "failed", None)
    log.warning("orphaned_turn_closed", session_id=turn.session_id, turn_id=turn.id)
    await _close_queued(events, store, metrics, turn.session_id, live_queued)


async def sweep_orphans(
    store: Store,
    events: EventLog,
    owner: str,
    lease_ttl: float,
    running: Collection[str],
    lock: Callable[[str], asyncio.Lock],
    queued_turn_ids: Callable[[], Collection[str]],
    metrics: Metrics,
) -> None:
    """Close the turns nobody drives: their lease expired, and they are not ``running`` here. Each is closed under
    its session's ``lock`` and a lease taken for the purpose, so a host that took the session meanwhile keeps it."""
    for turn in await store.orphaned_turns(owner):
        if turn.session_id in running:
            continue
        async with lock(turn.session_id):
            # looked at again under the lock: a turn that was starting here when the list was read (its lease this
            # host's), or one that ended or was closed by the next turn's start meanwhile, is not an orphan
            current = await store.get_turn(turn.id)
            if turn.session_id in running or current is None or current.status not in OPEN_TURN_STATES:
                continue
            if await store.acquire_lease(turn.session_id, owner, lease_ttl) is None:
                # and once more with the lease held: another host's sweep may have closed it (and let the session
                # go) since the look above; closing it again would give the turn a second terminal event
                current = await store.get_turn(turn.id)
                if current is not None and current.status in OPEN_TURN_STATES:
                    await close_orphaned_turn(store, events, current, metrics, queued_turn_ids())
                await store.release_lease(turn.session_id, owner)


async def close_stranded_queued(store: Store, events: EventLog, owner: str, metrics: Metrics) -> None:
    """At start-up: close the turns a previous run of this host had queued behind a turn that had
    ended when it stopped, before the next one started (that run still held the session's lease),
    and let those sessions go."""
    for session_id in await store.held_leases(owner):
        await events.flush()
        events.forget(session_id)
        await _close_queued(events, store, metrics, session_id)
        await store.release_lease(session_id, owner)


async def _close_queued(
    events: EventLog, store: Store, metrics: Metrics, session_id: str, live_queued: Collection[str] = ()
) -> None:
    """``turn.failed`` for each turn the log shows queued that never started nor ended (and is
    not ``live_queued`` here)."""
    for turn_id in await _never_started(store, session_id):
        if turn_id not in live_queued:
            await events.emit(
                session_id,
                turn_id,
                EventType.TURN_FAILED,
                {"status": "failed", "queued": True, "error": QUEUED_RESTART_ERROR},
            )
            metrics.turn_ended("input", "failed", None)
            log.warning("orphaned_queued_turn_closed", session_id=session_id, turn_id=turn_id)
    await events.flush()


async def _never_started(store: Store, session_id: str) -> list[str]:
    """The turns the log shows queued that neither started nor ended."""
    waiting: dict[str, None] = {}
    after = 0
    while True:
        page = await store.list_events(session_id, after=after, limit=500, types=_TURN_MARKS)
        for event in page:
            if event.type == EventType.TURN_QUEUED:
                waiting[event.turn_id or ""] = None
            else:
                waiting.pop(event.turn_id or "", None)
        if len(page) < 500:
            return [turn_id for turn_id in waiting if turn_id]
        after = page[-1].seq
