"""Persistence: sessions, turns and the event log."""

from __future__ import annotations

from ccapi.config import Settings
from ccapi.store.records import SessionRecord, TurnRecord
from ccapi.store.sql import SqlStore, sqlite_database

__all__ = ["SessionRecord", "SqlStore", "TurnRecord", "open_store"]


async def open_store(settings: Settings) -> SqlStore:
    """The configured backend, opened and migrated."""
    store = SqlStore(sqlite_database(settings.database_path))
    await store.open()
    return store
