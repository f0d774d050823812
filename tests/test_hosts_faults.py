"""Several hosts on one PostgreSQL when things go wrong: the database restarts under running gateways, and the hosts'
clocks disagree."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from ccapi.errors import Unavailable
from ccapi.events import Event
from ccapi.observability.metrics import Metrics
from ccapi.sessions.eventlog import EventLog
from ccapi.sessions.recovery import sweep_orphans
from ccapi.store import SessionRecord, SqlStore, TurnRecord
from ccapi.store import sql as sql_store
from ccapi.store.databases import postgres_database
from ccapi.testing import MockModel, Reply
from tests import postgres

pytestmark = pytest.mark.slow  # a PostgreSQL server, restarted; gateways on it

CREATED = "2026-01-01T00:00:00.000Z"
_AS_POSTGRES = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # as tests.postgres runs it


@dataclass
class RestartableServer:
    """A PostgreSQL server of this module's own (the run's shared one must not restart under other tests)."""

    server: postgres.PostgresServer
    process: subprocess.Popen
    bin_dir: Path

    def url(self) -> str:
        return self.server.create_database()

    def stop(self) -> None:
        """A fast shutdown, as a restart by the operator does: open connections are cut."""
        pg_ctl = [str(self.bin_dir / "pg_ctl"), "-D", str(self.server.data_dir), "stop", "-m", "fast", "-w"]
        subprocess.run([*_AS_POSTGRES, *pg_ctl], check=True, capture_output=True)
        self.process.wait(20)

    def start(self) -> None:
        """The same data directory on the same port, as ``tests.postgres.start`` runs it."""
        root = self.server.data_dir.parent
        command = [str(self.bin_dir / "postgres"), "-D", str(self.server.data_dir), "-p", str(self.server.port)]
        command += ["-h", "127.0.0.1", "-k", str(root / "socket"), "-c", "fsync=off"]
        self.process = subprocess.Popen(
            [*_AS_POSTGRES, *command], stdout=subprocess.DEVNULL, stderr=(root / "postgres.log").open("ab")
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = [str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.server.port)]
            if subprocess.run(ready, capture_output=True).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("PostgreSQL did not come back")

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="module")
def restartable() -> Iterator[RestartableServer]:
    bin_dir, why_not = postgres.find_or_install()
    if bin_dir is None:
        pytest.skip(why_not)
    server, process = postgres.start(bin_dir)
    own = RestartableServer(server, process, bin_dir)
    try:
        yield own
    finally:
        if own.process.poll() is None:
            postgres.stop(server, own.process)
        else:
            shutil.rmtree(server.data_dir.parent, ignore_errors=True)


def _session(session_id: str, **changes: object) -> SessionRecord:
    record = SessionRecord(
        session_id, CREATED, CREATED, "claude-sonnet-4-5", None, [], {}, None, None, None, "idle", None, 0, 0
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def test_a_store_reconnects_after_the_database_restarts(restartable: RestartableServer) -> None:
    """The store thread's connection died with the server: every later call failed on it for ever ("connection
    already closed"), so the gateway answered 500 to everything until it was restarted itself. Now the next call
    opens a new connection; while the server is down, calls are a 503 that says why."""
    store = SqlStore(postgres_database(restartable.url()))

    async def main() -> None:
        await store.open()
        await store.create_session(_session("sess_before"))
        await store.append_events([Event(1, "session.created", "sess_before", None, CREATED, {})])
        restartable.restart()
        assert (await store.get_session("sess_before")) is not None
        await store.create_session(_session("sess_after"))
        assert [e.seq for e in await store.list_events("sess_before")] == [1]  # acknowledged: still there
        restartable.stop()
        try:
            with pytest.raises(Unavailable) as down:
                await store.get_session("sess_after")
            assert down.value.status == 503 and "database is unreachable" in down.value.message
            assert await store.ping() is False
        finally:
            restartable.start()
        assert await store.ping() is True
        assert (await store.get_session("sess_after")) is not None
        await store.close()

    asyncio.run(main())


def test_a_gateway_answers_again_after_the_database_restarts(
    restartable: RestartableServer, make_gateway, mock_model: MockModel
) -> None:
    """What a client sees: turns before and after a PostgreSQL restart complete, and the session keeps its log."""
    gw = make_gateway(CC_API_DATABASE_URL=restartable.url(), CC_API_HOST_ID="host-a")
    session = gw.create_session()
    assert gw.turn(session["id"], "the harbour code is 7731")["status"] == "completed"
    restartable.restart()
    mock_model.clear()
    after = gw.client.post(f"/api/sessions/{session['id']}/turns", json={"input": "and the code?"}, timeout=60)
    assert after.status_code == 200, after.text
    assert after.json()["status"] == "completed"
    assert "the harbour code is 7731" in str(mock_model.message_requests(include_side=False)[-1].body["messages"])
    events = gw.events(session["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events].count("turn.completed") == 2
    restartable.stop()
    try:
        down = gw.client.get(f"/api/sessions/{session['id']}")
        assert down.status_code == 503, down.text
        assert down.json()["error"]["type"] == "unavailable" and down.headers["retry-after"]
    finally:
        restartable.start()
    assert gw.client.get(f"/api/sessions/{session['id']}").status_code == 200


def _clock_moved(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """This process's store reads the wall clock ``seconds`` off (another host's clock)."""
    real = time.time
    monkeypatch.setattr(sql_store, "time", SimpleNamespace(time=lambda: real() + seconds))


@pytest.mark.parametrize("skew", [120.0, -120.0])
def test_hosts_whose_clocks_disagree_agree_on_who_holds_a_lease(
    restartable: RestartableServer, monkeypatch: pytest.MonkeyPatch, skew: float
) -> None:
    """Host A runs a turn under a 30 s lease. Host B's clock is two minutes ahead (or A's two minutes behind): by
    their wall clocks A's lease had expired, so B took the session from under the running turn and its sweep closed
    that turn as lost (``turn.failed``, then A's own end: two terminal events, and two hosts numbering the log)."""
    url = restartable.url()
    a, b = SqlStore(postgres_database(url)), SqlStore(postgres_database(url))
    turn = TurnRecord("turn_1", "sess_1", 1, "running", "hello", CREATED)

    async def main() -> None:
        await a.open()
        await b.open()
        await a.create_session(_session("sess_1"))
        if skew < 0:
            _clock_moved(monkeypatch, skew)  # A's clock behind
        assert await a.acquire_lease("sess_1", "host-a", 30) is None
        await a.create_turn(turn)
        monkeypatch.undo()
        if skew > 0:
            _clock_moved(monkeypatch, skew)  # B's clock ahead
        assert await b.acquire_lease("sess_1", "host-b", 30) == "host-a"
        assert [t.id for t in await b.orphaned_turns("host-b")] == []
        assert await b.held_leases("host-b") == []
        monkeypatch.undo()
        await a.renew_leases("host-a", ["sess_1"], 30)
        await a.release_lease("sess_1", "host-a")
        assert await b.acquire_lease("sess_1", "host-b", 30) is None  # let go: any host takes it at once
        await a.close()
        await b.close()

    asyncio.run(main())


def test_a_host_whose_clock_runs_ahead_does_not_take_a_delivery_another_host_sends(
    restartable: RestartableServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery claimed by host A for 60 s: host B, two minutes ahead, found its lease over and sent it again."""
    url = restartable.url()
    a, b = SqlStore(postgres_database(url)), SqlStore(postgres_database(url))
    webhook = {"url": "http://127.0.0.1:9/h", "events": ["turn.completed"]}

    async def main() -> None:
        await a.open()
        await b.open()
        await a.create_session(_session("sess_w", webhook=webhook))
        await a.append_events([Event(1, "turn.completed", "sess_w", "turn_1", CREATED, {})])
        [claimed] = await a.claim_webhooks("host-a", 10, lease=60)
        _clock_moved(monkeypatch, 120)
        assert await b.claim_webhooks("host-b", 10, lease=60) == []
        monkeypatch.undo()
        await a.finish_webhook_attempt(claimed.id, "host-a", {"attempts": 1, "next_attempt_at": 0.0})
        [again] = await b.claim_webhooks("host-b", 10, lease=60)  # let go: the other host takes it
        assert again.id == claimed.id
        await a.close()
        await b.close()

    asyncio.run(main())


def test_two_hosts_sweeping_one_orphaned_turn_close_it_once(restartable: RestartableServer) -> None:
    """Hosts B and C both find host A's turn orphaned (A died; its lease expired). C looked at the turn (still open),
    then B closed it and let the session go, then C took the lease and closed it again: two ``turn.failed`` for one
    turn. C looks again once it holds the lease."""
    url = restartable.url()
    b, c = SqlStore(postgres_database(url)), SqlStore(postgres_database(url))
    turn = TurnRecord("turn_dead", "sess_o", 1, "running", "hello", CREATED)

    async def main() -> None:
        await b.open()
        await c.open()
        on_b, on_c = EventLog(b), EventLog(c)
        on_b.start()
        on_c.start()
        await b.create_session(_session("sess_o"))
        await b.acquire_lease("sess_o", "host-a", -1)  # host A's, expired
        await b.create_turn(turn)
        await b.append_events([Event(1, "turn.started", "sess_o", turn.id, CREATED, {})])
        locks: dict[str, dict[str, asyncio.Lock]] = {"host-b": {}, "host-c": {}}

        def sweep(store: SqlStore, events: EventLog, owner: str) -> Awaitable[None]:
            return sweep_orphans(
                store,
                events,
                owner,
                30,
                (),
                lambda session_id: locks[owner].setdefault(session_id, asyncio.Lock()),
                lambda: (),
                Metrics(process=False),
            )

        get_turn = c.get_turn

        async def b_sweeps_meanwhile(turn_id: str) -> TurnRecord | None:
            seen = await get_turn(turn_id)  # C sees it open ...
            c.get_turn = get_turn  # type: ignore[method-assign]
            await sweep(b, on_b, "host-b")  # ... and B closes it and lets the session go
            return seen

        c.get_turn = b_sweeps_meanwhile  # type: ignore[method-assign]
        await sweep(c, on_c, "host-c")
        logged = await b.list_events("sess_o")
        assert [e.type for e in logged] == ["turn.started", "turn.failed"]
        assert (await b.get_turn(turn.id)).status == "failed"  # type: ignore[union-attr]
        await on_b.stop()
        await on_c.stop()
        await b.close()
        await c.close()

    asyncio.run(main())


def test_a_turn_streaming_while_the_database_restarts_ends_once_with_every_event(
    restartable: RestartableServer, make_gateway, mock_model: MockModel
) -> None:
    """Host A streams a turn; PostgreSQL restarts in the middle. What A could not write meanwhile goes in once the
    database is back: the turn completes, its log is gap-free with one terminal event, and host B serves it all."""
    url = restartable.url()
    a = make_gateway(CC_API_DATABASE_URL=url, CC_API_HOST_ID="host-a", CC_API_LEASE_TTL="3")
    b = make_gateway(CC_API_DATABASE_URL=url, CC_API_HOST_ID="host-b", CC_API_LEASE_TTL="3")
    session = a.create_session()
    mock_model.script(Reply(text=" ".join(f"word{n}" for n in range(80)), chunk_delay=0.05))
    replies: list = []
    turn = threading.Thread(
        target=lambda: replies.append(
            a.client.post(f"/api/sessions/{session['id']}/turns", json={"input": "recite"}, timeout=90)
        )
    )
    turn.start()
    time.sleep(1.5)
    restartable.restart()
    turn.join(90)
    [reply] = replies
    assert reply.status_code == 200 and reply.json()["status"] == "completed", reply.text
    events = b.events(session["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events].count("turn.completed") == 1
    assert events[-1]["seq"] == reply.json()["last_event_seq"]
    assert b.turn(session["id"], "again")["status"] == "completed"
