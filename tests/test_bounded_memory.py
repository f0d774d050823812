"""A gateway runs for weeks: what it keeps in memory for a session goes when the session does, and what it keeps
for sessions that stay, or for a follower that lags, has a bound.

Memory is not observable over HTTP: the compat test drives the real app over real HTTP (with the real Claude Code
on the mock model) in this process and then looks at the app's own state; the event log's are unit tests on a real
SQLite store (the nudges come from other hosts on a shared PostgreSQL store).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from ccapi.app import create_app
from ccapi.compat.router import CompatRouter
from ccapi.config import Settings
from ccapi.ids import utcnow
from ccapi.sessions.eventlog import EventLog
from ccapi.store import SessionRecord, SqlStore
from ccapi.store.databases import sqlite_database
from tests.inprocess import serving

MODEL = "claude-sonnet-4-5"


async def _chat(client: httpx.AsyncClient, messages: list[dict[str, str]]) -> tuple[str, str]:
    """One Chat Completions request: the session that answered it, and the reply's text."""
    response = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": messages})
    assert response.status_code == 200, response.text
    return response.headers["x-cc-session-id"], response.json()["choices"][0]["message"]["content"]


async def _deleted_conversations(settings: Settings) -> dict[str, Any]:
    app = create_app(settings, name="ccapi_deleted_heads")
    found: dict[str, Any] = {}
    async with (
        serving(app, settings.port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=60) as client,
    ):
        opening = [{"role": "user", "content": "name a colour"}]
        first, reply = await _chat(client, opening)
        router: CompatRouter = app.ctx.compat_router
        found["held"] = router._index.head_of(first) is not None
        deleted = await client.delete(f"/api/sessions/{first}")
        found["deleted"] = deleted.status_code
        found["after_delete"] = (router._index.head_of(first), len(router._index._heads))
        # the client goes on with the conversation: a new session takes it in
        grown = [*opening, {"role": "assistant", "content": reply}, {"role": "user", "content": "and another"}]
        second, reply = await _chat(client, grown)
        found["second"] = second != first
        # another host deletes it (here: straight from the shared store); the next request finds it gone
        await app.ctx.service.store.delete_session(second)
        third, _ = await _chat(
            client, [*grown, {"role": "assistant", "content": reply}, {"role": "user", "content": "x"}]
        )
        found["third"] = third not in (first, second)
        found["heads"] = sorted(router._index._heads)
        found["expected_heads"] = [third]
        await client.delete(f"/api/sessions/{third}")
    return found


def test_a_deleted_sessions_conversation_leaves_memory(offline_process: Settings) -> None:
    """Each compat conversation keeps its whole history in memory as its session's head, to route the next request
    of it; a session deleted (by its client, by its retention, by another host) takes its head along, or the heads
    of every conversation a long day ended stayed in memory, each compared with every later request."""
    found = asyncio.run(_deleted_conversations(offline_process))
    assert found["held"]
    assert found["deleted"] == 200
    assert found["after_delete"] == (None, 0)
    assert found["second"] and found["third"]
    assert found["heads"] == found["expected_heads"]


def test_the_event_log_keeps_the_numbering_of_a_bounded_number_of_sessions(tmp_path: Path) -> None:
    """Sessions are kept by default (``CC_API_SESSION_RETENTION`` off): the log's per-session numbering, kept to
    spare each event a read of the store, stays within its bound however many sessions a gateway writes to; a
    session whose numbering was dropped goes on without a gap, and one with events still on their way keeps it."""

    async def main() -> None:
        store = await _sessions_store(tmp_path, [f"s{n}" for n in range(41)])
        log = EventLog(store)
        log._max_counters = 8  # MAX_COUNTERS, brought down to what a test reaches
        log.start()
        try:
            for n in range(40):
                await log.emit(f"s{n}", None, "message.delta", {"n": n})
                await log.flush()
            assert len(log._next_seq) <= 8 and len(log._stored_up_to) <= 8
            for n in range(40):  # every session again, its numbering read from the store where it was dropped
                await log.emit(f"s{n}", None, "message.delta", {"n": n})
            await log.flush()
            for n in range(40):
                assert [event.seq for event in await store.list_events(f"s{n}")] == [1, 2]
            # a session whose event is pending keeps its numbering while others come and go
            await log.emit("s0", None, "message.delta", {})
            held = log._next_seq.get("s0")
            for n in range(1, 40):
                await log.emit(f"s{n}", None, "message.delta", {})
            assert held is not None and log._next_seq.get("s0") == held
            await log.flush()
            await log.emit("s40", None, "message.delta", {})  # the next session new to the log sheds them
            await log.flush()
            assert len(log._next_seq) <= 8
            assert [event.seq for event in await store.list_events("s0")] == [1, 2, 3]
            for n in range(40):  # as a host on a shared store numbers each turn's session (``lease.take_lease``)
                log.adopt(f"s{n}", (await store.get_session(f"s{n}")).last_seq)
            assert len(log._next_seq) <= 8 and len(log._stored_up_to) <= 8
        finally:
            await log.stop()
            await store.close()

    asyncio.run(main())


async def _sessions_store(tmp_path: Path, session_ids: list[str]) -> SqlStore:
    store = SqlStore(sqlite_database(tmp_path / "events.db"))
    await store.open()
    for session_id in session_ids:
        now = utcnow()
        await store.create_session(
            SessionRecord(session_id, now, now, "m", None, [], {}, None, None, None, "idle", None, 0, 0)
        )
    return store


def test_a_busy_follower_holds_one_wake_up_however_often_other_hosts_append(tmp_path: Path) -> None:
    """On a store hosts share, each commit of another host nudges this host's followers of the session. A follower
    busy elsewhere meanwhile (an SSE client reading slowly) holds one wake-up, not one per commit, and still gets
    every event, once, in order."""

    async def main() -> None:
        store = await _sessions_store(tmp_path, ["s"])
        log = EventLog(store)
        log.start()
        try:
            follow = log.follow("s", 0, keepalive=30)
            await log.emit("s", None, "message.delta", {"n": 0})
            await log.flush()
            first = await anext(follow)  # the follower takes one event, then is busy elsewhere
            [subscription] = log._subscribers["s"]
            for n in range(1, 500):  # another host's commits (here: this log's, nudged as the other host's are)
                await log.emit("s", None, "message.delta", {"n": n})
                await log.flush()
                log.nudge("s")
            assert subscription.queue.qsize() <= 2
            seqs = [first.seq] + [(await anext(follow)).seq for _ in range(499)]
            assert seqs == list(range(1, 501))
            await follow.aclose()
        finally:
            await log.stop()
            await store.close()

    asyncio.run(main())
