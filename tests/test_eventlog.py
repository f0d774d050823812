"""The event sink on a real SQLite store: gap-free seq, batching, replay + live tail."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ccapi.events import Event
from ccapi.ids import utcnow
from ccapi.sessions.eventlog import KEEPALIVE, EventLog
from ccapi.store import SessionRecord, SqlStore
from ccapi.store.sql import sqlite_database


class CountingStore(SqlStore):
    """Counts write transactions so batching is observable."""

    batches: list[int]

    async def append_events(self, events: list[Event], *writes: Any) -> None:
        self.batches.append(len(events))
        await super().append_events(events, *writes)


async def _store(tmp_path: Path, *session_ids: str) -> CountingStore:
    store = CountingStore(sqlite_database(tmp_path / "events.db"))
    store.batches = []
    await store.open()
    for session_id in session_ids:
        now = utcnow()
        await store.create_session(
            SessionRecord(session_id, now, now, "m", None, [], {}, None, None, None, "idle", None, 0, 0)
        )
    return store


def test_concurrent_emitters_get_gap_free_sequences_in_few_transactions(tmp_path: Path) -> None:
    async def main() -> None:
        store = await _store(tmp_path, "a", "b")
        log = EventLog(store)
        log.start()

        async def writer(session_id: str) -> None:
            for n in range(500):
                await log.emit(session_id, None, "message.delta", {"n": n})
                if n % 50 == 0:
                    await asyncio.sleep(0)

        await asyncio.gather(writer("a"), writer("b"), writer("a"))
        await log.flush()
        for session_id, count in (("a", 1000), ("b", 500)):
            events = await store.list_events(session_id, limit=5000)
            assert [e.seq for e in events] == list(range(1, count + 1))
            assert (await store.get_session(session_id)).last_seq == count
        assert sum(store.batches) == 1500
        assert len(store.batches) <= 20, store.batches  # batched, not one commit per event
        await log.stop()
        await store.close()

    asyncio.run(main())


def test_numbering_continues_after_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        store = await _store(tmp_path, "s")
        log = EventLog(store)
        log.start()
        for n in range(3):
            await log.emit("s", None, "x", {"n": n})
        await log.stop()
        await store.close()

        store = await _store(tmp_path)
        log = EventLog(store)
        log.start()
        event = await log.emit("s", None, "x", {"n": 3})
        await log.stop()
        assert event.seq == 4
        assert [e.seq for e in await store.list_events("s")] == [1, 2, 3, 4]
        await store.close()

    asyncio.run(main())


def test_follow_replays_then_tails_live_and_survives_a_lagging_queue(tmp_path: Path) -> None:
    async def main() -> None:
        store = await _store(tmp_path, "s")
        log = EventLog(store)
        log.start()
        for n in range(5):
            await log.emit("s", None, "x", {"n": n})
        await log.flush()

        received: list[int] = []

        async def reader() -> None:
            async for event in log.follow("s", after=2, keepalive=5):
                assert event is not KEEPALIVE
                received.append(event.seq)
                if event.seq == 3:
                    await asyncio.sleep(0.3)  # fall behind while 2,000 events arrive
                if event.seq == 2005:
                    return

        task = asyncio.create_task(reader())
        await asyncio.sleep(0.05)
        for n in range(2000):
            await log.emit("s", None, "x", {"n": n})
        await asyncio.wait_for(task, 10)
        assert received == list(range(3, 2006))
        await log.stop()
        await store.close()

    asyncio.run(main())


def test_follow_yields_keepalives_when_quiet(tmp_path: Path) -> None:
    async def main() -> None:
        store = await _store(tmp_path, "s")
        log = EventLog(store)
        log.start()
        stream = log.follow("s", after=0, keepalive=0.05)
        assert await asyncio.wait_for(anext(stream), 1) is KEEPALIVE
        await log.emit("s", None, "x", {})
        event = await asyncio.wait_for(anext(stream), 1)
        assert event is not None and event.seq == 1
        await stream.aclose()
        await log.stop()
        await store.close()

    asyncio.run(main())


def test_a_follower_that_stops_taking_is_cut_off_without_holding_back_another(tmp_path: Path) -> None:
    """Two SSE-style followers with an 8-event buffer: one reads, one takes the replay and then
    nothing. One commit larger than the buffer does not cut off the reader; the stalled one is
    ended once more than 8 events wait for it, and the reader gets every event once, in order."""

    async def main() -> None:
        store = await _store(tmp_path, "s")
        log = EventLog(store)
        log.start()
        await log.emit("s", None, "x", {})
        await log.flush()
        reader = log.follow_batches("s", 0, keepalive=5, buffer=8, cut_off=True)
        stalled = log.follow_batches("s", 0, keepalive=5, buffer=8, cut_off=True)
        for stream in (reader, stalled):
            assert [e.seq for e in await asyncio.wait_for(anext(stream), 1)] == [1]  # replayed: both subscribed

        for _ in range(50):  # one commit of 50
            await log.emit("s", None, "x", {})
        await log.flush()
        first = await asyncio.wait_for(anext(reader), 1)
        assert [e.seq for e in first] == list(range(2, 52))
        received = [e.seq for e in first]
        for burst in range(5):  # then commits of 5, each within the buffer
            for _ in range(5):
                await log.emit("s", None, "x", {})
            await log.flush()
            while received[-1] < 51 + 5 * (burst + 1):
                received += [e.seq for e in await asyncio.wait_for(anext(reader), 1)]
        assert received == list(range(2, 77))

        # the stalled one is ended, not fed: it resumes from seq 1, the last it took
        try:
            rest = await asyncio.wait_for(anext(stalled), 1)
        except StopAsyncIteration:
            rest = None
        assert rest is None, "more than 8 events behind: cut off"
        await reader.aclose()
        await log.stop()
        await store.close()

    asyncio.run(main())
