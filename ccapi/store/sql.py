"""The peewee store (SQLite by default, PostgreSQL by URL).

peewee is synchronous, so every call runs on one dedicated thread: a slow disk or a
remote database never stalls the event loop that streams to clients, and a single
writer thread means SQLite never sees competing writers from this process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import peewee

from ccapi.events import Event
from ccapi.store.models import (
    ALL_MODELS,
    EventRow,
    IdempotencyRow,
    SessionRow,
    TranscriptRow,
    TurnRow,
    database_proxy,
)
from ccapi.store.records import SessionRecord, TurnRecord

T = TypeVar("T")

_SESSION_FIELDS = tuple(f.name for f in dataclasses.fields(SessionRecord))
_TURN_FIELDS = tuple(f.name for f in dataclasses.fields(TurnRecord))


def sqlite_database(path: Path) -> peewee.SqliteDatabase:
    """SQLite in WAL mode: readers never block the writer, and ``synchronous=NORMAL``
    keeps every committed transaction across a process crash (``kill -9``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return peewee.SqliteDatabase(
        str(path),
        pragmas={"journal_mode": "wal", "synchronous": "normal", "foreign_keys": 1, "busy_timeout": 5000},
        check_same_thread=False,
    )


class SqlStore:
    """Async façade over the peewee models; the only module that runs queries."""

    def __init__(self, database: peewee.Database) -> None:
        self._db = database
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ccapi-db")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- lifecycle -------------------------------------------------------------
    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        database_proxy.initialize(self._db)
        self._db.connect(reuse_if_open=True)
        self._db.create_tables(ALL_MODELS, safe=True)

    async def close(self) -> None:
        await self._run(self._db.close)
        self._executor.shutdown(wait=True)

    async def ping(self) -> bool:
        try:
            await self._run(lambda: self._db.execute_sql("SELECT 1").fetchone())
        except peewee.PeeweeException:
            return False
        return True

    # -- sessions --------------------------------------------------------------
    async def create_session(self, record: SessionRecord) -> None:
        await self._run(lambda: SessionRow.create(**dataclasses.asdict(record)))

    async def get_session(self, session_id: str) -> SessionRecord | None:
        return await self._run(self._get_session, session_id)

    def _get_session(self, session_id: str) -> SessionRecord | None:
        row = SessionRow.get_or_none(SessionRow.id == session_id)
        return _session_record(row) if row else None

    async def list_sessions(self, limit: int, after: str | None) -> list[SessionRecord]:
        return await self._run(self._list_sessions, limit, after)

    def _list_sessions(self, limit: int, after: str | None) -> list[SessionRecord]:
        query = SessionRow.select().order_by(SessionRow.created_at.desc(), SessionRow.id.desc())
        if after is not None:
            cursor = SessionRow.get_or_none(SessionRow.id == after)
            if cursor is None:
                return []
            query = query.where(
                (SessionRow.created_at < cursor.created_at)
                | ((SessionRow.created_at == cursor.created_at) & (SessionRow.id < cursor.id))
            )
        return [_session_record(row) for row in query.limit(limit)]

    async def count_sessions(self) -> int:
        return await self._run(lambda: SessionRow.select().count())

    async def update_session(self, session_id: str, **fields: Any) -> None:
        await self._run(lambda: SessionRow.update(**fields).where(SessionRow.id == session_id).execute())

    async def delete_session(self, session_id: str) -> bool:
        return await self._run(self._delete_session, session_id)

    def _delete_session(self, session_id: str) -> bool:
        with self._db.atomic():
            EventRow.delete().where(EventRow.session_id == session_id).execute()
            IdempotencyRow.delete().where(IdempotencyRow.session_id == session_id).execute()
            TurnRow.delete().where(TurnRow.session_id == session_id).execute()
            return SessionRow.delete().where(SessionRow.id == session_id).execute() > 0

    # -- turns -----------------------------------------------------------------
    async def create_turn(self, record: TurnRecord) -> None:
        await self._run(self._create_turn, record)

    def _create_turn(self, record: TurnRecord) -> None:
        with self._db.atomic():
            TurnRow.create(**dataclasses.asdict(record))
            SessionRow.update(turn_count=SessionRow.turn_count + 1, updated_at=record.created_at).where(
                SessionRow.id == record.session_id
            ).execute()

    async def update_turn(self, turn_id: str, **fields: Any) -> None:
        await self._run(lambda: TurnRow.update(**fields).where(TurnRow.id == turn_id).execute())

    async def get_turn(self, turn_id: str) -> TurnRecord | None:
        return await self._run(self._get_turn, turn_id)

    def _get_turn(self, turn_id: str) -> TurnRecord | None:
        row = TurnRow.get_or_none(TurnRow.id == turn_id)
        return _turn_record(row) if row else None

    async def list_turns(self, session_id: str, statuses: Iterable[str] | None = None) -> list[TurnRecord]:
        return await self._run(self._list_turns, session_id, tuple(statuses) if statuses else None)

    def _list_turns(self, session_id: str, statuses: tuple[str, ...] | None) -> list[TurnRecord]:
        query = TurnRow.select().where(TurnRow.session_id == session_id)
        if statuses:
            query = query.where(TurnRow.status.in_(statuses))
        return [_turn_record(row) for row in query.order_by(TurnRow.number)]

    async def running_turns(self) -> list[TurnRecord]:
        return await self._run(
            lambda: [_turn_record(row) for row in TurnRow.select().where(TurnRow.status.in_(("running", "requires_action")))]
        )

    # -- idempotency keys --------------------------------------------------------
    async def find_idempotency_key(self, session_id: str, key: str) -> tuple[str, str] | None:
        """``(fingerprint, turn_id)`` recorded for the key, if any."""
        row = await self._run(lambda: IdempotencyRow.get_or_none(
            (IdempotencyRow.session_id == session_id) & (IdempotencyRow.key == key)))
        return (row.fingerprint, row.turn_id) if row else None

    async def save_idempotency_key(self, session_id: str, key: str, fingerprint: str, turn_id: str,
                                   created_at: str) -> None:
        await self._run(lambda: IdempotencyRow.create(session_id=session_id, key=key, fingerprint=fingerprint,
                                                      turn_id=turn_id, created_at=created_at))

    # -- Claude Code transcripts (the SDK SessionStore mirror) -------------------
    async def append_transcript(self, project_key: str, session_id: str, subpath: str,
                                entries: list[dict[str, Any]]) -> None:
        """Append in call order; an entry whose ``uuid`` is already stored is skipped (the SDK retries)."""
        await self._run(self._append_transcript, project_key, session_id, subpath, entries)

    def _append_transcript(self, project_key: str, session_id: str, subpath: str,
                           entries: list[dict[str, Any]]) -> None:
        mtime = int(time.time() * 1000)
        rows = [{"project_key": project_key, "session_id": session_id, "subpath": subpath,
                 "uuid": entry.get("uuid") if isinstance(entry.get("uuid"), str) else None,
                 "entry": entry, "mtime": mtime} for entry in entries]
        with self._db.atomic():
            for chunk in peewee.chunked(rows, 200):
                TranscriptRow.insert_many(chunk).on_conflict_ignore().execute()

    async def load_transcript(self, project_key: str, session_id: str, subpath: str) -> list[dict[str, Any]] | None:
        rows = await self._run(lambda: list(
            TranscriptRow.select(TranscriptRow.entry).where(_transcript_key(project_key, session_id, subpath))
            .order_by(TranscriptRow.id).tuples()))
        return [entry for (entry,) in rows] or None

    async def list_transcripts(self, project_key: str) -> list[tuple[str, int]]:
        """``(session_id, mtime_ms)`` of every main transcript in a project."""
        return await self._run(lambda: list(
            TranscriptRow.select(TranscriptRow.session_id, peewee.fn.MAX(TranscriptRow.mtime))
            .where((TranscriptRow.project_key == project_key) & (TranscriptRow.subpath == ""))
            .group_by(TranscriptRow.session_id).tuples()))

    async def list_transcript_subpaths(self, project_key: str, session_id: str) -> list[str]:
        return await self._run(lambda: [subpath for (subpath,) in
            TranscriptRow.select(TranscriptRow.subpath).distinct()
            .where((TranscriptRow.project_key == project_key) & (TranscriptRow.session_id == session_id)
                   & (TranscriptRow.subpath != "")).tuples()])

    async def delete_transcript(self, project_key: str | None, session_id: str, subpath: str | None) -> None:
        """Delete one transcript, or with ``subpath=None`` the session's main transcript and all
        its subpaths; ``project_key=None`` matches every project (a CC API session delete)."""
        condition = TranscriptRow.session_id == session_id
        if project_key is not None:
            condition &= TranscriptRow.project_key == project_key
        if subpath is not None:
            condition &= TranscriptRow.subpath == subpath
        await self._run(lambda: TranscriptRow.delete().where(condition).execute())

    # -- events ----------------------------------------------------------------
    async def append_events(self, events: list[Event]) -> None:
        """Write a batch in one transaction: a whole streamed reply costs a handful of commits."""
        await self._run(self._append_events, events)

    def _append_events(self, events: list[Event]) -> None:
        last_seq: dict[str, int] = {}
        with self._db.atomic():
            rows = [dataclasses.asdict(event) for event in events]
            for chunk in peewee.chunked(rows, 200):
                EventRow.insert_many(chunk).execute()
            for event in events:
                last_seq[event.session_id] = max(event.seq, last_seq.get(event.session_id, 0))
            for session_id, seq in last_seq.items():
                SessionRow.update(last_seq=seq).where(SessionRow.id == session_id).execute()

    async def list_events(
        self, session_id: str, after: int = 0, limit: int = 1000, types: Iterable[str] | None = None
    ) -> list[Event]:
        return await self._run(self._list_events, session_id, after, limit, tuple(types) if types else None)

    def _list_events(self, session_id: str, after: int, limit: int, types: tuple[str, ...] | None) -> list[Event]:
        query = EventRow.select().where((EventRow.session_id == session_id) & (EventRow.seq > after))
        if types:
            query = query.where(EventRow.type.in_(types))
        return [
            Event(row.seq, row.type, row.session_id, row.turn_id, row.created_at, row.data)
            for row in query.order_by(EventRow.seq).limit(limit)
        ]

    async def max_seq(self, session_id: str) -> int:
        return await self._run(
            lambda: EventRow.select(peewee.fn.MAX(EventRow.seq)).where(EventRow.session_id == session_id).scalar()
            or 0
        )


def _transcript_key(project_key: str, session_id: str, subpath: str) -> peewee.Expression:
    return ((TranscriptRow.session_id == session_id) & (TranscriptRow.project_key == project_key)
            & (TranscriptRow.subpath == subpath))


def _session_record(row: SessionRow) -> SessionRecord:
    return SessionRecord(**{name: getattr(row, name) for name in _SESSION_FIELDS})


def _turn_record(row: TurnRow) -> TurnRecord:
    return TurnRecord(**{name: getattr(row, name) for name in _TURN_FIELDS})
