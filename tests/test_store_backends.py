"""One contract suite for every store backend: SQLite and the JSON directory."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from claude_agent_sdk.testing import run_session_store_conformance

from ccapi.events import Event
from ccapi.store import JsonDirStore, SessionRecord, SqlStore, Store, TurnRecord
from ccapi.store.jsondir import UnsafeId
from ccapi.store.sql import postgres_database, sqlite_database
from ccapi.store.transcripts import TranscriptMirror

@pytest.fixture(params=["sqlite", "jsondir", "postgres"])
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
    return SessionRecord(session_id, created_at, created_at, "claude-sonnet-4-5", None, [], {"k": 1}, None, None,
                         None, "idle", None, 0, 0)


def _event(session_id: str, seq: int, type_: str = "message.delta") -> Event:
    return Event(seq, type_, session_id, "turn_1", "2026-01-01T00:00:00.000Z", {"n": seq})


def run(coro):  # noqa: ANN001, ANN201 - tiny test helper
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

        turn = TurnRecord("turn_1", "sess_1", 1, "running", [{"type": "text", "text": "hi"}],
                          "2026-01-01T00:01:00.000Z")
        await store.create_turn(turn)
        assert (await store.get_session("sess_1")).turn_count == 1
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
        assert await store.get_turn("turn_1") == replace(turn, status="completed",
                                                          output=[{"type": "text", "text": "yo"}])
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


def test_transcript_mirror_conformance(make: Callable[..., Store], tmp_path: Path) -> None:
    """The SDK's own SessionStore conformance suite, one fresh store per contract."""
    stores: list[Store] = []
    counter = itertools.count()

    async def fresh() -> TranscriptMirror:
        store = make(tmp_path / f"contract-{next(counter)}")
        await store.open()
        stores.append(store)
        return TranscriptMirror(store)

    async def main() -> None:
        await run_session_store_conformance(fresh)
        for store in stores:
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
