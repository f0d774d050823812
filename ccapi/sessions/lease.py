"""Only one gateway host drives a session at a time: its turn starts under the session's lease."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection

import structlog

from ccapi.errors import Conflict, NotFound
from ccapi.observability.metrics import Metrics
from ccapi.sessions.eventlog import EventLog
from ccapi.sessions.recovery import close_orphaned_turn
from ccapi.store import SessionRecord, Store, TurnRecord

log = structlog.get_logger(__name__)

#: What a 503 asks a client to wait: about one turn on the mock, a fraction of one on Claude.
RETRY_AFTER_SECONDS = 2
#: How long a turn waits for another host's lease before its 409: that host releases it just after its
#: turn's reply has gone out, so a client that moves hosts right after a reply should not see a conflict.
LEASE_HANDOVER_TRIES, LEASE_HANDOVER_PAUSE = 10, 0.05


async def take_lease(
    store: Store,
    events: EventLog,
    session_id: str,
    make_turn: Callable[[SessionRecord], TurnRecord],
    owner: str,
    ttl: float,
    live_queued: Collection[str],
    metrics: Metrics,
) -> tuple[SessionRecord, TurnRecord]:
    """Another host's live lease is a 409 that names it (its turn is in flight there); an expired
    one is taken over, and whatever turn the lost host left open is closed first (with the turns
    queued behind it, but those ``live_queued`` here). Returns the session as the lease found it
    and the new turn, recorded (with the lease, in one store trip when the session is idle)."""
    holder, session, turn = await store.lease_and_start(session_id, owner, ttl, make_turn)
    for _ in range(LEASE_HANDOVER_TRIES):  # a host lets go a moment after its turn's reply went out
        if holder is None:
            break
        await asyncio.sleep(LEASE_HANDOVER_PAUSE)
        holder, session, turn = await store.lease_and_start(session_id, owner, ttl, make_turn)
    if holder is not None:
        raise _held_elsewhere(holder)
    if turn is None and session is not None:  # a turn left open by a lost host, or by this one before a crash
        for orphan in await store.orphaned_turns(owner):
            if orphan.session_id == session_id:
                await close_orphaned_turn(store, events, orphan, metrics, live_queued)
        session = await store.get_session(session_id)
        if session is not None:
            turn = make_turn(session)
            await store.create_turn(turn)
    if session is None or turn is None:
        await store.release_lease(session_id, owner)
        raise NotFound(f"no session {session_id!r}")
    await events.flush()
    events.adopt(session_id, session.last_seq)  # another host may have written since
    return session, turn


async def keep_leases(
    store: Store, owner: str, ttl: float, running: Collection[str], sweep: Callable[[], Awaitable[None]]
) -> None:
    """Renew this host's leases on the sessions ``running`` here three times a lease's life, sweeping for turns
    orphaned by hosts that died on the way; until cancelled."""
    while True:
        await asyncio.sleep(ttl / 3)
        try:
            await store.renew_leases(owner, list(running), ttl)
            await sweep()
        except Exception:  # a database hiccup must not end the caretaker
            log.exception("lease_care_failed")


@contextlib.asynccontextmanager
async def between_turns(store: Store, events: EventLog, session_id: str, owner: str, ttl: float) -> AsyncIterator[None]:
    """The right to change a session outside a turn of its own (a ``PATCH``, its webhook's end, its expiry): on a
    store only this host writes, nothing to take; on a shared one, the session's lease. Its holder numbers the
    session's log: an event another host numbered meanwhile would take a ``seq`` the holder gives too, and each
    host's commit would then fail on the other's for ever. Taken for the while (the numbering read afresh: another
    host may have written since) and let go after, unless this host holds it already (a turn of it runs here, or
    a queued one is about to start); another host's is a 409 that names it."""
    if not store.shared:
        yield
        return
    held = session_id in await store.held_leases(owner)
    if not held:
        holder = await store.acquire_lease(session_id, owner, ttl)
        if holder is not None:
            raise _held_elsewhere(holder)
    try:
        if not held:
            await events.flush(bounded=True)
            events.forget(session_id)
        yield
    finally:
        if not held:
            await store.release_lease(session_id, owner)


def _held_elsewhere(holder: str) -> Conflict:
    return Conflict(
        f"gateway host {holder!r} is running a turn in this session; retry when it ends",
        {"owner": holder},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
