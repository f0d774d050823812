"""Which database a ``SqlStore`` runs on: SQLite by path (WAL), PostgreSQL by URL; and, on PostgreSQL, the LISTEN
thread that hears the appends of other gateway processes, which ``SqlStore`` announces with ``append_notice``.

Apart from ``sql.py`` because none of it is a query: connecting, and being told to read again.
"""

from __future__ import annotations

import select
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

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


class _NewConnections(peewee.PostgresqlDatabase):
    """What each new connection of the pool is set up with (placed under the pool: connections it hands out again
    are not set up again)."""

    def _connect(self) -> Any:
        """A new connection, whose server process ends itself once left in an open transaction for
        ``IDLE_IN_TRANSACTION_MS``: should this host vanish mid-transaction (its machine gone, the network cut), the
        server would otherwise keep that transaction, and the rows it locked (a session's, its new events' keys),
        until its own TCP keepalive gave up on us, two hours by default; every other host that takes the session
        over (closing the dead host's turn) would wait on those locks as long, its store thread with them. A
        transaction here never idles: its statements go one after the other. A URL whose ``options`` set the
        timeout keeps its own."""
        connection = super()._connect()  # type: ignore[misc]  # peewee, untyped
        if "idle_in_transaction_session_timeout" not in str(self.connect_params.get("options", "")):
            with connection.cursor() as cursor:
                cursor.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")
        return connection


class PostgresDatabase(PooledPostgresqlDatabase, _NewConnections):
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


#: TCP keepalives on every connection to PostgreSQL, unless the URL sets its own: a connection whose peer vanished
#: without a word (its host gone, a NAT or firewall that dropped the flow) fails within about a minute instead of
#: hanging the store thread, or leaving the LISTEN connection deaf, for the kernel's two hours. ``connect_timeout``
#: likewise bounds a connection attempt to a host that does not answer (a 503 in seconds, not after the kernel's two
#: minutes of SYN retries).
CONNECTION_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}
#: How long a connection of the store may sit in an open transaction before its server process ends it (see
#: ``_NewConnections._connect``).
IDLE_IN_TRANSACTION_MS = 60_000
#: How long data sent may go unacknowledged before the connection is given up (libpq 12 and later): a statement sent
#: into a dead network fails then, instead of after some fifteen minutes of retransmissions.
TCP_USER_TIMEOUT_MS = "60000"


def postgres_database(url: str) -> PostgresDatabase:
    """PostgreSQL from ``postgresql://user:password@host:port/database[?param=value&...]``, with a small
    connection pool (the store thread holds one; LISTEN holds another). The query's parameters are libpq's
    (``sslmode``, ``application_name``, ``keepalives_idle``, ...) and win over ours (``CONNECTION_DEFAULTS``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.path.strip("/"):
        raise ValueError("CC_API_DATABASE_URL must look like postgresql://user@host:port/database")
    return PostgresDatabase(
        unquote(parts.path.strip("/")),
        **connection_params(parts),
        max_connections=8,
        stale_timeout=300,
    )


def connection_params(parts: SplitResult) -> dict[str, Any]:
    """libpq's keywords for a split URL: its user, password, host and port, its query's parameters, and
    ``CONNECTION_DEFAULTS`` where it sets none of them."""
    params: dict[str, Any] = {
        "user": unquote(parts.username or "") or None,
        "password": unquote(parts.password or "") or None,
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
    }
    given = dict(parse_qsl(parts.query, keep_blank_values=True))
    params.update(given)
    for name, value in CONNECTION_DEFAULTS.items():
        params.setdefault(name, value)
    if "tcp_user_timeout" not in given and _libpq_version() >= 120000:
        params["tcp_user_timeout"] = TCP_USER_TIMEOUT_MS
    return {name: value for name, value in params.items() if value is not None}


def _libpq_version() -> int:
    try:
        import psycopg2  # the [postgres] extra
    except ImportError:  # peewee says so at the first connection
        return 0
    return int(getattr(psycopg2, "__libpq_version__", 0))


class ListenerSilent(Exception):
    """The LISTEN connection did not answer a liveness check in time: its peer is gone without a word."""


class AppendListener(threading.Thread):
    """LISTENs on a dedicated PostgreSQL connection and reports sessions that other gateway
    processes appended events to; the events table stays the source of truth.

    A connection whose peer vanished without a reset (the database's host gone, a NAT that dropped the flow) looks
    like a quiet one: nothing would ever be heard again, and followers here would wait on their keep-alive re-reads
    only. So after ``ping_every`` seconds of quiet the listener sends ``SELECT 1`` and gives the connection
    ``ping_timeout`` seconds to answer (besides the TCP keepalives every connection has); one that does not is
    dropped and another opened. What was announced while none listened is lost, so after a reconnect every session
    ``recently_read`` here (what followers re-read) is reported as appended to, and its followers read it again."""

    def __init__(
        self,
        database: peewee.PostgresqlDatabase,
        on_append: Callable[[str], object],
        recently_read: Callable[[], Iterable[str]] = tuple,
        ping_every: float = 10.0,
        ping_timeout: float = 10.0,
    ) -> None:
        super().__init__(name="ccapi-pg-listen", daemon=True)
        self._params = {"dbname": database.database, **database.connect_params}
        self._on_append = on_append
        self._recently_read = recently_read
        self._ping_every = ping_every
        self._ping_timeout = ping_timeout
        self._stopping = threading.Event()
        self.connections = 0
        """Connections opened and listening so far (a reconnect makes it 2, ...)."""
        self.backend_pid: int | None = None
        """The server process of the current LISTEN connection."""

    def run(self) -> None:
        import psycopg2  # the [postgres] extra; only a PostgreSQL store gets here

        while not self._stopping.is_set():
            try:
                self._listen(psycopg2)
            except (psycopg2.Error, ListenerSilent, OSError) as exc:
                if not self._stopping.is_set():
                    log.warning("pg_listen_reconnecting", error=str(exc).strip() or type(exc).__name__)
                self._stopping.wait(1.0)
            except Exception:  # a failing callback must not end the listening for good
                log.exception("pg_listen_failed")
                self._stopping.wait(1.0)

    def _listen(self, psycopg2: Any) -> None:
        connection = psycopg2.connect(**self._params, async_=True)  # async: no wait here is ever unbounded
        try:
            connect_timeout = float(self._params.get("connect_timeout") or 10)
            self._wait(connection, connect_timeout)
            cursor = connection.cursor()
            cursor.execute(f"LISTEN {EVENTS_CHANNEL}; SELECT pg_backend_pid()")
            self._wait(connection, self._ping_timeout)
            self.backend_pid = cursor.fetchone()[0]
            self.connections += 1
            if self.connections > 1:  # announcements made while nobody listened here were lost: read again
                for session_id in list(self._recently_read()):
                    self._on_append(session_id)
            quiet_since = time.monotonic()
            while not self._stopping.is_set():
                if select.select([connection], [], [], 0.5)[0]:
                    connection.poll()
                    self._deliver(connection)
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= self._ping_every:
                    cursor.execute("SELECT 1")
                    self._wait(connection, self._ping_timeout)
                    cursor.fetchall()
                    quiet_since = time.monotonic()
        finally:
            self.backend_pid = None
            connection.close()

    def _wait(self, connection: Any, timeout: float) -> None:
        """Poll ``connection`` until what it is doing is done, for ``timeout`` seconds at most (what it hears
        meanwhile is delivered)."""
        import psycopg2.extensions as pg

        deadline = time.monotonic() + timeout
        while True:
            state = connection.poll()
            self._deliver(connection)
            if state == pg.POLL_OK:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise ListenerSilent(f"no answer from PostgreSQL in {timeout:g} s")
            if self._stopping.is_set():
                raise ListenerSilent("stopping")
            left = min(left, 0.5)  # ``stop`` is not kept waiting
            if state == pg.POLL_READ:
                select.select([connection], [], [], left)
            elif state == pg.POLL_WRITE:
                select.select([], [connection], [], left)
            else:  # POLL_ERROR raises in ``poll`` itself
                raise ListenerSilent(f"unexpected poll state {state!r}")

    def _deliver(self, connection: Any) -> None:
        while connection.notifies:
            process, _, session_id = connection.notifies.pop(0).payload.partition(":")
            if process != _PROCESS:
                self._on_append(session_id)

    def stop(self) -> None:
        self._stopping.set()
        self.join(5)
