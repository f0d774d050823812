"""Which database a ``SqlStore`` runs on: SQLite by path (WAL), PostgreSQL by URL; and, on PostgreSQL, the LISTEN
thread that hears the appends of other gateway processes, which ``SqlStore`` announces with ``append_notice``.

Apart from ``sql.py`` because none of it is a query: connecting, and being told to read again.
"""

from __future__ import annotations

import select
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import peewee
import structlog
from playhouse.pool import PooledPostgresqlDatabase

log = structlog.get_logger(__name__)

EVENTS_CHANNEL = "ccapi_events"
_PROCESS = uuid.uuid4().hex[:12]  # tells this process's own notifications apart


def append_notice(session_id: str) -> str:
    """The NOTIFY payload for an append to ``session_id``: this process's listener skips its own."""
    return f"{_PROCESS}:{session_id}"


class SqliteDatabase(peewee.SqliteDatabase):
    """peewee's SQLite, whose rollback of a transaction SQLite has already rolled back (a full disk does that) is
    no error: raised, "cannot rollback - no transaction is active" hid the error that ended the transaction
    ("database or disk is full") from the log and the 503 that said the store refused writes."""

    def rollback(self) -> None:
        try:
            super().rollback()
        except peewee.OperationalError as exc:
            if "no transaction is active" not in str(exc):
                raise


def sqlite_database(path: Path) -> peewee.SqliteDatabase:
    """SQLite in WAL mode: readers never block the writer, and ``synchronous=NORMAL``
    keeps every committed transaction across a process crash (``kill -9``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteDatabase(
        str(path),
        pragmas={"journal_mode": "wal", "synchronous": "normal", "foreign_keys": 1, "busy_timeout": 5000},
        check_same_thread=False,
    )


class PostgresDatabase(PooledPostgresqlDatabase):
    """peewee's pooled PostgreSQL, counting the statements it sends (``BEGIN`` included): a call to the store whose
    very first one failed on a lost connection reached the database with nothing, and may run again on a new one."""

    round_trips = 0

    def cursor(self, named_cursor: Any = None) -> Any:
        self.round_trips += 1
        return super().cursor(named_cursor)

    def connection_lost(self) -> bool:
        """Whether this thread's connection is gone (the server restarted, or the network dropped it): psycopg2 marks
        a connection closed once a statement found it dead; peewee's own state does not change."""
        if self.is_closed():
            return True
        return bool(getattr(self._state.conn, "closed", 0))

    def discard_connection(self) -> None:
        """Drop this thread's dead connection without handing it back to the pool; the next statement opens
        another."""
        try:
            self.manual_close()
        except Exception:  # noqa: BLE001 - a dead connection may fail to close; it is dropped all the same
            self._state.reset()
        self.close_idle()  # idle ones are as old as it: the outage that killed it killed them too


def postgres_database(url: str) -> PostgresDatabase:
    """PostgreSQL from ``postgresql://user:password@host:port/database``, with a small
    connection pool (the store thread holds one; LISTEN holds another)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.path.strip("/"):
        raise ValueError("CC_API_DATABASE_URL must look like postgresql://user@host:port/database")
    return PostgresDatabase(
        parts.path.strip("/"),
        user=unquote(parts.username or "") or None,
        password=unquote(parts.password or "") or None,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        max_connections=8,
        stale_timeout=300,
    )


class AppendListener(threading.Thread):
    """LISTENs on a dedicated PostgreSQL connection and reports sessions that other gateway
    processes appended events to; the events table stays the source of truth."""

    def __init__(self, database: peewee.PostgresqlDatabase, on_append: Callable[[str], object]) -> None:
        super().__init__(name="ccapi-pg-listen", daemon=True)
        self._params = {"dbname": database.database, **database.connect_params}
        self._on_append = on_append
        self._stopping = threading.Event()

    def run(self) -> None:
        import psycopg2  # the [postgres] extra; only a PostgreSQL store gets here

        while not self._stopping.is_set():
            try:
                self._listen(psycopg2)
            except psycopg2.Error:
                log.warning("pg_listen_reconnecting", exc_info=True)
                self._stopping.wait(1.0)

    def _listen(self, psycopg2: Any) -> None:
        connection = psycopg2.connect(**self._params)
        try:
            connection.autocommit = True
            connection.cursor().execute(f"LISTEN {EVENTS_CHANNEL}")
            while not self._stopping.is_set():
                if select.select([connection], [], [], 0.5)[0]:
                    connection.poll()
                    while connection.notifies:
                        process, _, session_id = connection.notifies.pop(0).payload.partition(":")
                        if process != _PROCESS:
                            self._on_append(session_id)
        finally:
            connection.close()

    def stop(self) -> None:
        self._stopping.set()
        self.join(5)
