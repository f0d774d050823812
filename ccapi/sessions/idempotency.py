"""``Idempotency-Key``: a retried request gets the turn its first one acted on, never a second run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ccapi.errors import Conflict, InvalidRequest, NotFound
from ccapi.ids import utcnow
from ccapi.sessions.queue import QueuedTurn, TurnQueues
from ccapi.sessions.turns import TurnRun
from ccapi.store import Store, TurnRecord


@dataclass(frozen=True)
class Idempotency:
    """An ``Idempotency-Key`` and the fingerprint of the request body it came with."""

    key: str
    fingerprint: str

    def __post_init__(self) -> None:
        """Sanic hands undecodable header bytes on as surrogates, which no store can write."""
        if not (self.key.isascii() and self.key.isprintable()):
            raise InvalidRequest("Idempotency-Key must be printable ASCII")

    async def remember(self, store: Store, session_id: str, turn_id: str) -> None:
        """Record that this key acted on ``turn_id``, so its retries get that turn."""
        await store.save_idempotency_key(session_id, self.key, self.fingerprint, turn_id, utcnow())


async def earlier_turn(
    store: Store,
    session_id: str,
    idempotency: Idempotency,
    running: TurnRun | None,
    queues: TurnQueues,
    get_turn: Callable[[str, str], Awaitable[TurnRecord]],
) -> TurnRun | TurnRecord | QueuedTurn | None:
    """The turn this key acted on: the live run while it runs (``running``), the queued turn
    while it waits, else its record; ``None`` for a new key."""
    found = await store.find_idempotency_key(session_id, idempotency.key)
    if found is None:
        return None
    fingerprint, turn_id = found
    if fingerprint != idempotency.fingerprint:
        raise InvalidRequest(
            "this Idempotency-Key was already used with a different request body",
            {"idempotency_key": idempotency.key},
        )
    if running is not None and running.turn.id == turn_id:
        return running
    queued = queues.find(session_id, turn_id)
    if queued is not None:
        return queued
    try:
        return await get_turn(session_id, turn_id)
    except NotFound:
        raise Conflict(
            "the turn this Idempotency-Key started was taken out of the queue before it ran; "
            "send the input again with a new key",
            {"turn_id": turn_id},
        ) from None
