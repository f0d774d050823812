"""The peewee backend: SQLite by default (WAL), PostgreSQL by URL.

The models are bound through one ``DatabaseProxy``, so a process has one SQL store.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import peewee

from ccapi.events import Event
from ccapi.store.base import OPEN_TURN_STATES, Store
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


class SqlStore(Store):
    def __init__(self, database: peewee.Database) -> None:
        super().__init__()
        self._db = database

    def _open(self) -> None:
        database_proxy.initialize(self._db)
        self._db.connect(reuse_if_open=True)
        self._db.create_tables(ALL_MODELS, safe=True)

    def _close(self) -> None:
        self._db.close()

    def _ping(self) -> bool:
        self._db.execute_sql("SELECT 1").fetchone()
        return True

    # -- sessions --------------------------------------------------------------
    def _create_session(self, record: SessionRecord) -> None:
        SessionRow.create(**dataclasses.asdict(record))

    def _get_session(self, session_id: str) -> SessionRecord | None:
        row = SessionRow.get_or_none(SessionRow.id == session_id)
        return _session_record(row) if row else None

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

    def _update_session(self, session_id: str, fields: dict[str, Any]) -> None:
        SessionRow.update(**fields).where(SessionRow.id == session_id).execute()

    def _delete_session(self, session_id: str) -> bool:
        with self._db.atomic():
            EventRow.delete().where(EventRow.session_id == session_id).execute()
            IdempotencyRow.delete().where(IdempotencyRow.session_id == session_id).execute()
            TurnRow.delete().where(TurnRow.session_id == session_id).execute()
            return SessionRow.delete().where(SessionRow.id == session_id).execute() > 0

    # -- turns -----------------------------------------------------------------
    def _create_turn(self, record: TurnRecord) -> None:
        with self._db.atomic():
            TurnRow.create(**dataclasses.asdict(record))
            SessionRow.update(turn_count=SessionRow.turn_count + 1, updated_at=record.created_at).where(
                SessionRow.id == record.session_id
            ).execute()

    def _update_turn(self, turn_id: str, fields: dict[str, Any]) -> None:
        TurnRow.update(**fields).where(TurnRow.id == turn_id).execute()

    def _get_turn(self, turn_id: str) -> TurnRecord | None:
        row = TurnRow.get_or_none(TurnRow.id == turn_id)
        return _turn_record(row) if row else None

    def _open_turns(self) -> list[TurnRecord]:
        return [_turn_record(row) for row in TurnRow.select().where(TurnRow.status.in_(OPEN_TURN_STATES))]

    # -- idempotency keys --------------------------------------------------------
    def _find_idempotency_key(self, session_id: str, key: str) -> tuple[str, str] | None:
        row = IdempotencyRow.get_or_none((IdempotencyRow.session_id == session_id) & (IdempotencyRow.key == key))
        return (row.fingerprint, row.turn_id) if row else None

    def _save_idempotency_key(self, session_id: str, key: str, fingerprint: str, turn_id: str,
                              created_at: str) -> None:
        IdempotencyRow.create(session_id=session_id, key=key, fingerprint=fingerprint, turn_id=turn_id,
                              created_at=created_at)

    # -- events ----------------------------------------------------------------
    def _append_events(self, events: list[Event]) -> None:
        last_seq: dict[str, int] = {}
        for event in events:
            last_seq[event.session_id] = max(event.seq, last_seq.get(event.session_id, 0))
        with self._db.atomic():
            for chunk in peewee.chunked([dataclasses.asdict(event) for event in events], 200):
                EventRow.insert_many(chunk).execute()
            for session_id, seq in last_seq.items():
                SessionRow.update(last_seq=seq).where(SessionRow.id == session_id).execute()

    def _list_events(self, session_id: str, after: int, limit: int, types: tuple[str, ...] | None) -> list[Event]:
        query = EventRow.select().where((EventRow.session_id == session_id) & (EventRow.seq > after))
        if types:
            query = query.where(EventRow.type.in_(types))
        return [
            Event(row.seq, row.type, row.session_id, row.turn_id, row.created_at, row.data)
            for row in query.order_by(EventRow.seq).limit(limit)
        ]

    def _max_seq(self, session_id: str) -> int:
        return EventRow.select(peewee.fn.MAX(EventRow.seq)).where(EventRow.session_id == session_id).scalar() or 0

    # -- transcripts -----------------------------------------------------------
    def _append_transcript(self, project_key: str, session_id: str, subpath: str,
                           entries: list[dict[str, Any]]) -> None:
        mtime = int(time.time() * 1000)
        rows = [{"project_key": project_key, "session_id": session_id, "subpath": subpath,
                 "uuid": entry.get("uuid") if isinstance(entry.get("uuid"), str) else None,
                 "entry": entry, "mtime": mtime} for entry in entries]
        with self._db.atomic():
            for chunk in peewee.chunked(rows, 200):
                TranscriptRow.insert_many(chunk).on_conflict_ignore().execute()

    def _load_transcript(self, project_key: str, session_id: str, subpath: str) -> list[dict[str, Any]] | None:
        rows = (TranscriptRow.select(TranscriptRow.entry)
                .where(_transcript_key(project_key, session_id, subpath)).order_by(TranscriptRow.id).tuples())
        return [entry for (entry,) in rows] or None

    def _list_transcripts(self, project_key: str) -> list[tuple[str, int]]:
        return list(TranscriptRow.select(TranscriptRow.session_id, peewee.fn.MAX(TranscriptRow.mtime))
                    .where((TranscriptRow.project_key == project_key) & (TranscriptRow.subpath == ""))
                    .group_by(TranscriptRow.session_id).tuples())

    def _list_transcript_subpaths(self, project_key: str, session_id: str) -> list[str]:
        query = (TranscriptRow.select(TranscriptRow.subpath).distinct()
                 .where((TranscriptRow.project_key == project_key) & (TranscriptRow.session_id == session_id)
                        & (TranscriptRow.subpath != "")).tuples())
        return [subpath for (subpath,) in query]

    def _delete_transcript(self, project_key: str | None, session_id: str, subpath: str | None) -> None:
        condition = TranscriptRow.session_id == session_id
        if project_key is not None:
            condition &= TranscriptRow.project_key == project_key
        if subpath is not None:
            condition &= TranscriptRow.subpath == subpath
        TranscriptRow.delete().where(condition).execute()


def _transcript_key(project_key: str, session_id: str, subpath: str) -> peewee.Expression:
    return ((TranscriptRow.session_id == session_id) & (TranscriptRow.project_key == project_key)
            & (TranscriptRow.subpath == subpath))


def _session_record(row: SessionRow) -> SessionRecord:
    return SessionRecord(**{name: getattr(row, name) for name in _SESSION_FIELDS})


def _turn_record(row: TurnRow) -> TurnRecord:
    return TurnRecord(**{name: getattr(row, name) for name in _TURN_FIELDS})
