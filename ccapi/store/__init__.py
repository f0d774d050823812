"""Persistence: sessions, turns, the event log, idempotency keys and Claude Code's
transcripts, behind one ``Store`` contract with SQLite and JSON-directory backends."""

from __future__ import annotations

from ccapi.config import Settings
from ccapi.store.base import Store
from ccapi.store.databases import postgres_database, sqlite_database
from ccapi.store.jsondir import JsonDirStore
from ccapi.store.records import SessionRecord, TurnRecord
from ccapi.store.sql import SqlStore

__all__ = [
    "JsonDirStore",
    "SessionRecord",
    "SqlStore",
    "Store",
    "StoreUnavailable",
    "TurnRecord",
    "make_store",
    "open_store",
]


class StoreUnavailable(Exception):
    """The configured store could not be opened at start-up. ``lasting``: a local path that will not open on the
    next try either (a setting to fix), unlike a database server that may be back."""

    def __init__(self, message: str, lasting: bool) -> None:
        super().__init__(message)
        self.lasting = lasting


def make_store(settings: Settings) -> Store:
    """The configured backend: PostgreSQL at ``CC_API_DATABASE_URL``, a JSON directory at
    ``CC_API_SESSION_DIR``, else SQLite at ``CC_API_SESSION_DB`` (default ``$CC_API_HOME/sessions.db``)."""
    if settings.database_url:
        return SqlStore(postgres_database(settings.database_url))
    if settings.session_dir:
        return JsonDirStore(settings.session_dir)
    return SqlStore(sqlite_database(settings.database_path))


async def open_store(settings: Settings) -> Store:
    store = make_store(settings)
    await store.open()
    return store
