"""The store contract shared by every backend.

Backends implement plain synchronous methods; this base class runs each of them on one
dedicated thread, so a slow disk or a remote database never stalls the event loop that
streams to clients, and no backend ever sees two of its own calls at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, TypeVar

from ccapi.events import Event
from ccapi.store.outbox import WebhookDelivery
from ccapi.store.records import SessionRecord, TranscriptLines, TurnEnd, TurnRecord
from ccapi.store.worker import StoreThread

T = TypeVar("T")

#: Turn states a crash can leave behind with nobody running them.
OPEN_TURN_STATES = ("running", "requires_action", "requires_approval")


class Store(ABC):
    #: Other gateway hosts read and write this store too (PostgreSQL).
    shared = False

    def __init__(self) -> None:
        self._thread = StoreThread()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._thread.run(fn, *args)

    # -- lifecycle -------------------------------------------------------------
    async def open(self) -> None:
        await self._run(self._open)

    async def close(self) -> None:
        await self._run(self._close)
        self._thread.close()

    async def ping(self) -> bool:
        try:
            return await self._run(self._ping)
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False

    def watch(self, on_append: Callable[[str], object]) -> None:
        """Call ``on_append(session_id)`` (from any thread) when *another* process appends
        to a session's log. Only a store shared between hosts has anything to report."""
        return

    # -- sessions --------------------------------------------------------------
    async def create_session(self, record: SessionRecord) -> None:
        await self._run(self._create_session, record)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        return await self._run(self._get_session, session_id)

    async def list_sessions(
        self, limit: int, after: str | None, statuses: Sequence[str] | None = None
    ) -> list[SessionRecord]:
        """Newest first; ``after`` is the id of the last session of the previous page; ``statuses``: only sessions
        in one of these."""
        return await self._run(self._list_sessions, limit, after, statuses)

    async def idle_sessions(self, before: str, after: tuple[str, str] | None, limit: int) -> list[SessionRecord]:
        """Sessions last updated before ``before``, least recently first; ``after`` is the
        ``(updated_at, id)`` of the last session of the previous page."""
        return await self._run(self._idle_sessions, before, after, limit)

    async def update_session(self, session_id: str, **fields: Any) -> None:
        await self._run(self._update_session, session_id, fields)

    async def delete_session(self, session_id: str) -> bool:
        """Remove the session with its turns, events, idempotency keys and compat head."""
        return await self._run(self._delete_session, session_id)

    # -- turns -----------------------------------------------------------------
    async def create_turn(self, record: TurnRecord) -> None:
        """Record the turn, count it on its session and mark the session running, atomically."""
        await self._run(self._create_turn, record)

    async def update_turn(self, turn_id: str, **fields: Any) -> None:
        await self._run(self._update_turn, turn_id, fields)

    async def get_turn(self, turn_id: str) -> TurnRecord | None:
        return await self._run(self._get_turn, turn_id)

    async def orphaned_turns(self, owner: str) -> list[TurnRecord]:
        """Turns still marked running (or waiting for tool results) that nobody drives any
        more: their session's lease is gone, expired, or ``owner``'s own (a previous run of
        this very host)."""
        return await self._run(self._orphaned_turns, owner)

    # -- leases: which host drives a session -------------------------------------
    async def acquire_lease(self, session_id: str, owner: str, ttl: float) -> str | None:
        """Take (or extend) the session's lease for ``ttl`` seconds. Returns None when
        ``owner`` holds it now, else the identity of the host that does."""
        return await self._run(self._acquire_lease, session_id, owner, ttl)

    async def lease_and_start(
        self, session_id: str, owner: str, ttl: float, make_turn: Callable[[SessionRecord], TurnRecord]
    ) -> tuple[str | None, SessionRecord | None, TurnRecord | None]:
        """A warm turn's start in one trip to the store thread: ``acquire_lease``; when ``owner``
        got it, the session as the lease found it; and when that session is idle, the turn
        ``make_turn`` builds from it, recorded as ``create_turn`` does. A session that is not idle
        gets no turn: the caller closes what a lost turn left open first."""
        return await self._run(self._lease_and_start, session_id, owner, ttl, make_turn)

    def _lease_and_start(
        self, session_id: str, owner: str, ttl: float, make_turn: Callable[[SessionRecord], TurnRecord]
    ) -> tuple[str | None, SessionRecord | None, TurnRecord | None]:
        holder = self._acquire_lease(session_id, owner, ttl)
        session = self._get_session(session_id) if holder is None else None
        if session is None or session.status != "idle":
            return holder, session, None
        turn = make_turn(session)
        self._create_turn(turn)
        return holder, session, turn

    async def renew_leases(self, owner: str, session_ids: list[str], ttl: float) -> None:
        await self._run(self._renew_leases, owner, session_ids, ttl)

    async def release_lease(self, session_id: str, owner: str) -> None:
        await self._run(self._release_lease, session_id, owner)

    async def held_leases(self, owner: str) -> list[str]:
        """Sessions whose lease ``owner`` took and has not released: where a previous run of this
        very host may have stopped between turns. A store that keeps leases in memory lost them
        with that run, so it names every session it cannot tell about."""
        return await self._run(self._held_leases, owner)

    # -- idempotency keys ------------------------------------------------------
    async def find_idempotency_key(self, session_id: str, key: str) -> tuple[str, str] | None:
        """``(fingerprint, turn_id)`` recorded for the key, if any."""
        return await self._run(self._find_idempotency_key, session_id, key)

    async def save_idempotency_key(
        self, session_id: str, key: str, fingerprint: str, turn_id: str, created_at: str
    ) -> None:
        await self._run(self._save_idempotency_key, session_id, key, fingerprint, turn_id, created_at)

    # -- the compat affinity index -----------------------------------------------
    async def save_compat_head(self, session_id: str, key: str, data: dict[str, Any], updated_at: str) -> None:
        """Record (or replace) the conversation a session holds; ``key`` groups heads a request may match."""
        await self._run(self._save_compat_head, session_id, key, data, updated_at)

    async def load_compat_heads(self, key: str | None, limit: int, since: str = "") -> list[dict[str, Any]]:
        """The newest heads first (of one ``key``, or of all; saved after ``since``), as saved."""
        return await self._run(self._load_compat_heads, key, limit, since)

    async def delete_compat_head(self, session_id: str) -> None:
        await self._run(self._delete_compat_head, session_id)

    # -- events ----------------------------------------------------------------
    async def append_events(
        self, events: list[Event], ends: Sequence[TurnEnd] = (), transcripts: Sequence[TranscriptLines] = ()
    ) -> None:
        """Write a batch atomically: a whole streamed reply costs a handful of commits. The
        webhook deliveries the events owe (their session's subscription) go in with them, and
        so do the ``ends`` of turns whose terminal event is in the batch and the ``transcripts``
        lines queued before it (written first: the events acknowledge them)."""
        await self._run(self._append_events, events, ends, transcripts)

    async def list_events(
        self, session_id: str, after: int = 0, limit: int = 1000, types: Iterable[str] | None = None
    ) -> list[Event]:
        return await self._run(self._list_events, session_id, after, limit, tuple(types) if types else None)

    async def max_seq(self, session_id: str) -> int:
        return await self._run(self._max_seq, session_id)

    # -- the webhook outbox ----------------------------------------------------------
    async def claim_webhooks(
        self, owner: str, limit: int, lease: float, skip_urls: Collection[str] = ()
    ) -> list[WebhookDelivery]:
        """Pending deliveries that are due and that no host holds, now held by ``owner`` for
        ``lease`` seconds: two hosts never hold (and so never send) one delivery at once. Only the
        first each session still owes its URL (``outbox.first_owed``), so they go in event order.
        None to the ``skip_urls`` (targets the caller is busy with)."""
        return await self._run(self._claim_webhooks, owner, limit, lease, tuple(skip_urls))

    async def finish_webhook_attempt(self, delivery_id: str, owner: str, fields: dict[str, Any]) -> None:
        """Record an attempt's outcome and let go of the delivery, if ``owner`` still holds it."""
        await self._run(self._finish_webhook_attempt, delivery_id, owner, fields)

    async def end_webhook(
        self, delivery_id: str, owner: str, fields: dict[str, Any], why: str
    ) -> dict[str, Any] | None:
        """Record a ``410 Gone`` (as ``finish_webhook_attempt``) and, in the same transaction, clear the
        subscription of the delivery's session if it is still to that URL, and fail every other delivery the
        session owes there (``why`` their ``last_error``), so no host sends them. Returns the subscription it
        cleared, or ``None`` when there was none to clear (an earlier 410's, maybe another host's, or the session
        deleted)."""
        return await self._run(self._end_webhook, delivery_id, owner, fields, why)

    async def first_owed_seqs(self, session_id: str) -> dict[str, int]:
        """Of each URL the session still owes deliveries, the seq of the first (``outbox.first_owed``): the only one
        that may go; the later ones to that URL wait for it to be delivered or failed."""
        return await self._run(self._first_owed_seqs, session_id)

    async def list_webhooks(
        self, session_id: str, after: int, limit: int, before: int | None = None, newest_first: bool = False
    ) -> list[WebhookDelivery]:
        """A session's deliveries of the events between ``after`` and ``before`` (seqs, both excluded), in event
        order or ``newest_first`` (the latest ``limit``, for a person watching)."""
        return await self._run(self._list_webhooks, session_id, after, limit, before, newest_first)

    # -- Claude Code transcripts (the SDK SessionStore mirror) -------------------
    async def append_transcript(
        self, project_key: str, session_id: str, subpath: str, entries: list[dict[str, Any]]
    ) -> None:
        """Append in call order; an entry whose ``uuid`` is already stored is skipped (the SDK retries)."""
        await self._run(self._append_transcript, project_key, session_id, subpath, entries)

    async def load_transcript(self, project_key: str, session_id: str, subpath: str) -> list[dict[str, Any]] | None:
        return await self._run(self._load_transcript, project_key, session_id, subpath)

    async def list_transcripts(self, project_key: str) -> list[tuple[str, int]]:
        """``(session_id, mtime_ms)`` of every main transcript in a project."""
        return await self._run(self._list_transcripts, project_key)

    async def list_transcript_subpaths(self, project_key: str, session_id: str) -> list[str]:
        return await self._run(self._list_transcript_subpaths, project_key, session_id)

    async def delete_transcript(self, project_key: str | None, session_id: str, subpath: str | None) -> None:
        """Delete one transcript, or with ``subpath=None`` the session's main transcript and all
        its subpaths; ``project_key=None`` matches every project (a CC API session delete)."""
        await self._run(self._delete_transcript, project_key, session_id, subpath)

    async def adopt_transcript(self, session_id: str, project_key: str) -> bool:
        """Make ``project_key`` hold the session's newest transcript (main and subpaths).

        Claude Code files a conversation under its working directory, so a host with another
        ``CC_API_CWD`` (or a restart with a changed one) looks under another key. When another
        key was written to last, its copy replaces this key's, in one step; the source stays
        as it is (a host still running from it is not disturbed). True when it copied."""
        return await self._run(self._adopt_transcript, session_id, project_key)

    # -- what a backend implements (called on the store thread) ------------------
    @abstractmethod
    def _open(self) -> None: ...
    @abstractmethod
    def _close(self) -> None: ...
    @abstractmethod
    def _ping(self) -> bool: ...
    @abstractmethod
    def _create_session(self, record: SessionRecord) -> None: ...
    @abstractmethod
    def _get_session(self, session_id: str) -> SessionRecord | None: ...
    @abstractmethod
    def _list_sessions(self, limit: int, after: str | None, statuses: Sequence[str] | None) -> list[SessionRecord]: ...
    @abstractmethod
    def _idle_sessions(self, before: str, after: tuple[str, str] | None, limit: int) -> list[SessionRecord]: ...
    @abstractmethod
    def _update_session(self, session_id: str, fields: dict[str, Any]) -> None: ...
    @abstractmethod
    def _delete_session(self, session_id: str) -> bool: ...
    @abstractmethod
    def _create_turn(self, record: TurnRecord) -> None: ...
    @abstractmethod
    def _update_turn(self, turn_id: str, fields: dict[str, Any]) -> None: ...
    @abstractmethod
    def _get_turn(self, turn_id: str) -> TurnRecord | None: ...
    @abstractmethod
    def _orphaned_turns(self, owner: str) -> list[TurnRecord]: ...
    @abstractmethod
    def _acquire_lease(self, session_id: str, owner: str, ttl: float) -> str | None: ...
    @abstractmethod
    def _renew_leases(self, owner: str, session_ids: list[str], ttl: float) -> None: ...
    @abstractmethod
    def _release_lease(self, session_id: str, owner: str) -> None: ...
    @abstractmethod
    def _held_leases(self, owner: str) -> list[str]: ...
    @abstractmethod
    def _find_idempotency_key(self, session_id: str, key: str) -> tuple[str, str] | None: ...
    @abstractmethod
    def _save_idempotency_key(
        self, session_id: str, key: str, fingerprint: str, turn_id: str, created_at: str
    ) -> None: ...
    @abstractmethod
    def _save_compat_head(self, session_id: str, key: str, data: dict[str, Any], updated_at: str) -> None: ...
    @abstractmethod
    def _load_compat_heads(self, key: str | None, limit: int, since: str) -> list[dict[str, Any]]: ...
    @abstractmethod
    def _delete_compat_head(self, session_id: str) -> None: ...
    @abstractmethod
    def _append_events(
        self, events: list[Event], ends: Sequence[TurnEnd], transcripts: Sequence[TranscriptLines]
    ) -> None: ...
    @abstractmethod
    def _list_events(self, session_id: str, after: int, limit: int, types: tuple[str, ...] | None) -> list[Event]: ...
    @abstractmethod
    def _max_seq(self, session_id: str) -> int: ...
    @abstractmethod
    def _claim_webhooks(
        self, owner: str, limit: int, lease: float, skip_urls: tuple[str, ...] = ()
    ) -> list[WebhookDelivery]: ...
    @abstractmethod
    def _finish_webhook_attempt(self, delivery_id: str, owner: str, fields: dict[str, Any]) -> None: ...
    @abstractmethod
    def _end_webhook(self, delivery_id: str, owner: str, fields: dict[str, Any], why: str) -> dict[str, Any] | None: ...
    @abstractmethod
    def _first_owed_seqs(self, session_id: str) -> dict[str, int]: ...
    @abstractmethod
    def _list_webhooks(
        self, session_id: str, after: int, limit: int, before: int | None, newest_first: bool
    ) -> list[WebhookDelivery]: ...
    @abstractmethod
    def _append_transcript(
        self, project_key: str, session_id: str, subpath: str, entries: list[dict[str, Any]]
    ) -> None: ...
    @abstractmethod
    def _load_transcript(self, project_key: str, session_id: str, subpath: str) -> list[dict[str, Any]] | None: ...
    @abstractmethod
    def _list_transcripts(self, project_key: str) -> list[tuple[str, int]]: ...
    @abstractmethod
    def _list_transcript_subpaths(self, project_key: str, session_id: str) -> list[str]: ...
    @abstractmethod
    def _delete_transcript(self, project_key: str | None, session_id: str, subpath: str | None) -> None: ...
    @abstractmethod
    def _adopt_transcript(self, session_id: str, project_key: str) -> bool: ...
