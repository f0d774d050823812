"""``Idempotency-Key``: a retried request gets the turn its first one acted on, never a second run, and the answer
that request had: the turn as it stands, or — streamed — the same events, from the log once the turn has moved on."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from ccapi.errors import Conflict, InvalidRequest, NotFound
from ccapi.events import Event, EventType
from ccapi.ids import utcnow
from ccapi.sessions.queue import QueuedTurn, TurnQueues
from ccapi.sessions.turns import TurnRun
from ccapi.store import Store, TurnRecord

_PAGE = 1000


@dataclass(frozen=True)
class Idempotency:
    """An ``Idempotency-Key`` and the fingerprint of the request body it came with; ``also`` are fingerprints the same
    request had in earlier versions (of its bytes as sent), which a key recorded before an upgrade was given."""

    key: str
    fingerprint: str
    also: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Sanic hands undecodable header bytes on as surrogates, which no store can write."""
        if not (self.key.isascii() and self.key.isprintable()):
            raise InvalidRequest("Idempotency-Key must be printable ASCII")

    @classmethod
    def of(cls, key: str, body: Any, raw: bytes) -> Idempotency:
        """``key`` for the request whose body parsed as ``body`` from the bytes ``raw``. The fingerprint is of the
        body's content, not its bytes (as Stripe compares a retry's parameters): a retry that spells the same JSON
        with other spacing or key order is the same request (it was a 400, "a different request body")."""
        canonical = b"" if body is None else orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        return cls(key, hashlib.sha256(canonical).hexdigest(), (hashlib.sha256(raw).hexdigest(),))

    def matches(self, fingerprint: str) -> bool:
        """Whether a recorded ``fingerprint`` is this request's (the same body)."""
        return fingerprint == self.fingerprint or fingerprint in self.also

    async def remember(self, store: Store, session_id: str, turn_id: str) -> None:
        """Record that this key acted on ``turn_id``, so its retries get that turn."""
        await store.save_idempotency_key(session_id, self.key, self.fingerprint, turn_id, utcnow())


@dataclass(frozen=True)
class Opening:
    """The event a request's answer began with in the log: for new input, the turn's ``turn.queued`` or
    ``turn.started``; for answers to a pause (tool results, permission decisions), the turn's first event of
    ``types`` whose ``data[field]`` names one of the ``ids`` answered. The key keeps only the turn; the request's
    body, the same on a retry, says which of the turn's legs was its own."""

    types: tuple[str, ...]
    field: str | None = None
    ids: frozenset[str] = frozenset()

    @classmethod
    def answering(cls, type_: str, field: str, ids: Iterable[str]) -> Opening:
        return cls((type_,), field, frozenset(ids))

    def began(self, event: Event, turn_id: str) -> bool:
        return event.turn_id == turn_id and (self.field is None or event.data.get(self.field) in self.ids)


NEW_INPUT = Opening((EventType.TURN_QUEUED, EventType.TURN_STARTED))


@dataclass(frozen=True)
class Replay:
    """A retried key: the turn its first request acted on (the live run, the queued turn, or its record) and what
    that request's answer began with."""

    turn: TurnRun | TurnRecord | QueuedTurn
    opening: Opening

    @property
    def session_id(self) -> str:
        return self.turn.session.id if isinstance(self.turn, TurnRun) else self.turn.session_id

    @property
    def turn_id(self) -> str:
        if isinstance(self.turn, TurnRun):
            return self.turn.turn.id
        return self.turn.turn_id if isinstance(self.turn, QueuedTurn) else self.turn.id


async def opening_event(store: Store, replay: Replay) -> Event | None:
    """The event the first request's answer began with, from the committed log (``None``: not there). A retry is
    rare: a scan of one or two event types, a page at a time, beats keeping a seq with every key."""
    after = 0
    if isinstance(replay.turn, TurnRun) and replay.opening.field is not None:
        after = replay.turn.started_seq - 1  # an answer to a pause comes after the turn's start
    while True:
        page = await store.list_events(replay.session_id, after=after, limit=_PAGE, types=replay.opening.types)
        found = next((event for event in page if replay.opening.began(event, replay.turn_id)), None)
        if found is not None or len(page) < _PAGE:
            return found
        after = page[-1].seq


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
    if not idempotency.matches(fingerprint):
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
