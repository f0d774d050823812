"""PostgreSQL when the connection fails at the worst moment: an event batch's COMMIT takes effect as the connection
dies (the client never hears it), and the LISTEN connection goes silent without a reset (a host or NAT gone)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import psycopg2
import pytest
import structlog

from ccapi.errors import Unavailable
from ccapi.events import Event
from ccapi.sessions.eventlog import EventLog
from ccapi.store import SessionRecord, SqlStore, TurnRecord
from ccapi.store import sql as sql_store
from ccapi.store.databases import AppendListener, postgres_database
from ccapi.store.records import TranscriptLines, TurnEnd
from ccapi.testing import MockModel, Reply
from tests import postgres
from tests.gateway import eventually
from tests.pgproxy import PgProxy

pytestmark = pytest.mark.slow  # a PostgreSQL server, and gateways on it

CREATED = "2026-01-01T00:00:00.000Z"


@pytest.fixture(autouse=True)
def logs() -> Iterator[list[dict]]:
    """What the store logged (captured: structlog's console renderer drew each exception's locals, the batches of
    events among them, for seconds on end on the test's event loop)."""
    with structlog.testing.capture_logs() as lines:
        yield lines


@pytest.fixture
def proxy(postgres_server: postgres.PostgresServer) -> Iterator[PgProxy]:
    own = PgProxy(postgres_server.port)
    yield own
    own.close()


def _session(session_id: str, **changes: object) -> SessionRecord:
    record = SessionRecord(
        session_id, CREATED, CREATED, "claude-sonnet-4-5", None, [], {}, None, None, None, "idle", None, 0, 0
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def _event(session_id: str, seq: int, type_: str = "message.delta", turn_id: str | None = "turn_1") -> Event:
    return Event(seq, type_, session_id, turn_id, CREATED, {"n": seq})


def _direct(url: str) -> psycopg2.extensions.connection:
    connection = psycopg2.connect(url)
    connection.autocommit = True
    return connection


def _rows(url: str, query: str, *params: object) -> list[tuple]:
    connection = _direct(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchall()
    finally:
        connection.close()


# -- an event batch whose COMMIT took effect as the connection died ------------------------------------------------


def test_a_batch_committed_as_its_connection_died_is_written_once_and_the_log_goes_on(
    postgres_server: postgres.PostgresServer, proxy: PgProxy, logs: list[dict]
) -> None:
    """The batch's COMMIT reached PostgreSQL and took effect; the answer never came back. The store called it a 503,
    the event log sent the batch again, and every retry failed on the keys of the events already in (a duplicate key
    error, for ever): the session's log stalled. Now the store asks whether that transaction committed, and it did:
    the batch is a success, the next events go on after it, and nothing is there twice."""
    url = postgres_server.create_database()
    store = SqlStore(postgres_database(proxy.url(url)))
    turn = TurnRecord("turn_1", "sess_c", 1, "running", "hello", CREATED)

    async def main() -> None:
        await store.open()
        log = EventLog(store, write_timeout=5)
        log.start()
        await store.create_session(
            _session("sess_c", webhook={"url": "http://127.0.0.1:9/h", "events": ["turn.completed"]})
        )
        await store.create_turn(turn)
        await log.emit("sess_c", "turn_1", "turn.started", {})
        await log.flush()
        proxy.cut_after_commit()
        await log.emit("sess_c", "turn_1", "message.delta", {"text": "hello"})
        ended = await log.emit("sess_c", "turn_1", "turn.completed", {})
        log.end_turn(
            TurnEnd("turn_1", "sess_c", {"status": "completed", "last_event_seq": ended.seq}, {"status": "idle"})
        )
        log.mirror(TranscriptLines("proj", "sess_c", "", [{"type": "summary", "summary": "no uuid"}]))
        async with asyncio.timeout(20):
            await log.flush()
        assert proxy.cut == 1 and log.stalled is None
        assert "event_batch_committed_as_connection_died" in [line["event"] for line in logs]
        assert "event_batch_write_failed" not in [line["event"] for line in logs]  # not even once: it is in
        await log.emit("sess_c", "turn_2", "turn.started", {})
        async with asyncio.timeout(20):
            await log.flush()
        await log.stop()
        events = await store.list_events("sess_c")
        assert [(e.seq, e.type) for e in events] == [
            (1, "turn.started"),
            (2, "message.delta"),
            (3, "turn.completed"),
            (4, "turn.started"),
        ]
        stored_turn = await store.get_turn("turn_1")
        assert stored_turn is not None and stored_turn.status == "completed"
        session = await store.get_session("sess_c")
        assert session is not None and session.last_seq == 4 and session.status == "idle"
        assert await store.load_transcript("proj", "sess_c", "") == [{"type": "summary", "summary": "no uuid"}]
        assert [(d.seq, d.type) for d in await store.list_webhooks("sess_c", 0, 10)] == [(3, "turn.completed")]
        await store.close()

    asyncio.run(main())


def test_a_batch_whose_outcome_could_not_be_learnt_at_once_is_settled_by_the_next(
    postgres_server: postgres.PostgresServer, proxy: PgProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database could not be asked at once whether the batch committed (it was restarting): a 503, and the
    event log sends the batch again with what came after it. The store asks first, and writes only what is new."""
    url = postgres_server.create_database()
    store = SqlStore(postgres_database(proxy.url(url)))
    committed = SqlStore._committed
    asked: list[bool] = []

    def unreachable_once(self: SqlStore, batch: object) -> bool:
        if not asked:
            asked.append(True)
            raise sql_store._Unsettled("the database is restarting")
        asked.append(committed(self, batch))  # type: ignore[arg-type]
        return asked[-1]

    monkeypatch.setattr(SqlStore, "_committed", unreachable_once)

    async def main() -> None:
        await store.open()
        await store.create_session(_session("sess_u"))
        first = [_event("sess_u", 1), _event("sess_u", 2)]
        proxy.cut_after_commit()
        with pytest.raises(Unavailable):
            await store.append_events(first)
        again = [*first, _event("sess_u", 3)]
        await store.append_events(again)
        assert asked == [True, True]
        assert [e.seq for e in await store.list_events("sess_u")] == [1, 2, 3]
        session = await store.get_session("sess_u")
        assert session is not None and session.last_seq == 3
        await store.append_events([_event("sess_u", 4)])  # settled: no question asked any more
        assert len(asked) == 2
        await store.close()

    asyncio.run(main())


def test_a_batch_whose_connection_died_before_it_committed_is_written_again(
    postgres_server: postgres.PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other outcome: the server ended the connection before the COMMIT (its process was terminated). The store
    finds the transaction aborted; the 503 is right, and the event log's next try writes the batch."""
    url = postgres_server.create_database()
    database = postgres_database(url)
    store = SqlStore(database)
    real_commit = database.commit
    armed = [False]

    def terminated_before_commit() -> None:
        if armed[0]:
            armed[0] = False
            pid = database.connection().get_backend_pid()
            _rows(url, "SELECT pg_terminate_backend(%s, 5000)", pid)
        real_commit()

    monkeypatch.setattr(database, "commit", terminated_before_commit)

    async def main() -> None:
        await store.open()
        await store.create_session(_session("sess_a"))
        armed[0] = True
        log = EventLog(store, write_timeout=5)
        log.start()
        for _ in range(3):
            await log.emit("sess_a", "turn_1", "message.delta", {})
        async with asyncio.timeout(20):
            await log.flush()
        assert not armed[0]
        await log.stop()
        assert [e.seq for e in await store.list_events("sess_a")] == [1, 2, 3]
        await store.close()

    asyncio.run(main())


def test_a_batch_whose_server_process_never_heard_the_commit_is_ended_and_written_again(
    postgres_server: postgres.PostgresServer, proxy: PgProxy
) -> None:
    """A network cut as the COMMIT went out: the server's process never heard it, nor that its client is gone, and
    sits in the open transaction with the session's rows locked (for the kernel's hours). The store ends that
    process, finds the transaction aborted, and writes the batch again, instead of waiting on those locks."""
    url = postgres_server.create_database()
    database = postgres_database(proxy.url(url))
    store = SqlStore(database)
    real_commit = database.commit
    armed = [False]

    def silent_commit() -> None:
        if armed[0]:
            armed[0] = False
            proxy.freeze()  # the COMMIT goes nowhere; the server's process waits for it
            database.connection().close()  # what the kernel's timeout would do, in the end, to this side
        real_commit()

    database.commit = silent_commit  # type: ignore[method-assign]

    async def main() -> None:
        await store.open()
        await store.create_session(_session("sess_n"))
        armed[0] = True
        with pytest.raises(Unavailable):
            await store.append_events([_event("sess_n", 1)])
        await store.append_events([_event("sess_n", 1), _event("sess_n", 2)])
        assert [e.seq for e in await store.list_events("sess_n")] == [1, 2]
        await store.close()

    asyncio.run(main())


def test_a_turn_whose_event_batch_committed_as_the_connection_died_completes_and_the_next_one_too(
    postgres_server: postgres.PostgresServer, proxy: PgProxy, make_gateway, mock_model: MockModel
) -> None:
    """What a client sees: a gateway whose event batch committed as its connection died (the turn's first) answers
    the turn as completed, its log is gap-free with one terminal event, and the session takes its next turn. It
    answered 503 after 30 s ("the session store has refused writes ... duplicate key value violates unique
    constraint events_pkey"), and so did every turn after."""
    url = postgres_server.create_database()
    gw = make_gateway(CC_API_DATABASE_URL=proxy.url(url), CC_API_HOST_ID="host-a")
    session = gw.create_session()
    mock_model.script(Reply(text=" ".join(f"word{n}" for n in range(40)), chunk_delay=0.02))
    proxy.cut_after_commit()  # the next event batch: the turn's first
    reply = gw.client.post(f"/api/sessions/{session['id']}/turns", json={"input": "recite"}, timeout=90)
    assert proxy.cut == 1
    assert reply.status_code == 200 and reply.json()["status"] == "completed", reply.text
    assert gw.turn(session["id"], "again")["status"] == "completed"
    events = gw.events(session["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events].count("turn.completed") == 2
    stored = _rows(url, "SELECT count(*), max(seq) FROM events WHERE session_id = %s", session["id"])
    assert stored == [(len(events), len(events))]


# -- TCP keepalives, and a LISTEN connection gone silent -----------------------------------------------------------


def _keepalive(fileno: int) -> tuple[int, int, int, int]:
    sock = socket.socket(fileno=socket.dup(fileno))
    try:
        return (
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        )
    finally:
        sock.close()


def test_connections_carry_tcp_keepalives_unless_the_url_sets_its_own(postgres_server: postgres.PostgresServer) -> None:
    """Without keepalives a connection whose peer vanished without a reset looks idle for the kernel's two hours:
    the store thread hung on it, and the LISTEN connection heard nothing more. Both carry keepalives now, and the
    server ends a connection of ours left in an open transaction; a URL's own libpq parameters (keepalives, options,
    sslmode, ...) win, where they were dropped before."""
    url = postgres_server.create_database()
    database = postgres_database(url)
    assert database.connect_params["keepalives"] == "1" and database.connect_params["connect_timeout"] == "10"
    database.connect()
    assert _keepalive(database.connection().fileno()) == (1, 30, 10, 3)
    # a host that vanishes mid-transaction does not keep the rows it locked for the server's two hours
    assert database.execute_sql("SHOW idle_in_transaction_session_timeout").fetchone() == ("1min",)
    database.close()

    own = postgres_database(url + "?keepalives_idle=7&application_name=ccapi-test")
    assert own.connect_params["keepalives_idle"] == "7" and own.connect_params["keepalives_count"] == "3"
    own.connect()
    assert _keepalive(own.connection().fileno())[:2] == (1, 7)
    assert own.execute_sql("SHOW application_name").fetchone() == ("ccapi-test",)
    own.close()
    theirs = postgres_database(url + "?options=-c%20idle_in_transaction_session_timeout%3D5s")
    assert theirs.execute_sql("SHOW idle_in_transaction_session_timeout").fetchone() == ("5s",)
    theirs.close()

    heard: list[str] = []
    listener = AppendListener(postgres_database(url), heard.append)
    listener.start()
    try:
        assert eventually(lambda: listener.backend_pid is not None)
        [(client_port,)] = _rows(url, "SELECT client_port FROM pg_stat_activity WHERE pid = %s", listener.backend_pid)
        assert client_port  # over TCP; the keepalives are on this process's end of it
        assert _listener_keepalive(client_port) == (1, 30, 10, 3)
    finally:
        listener.stop()


def _listener_keepalive(client_port: int) -> tuple[int, int, int, int]:
    """The keepalive settings of this process's socket bound to ``client_port`` (the listener's connection)."""
    import os

    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            sock = socket.socket(fileno=socket.dup(fd))
        except OSError:
            continue
        try:
            if sock.family == socket.AF_INET and sock.getsockname()[1] == client_port:
                return _keepalive(fd)
        except OSError:
            pass
        finally:
            sock.close()
    raise AssertionError(f"no socket on port {client_port}")


def test_a_listen_connection_gone_silent_is_replaced_and_the_sessions_read_here_are_read_again(
    postgres_server: postgres.PostgresServer, proxy: PgProxy, monkeypatch: pytest.MonkeyPatch, another_host: None
) -> None:
    """Host A listens through a network that then drops everything without a reset. It heard nothing more of host
    B's appends, for good: its followers waited on their keep-alive re-reads. Now a liveness check finds the silent
    connection, another is opened, the sessions A's followers read are announced again (what was said meanwhile was
    lost), and B's next appends are heard."""
    monkeypatch.setattr(AppendListener, "__init__", _quick_listener(AppendListener.__init__))
    url = postgres_server.create_database()
    a, b = SqlStore(postgres_database(proxy.url(url))), SqlStore(postgres_database(url))
    heard: list[str] = []
    lock = threading.Lock()

    def on_append(session_id: str) -> None:
        with lock:
            heard.append(session_id)

    async def main() -> None:
        await a.open()
        await b.open()
        a.watch(on_append)
        listener = a._listener
        assert listener is not None
        await b.create_session(_session("sess_l"))
        assert await a.list_events("sess_l") == []  # a follower here reads it
        await _until(lambda: listener.connections == 1)
        await b.append_events([_event("sess_l", 1)])
        await _until(lambda: heard == ["sess_l"])
        proxy.freeze()
        await b.append_events([_event("sess_l", 2)])  # said into the void
        await asyncio.sleep(0.3)
        assert heard == ["sess_l"]
        await _until(lambda: listener.connections == 2, within=15)
        await _until(lambda: heard == ["sess_l", "sess_l"])  # read again after the reconnect
        await b.create_session(_session("sess_m"))
        await b.append_events([_event("sess_m", 1)])
        await _until(lambda: heard[-1:] == ["sess_m"])
        await a.close()
        await b.close()

    asyncio.run(main())


def test_a_terminated_listen_connection_is_replaced_and_announcements_resume(
    postgres_server: postgres.PostgresServer, another_host: None
) -> None:
    url = postgres_server.create_database()
    a, b = SqlStore(postgres_database(url)), SqlStore(postgres_database(url))
    heard: list[str] = []

    async def main() -> None:
        await a.open()
        await b.open()
        a.watch(heard.append)
        listener = a._listener
        assert listener is not None
        await b.create_session(_session("sess_t"))
        await _until(lambda: listener.backend_pid is not None)
        _rows(url, "SELECT pg_terminate_backend(%s, 5000)", listener.backend_pid)
        await _until(lambda: listener.connections == 2, within=15)
        await b.append_events([_event("sess_t", 1)])
        await _until(lambda: heard == ["sess_t"])
        await a.close()
        await b.close()

    asyncio.run(main())


@pytest.fixture
def another_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """The appends of this process announce themselves as another process's (a listener skips its own)."""
    monkeypatch.setattr(sql_store, "append_notice", lambda session_id: f"another-host:{session_id}")


def _quick_listener(init):  # type: ignore[no-untyped-def]
    def quick(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        init(self, *args, **{**kwargs, "ping_every": 0.5, "ping_timeout": 1.0})

    return quick


async def _until(check, within: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not in time")
        await asyncio.sleep(0.05)
