"""Forgetting sessions nobody has used for a long time, so a gateway that runs for months does not keep every
conversation it ever held (a long day of a compat client leaves a dozen: branches, side requests, a session per
compression of its history).

A compat session is the gateway's copy of a conversation its client keeps and sends again: one unused for
``CC_API_COMPAT_RETENTION`` (30 days, as OpenAI keeps a stored response) is deleted, and a later request with that
history starts a session from it, its messages written into the new session's transcript. Every other session is
its user's own and is kept unless ``CC_API_SESSION_RETENTION`` is set. A sweep runs at start-up, then every hour (or
more often, for a retention shorter than four hours); it deletes a session exactly as ``DELETE`` does, and never one
with a turn open or queued, or one used since the sweep listed it (``SessionService.expire`` checks that under the
session's lock, which every turn's start takes).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from ccapi.errors import NotFound
from ccapi.ids import isoformat
from ccapi.store import SessionRecord

if TYPE_CHECKING:
    from ccapi.config import Settings
    from ccapi.sessions.service import SessionService

log = structlog.get_logger(__name__)

SWEEP_INTERVAL = 3600.0
_PAGE = 200
#: The metadata key that marks a session the compat endpoints made (its value: the wire format).
COMPAT_MARK = "compat"


@dataclass(frozen=True)
class Retention:
    """Seconds a session is kept after its last use; 0 keeps it."""

    compat: float
    other: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        return cls(settings.compat_retention, settings.session_retention)

    def of(self, session: SessionRecord) -> float:
        return self.compat if COMPAT_MARK in session.metadata else self.other

    @property
    def shortest(self) -> float | None:
        """``None``: nothing ever expires."""
        kept = [seconds for seconds in (self.compat, self.other) if seconds > 0]
        return min(kept) if kept else None

    @property
    def interval(self) -> float | None:
        """How often to sweep."""
        shortest = self.shortest
        return None if shortest is None else min(SWEEP_INTERVAL, shortest / 4)


async def expire_sessions(service: SessionService, retention: Retention) -> list[str]:
    """Delete the sessions unused for longer than their retention; returns their ids."""
    now = time.time()
    shortest = retention.shortest
    if shortest is None:
        return []
    expired: list[str] = []
    after: tuple[str, str] | None = None
    while page := await service.store.idle_sessions(isoformat(now - shortest), after, _PAGE):
        after = (page[-1].updated_at, page[-1].id)
        for session in page:
            seconds = retention.of(session)
            if seconds > 0 and session.updated_at < isoformat(now - seconds) and await _expire(service, session):
                expired.append(session.id)
    return expired


async def _expire(service: SessionService, session: SessionRecord) -> bool:
    try:
        expired = await service.expire(session.id, session.updated_at)  # unless used since it was listed
    except NotFound:  # another host's sweep, or its client, was first
        return False
    if expired:
        log.info("session_expired", session_id=session.id, last_used=session.updated_at)
    return expired


async def keep_expiring(service: SessionService, retention: Retention) -> None:
    """Sweep at once, then every ``retention.interval``; until cancelled."""
    interval = retention.interval
    if interval is None:
        return
    while True:
        try:
            await expire_sessions(service, retention)
        except Exception:  # a database hiccup must not end the sweeps
            log.exception("session_expiry_failed")
        await asyncio.sleep(interval)
