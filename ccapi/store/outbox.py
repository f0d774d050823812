"""The webhook outbox: one delivery per subscribed event, written by ``append_events`` in the
same transaction as the event, so a crash can neither lose a delivery nor leave one for an
event that was never committed. A session's deliveries to one URL go one at a time, in event
order (``first_owed``): every backend claims only the first each still owes."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ccapi.events import WEBHOOK_EVENT_TYPES, Event

#: ``pending`` until a 2xx (``delivered``) or until retries end (``failed``).
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class WebhookDelivery:
    id: str
    """The ``webhook-id``: the event's identity, the same on every attempt."""
    session_id: str
    seq: int
    turn_id: str | None
    type: str
    url: str
    payload: dict[str, Any]
    created_at: str
    state: str = PENDING
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_attempt_at: str | None = None
    last_status: int | None = None
    last_error: str | None = None
    completed_at: str | None = None
    lease_owner: str | None = None
    lease_until: float = 0.0


def delivery_id(session_id: str, seq: int) -> str:
    return f"{session_id}_{seq}"


def first_owed(deliveries: Iterable[WebhookDelivery]) -> list[WebhookDelivery]:
    """The pending delivery of lowest ``seq`` of each session and URL: the only one that may be sent, so a
    receiver hears a session's events in order. The next waits until it is delivered or failed for good."""
    first: dict[tuple[str, str], WebhookDelivery] = {}
    for delivery in deliveries:
        key = (delivery.session_id, delivery.url)
        if delivery.state == PENDING and (key not in first or delivery.seq < first[key].seq):
            first[key] = delivery
    return list(first.values())


def ended_by_gone(webhook: dict[str, Any] | None, url: str) -> dict[str, Any] | None:
    """The subscription a ``410 Gone`` from ``url`` ends: the session's, if it is still to ``url``."""
    return webhook if webhook and webhook["url"] == url else None


def might_notify(events: Iterable[Event]) -> set[str]:
    """Sessions whose subscription the batch must be checked against (deltas never notify)."""
    return {event.session_id for event in events if event.type in WEBHOOK_EVENT_TYPES}


def deliveries_for(events: Iterable[Event], webhooks: Mapping[str, dict[str, Any] | None]) -> list[WebhookDelivery]:
    """The outbox rows a batch of events owes, given each session's subscription."""
    now = time.time()
    owed = []
    for event in events:
        webhook = webhooks.get(event.session_id)
        if webhook and event.type in webhook["events"]:
            owed.append(
                WebhookDelivery(
                    id=delivery_id(event.session_id, event.seq),
                    session_id=event.session_id,
                    seq=event.seq,
                    turn_id=event.turn_id,
                    type=event.type,
                    url=webhook["url"],
                    payload=event.to_dict(),
                    created_at=event.created_at,
                    next_attempt_at=now,
                )
            )
    return owed
