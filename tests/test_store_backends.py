"""One contract suite for every store backend: SQLite and the JSON directory."""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import orjson
import pytest
from claude_agent_sdk.testing import run_session_store_conformance

from ccapi.events import Event
from ccapi.sessions.eventlog import EventLog
from ccapi.store import JsonDirStore, SessionRecord, SqlStore, Store, TurnRecord, jsondir
from ccapi.store.databases import postgres_database, sqlite_database
from ccapi.store.jsondir import DirectoryInUse, UnsafeId
from ccapi.store.migrations import MIGRATIONS
from ccapi.store.models import LeaseRow
from ccapi.store.prepared import Prepared
from ccapi.store.records import TranscriptLines, TurnEnd
from ccapi.store.transcripts import TranscriptMirror
from ccapi.store.worker import StoreThread


# PostgreSQL is slow: a server for the process (initdb; on a fresh machine apt-get installs it first)
@pytest.fixture(params=["sqlite", "jsondir", pytest.param("postgres", marks=pytest.mark.slow)])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Store]:
    """Opens the backend on ``tmp_path`` (again, for persistence checks) or on a given root;
    for PostgreSQL each root is its own database on the test server."""
    if request.param == "sqlite":
        return lambda root=tmp_path: SqlStore(sqlite_database(root / "sessions.db"))
    if request.param == "jsondir":
        return lambda root=tmp_path: JsonDirStore(root / "sessions")
    server = request.getfixturevalue("postgres_server")
    databases: dict[Path, str] = {}
    return lambda root=tmp_path: SqlStore(postgres_database(databases.setdefault(root, server.create_database())))


def _session(session_id: str, created_at: str) -> SessionRecord:
    return SessionRecord(
        session_id,
        created_at,
        created_at,
        "claude-sonnet-4-5",
        None,
        [],
        {"k": 1},
        None,
        None,
        None,
        "idle",
        None,
        0,
        0,
    )


def _event(session_id: str, seq: int, type_: str = "message.delta") -> Event:
    return Event(seq, type_, session_id, "turn_1", "2026-01-01T00:00:00.000Z", {"n": seq})


def run(coro):  # tiny test helper
    return asyncio.run(coro)


def test_sessions_turns_events_and_keys_round_trip(make: Callable[..., Store]) -> None:
    async def main() -> None:
        store = make()
        await store.open()
        for n in range(5):
            await store.create_session(_session(f"sess_{n}", f"2026-01-01T00:00:0{n}.000Z"))
        assert [s.id for s in await store.list_sessions(2, None)] == ["sess_4", "sess_3"]
        assert [s.id for s in await store.list_sessions(10, "sess_3")] == ["sess_2", "sess_1", "sess_0"]
        assert await store.list_sessions(10, "sess_missing") == []

        turn = TurnRecord(
            "turn_1", "sess_1", 1, "running", [{"type": "text", "text": "hi"}], "2026-01-01T00:01:00.000Z"
        )
        await store.create_turn(turn)
        assert (await store.get_session("sess_1")).turn_count == 1
        running = await store.list_sessions(10, None, ["running", "requires_action"])  # sess_1 runs the turn
        assert [s.id for s in running] == ["sess_1"] and await store.list_sessions(10, "sess_1", ["running"]) == []
        assert [s.id for s in await store.list_sessions(2, "sess_4", ["idle"])] == ["sess_3", "sess_2"]
        assert [t.id for t in await store.orphaned_turns("host-a")] == ["turn_1"]  # nobody holds it
        assert await store.acquire_lease("sess_1", "host-b", ttl=60) is None
        assert await store.orphaned_turns("host-a") == []  # host-b drives it now
        assert await store.acquire_lease("sess_1", "host-a", ttl=60) == "host-b"
        assert await store.acquire_lease("sess_1", "host-b", ttl=60) is None  # renewing is fine
        await store.release_lease("sess_1", "host-a")  # not the holder: no effect
        assert await store.acquire_lease("sess_1", "host-a", ttl=60) == "host-b"
        await store.release_lease("sess_1", "host-b")
        assert await store.acquire_lease("sess_1", "host-a", ttl=0.01) is None
        await asyncio.sleep(0.05)
        assert [t.id for t in await store.orphaned_turns("host-c")] == ["turn_1"]  # host-a's lease expired
        assert await store.acquire_lease("sess_1", "host-c", ttl=60) is None  # an expired lease is taken over
        await store.renew_leases("host-c", ["sess_1"], ttl=60)
        await store.update_turn("turn_1", status="completed", output=[{"type": "text", "text": "yo"}])
        assert await store.get_turn("turn_1") == replace(
            turn, status="completed", output=[{"type": "text", "text": "yo"}]
        )
        assert await store.orphaned_turns("host-c") == []

        await store.append_events([_event("sess_1", n) for n in range(1, 4)] + [_event("sess_2", 1)])
        await store.append_events([_event("sess_1", 4, "turn.completed")])
        assert [e.seq for e in await store.list_events("sess_1", after=1, limit=2)] == [2, 3]
        assert [e.seq for e in await store.list_events("sess_1", types=["turn.completed"])] == [4]
        assert await store.max_seq("sess_1") == 4 and await store.max_seq("sess_0") == 0
        assert (await store.get_session("sess_1")).last_seq == 4

        await store.save_idempotency_key("sess_1", "key/with/slashes", "fp", "turn_1", "2026")
        assert await store.find_idempotency_key("sess_1", "key/with/slashes") == ("fp", "turn_1")
        assert await store.find_idempotency_key("sess_1", "other") is None
        await store.update_session("sess_1", status="running", usage={"cost_usd": 1.5})
        await store.close()

        reopened = make()
        await reopened.open()
        session = await reopened.get_session("sess_1")
        assert session.status == "running" and session.usage == {"cost_usd": 1.5} and session.last_seq == 4
        assert [e.data for e in await reopened.list_events("sess_1")] == [{"n": n} for n in range(1, 5)]
        assert (await reopened.get_turn("turn_1")).status == "completed"

        assert await reopened.delete_session("sess_1") is True
        assert await reopened.get_session("sess_1") is None
        assert await reopened.get_turn("turn_1") is None
        assert await reopened.list_events("sess_1") == []
        assert await reopened.find_idempotency_key("sess_1", "key/with/slashes") is None
        assert await reopened.delete_session("sess_1") is False
        assert [e.seq for e in await reopened.list_events("sess_2")] == [1]
        assert await reopened.ping() is True
        await reopened.close()

    run(main())


def test_webhook_outbox_is_written_with_its_events_and_claimed_by_one_host_at_a_time(
    make: Callable[..., Store],
) -> None:
    async def main() -> None:
        store = make()
        await store.open()
        hooked = replace(
            _session("sess_h", "2026-01-01T00:00:00.000Z"),
            webhook={"url": "http://127.0.0.1:9/h", "events": ["turn.completed", "turn.failed"]},
        )
        await store.create_session(hooked)
        await store.create_session(_session("sess_q", "2026-01-01T00:00:01.000Z"))  # no subscription
        await store.append_events(
            [
                _event("sess_h", 1),
                _event("sess_h", 2, "turn.started"),
                _event("sess_h", 3, "turn.completed"),
                _event("sess_q", 1, "turn.completed"),
            ]
        )
        assert await store.list_webhooks("sess_q", 0, 10) == []
        (owed,) = await store.list_webhooks("sess_h", 0, 10)
        assert (owed.id, owed.seq, owed.type, owed.url, owed.state, owed.attempts) == (
            "sess_h_3",
            3,
            "turn.completed",
            "http://127.0.0.1:9/h",
            "pending",
            0,
        )
        assert owed.payload == _event("sess_h", 3, "turn.completed").to_dict()

        (claimed,) = await store.claim_webhooks("host-a", 10, lease=60)
        assert claimed.id == "sess_h_3" and claimed.lease_owner == "host-a"
        assert await store.claim_webhooks("host-b", 10, lease=60) == []  # held by host-a
        await store.finish_webhook_attempt("sess_h_3", "host-b", {"state": "delivered"})  # not its lease
        retry_at = time.time() + 0.3
        await store.finish_webhook_attempt(
            "sess_h_3", "host-a", {"attempts": 1, "last_error": "HTTP 500", "next_attempt_at": retry_at}
        )
        (listed,) = await store.list_webhooks("sess_h", 0, 10)
        assert (listed.state, listed.attempts, listed.last_error, listed.lease_owner) == (
            "pending",
            1,
            "HTTP 500",
            None,
        )
        assert await store.claim_webhooks("host-b", 10, lease=60) == []  # not due yet
        await asyncio.sleep(0.35)
        assert [d.id for d in await store.claim_webhooks("host-b", 10, lease=0.05)] == ["sess_h_3"]
        await asyncio.sleep(0.1)  # host-b died holding it: its lease runs out
        assert [d.id for d in await store.claim_webhooks("host-a", 10, lease=60)] == ["sess_h_3"]
        await store.finish_webhook_attempt("sess_h_3", "host-a", {"state": "delivered", "attempts": 2})
        await store.close()

        reopened = make()
        await reopened.open()
        (kept,) = await reopened.list_webhooks("sess_h", 0, 10)
        assert (kept.state, kept.attempts) == ("delivered", 2)
        assert await reopened.claim_webhooks("host-a", 10, lease=60) == []
        await reopened.delete_session("sess_h")
        assert await reopened.list_webhooks("sess_h", 0, 10) == []
        await reopened.close()

    run(main())


def test_a_deleted_sessions_deliveries_still_owed_are_sent_then_gone(
    make: Callable[..., Store], tmp_path: Path
) -> None:
    """Deleting a session keeps what it still owes its receiver (its client may be waiting for that turn's end),
    across a restart, until each is done; the delivered and the finished go at once, and nothing is left."""

    async def main() -> None:
        store = make()
        await store.open()
        webhook = {"url": "http://127.0.0.1:9/h", "events": ["turn.completed", "turn.interrupted"]}
        await store.create_session(replace(_session("sess_d", "2026-01-01T00:00:00.000Z"), webhook=webhook))
        await store.append_events([_event("sess_d", 1, "turn.completed"), _event("sess_d", 2, "turn.interrupted")])
        assert [d.id for d in await store.claim_webhooks("host-a", 10, lease=60)] == ["sess_d_1"]  # in order
        await store.finish_webhook_attempt("sess_d_1", "host-a", {"state": "delivered", "attempts": 1})
        assert [d.id for d in await store.claim_webhooks("host-a", 10, lease=60)] == ["sess_d_2"]
        await store.finish_webhook_attempt("sess_d_2", "host-a", {})  # handed back, as a stopping sender does
        assert await store.delete_session("sess_d")
        await store.close()

        reopened = make()
        await reopened.open()
        (owed,) = await reopened.claim_webhooks("host-a", 10, lease=60)
        assert (owed.id, owed.type, owed.payload) == (
            "sess_d_2",
            "turn.interrupted",
            _event("sess_d", 2, "turn.interrupted").to_dict(),
        )
        await reopened.finish_webhook_attempt(owed.id, "host-a", {"attempts": 1, "next_attempt_at": 0.0})
        (again,) = await reopened.claim_webhooks("host-a", 10, lease=60)  # retried as any other
        await reopened.finish_webhook_attempt(again.id, "host-a", {"state": "delivered", "attempts": 2})
        assert await reopened.claim_webhooks("host-a", 10, lease=60) == []
        await reopened.create_session(_session("sess_d", "2026-01-02T00:00:00.000Z"))  # the id, reused: nothing old
        assert await reopened.list_webhooks("sess_d", 0, 10) == []
        await reopened.close()

    run(main())
    assert not [path for path in tmp_path.rglob("*") if "owed" in path.parts and path.is_file()]


@pytest.mark.slow  # a PostgreSQL server (see make)
def test_postgres_hosts_claiming_at_once_never_share_a_delivery(postgres_server, tmp_path: Path) -> None:
    """Two stores on one database, each on its own connection, claim concurrently."""
    url = postgres_server.create_database()
    first, second = SqlStore(postgres_database(url)), SqlStore(postgres_database(url))

    async def main() -> None:
        await first.open()
        await second.open()
        webhook = {"url": "http://127.0.0.1:9/h", "events": ["turn.completed"]}
        for n in range(40):
            await first.create_session(replace(_session(f"sess_{n}", "2026-01-01T00:00:00.000Z"), webhook=webhook))
        await first.append_events([_event(f"sess_{n}", 1, "turn.completed") for n in range(40)])

        async def drain(store: Store, owner: str) -> list[str]:
            taken: list[str] = []
            while batch := await store.claim_webhooks(owner, 3, lease=60):
                taken += [d.id for d in batch]
            return taken

        a, b = await asyncio.gather(drain(first, "host-a"), drain(second, "host-b"))
        assert not set(a) & set(b) and len(a) + len(b) == 40
        await first.close()
        await second.close()

    run(main())


GONE = {"state": "failed", "attempts": 1, "last_status": 410, "last_error": "HTTP 410: gone", "completed_at": "2026"}
"""What the sender records of a ``410 Gone``."""


@pytest.mark.slow  # a PostgreSQL server (see make)
def test_postgres_a_410_ending_while_another_host_commits_events_leaves_nothing_owed_there(postgres_server) -> None:
    """Host B's ``end_webhook`` has cleared the session's webhook and failed what it owed, and has not committed,
    when host C commits a ``turn.completed`` of the session: C's batch waits for B, and owes the gone URL nothing."""
    url = postgres_server.create_database()
    database = postgres_database(url)
    b, c = SqlStore(database), SqlStore(database)  # each store thread has its own connection: two hosts
    locked, release = threading.Event(), threading.Event()
    finish = b._finish_webhook_attempt

    def finish_then_hold(*args: object) -> None:  # inside B's transaction, the session row locked
        finish(*args)
        locked.set()
        release.wait(30)

    async def main() -> None:
        await b.open()
        await c.open()
        webhook = {"url": "http://127.0.0.1:9/h", "events": ["turn.completed"]}
        await b.create_session(replace(_session("sess_g", "2026-01-01T00:00:00.000Z"), webhook=webhook))
        await b.append_events([_event("sess_g", 1, "turn.completed")])
        assert [d.id for d in await b.claim_webhooks("host-b", 10, lease=60)] == ["sess_g_1"]
        b._finish_webhook_attempt = finish_then_hold  # type: ignore[method-assign]
        try:
            ending = asyncio.ensure_future(b.end_webhook("sess_g_1", "host-b", GONE, "not sent"))
            assert await asyncio.to_thread(locked.wait, 30)
            appending = asyncio.ensure_future(c.append_events([_event("sess_g", 2, "turn.completed")]))
            await asyncio.to_thread(_wait_for_a_lock_waiter, url)  # C, on the session row B holds
        finally:
            release.set()
        assert await ending == webhook
        await appending
        assert await c.max_seq("sess_g") == 2 and (await c.get_session("sess_g")).webhook is None
        assert [(d.id, d.state) for d in await c.list_webhooks("sess_g", 0, 10)] == [("sess_g_1", "failed")]
        assert await c.claim_webhooks("host-c", 10, lease=60) == []
        await b.close()
        await c.close()

    run(main())


def _wait_for_a_lock_waiter(url: str) -> None:
    import psycopg2  # the [postgres] extra, as the store's

    connection = psycopg2.connect(url)
    connection.autocommit = True  # each poll a fresh view of pg_stat_activity
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0]:
                    return
            time.sleep(0.01)
        raise AssertionError("no transaction waited for a lock")
    finally:
        connection.close()


def test_a_database_from_before_webhooks_is_migrated_in_place(tmp_path: Path) -> None:
    """Schema version 1 (no webhook column, no outbox table) gains both at the next open; its data stays."""

    async def main() -> None:
        store = SqlStore(sqlite_database(tmp_path / "sessions.db"))
        await store.open()
        await store.create_session(_session("sess_old", "2026-01-01T00:00:00.000Z"))
        await store.close()
        with sqlite3.connect(tmp_path / "sessions.db") as db:
            db.execute("DROP TABLE webhook_deliveries")
            db.execute("ALTER TABLE sessions DROP COLUMN webhook")
            db.execute("DELETE FROM schema_version WHERE version > 1")

        store = SqlStore(sqlite_database(tmp_path / "sessions.db"))
        await store.open()
        assert (await store.get_session("sess_old")).webhook is None
        await store.update_session("sess_old", webhook={"url": "http://127.0.0.1:9/h", "events": ["turn.completed"]})
        await store.append_events([_event("sess_old", 1, "turn.completed")])
        assert [d.id for d in await store.list_webhooks("sess_old", 0, 10)] == ["sess_old_1"]
        await store.close()
        with sqlite3.connect(tmp_path / "sessions.db") as db:
            assert max(v for (v,) in db.execute("SELECT version FROM schema_version")) == MIGRATIONS[-1][0]

    run(main())


def test_json_directory_drops_a_delivery_whose_event_never_committed(tmp_path: Path) -> None:
    """A crash between a batch's delivery files and its event file leaves a delivery for an
    event that does not exist; the next open must not send it."""

    async def main() -> None:
        store = JsonDirStore(tmp_path)
        await store.open()
        await store.create_session(
            replace(
                _session("sess_j", "2026-01-01T00:00:00.000Z"),
                webhook={"url": "http://127.0.0.1:9/h", "events": ["turn.completed"]},
            )
        )
        await store.append_events([_event("sess_j", 1, "turn.completed")])
        await store.close()
        webhooks = tmp_path / "sessions" / "sess_j" / "webhooks"
        orphan = (webhooks / "1.json").read_bytes().replace(b'"seq":1', b'"seq":2').replace(b"sess_j_1", b"sess_j_2")
        (webhooks / "2.json").write_bytes(orphan)

        reopened = JsonDirStore(tmp_path)
        await reopened.open()
        assert [d.id for d in await reopened.list_webhooks("sess_j", 0, 10)] == ["sess_j_1"]
        assert not (webhooks / "2.json").exists()
        await reopened.close()

    run(main())


def test_idle_sessions_page_least_recently_used_first(make: Callable[..., Store]) -> None:
    """What a retention sweep reads: sessions last updated before a time, oldest first, page by page, a turn
    starting (which updates its session now, however long ago it was queued) taking one out of the list; after a
    reopen as before."""

    async def scenario() -> None:
        store = make()
        await store.open()
        for n, sid in enumerate(("sess_c", "sess_a", "sess_b", "sess_d")):
            await store.create_session(_session(sid, f"2026-01-0{n + 1}T00:00:00.000Z"))
        await store.update_session("sess_b", updated_at="2026-01-01T00:00:00.000Z")  # ties sess_c: ids break it
        before = "2026-01-04T00:00:00.000Z"
        first = await store.idle_sessions(before, None, 2)
        assert [s.id for s in first] == ["sess_b", "sess_c"]
        rest = await store.idle_sessions(before, (first[-1].updated_at, first[-1].id), 2)
        assert [s.id for s in rest] == ["sess_a"]
        assert await store.idle_sessions(before, (rest[-1].updated_at, rest[-1].id), 2) == []
        await store.create_turn(TurnRecord("turn_c", "sess_c", 1, "running", "hi", "2025-12-31T00:00:00.000Z"))
        await store.close()
        reopened = make()
        await reopened.open()
        assert [s.id for s in await reopened.idle_sessions(before, None, 10)] == ["sess_b", "sess_a"]
        await reopened.close()

    run(scenario())


def test_compat_heads_round_trip_newest_first_and_go_with_their_session(make: Callable[..., Store]) -> None:
    async def scenario() -> None:
        store = make()
        await store.open()
        for n, sid in enumerate(("sess_a", "sess_b", "sess_c")):
            await store.create_session(_session(sid, f"2026-01-0{n + 1}T00:00:00.000Z"))
        await store.save_compat_head("sess_a", "k1", {"n": 1}, "2026-01-01T00:00:01.000Z")
        await store.save_compat_head("sess_b", "k2", {"n": 2}, "2026-01-01T00:00:02.000Z")
        await store.save_compat_head("sess_c", "k1", {"n": 3}, "2026-01-01T00:00:03.000Z")
        await store.save_compat_head("sess_a", "k1", {"n": 4}, "2026-01-01T00:00:04.000Z")  # replaces its head
        assert await store.load_compat_heads(None, 10) == [{"n": 4}, {"n": 3}, {"n": 2}]
        assert await store.load_compat_heads("k1", 1) == [{"n": 4}]
        assert await store.load_compat_heads(None, 10, since="2026-01-01T00:00:02.000Z") == [{"n": 4}, {"n": 3}]
        await store.delete_compat_head("sess_c")
        await store.delete_session("sess_a")
        await store.close()
        reopened = make()
        await reopened.open()
        assert await reopened.load_compat_heads(None, 10) == [{"n": 2}]
        await reopened.close()

    run(scenario())


def test_a_turns_end_and_transcript_lines_commit_with_its_terminal_event(make: Callable[..., Store]) -> None:
    """One ``append_events`` writes the event, the turn's end rows and the transcript lines queued before it."""

    async def scenario() -> None:
        store = make()
        await store.open()
        await store.create_session(_session("sess_e", "2026"))
        await store.create_turn(TurnRecord("turn_e", "sess_e", 1, "running", "hi", "2026"))
        end = TurnEnd("turn_e", "sess_e", {"status": "completed", "last_event_seq": 1}, {"status": "idle"})
        lines = TranscriptLines("proj", "sdk_e", "", [{"uuid": "u1", "type": "user"}])
        await store.append_events([_event("sess_e", 1, "turn.completed")], [end], [lines])
        await store.close()

        reopened = make()
        await reopened.open()
        turn = await reopened.get_turn("turn_e")
        assert turn is not None and (turn.status, turn.last_event_seq) == ("completed", 1)
        session = await reopened.get_session("sess_e")
        assert session is not None and (session.status, session.last_seq, session.turn_count) == ("idle", 1, 1)
        assert await reopened.load_transcript("proj", "sdk_e", "") == [{"uuid": "u1", "type": "user"}]
        await reopened.close()

    run(scenario())


def test_a_turns_end_lets_its_own_hosts_lease_go_in_the_same_commit(make: Callable[..., Store]) -> None:
    """A turn's end saves the store trip that released the lease after it, and never lets another host's go."""

    async def scenario() -> None:
        store = make()
        await store.open()
        await store.create_session(_session("sess_l", "2026"))
        for n, owner in enumerate(["host-b", "host-a"], 1):
            await store.create_turn(TurnRecord(f"turn_{n}", "sess_l", n, "running", "hi", "2026"))
            assert await store.acquire_lease("sess_l", "host-a", ttl=60) is None
            end = TurnEnd(f"turn_{n}", "sess_l", {"status": "completed"}, {"status": "idle"}, release_lease_of=owner)
            await store.append_events([_event("sess_l", n, "turn.completed")], [end])
            holder = await store.acquire_lease("sess_l", "host-c", ttl=60)
            assert holder == ("host-a" if owner == "host-b" else None)
        await store.close()

    run(scenario())


@pytest.mark.parametrize("queued", [False, True], ids=["direct", "through-the-event-log"])
def test_transcript_mirror_conformance(make: Callable[..., Store], tmp_path: Path, queued: bool) -> None:
    """The SDK's own SessionStore conformance suite, one fresh store per contract; also with appends riding on
    the event log's commits (as the gateway runs it), whose reads must still see every append before them."""
    stores: list[tuple[Store, EventLog | None]] = []
    counter = itertools.count()

    async def fresh() -> TranscriptMirror:
        store = make(tmp_path / f"contract-{next(counter)}")
        await store.open()
        log = EventLog(store) if queued else None
        if log is not None:
            log.start()
        stores.append((store, log))
        return TranscriptMirror(store, log)

    async def main() -> None:
        await run_session_store_conformance(fresh)
        for store, log in stores:
            if log is not None:
                await log.stop()
            await store.close()

    run(main())


def test_a_transcript_is_adopted_under_another_project_key(make: Callable[..., Store]) -> None:
    """Claude Code keys a transcript by its working directory; a resume from another one gets
    the newest copy (main and subagent transcripts) under its own key, and the source stays."""
    sid = "0f9e2a4c-1b7d-4e3f-9a8b-5c6d7e8f9a0b"
    lines = [{"type": "user", "uuid": f"u{n}", "n": n} for n in range(3)]
    side = [{"type": "assistant", "uuid": "s1", "isSidechain": True}]

    async def main() -> None:
        store = make()
        await store.open()
        assert await store.adopt_transcript(sid, "-host-a") is False  # nothing stored anywhere yet
        await store.append_transcript("-host-a", sid, "", lines)
        await store.append_transcript("-host-a", sid, "subagents/agent-1", side)
        assert await store.adopt_transcript(sid, "-host-a") is False  # already the newest copy

        assert await store.adopt_transcript(sid, "-host-b") is True
        assert await store.load_transcript("-host-b", sid, "") == lines
        assert await store.load_transcript("-host-b", sid, "subagents/agent-1") == side
        assert await store.list_transcript_subpaths("-host-b", sid) == ["subagents/agent-1"]
        assert await store.load_transcript("-host-a", sid, "") == lines
        assert await store.adopt_transcript(sid, "-host-b") is False

        await asyncio.sleep(0.02)  # a later turn, under host B's key
        later = [{"type": "assistant", "uuid": "u3", "n": 3}]
        await store.append_transcript("-host-b", sid, "", later)
        assert await store.adopt_transcript(sid, "-host-a") is True  # A's copy is stale: replaced
        assert await store.load_transcript("-host-a", sid, "") == lines + later
        assert await store.load_transcript("-host-a", sid, "subagents/agent-1") == side
        assert await store.adopt_transcript(sid, "-host-b") is False  # B's is as new: left alone

        await store.delete_transcript(None, sid, None)  # a session delete takes every copy
        assert await store.load_transcript("-host-a", sid, "") is None
        assert await store.load_transcript("-host-b", sid, "") is None
        await store.close()

    run(main())


def test_json_directory_refuses_unsafe_ids(tmp_path: Path) -> None:
    async def main() -> None:
        store = JsonDirStore(tmp_path / "root")
        await store.open()
        for bad in ("../escape", "a/b", "", ".", "x" * 65):
            with pytest.raises(UnsafeId):
                await store.create_session(_session(bad, "2026"))
        assert not (tmp_path / "escape").exists()
        assert [p.name for p in (tmp_path / "root" / "sessions").iterdir()] == []
        await store.close()

    run(main())


def test_json_directory_writes_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash during a write leaves the previous version, never a torn file."""

    async def main() -> None:
        store = JsonDirStore(tmp_path / "root")
        await store.open()
        await store.create_session(_session("sess_a", "2026"))

        def crash(*_: object) -> None:
            raise OSError("disk on fire")

        monkeypatch.setattr("os.replace", crash)
        with pytest.raises(OSError):
            await store.update_session("sess_a", status="running")
        monkeypatch.undo()
        await store.close()
        reopened = JsonDirStore(tmp_path / "root")
        await reopened.open()
        assert (await reopened.get_session("sess_a")).status == "idle"
        await reopened.close()

    run(main())


def _fail_once(monkeypatch: pytest.MonkeyPatch, name: str) -> tuple[list[Path], list[Path]]:
    """The next write of a file called ``name`` fails as on a full disk (before its rename): the paths written,
    and the one that failed, are listed."""
    written: list[Path] = []
    failed: list[Path] = []
    real = jsondir.atomic_write

    def write(path: Path, data: bytes) -> None:
        if path.name == name and not failed:
            failed.append(path)
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(path)
        real(path, data)

    monkeypatch.setattr(jsondir, "atomic_write", write)
    return written, failed


def _seqs(events: list[Event]) -> list[int]:
    return [event.seq for event in events]


async def _subscribed_with_five_events(root: Path, session_id: str) -> JsonDirStore:
    """A JSON directory holding one session subscribed to ``turn.completed``, with events 1..5 committed."""
    store = JsonDirStore(root)
    await store.open()
    webhook = {"url": "http://127.0.0.1:9/h", "events": ["turn.completed"]}
    await store.create_session(replace(_session(session_id, "2026-01-01T00:00:00.000Z"), webhook=webhook))
    await store.append_events([_event(session_id, n) for n in range(1, 6)])
    return store


def test_json_directory_a_commit_that_fails_partway_leaves_no_trace_and_its_retry_lands_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session write of a batch fails (a full disk) after its events file was written; the event log retries
    the batch with newer events behind it (6..8, then 6..12). Each seq is stored once, in order, and so read after
    a restart; the failed attempt's webhook delivery was never claimable, and is owed once."""

    async def main() -> None:
        store = await _subscribed_with_five_events(tmp_path, "sess_f")
        events_dir = tmp_path / "sessions" / "sess_f" / "events"
        before = sorted(p.name for p in events_dir.iterdir())

        written, _ = _fail_once(monkeypatch, "session.json")
        first_try = [_event("sess_f", 6), _event("sess_f", 7), _event("sess_f", 8, "turn.completed")]
        with pytest.raises(OSError, match="No space"):
            await store.append_events(first_try)
        assert any(p.parent == events_dir for p in written), "the events file was written before the failure"
        assert sorted(p.name for p in events_dir.iterdir()) == before, "the failed attempt's file is gone"
        assert _seqs(await store.list_events("sess_f")) == [1, 2, 3, 4, 5]
        assert await store.max_seq("sess_f") == 5
        assert await store.claim_webhooks("host-a", 10, lease=60) == [], "no delivery for an event not committed"

        await store.append_events(first_try + [_event("sess_f", n) for n in range(9, 13)])  # as EventLog retries
        assert _seqs(await store.list_events("sess_f")) == list(range(1, 13))
        assert await store.max_seq("sess_f") == 12 and (await store.get_session("sess_f")).last_seq == 12
        assert [d.id for d in await store.claim_webhooks("host-a", 10, lease=60)] == ["sess_f_8"]
        await store.close()

        reopened = JsonDirStore(tmp_path)
        await reopened.open()
        assert _seqs(await reopened.list_events("sess_f")) == list(range(1, 13))
        assert _seqs(await reopened.list_events("sess_f", after=4, limit=3)) == [5, 6, 7]
        assert [d.seq for d in await reopened.list_webhooks("sess_f", 0, 10)] == [8]
        await reopened.close()

    run(main())


@pytest.mark.parametrize("failing", ["session.json", "2.json", "1.json"])
def test_json_directory_a_410s_end_is_whole_or_not_at_all_across_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """A 410's end writes ``session.json`` (``webhook: null``) and the deliveries it fails, one file each; a crash at
    any of those writes (here the write fails, then the directory is opened again) leaves the end undone (before
    ``session.json``, its commit point: the 410'd delivery is sent again) or finished at the next open: never a
    session without its webhook that still owes the URL deliveries, nor the reverse. Until then nothing is sent."""

    async def main() -> None:
        store = JsonDirStore(tmp_path)
        await store.open()
        webhook = {"url": "http://127.0.0.1:9/h", "events": ["turn.completed"]}
        await store.create_session(replace(_session("sess_g", "2026-01-01T00:00:00.000Z"), webhook=webhook))
        await store.append_events([_event("sess_g", n, "turn.completed") for n in (1, 2, 3)])
        assert [d.id for d in await store.claim_webhooks("host-a", 10, lease=60)] == ["sess_g_1"]
        _fail_once(monkeypatch, failing)
        with pytest.raises(OSError, match="No space"):
            await store.end_webhook("sess_g_1", "host-a", GONE, "not sent")
        assert await store.claim_webhooks("host-b", 10, lease=60) == []
        monkeypatch.undo()
        await store.close()

        reopened = JsonDirStore(tmp_path)
        await reopened.open()
        session = await reopened.get_session("sess_g")
        deliveries = [(d.state, d.attempts, d.last_error) for d in await reopened.list_webhooks("sess_g", 0, 10)]
        claimed = [d.id for d in await reopened.claim_webhooks("host-a", 10, lease=60)]
        if failing == "session.json":
            assert (session.webhook, deliveries, claimed) == (webhook, [("pending", 0, None)] * 3, ["sess_g_1"])
        else:
            ended = [("failed", 1, "HTTP 410: gone"), ("failed", 0, "not sent"), ("failed", 0, "not sent")]
            assert (session.webhook, deliveries, claimed) == (None, ended, [])
        await reopened.close()

    run(main())


def test_json_directory_a_commit_the_event_log_retries_is_stored_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same through the event log: its batch is refused once, newer events queue behind it meanwhile, and
    the retry stores all of them once each."""

    async def main() -> None:
        store = JsonDirStore(tmp_path)
        await store.open()
        await store.create_session(_session("sess_r", "2026-01-01T00:00:00.000Z"))
        log = EventLog(store)
        log.start()
        for n in range(5):
            await log.emit("sess_r", "turn_1", "message.delta", {"n": n})
        await log.flush()
        _, failed = _fail_once(monkeypatch, "session.json")
        for n in range(5, 8):
            await log.emit("sess_r", "turn_1", "message.delta", {"n": n})
        committed = asyncio.ensure_future(log.flush())
        while not failed:  # noqa: ASYNC110 - refused on the store thread; the retry waits half a second
            await asyncio.sleep(0.01)
        for n in range(8, 12):
            await log.emit("sess_r", "turn_1", "message.delta", {"n": n})
        await asyncio.wait_for(committed, 30)
        await log.flush()
        events = await store.list_events("sess_r")
        assert _seqs(events) == list(range(1, 13)) and [e.data["n"] for e in events] == list(range(12))
        await log.stop()
        await store.close()
        reopened = JsonDirStore(tmp_path)
        await reopened.open()
        assert _seqs(await reopened.list_events("sess_r")) == list(range(1, 13))
        await reopened.close()

    run(main())


def test_json_directory_a_retry_after_a_later_write_failed_writes_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The events committed, then the batch's turn end failed: the retried batch (with newer events) adds only
    the newer ones."""

    async def main() -> None:
        store = JsonDirStore(tmp_path)
        await store.open()
        await store.create_session(_session("sess_e", "2026-01-01T00:00:00.000Z"))
        await store.create_turn(TurnRecord("turn_1", "sess_e", 1, "running", "hi", "2026"))
        await store.append_events([_event("sess_e", n) for n in range(1, 4)])
        end = TurnEnd("turn_1", "sess_e", {"status": "completed"}, {"status": "idle"})
        _fail_once(monkeypatch, "turn_1.json")
        batch = [_event("sess_e", 4), _event("sess_e", 5, "turn.completed")]
        with pytest.raises(OSError, match="No space"):
            await store.append_events(batch, [end])
        await store.append_events([*batch, _event("sess_e", 6)], [end])
        assert _seqs(await store.list_events("sess_e")) == [1, 2, 3, 4, 5, 6]
        assert (await store.get_turn("turn_1")).status == "completed"
        await store.close()
        files = sorted(p.name for p in (tmp_path / "sessions" / "sess_e" / "events").iterdir())
        assert [name.split(".")[0] for name in files] == [
            "000000000001-000000000003",
            "000000000004-000000000005",
            "000000000006-000000000006",
        ]

    run(main())


def test_json_directory_a_retried_batch_stores_its_transcript_lines_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's transcript lines are written before its events; the events fail (a full disk) and the event log
    retries the same lines. Claude Code's lines without a uuid (a title, a mode marker) are stored once, not once
    per attempt: nothing else could tell them apart, and a resumed conversation would read them twice."""

    async def main() -> None:
        store = JsonDirStore(tmp_path)
        await store.open()
        await store.create_session(_session("sess_t", "2026-01-01T00:00:00.000Z"))
        entries = [{"type": "user", "uuid": "u1"}, {"type": "custom-title", "customTitle": "Plans"}]
        lines = TranscriptLines("proj", "sdk_t", "", entries)
        _fail_once(monkeypatch, "session.json")
        with pytest.raises(OSError, match="No space"):
            await store.append_events([_event("sess_t", 1)], transcripts=[lines])
        later = TranscriptLines("proj", "sdk_t", "", [{"type": "custom-title", "customTitle": "Plans"}])
        await store.append_events([_event("sess_t", 1), _event("sess_t", 2)], transcripts=[lines, later])
        assert await store.load_transcript("proj", "sdk_t", "") == [*entries, later.entries[0]], "each line once"
        await store.close()

    run(main())


def test_json_directory_appends_do_not_read_the_transcript_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each append used to read every line the transcript already held to match uuids: a long conversation's
    commits got slower with every turn, on the one store thread every session waits on. Only a transcript's
    first append in the process reads it; repeated uuids are still dropped, and a deleted transcript starts over."""

    async def main() -> None:
        store = JsonDirStore(tmp_path)
        await store.open()
        for n in range(3):
            await store.append_transcript("proj", "sdk_l", "", [{"type": "user", "uuid": f"u{n}"}])
        reads: list[Path] = []
        real = jsondir._read_jsonl
        monkeypatch.setattr(jsondir, "_read_jsonl", lambda path: reads.append(path) or real(path))
        for n in range(3, 40):
            await store.append_transcript("proj", "sdk_l", "", [{"type": "user", "uuid": f"u{n}"}, {"uuid": "u0"}])
        assert reads == []
        assert [e["uuid"] for e in await store.load_transcript("proj", "sdk_l", "")] == [f"u{n}" for n in range(40)]
        await store.delete_transcript("proj", "sdk_l", None)
        await store.append_transcript("proj", "sdk_l", "", [{"type": "user", "uuid": "u0"}])
        assert await store.load_transcript("proj", "sdk_l", "") == [{"type": "user", "uuid": "u0"}]
        await store.close()

        reopened = JsonDirStore(tmp_path)  # a new process reads what is there once, and matches against it
        await reopened.open()
        await reopened.append_transcript("proj", "sdk_l", "", [{"uuid": "u0"}, {"type": "user", "uuid": "u1"}])
        assert [e["uuid"] for e in await reopened.load_transcript("proj", "sdk_l", "")] == ["u0", "u1"]
        await reopened.close()

    run(main())


def test_json_directory_a_crash_before_the_commit_point_is_undone_at_open(tmp_path: Path) -> None:
    """A crash after a batch's events file (and delivery) but before its ``session.json``: the batch never
    committed (nor was published), so the next open removes it and the log numbers on from the last commit."""

    async def main() -> None:
        store = await _subscribed_with_five_events(tmp_path, "sess_c")
        session_file = tmp_path / "sessions" / "sess_c" / "session.json"
        committed = session_file.read_bytes()
        await store.append_events([_event("sess_c", 6), _event("sess_c", 7), _event("sess_c", 8, "turn.completed")])
        await store.close()
        session_file.write_bytes(committed)  # as if the crash came before this write

        reopened = JsonDirStore(tmp_path)
        await reopened.open()
        assert await reopened.max_seq("sess_c") == 5
        assert _seqs(await reopened.list_events("sess_c")) == [1, 2, 3, 4, 5]
        assert await reopened.list_webhooks("sess_c", 0, 10) == []
        assert [p.name for p in (tmp_path / "sessions" / "sess_c" / "webhooks").iterdir()] == []
        await reopened.append_events([_event("sess_c", n) for n in range(6, 13)])
        assert _seqs(await reopened.list_events("sess_c")) == list(range(1, 13))
        await reopened.close()

    run(main())


def test_json_directory_reads_each_seq_once_and_in_order_from_overlapping_files(tmp_path: Path) -> None:
    """A store an earlier version left with a retried batch in two files (1..8 and 6..12): read as 1..12."""

    async def main() -> None:
        store = JsonDirStore(tmp_path)
        await store.open()
        await store.create_session(_session("sess_o", "2026-01-01T00:00:00.000Z"))
        await store.append_events([_event("sess_o", n) for n in range(1, 9)])
        await store.append_events([_event("sess_o", n) for n in range(9, 13)])
        await store.close()
        events_dir = tmp_path / "sessions" / "sess_o" / "events"
        retried = b"".join(orjson.dumps(asdict(_event("sess_o", n))) + b"\n" for n in range(6, 13))
        (events_dir / "000000000009-000000000012.jsonl").unlink()
        (events_dir / "000000000006-000000000012.jsonl").write_bytes(retried)

        reopened = JsonDirStore(tmp_path)
        await reopened.open()
        assert _seqs(await reopened.list_events("sess_o")) == list(range(1, 13))
        assert _seqs(await reopened.list_events("sess_o", after=7, limit=3)) == [8, 9, 10]
        assert _seqs(await reopened.list_events("sess_o", types=["message.delta"], after=5)) == list(range(6, 13))
        await reopened.close()

    run(main())


def test_json_directory_is_refused_to_a_second_store_until_the_first_closes(tmp_path: Path) -> None:
    """Sequence numbers and leases are the open store's own: a second one on the directory is refused with an
    error naming it, and may open once the first has closed."""

    async def main() -> None:
        first = JsonDirStore(tmp_path / "root")
        await first.open()
        second = JsonDirStore(tmp_path / "root")
        with pytest.raises(DirectoryInUse) as refused:
            await second.open()
        message = str(refused.value)
        assert str(tmp_path / "root") in message and f"another gateway (pid {os.getpid()})" in message, message
        await first.close()
        await second.open()
        await second.create_session(_session("sess_l", "2026"))
        await second.close()

    run(main())


def test_tool_policy_budget_and_permission_requests_persist(make: Callable[..., Store]) -> None:
    async def main() -> None:
        store = make()
        await store.open()
        await store.create_session(
            replace(_session("sess_p", "2026-01-01T00:00:00.000Z"), builtin_tools=["Read", "Glob"], max_budget_usd=0.5)
        )
        await store.create_session(_session("sess_q", "2026-01-01T00:00:01.000Z"))
        await store.create_turn(TurnRecord("turn_p", "sess_p", 1, "requires_approval", "hi", "2026"))
        pending = [{"request_id": "perm_1", "tool_name": "Bash", "input": {"command": "ls"}}]
        await store.update_turn("turn_p", permission_requests=pending)
        await store.update_session("sess_p", max_budget_usd=2.0)
        await store.close()
        reopened = make()
        await reopened.open()
        session = await reopened.get_session("sess_p")
        assert (session.builtin_tools, session.max_budget_usd) == (["Read", "Glob"], 2.0)
        assert (await reopened.get_session("sess_q")).builtin_tools == "all"
        assert (await reopened.get_turn("turn_p")).permission_requests == pending
        assert [t.id for t in await reopened.orphaned_turns("host-a")] == ["turn_p"]  # a restart closes it
        await reopened.close()

    run(main())


def test_a_version_one_sqlite_database_is_migrated(tmp_path: Path) -> None:
    """Sessions created before the tool policy existed read back as "all" (how they ran)."""
    import sqlite3

    db = sqlite3.connect(tmp_path / "sessions.db")
    db.executescript("""
        CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description VARCHAR(255), applied_at VARCHAR(255));
        INSERT INTO schema_version VALUES (1, 'initial', '2026');
        CREATE TABLE sessions (id VARCHAR(64) PRIMARY KEY, created_at VARCHAR(255), updated_at VARCHAR(255),
            model VARCHAR(255), system_prompt TEXT, tools TEXT, metadata TEXT, max_turns INTEGER, cwd TEXT,
            permission_mode VARCHAR(255), status VARCHAR(255), sdk_session_id VARCHAR(255), turn_count INTEGER,
            last_seq INTEGER, usage TEXT, context TEXT);
        CREATE TABLE turns (id VARCHAR(64) PRIMARY KEY, session_id VARCHAR(64), number INTEGER,
            status VARCHAR(255), input TEXT, created_at VARCHAR(255), kind VARCHAR(255), completed_at VARCHAR(255),
            output TEXT, tool_calls TEXT, usage TEXT, cost_usd REAL, duration_ms INTEGER, stop_reason VARCHAR(255),
            error TEXT, last_event_seq INTEGER);
        INSERT INTO sessions VALUES ('sess_old', '2026', '2026', 'claude-sonnet-4-5', NULL, '[]', '{}', NULL, NULL,
            NULL, 'idle', NULL, 1, 0, '{}', NULL);
        INSERT INTO turns VALUES ('turn_old', 'sess_old', 1, 'completed', '"hi"', '2026', 'input', '2026', '[]',
            '[]', '{}', NULL, NULL, NULL, NULL, 3);
    """)
    db.close()

    async def main() -> None:
        store = SqlStore(sqlite_database(tmp_path / "sessions.db"))
        await store.open()
        session = await store.get_session("sess_old")
        assert (session.builtin_tools, session.max_budget_usd) == ("all", None)
        assert (await store.get_turn("turn_old")).permission_requests == []
        await store.close()

    run(main())


def test_prepared_statements_check_their_parameters_against_peewee(tmp_path: Path) -> None:
    """The hot-path statements reuse SQL built once; a caller that lists parameters in another order
    than peewee writes them is refused on the first call, before anything runs against the database."""
    database = sqlite_database(tmp_path / "prepared.db")
    store = SqlStore(database)
    asyncio.run(store.open())
    prepared = Prepared(database)
    LeaseRow.create(session_id="sess_p", owner="a", expires_at=0)
    with pytest.raises(ValueError, match="not in the order"):
        prepared.run(
            "swapped",
            lambda: LeaseRow.update(owner="b", expires_at=5.0).where(LeaseRow.session_id == "sess_p"),
            [5.0, "b", "sess_p"],
        )
    assert LeaseRow.get(LeaseRow.session_id == "sess_p").owner == "a"
    for owner in ("b", "c"):  # built on the first call, reused with new values on the second
        taken = prepared.run(
            "take",
            lambda owner=owner: LeaseRow.update(owner=owner, expires_at=5.0).where(LeaseRow.session_id == "sess_p"),
            [owner, 5.0, "sess_p"],
        )
        assert taken == 1 and LeaseRow.get(LeaseRow.session_id == "sess_p").owner == owner
    asyncio.run(store.close())


def test_the_store_thread_runs_calls_in_order_on_one_thread_and_hands_back_errors() -> None:
    """Every backend call runs on the one store thread, in the order the event loop made them; a backend error
    reaches its caller; a call whose caller gave up before it started never runs; a closed store refuses."""
    worker, ran, threads = StoreThread(), [], set()

    def call(n: int) -> int:
        threads.add(threading.get_ident())
        time.sleep(0.01 if n == 0 else 0)
        ran.append(n)
        return n * 10

    def fail() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    async def scenario() -> None:
        assert await asyncio.gather(*(worker.run(call, n) for n in range(5))) == [0, 10, 20, 30, 40]
        with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
            await worker.run(fail)
        blocker = asyncio.ensure_future(worker.run(time.sleep, 0.1))
        await asyncio.sleep(0.02)
        abandoned = asyncio.ensure_future(worker.run(call, 99))
        await asyncio.sleep(0)
        abandoned.cancel()
        await blocker
        assert await worker.run(call, 5) == 50

    run(scenario())
    worker.close()
    assert ran == [0, 1, 2, 3, 4, 5] and len(threads) == 1 and threading.get_ident() not in threads
    with pytest.raises(RuntimeError, match="closed"):
        run(worker.run(call, 6))
