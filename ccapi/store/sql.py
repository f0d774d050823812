"""The peewee backend: SQLite by default (WAL), PostgreSQL by URL (connecting, and hearing other hosts' appends:
``databases``).

The models are bound through one ``DatabaseProxy``, so a process has one SQL store.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

import peewee
import structlog

from ccapi.errors import Unavailable
from ccapi.events import Event
from ccapi.ids import utcnow
from ccapi.store.base import OPEN_TURN_STATES, Store
from ccapi.store.databases import EVENTS_CHANNEL, AppendListener, PostgresDatabase, append_notice
from ccapi.store.migrations import migrate
from ccapi.store.models import (
    CompatHeadRow,
    EventRow,
    IdempotencyRow,
    LeaseRow,
    SessionRow,
    TranscriptRow,
    TurnRow,
    WebhookRow,
    database_proxy,
)
from ccapi.store.outbox import FAILED, PENDING, WebhookDelivery, deliveries_for, ended_by_gone, might_notify
from ccapi.store.prepared import Prepared, chunks, columns
from ccapi.store.records import SessionRecord, TranscriptLines, TurnEnd, TurnRecord

_SESSION_FIELDS = tuple(f.name for f in dataclasses.fields(SessionRecord))
_TURN_FIELDS = tuple(f.name for f in dataclasses.fields(TurnRecord))
_DELIVERY_FIELDS = tuple(f.name for f in dataclasses.fields(WebhookDelivery))
T = TypeVar("T")
#: The database's clock in seconds since the epoch (PostgreSQL): what leases are measured by on a shared store.
_DATABASE_NOW = peewee.SQL("CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)")

log = structlog.get_logger(__name__)

#: What a 503 for an unreachable database asks a client to wait.
DATABASE_RETRY_AFTER = 2
#: How long a session read (``list_events``: what a follower does at least every keep-alive) counts as followed
#: here, for the re-read after the LISTEN connection was lost; and how many such sessions are kept at most.
READ_LATELY_SECONDS, READ_LATELY_MAX = 300.0, 10_000
#: How long an event batch whose connection died as it committed is waited on, when its server process has not yet
#: finished it (committed or rolled back), before the write is answered 503 and the question asked again later.
SETTLE_SECONDS = 2.0


@dataclasses.dataclass
class _Batch:
    """An ``append_events`` call on PostgreSQL, and what its transaction was numbered, once all of its statements
    but the COMMIT have run: from then on, a connection that dies leaves it unknown whether the COMMIT reached the
    server and took effect. ``txid_status`` on another connection tells."""

    events: list[Event]
    ends: list[TurnEnd]
    transcripts: list[TranscriptLines]
    txid: int | None = None
    pid: int | None = None
    """The server process that ran it: one still running it (it never heard the COMMIT, nor that we left) is ended,
    so that its locks (the session rows, the new event keys) go with it."""


class _Unsettled(Exception):
    """Whether an earlier event batch committed is not known yet (its server process has not finished it)."""


class SqlStore(Store):
    def __init__(self, database: peewee.Database) -> None:
        super().__init__()
        self._db = database
        self._prepared = Prepared(database)
        self._listener: AppendListener | None = None
        self._writing: _Batch | None = None  # the append in progress on PostgreSQL
        self._unsettled: _Batch | None = None  # one whose COMMIT may have taken effect as its connection died
        self._read_lately: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._read_lately_lock = threading.Lock()

    @property
    def shared(self) -> bool:  # type: ignore[override]
        return isinstance(self._db, peewee.PostgresqlDatabase)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if not isinstance(self._db, PostgresDatabase) or fn in (self._open, self._close):  # start-up says why itself
            return await super()._run(fn, *args)
        return await super()._run(self._reconnecting, self._db, fn, *args)

    def _reconnecting(self, database: PostgresDatabase, fn: Callable[..., T], *args: Any) -> T:
        """``fn`` on this thread's connection; one that a database restart (or a network cut) killed is dropped, so
        the store does not fail for ever on it. When the call's first statement found it dead, nothing of the call
        reached the database: it runs again, on a new connection. Otherwise (or when the database cannot be reached
        at all) it is a 503 that says so, and the next call connects afresh.

        An event batch whose connection died once its COMMIT may have been sent is the exception: the commit may
        well have taken effect. Its write is asked about (``_settle``) and, committed, is a success; else the 503,
        and if the answer could not be had, the next batch asks first (the event log sends the same events again,
        which would otherwise fail for ever on their own keys)."""
        first = database.round_trips + 1
        for again in (False, True):
            self._writing = None
            try:
                return fn(*args)
            except (peewee.OperationalError, peewee.InterfaceError) as exc:
                writing, self._writing = self._writing, None
                if not database.connection_lost():
                    raise
                database.discard_connection()
                if writing is not None and writing.txid is not None:
                    self._unsettled = writing
                    if self._settled_now(database):
                        return cast(T, None)  # committed: the batch is in, as the caller wanted
                if again or database.round_trips != first:
                    raise _unreachable(exc) from exc
                log.warning("database_reconnecting", error=str(exc).strip())
        raise AssertionError("the second try returns or raises")

    def _settled_now(self, database: PostgresDatabase) -> bool:
        """Whether the ``_unsettled`` batch committed, asked on a new connection at once; ``False`` when it did not
        (it is settled: nothing of it is in) and when no answer could be had (it stays unsettled)."""
        try:
            return self._settled() is not None
        except (peewee.DatabaseError, peewee.InterfaceError, _Unsettled) as exc:
            if database.connection_lost():
                database.discard_connection()
            log.warning("event_batch_outcome_unknown", error=str(exc).strip() or type(exc).__name__)
            return False

    def _settled(self) -> _Batch | None:
        """Settle the ``_unsettled`` batch: it, if it committed; ``None`` if it did not. Raises (and it stays
        unsettled) while that is not known."""
        unsettled = self._unsettled
        assert unsettled is not None
        committed = self._committed(unsettled)
        self._unsettled = None
        if not committed:
            return None
        log.warning("event_batch_committed_as_connection_died", events=len(unsettled.events), txid=unsettled.txid)
        return unsettled

    def _committed(self, batch: _Batch) -> bool:
        """Whether ``batch``'s transaction committed (``txid_status``). One its server process still runs (the
        process never heard the COMMIT, nor that the connection is gone: a network cut) is ended first, so it
        rolls back; raises ``_Unsettled`` if it has not finished in ``SETTLE_SECONDS``."""
        deadline = time.monotonic() + SETTLE_SECONDS
        ended = False
        while True:
            status = self._db.execute_sql("SELECT txid_status(%s)", (batch.txid,)).fetchone()[0]
            if status != "in progress":
                return status == "committed"  # else aborted (or, unknowable, too old to matter: none is)
            if not ended and batch.pid is not None:
                ended = True
                try:  # only while it runs that very transaction: a pid is reused once its process is gone
                    self._db.execute_sql(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE pid = %s AND backend_xid::text = (%s::bigint %% 4294967296)::text",
                        (batch.pid, batch.txid),
                    )
                except peewee.ProgrammingError as exc:  # not allowed to (another role's): the server ends it later
                    log.warning("event_batch_backend_not_ended", error=str(exc).strip(), pid=batch.pid)
            if time.monotonic() >= deadline:
                raise _Unsettled(f"transaction {batch.txid} is still in progress")
            time.sleep(0.05)

    def watch(self, on_append: Callable[[str], object]) -> None:
        if isinstance(self._db, peewee.PostgresqlDatabase) and self._listener is None:
            self._listener = AppendListener(self._db, on_append, self._sessions_read_lately)
            self._listener.start()

    def _sessions_read_lately(self) -> list[str]:
        """Sessions whose events were read here lately (called from the listener's thread)."""
        since = time.monotonic() - READ_LATELY_SECONDS
        with self._read_lately_lock:
            return [session_id for session_id, at in self._read_lately.items() if at >= since]

    def _read(self, session_id: str) -> None:
        with self._read_lately_lock:
            self._read_lately[session_id] = time.monotonic()
            self._read_lately.move_to_end(session_id)
            if len(self._read_lately) > READ_LATELY_MAX:
                self._read_lately.popitem(last=False)

    def _open(self) -> None:
        database_proxy.initialize(self._db)
        self._db.connect(reuse_if_open=True)
        migrate(self._db)

    def _close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        self._db.close()

    def _ping(self) -> bool:
        self._db.execute_sql("SELECT 1").fetchone()
        return True

    # -- sessions --------------------------------------------------------------
    def _create_session(self, record: SessionRecord) -> None:
        SessionRow.create(**columns(record))

    def _get_session(self, session_id: str) -> SessionRecord | None:
        values = self._prepared.get(SessionRow, session_id)
        return SessionRecord(**{name: values[name] for name in _SESSION_FIELDS}) if values else None

    def _list_sessions(self, limit: int, after: str | None, statuses: Sequence[str] | None) -> list[SessionRecord]:
        query = SessionRow.select().order_by(SessionRow.created_at.desc(), SessionRow.id.desc())
        if statuses is not None:
            query = query.where(SessionRow.status.in_(list(statuses)))
        if after is not None:
            cursor = SessionRow.get_or_none(SessionRow.id == after)
            if cursor is None:
                return []
            query = query.where(
                (SessionRow.created_at < cursor.created_at)
                | ((SessionRow.created_at == cursor.created_at) & (SessionRow.id < cursor.id))
            )
        return [_session_record(row) for row in query.limit(limit)]

    def _idle_sessions(self, before: str, after: tuple[str, str] | None, limit: int) -> list[SessionRecord]:
        query = SessionRow.select().where(SessionRow.updated_at < before)
        if after is not None:
            updated_at, session_id = after
            query = query.where(
                (SessionRow.updated_at > updated_at)
                | ((SessionRow.updated_at == updated_at) & (SessionRow.id > session_id))
            )
        ordered = query.order_by(SessionRow.updated_at, SessionRow.id)
        return [_session_record(row) for row in ordered.limit(limit)]

    def _lease_and_start(
        self, session_id: str, owner: str, ttl: float, make_turn: Callable[[SessionRecord], TurnRecord]
    ) -> tuple[str | None, SessionRecord | None, TurnRecord | None]:
        with self._db.atomic():  # the lease and the new turn in one commit
            return super()._lease_and_start(session_id, owner, ttl, make_turn)

    def _transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A transaction, or, inside one already, nothing more: a savepoint costs two statements."""
        return contextlib.nullcontext() if self._db.in_transaction() else self._db.atomic()

    def _update_session(self, session_id: str, fields: dict[str, Any]) -> None:
        self._prepared.update(SessionRow, session_id, fields)

    def _delete_session(self, session_id: str) -> bool:
        with self._db.atomic():
            EventRow.delete().where(EventRow.session_id == session_id).execute()
            IdempotencyRow.delete().where(IdempotencyRow.session_id == session_id).execute()
            TurnRow.delete().where(TurnRow.session_id == session_id).execute()
            LeaseRow.delete().where(LeaseRow.session_id == session_id).execute()
            # its deliveries still owed stay until they are done (``_finish_webhook_attempt``): its client may be
            # waiting for the turn's end, or for the turn.interrupted the delete itself wrote
            WebhookRow.delete().where((WebhookRow.session_id == session_id) & (WebhookRow.state != PENDING)).execute()
            CompatHeadRow.delete().where(CompatHeadRow.session_id == session_id).execute()
            return SessionRow.delete().where(SessionRow.id == session_id).execute() > 0

    # -- turns -----------------------------------------------------------------
    def _create_turn(self, record: TurnRecord) -> None:
        with self._transaction():
            self._prepared.insert(TurnRow, [columns(record)])
            self._prepared.update(
                SessionRow,
                record.session_id,
                {"updated_at": utcnow(), "status": record.status},  # now: a queued turn's record is older
                increments=("turn_count",),
            )

    def _update_turn(self, turn_id: str, fields: dict[str, Any]) -> None:
        self._prepared.update(TurnRow, turn_id, fields)

    def _get_turn(self, turn_id: str) -> TurnRecord | None:
        row = TurnRow.get_or_none(TurnRow.id == turn_id)
        return _turn_record(row) if row else None

    # -- idempotency keys --------------------------------------------------------
    def _find_idempotency_key(self, session_id: str, key: str) -> tuple[str, str] | None:
        row = IdempotencyRow.get_or_none((IdempotencyRow.session_id == session_id) & (IdempotencyRow.key == key))
        return (row.fingerprint, row.turn_id) if row else None

    def _save_idempotency_key(self, session_id: str, key: str, fingerprint: str, turn_id: str, created_at: str) -> None:
        IdempotencyRow.create(
            session_id=session_id, key=key, fingerprint=fingerprint, turn_id=turn_id, created_at=created_at
        )

    # -- the compat affinity index -----------------------------------------------
    def _save_compat_head(self, session_id: str, key: str, data: dict[str, Any], updated_at: str) -> None:
        CompatHeadRow.insert(session_id=session_id, key=key, data=data, updated_at=updated_at).on_conflict(
            conflict_target=[CompatHeadRow.session_id],
            update={CompatHeadRow.key: key, CompatHeadRow.data: data, CompatHeadRow.updated_at: updated_at},
        ).execute()

    def _load_compat_heads(self, key: str | None, limit: int, since: str) -> list[dict[str, Any]]:
        query = CompatHeadRow.select(CompatHeadRow.data).where(CompatHeadRow.updated_at > since)
        if key is not None:
            query = query.where(CompatHeadRow.key == key)
        return [row.data for row in query.order_by(CompatHeadRow.updated_at.desc()).limit(limit)]

    def _delete_compat_head(self, session_id: str) -> None:
        CompatHeadRow.delete().where(CompatHeadRow.session_id == session_id).execute()

    # -- leases ----------------------------------------------------------------
    def _clock(self) -> tuple[Any, list[float]]:
        """Now, in seconds since the epoch, for a lease's expiry: the database's clock on a shared store (as an
        expression, no trip of its own), so hosts whose clocks disagree still agree on when a lease ends; a host
        whose clock ran a minute ahead took every other host's live lease and closed their running turns as lost.
        Returns the value to put in a statement and the parameters it adds to it."""
        if self.shared:
            return _DATABASE_NOW, []
        now = time.time()
        return now, [now]

    def _acquire_lease(self, session_id: str, owner: str, ttl: float) -> str | None:
        now, now_params = self._clock()
        with self._transaction():
            taken = self._prepared.run(
                "take_lease",
                lambda: LeaseRow.update(owner=owner, expires_at=now + ttl).where(
                    (LeaseRow.session_id == session_id) & ((LeaseRow.owner == owner) | (LeaseRow.expires_at < now))
                ),
                [owner, *([ttl] if self.shared else [now + ttl]), session_id, owner, *now_params],
            )
            if taken:
                return None
            while True:  # a holder that lets go between our insert and our read: insert again
                LeaseRow.insert(session_id=session_id, owner=owner, expires_at=now + ttl).on_conflict_ignore().execute()
                holder = LeaseRow.get_or_none(LeaseRow.session_id == session_id)
                if holder is not None:
                    return None if holder.owner == owner else holder.owner

    def _renew_leases(self, owner: str, session_ids: list[str], ttl: float) -> None:
        if session_ids:
            now, _ = self._clock()
            LeaseRow.update(expires_at=now + ttl).where(
                (LeaseRow.owner == owner) & LeaseRow.session_id.in_(session_ids)
            ).execute()

    def _release_lease(self, session_id: str, owner: str) -> None:
        """Expire the lease rather than delete it: the next turn's ``_acquire_lease`` (on any
        host) then takes it in its first statement instead of an insert and a read."""
        self._prepared.run(
            "release_lease",
            lambda: LeaseRow.update(expires_at=0).where(
                (LeaseRow.session_id == session_id) & (LeaseRow.owner == owner)
            ),
            [0, session_id, owner],
        )

    def _held_leases(self, owner: str) -> list[str]:
        query = LeaseRow.select(LeaseRow.session_id).where((LeaseRow.owner == owner) & (LeaseRow.expires_at > 0))
        return [row.session_id for row in query]

    def _orphaned_turns(self, owner: str) -> list[TurnRecord]:
        lease = LeaseRow.alias()
        query = (
            TurnRow.select()
            .join(lease, peewee.JOIN.LEFT_OUTER, on=(lease.session_id == TurnRow.session_id))
            .where(
                TurnRow.status.in_(OPEN_TURN_STATES)
                & (lease.session_id.is_null() | (lease.expires_at < self._clock()[0]) | (lease.owner == owner))
            )
        )
        return [_turn_record(row) for row in query]

    # -- events ----------------------------------------------------------------
    def _append_events(
        self, events: list[Event], ends: Sequence[TurnEnd], transcripts: Sequence[TranscriptLines]
    ) -> None:
        if self._unsettled is not None:  # sent again with what follows it, as the event log does: not twice
            events, ends, transcripts = self._settle(events, ends, transcripts)
            if not (events or ends or transcripts):
                return
        last_seq: dict[str, int] = {}
        for event in events:
            last_seq[event.session_id] = max(event.seq, last_seq.get(event.session_id, 0))
        notifying = might_notify(events)
        if self.shared:
            self._writing = _Batch(list(events), list(ends), list(transcripts))
        with self._db.atomic():
            for lines in transcripts:
                self._insert_transcript(lines)
            for chunk in chunks([columns(event) for event in events], 200):
                self._prepared.insert(EventRow, chunk)
            sessions: dict[str, dict[str, Any]] = {
                session_id: {"last_seq": seq} for session_id, seq in last_seq.items()
            }
            for end in ends:
                self._update_turn(end.turn_id, end.turn)
                sessions.setdefault(end.session_id, {}).update(end.session)
                if end.release_lease_of is not None:
                    self._release_lease(end.session_id, end.release_lease_of)
            if notifying:  # after the turns and leases: the session rows are locked last (``_webhooks``)
                owed = [columns(delivery) for delivery in deliveries_for(events, self._webhooks(sorted(notifying)))]
                for chunk in chunks(owed, 100):
                    WebhookRow.insert_many(chunk).execute()
            for session_id, fields in sessions.items():  # one update each, a turn's end with its last seq
                self._update_session(session_id, fields)
            if self.shared:
                # the transaction's number (for ``_committed``), in the statement that has every host's
                # AppendListener told at commit: the last before the COMMIT, so no trip of its own
                notices = [param for session_id in last_seq for param in (EVENTS_CHANNEL, append_notice(session_id))]
                statement = "SELECT txid_current(), pg_backend_pid()" + ", pg_notify(%s, %s)" * len(last_seq)
                txid, pid, *_ = self._db.execute_sql(statement, notices).fetchone()
                assert self._writing is not None
                self._writing.txid, self._writing.pid = txid, pid
        self._writing = None

    def _settle(
        self, events: list[Event], ends: Sequence[TurnEnd], transcripts: Sequence[TranscriptLines]
    ) -> tuple[list[Event], list[TurnEnd], list[TranscriptLines]]:
        """What is left of a batch to write once the ``_unsettled`` one is settled: without what that one wrote, when
        it committed. Raises 503 while its outcome is unknown."""
        try:
            written = self._settled()
        except _Unsettled as exc:
            raise Unavailable(
                "an event batch whose connection to the database died as it committed is not settled yet; retry "
                "shortly",
                headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
            ) from exc
        if written is None:
            return list(events), list(ends), list(transcripts)
        return (
            _without(events, written.events),
            _without(ends, written.ends),
            _without(transcripts, written.transcripts),
        )

    def _webhooks(self, session_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The webhook subscriptions of those of ``session_ids`` that have one, read in ``_append_events``.

        On a shared store the rows are locked, as the ``last_seq`` update of the same transaction would lock them
        anyway: a plain read may see a subscription that another host's ``_end_webhook`` (a 410) is clearing, and
        add deliveries to the gone URL after that end failed the ones it saw. Locked, this read waits for that end
        to commit and then sees ``webhook: null``; an end that comes after waits for this commit, then fails the
        deliveries it added. ``FOR NO KEY UPDATE``, not ``FOR SHARE``: the lock the update takes, only earlier, so
        two holders never both wait to upgrade a shared lock. Lock order is unchanged: turns, then leases, then
        sessions (ids sorted), as a session delete (turns, leases, sessions) and a lease and turn start (leases,
        sessions); ``_end_webhook`` locks the session and then its deliveries, which this transaction only inserts;
        ``_claim_webhooks`` locks deliveries only, skipping locked ones."""

        def query() -> peewee.Query:
            read = SessionRow.select(SessionRow.id, SessionRow.webhook).where(
                SessionRow.id.in_(session_ids) & SessionRow.webhook.is_null(False)
            )
            if not self.shared:
                return read
            return read.order_by(SessionRow.id).for_update("FOR NO KEY UPDATE")  # type: ignore[arg-type]  # a str too

        rows = self._prepared.rows(("webhooks", len(session_ids)), query, list(session_ids))
        return {session_id: SessionRow.webhook.python_value(webhook) for session_id, webhook in rows}

    def _list_events(self, session_id: str, after: int, limit: int, types: tuple[str, ...] | None) -> list[Event]:
        def query() -> peewee.Query:
            fields = (EventRow.seq, EventRow.type, EventRow.turn_id, EventRow.created_at, EventRow.data)
            statement = EventRow.select(*fields).where((EventRow.session_id == session_id) & (EventRow.seq > after))
            if types:
                statement = statement.where(EventRow.type.in_(types))
            return statement.order_by(EventRow.seq).limit(limit)

        if self.shared:
            self._read(session_id)
        rows = self._prepared.rows(("events", len(types or ())), query, [session_id, after, *(types or ()), limit])
        data = EventRow.data.python_value
        return [
            Event(seq, type_, session_id, turn_id, created_at, data(encoded))
            for seq, type_, turn_id, created_at, encoded in rows
        ]

    def _max_seq(self, session_id: str) -> int:
        return EventRow.select(peewee.fn.MAX(EventRow.seq)).where(EventRow.session_id == session_id).scalar() or 0

    # -- the webhook outbox ----------------------------------------------------------
    def _claim_webhooks(
        self, owner: str, limit: int, lease: float, skip_urls: tuple[str, ...] = ()
    ) -> list[WebhookDelivery]:
        now = time.time()  # when a delivery is due: its host's clock, which set it
        # who holds a delivery, until when: the database's clock on a shared store, as for a session's lease (a host
        # whose clock ran ahead took deliveries another host was sending, and sent them a second time)
        held = self._db.execute_sql(f"SELECT {_DATABASE_NOW.sql}").fetchone()[0] if self.shared else now
        free = (WebhookRow.state == PENDING) & (WebhookRow.next_attempt_at <= now) & (WebhookRow.lease_until < held)
        if skip_urls:
            free &= WebhookRow.url.not_in(skip_urls)
        earlier = WebhookRow.alias("earlier")  # ``first_owed`` in SQL: none while its session owes an earlier one
        owed_before = earlier.select(earlier.id).where(
            (earlier.session_id == WebhookRow.session_id)
            & (earlier.url == WebhookRow.url)
            & (earlier.state == PENDING)
            & (earlier.seq < WebhookRow.seq)
        )
        first = free & ~peewee.fn.EXISTS(owed_before)
        with self._db.atomic():
            due = WebhookRow.select(WebhookRow.id).where(first).order_by(WebhookRow.next_attempt_at).limit(limit)
            if self.shared:  # hosts claiming at once each skip the rows the other has locked
                due = due.for_update(skip_locked=True)
            ids = [row.id for row in due]
            if not ids:
                return []
            until = held + lease  # ``free`` again, not ``first``: a delivery that was first stays first
            WebhookRow.update(lease_owner=owner, lease_until=until).where(WebhookRow.id.in_(ids) & free).execute()
            claimed = WebhookRow.select().where(
                WebhookRow.id.in_(ids) & (WebhookRow.lease_owner == owner) & (WebhookRow.lease_until == until)
            )
            return [_delivery(row) for row in claimed.order_by(WebhookRow.next_attempt_at)]

    def _finish_webhook_attempt(self, delivery_id: str, owner: str, fields: dict[str, Any]) -> None:
        with self._db.atomic():
            WebhookRow.update(**fields, lease_owner=None, lease_until=0.0).where(
                (WebhookRow.id == delivery_id) & (WebhookRow.lease_owner == owner)
            ).execute()
            if fields.get("state", PENDING) != PENDING:  # done: a deleted session's last delivery goes with it
                session = SessionRow.select(SessionRow.id).where(SessionRow.id == WebhookRow.session_id)
                WebhookRow.delete().where((WebhookRow.id == delivery_id) & ~peewee.fn.EXISTS(session)).execute()

    def _end_webhook(self, delivery_id: str, owner: str, fields: dict[str, Any], why: str) -> dict[str, Any] | None:
        now = utcnow()
        with self._db.atomic():
            gone = WebhookRow.get_or_none(WebhookRow.id == delivery_id)
            if gone is None:
                return None
            found = SessionRow.select(SessionRow.webhook).where(SessionRow.id == gone.session_id)
            if self.shared:  # two hosts' 410s at once: the second waits, then finds nothing to end
                found = found.for_update()
            session = found.first()
            ended = ended_by_gone(session.webhook if session else None, gone.url)
            if ended:
                SessionRow.update(webhook=None, updated_at=now).where(SessionRow.id == gone.session_id).execute()
            self._finish_webhook_attempt(delivery_id, owner, fields)
            owed = (WebhookRow.session_id == gone.session_id) & (WebhookRow.url == gone.url)
            WebhookRow.update(state=FAILED, completed_at=now, last_error=why).where(
                owed & (WebhookRow.state == PENDING)
            ).execute()
            if session is None:  # deleted: its deliveries go once done, as in ``_finish_webhook_attempt``
                WebhookRow.delete().where(owed & (WebhookRow.state != PENDING)).execute()
            return ended

    def _first_owed_seqs(self, session_id: str) -> dict[str, int]:
        owed = (WebhookRow.session_id == session_id) & (WebhookRow.state == PENDING)
        first = WebhookRow.select(WebhookRow.url, peewee.fn.MIN(WebhookRow.seq)).where(owed).group_by(WebhookRow.url)
        return dict(cast("list[tuple[str, int]]", list(first.tuples())))

    def _list_webhooks(
        self, session_id: str, after: int, limit: int, before: int | None, newest_first: bool
    ) -> list[WebhookDelivery]:
        where = (WebhookRow.session_id == session_id) & (WebhookRow.seq > after)
        if before is not None:
            where &= WebhookRow.seq < before
        order = WebhookRow.seq.desc() if newest_first else WebhookRow.seq
        return [_delivery(row) for row in WebhookRow.select().where(where).order_by(order).limit(limit)]

    # -- transcripts -----------------------------------------------------------
    def _append_transcript(
        self, project_key: str, session_id: str, subpath: str, entries: list[dict[str, Any]]
    ) -> None:
        with self._db.atomic():
            self._insert_transcript(TranscriptLines(project_key, session_id, subpath, entries))

    def _insert_transcript(self, lines: TranscriptLines) -> None:
        mtime = int(time.time() * 1000)
        rows = [
            {
                "project_key": lines.project_key,
                "session_id": lines.session_id,
                "subpath": lines.subpath,
                "uuid": entry.get("uuid") if isinstance(entry.get("uuid"), str) else None,
                "entry": entry,
                "mtime": mtime,
            }
            for entry in lines.entries
        ]
        for chunk in chunks(rows, 200):
            self._prepared.insert(TranscriptRow, chunk, ignore_conflicts=True)

    def _load_transcript(self, project_key: str, session_id: str, subpath: str) -> list[dict[str, Any]] | None:
        rows = _tuples(
            TranscriptRow.select(TranscriptRow.entry)
            .where(_transcript_key(project_key, session_id, subpath))
            .order_by(TranscriptRow.id)
        )
        return [entry for (entry,) in rows] or None

    def _list_transcripts(self, project_key: str) -> list[tuple[str, int]]:
        return [
            (session_id, mtime)
            for session_id, mtime in _tuples(
                TranscriptRow.select(TranscriptRow.session_id, peewee.fn.MAX(TranscriptRow.mtime))
                .where((TranscriptRow.project_key == project_key) & (TranscriptRow.subpath == ""))
                .group_by(TranscriptRow.session_id)
            )
        ]

    def _list_transcript_subpaths(self, project_key: str, session_id: str) -> list[str]:
        query = _tuples(
            TranscriptRow.select(TranscriptRow.subpath)
            .distinct()
            .where(
                (TranscriptRow.project_key == project_key)
                & (TranscriptRow.session_id == session_id)
                & (TranscriptRow.subpath != "")
            )
        )
        return [subpath for (subpath,) in query]

    def _delete_transcript(self, project_key: str | None, session_id: str, subpath: str | None) -> None:
        condition = TranscriptRow.session_id == session_id
        if project_key is not None:
            condition &= TranscriptRow.project_key == project_key
        if subpath is not None:
            condition &= TranscriptRow.subpath == subpath
        TranscriptRow.delete().where(condition).execute()

    def _adopt_transcript(self, session_id: str, project_key: str) -> bool:
        """The key whose row came last holds the newest copy (row ids only grow). A copy made
        here is identical to its source — as many rows, the same last one — and is left as it
        is, so two hosts that take turns with a session copy it only when it has moved on."""
        with self._db.atomic():
            copies = {
                key: (count, last)
                for key, count, last in _tuples(
                    TranscriptRow.select(
                        TranscriptRow.project_key, peewee.fn.COUNT(TranscriptRow.id), peewee.fn.MAX(TranscriptRow.id)
                    )
                    .where(TranscriptRow.session_id == session_id)
                    .group_by(TranscriptRow.project_key)
                )
            }
            if not copies:
                return False
            source, here = max(copies, key=lambda key: copies[key][1]), copies.get(project_key)
            if source == project_key or (
                here is not None and here[0] == copies[source][0] and _same_row(here[1], copies[source][1])
            ):
                return False
            TranscriptRow.delete().where(
                (TranscriptRow.session_id == session_id) & (TranscriptRow.project_key == project_key)
            ).execute()
            kept = (TranscriptRow.session_id, TranscriptRow.subpath, TranscriptRow.uuid, TranscriptRow.entry)
            copy = (
                TranscriptRow.select(peewee.Value(project_key), *kept, TranscriptRow.mtime)
                .where((TranscriptRow.session_id == session_id) & (TranscriptRow.project_key == source))
                .order_by(TranscriptRow.id)
            )
            # a host branching the session into the same directory at this moment copies it too
            TranscriptRow.insert_from(
                copy, [TranscriptRow.project_key, *kept, TranscriptRow.mtime]
            ).on_conflict_ignore().execute()
        return True


def _unreachable(exc: Exception) -> Unavailable:
    log.warning("database_unreachable", error=str(exc).strip() or type(exc).__name__)
    return Unavailable(
        "the database is unreachable (restarting, or the network to it is down); retry shortly",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
    )


def _without(items: Sequence[T], written: Sequence[T]) -> list[T]:
    """``items`` less the first occurrence of each of ``written`` (the same object, or an equal one)."""
    left = list(items)
    for item in written:
        with contextlib.suppress(ValueError):
            left.remove(item)
    return left


def _tuples(query: peewee.BaseQuery) -> Iterator[tuple[Any, ...]]:
    """A query's rows as plain tuples (peewee's stubs type a model query's ``.tuples()`` rows as models)."""
    return iter(query.tuples())


def _transcript_key(project_key: str, session_id: str, subpath: str) -> peewee.Expression:
    return (
        (TranscriptRow.session_id == session_id)
        & (TranscriptRow.project_key == project_key)
        & (TranscriptRow.subpath == subpath)
    )


def _same_row(one: int, other: int) -> bool:
    """Whether two transcript rows hold the same line (of the same transcript)."""
    rows = list(
        _tuples(
            TranscriptRow.select(TranscriptRow.subpath, TranscriptRow.uuid, TranscriptRow.entry).where(
                TranscriptRow.id.in_([one, other])
            )
        )
    )
    return len(rows) == 2 and rows[0] == rows[1]


def _session_record(row: SessionRow) -> SessionRecord:
    return SessionRecord(**{name: getattr(row, name) for name in _SESSION_FIELDS})


def _turn_record(row: TurnRow) -> TurnRecord:
    return TurnRecord(**{name: getattr(row, name) for name in _TURN_FIELDS})


def _delivery(row: WebhookRow) -> WebhookDelivery:
    return WebhookDelivery(**{name: getattr(row, name) for name in _DELIVERY_FIELDS})
