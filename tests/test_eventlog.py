"""The event sink on a real SQLite store: gap-free seq, batching, replay + live tail."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from ccapi.events import Event
from ccapi.ids import utcnow
from ccapi.sessions.eventlog import KEEPALIVE, EventLog
from ccapi.store import JsonDirStore, SessionRecord, SqlStore, Store
from ccapi.store.databases import sqlite_database


class Counting(Store):
    """Counts write transactions so batching is observable."""

    batches: list[int]

    async def append_events(self, events: list[Event], *writes: Any) -> None:
        self.batches.append(len(events))
        await super().append_events(events, *writes)


class CountingStore(Counting, SqlStore):
    pass


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


def test_events_nobody_follows_wait_for_the_turns_end_and_a_follower_gets_them_at_once(tmp_path: Path) -> None:
    """A default-reply turn's events, which nobody streams, gather into the commit of its end (one
    transaction a turn, not one per burst); a follower that arrives meanwhile does not wait for them."""

    async def main() -> None:
        store = await _store(tmp_path, "s", "t")
        log = EventLog(store, unwatched_window=5.0)
        log.start()
        await log.emit("s", "turn_1", "turn.started", {})
        await asyncio.sleep(0.05)
        for n in range(3):
            await log.emit("s", "turn_1", "message.delta", {"text": str(n)})
        await asyncio.sleep(0.2)
        assert store.batches == [], "nobody follows: nothing commits before the turn's end"
        await log.emit("s", "turn_1", "turn.completed", {})
        await log.flush()  # what a turn's end does
        assert store.batches == [5]

        await log.emit("t", "turn_2", "turn.started", {})
        began = asyncio.get_running_loop().time()
        stream = log.follow("t", after=0, keepalive=10)
        event = await asyncio.wait_for(anext(stream), 2)
        assert event is not None and event.type == "turn.started"
        assert asyncio.get_running_loop().time() - began < 2.5, "a follower does not wait out the unwatched window"
        await stream.aclose()
        await log.stop()
        await store.close()

    asyncio.run(main())


def test_a_turns_first_delta_is_not_held_back_by_the_commit_of_its_start(tmp_path: Path) -> None:
    """For a follower, ``turn.started`` commits at once and so does the first delta after it;
    only the deltas that follow within the batch window gather."""

    async def main() -> None:
        store = await _store(tmp_path, "s")
        log = EventLog(store, batch_window=5.0)
        log.start()
        stream = log.follow("s", after=0, keepalive=30)
        receiving = asyncio.create_task(anext(stream))
        await asyncio.sleep(0.05)  # subscribed
        await log.emit("s", "turn_1", "turn.started", {})
        assert (await asyncio.wait_for(receiving, 2)).type == "turn.started"  # type: ignore[union-attr]
        await asyncio.sleep(0.05)
        await log.emit("s", "turn_1", "message.delta", {"text": "first"})
        first = await asyncio.wait_for(anext(stream), 2)  # well inside the 5 s window
        assert first is not None and first.data == {"text": "first"}
        await log.emit("s", "turn_1", "message.delta", {"text": "second"})
        await asyncio.sleep(0.3)
        assert store.batches == [1, 1], "a delta right after a delta commit gathers for the window"
        await log.flush()
        assert store.batches == [1, 1, 1]
        await stream.aclose()
        await log.stop()
        await store.close()

    asyncio.run(main())


def test_on_a_store_hosts_share_events_commit_as_if_followed(tmp_path: Path) -> None:
    """Another host may be following the session: its events do not wait for the unwatched window."""

    class SharedStore(Counting, JsonDirStore):
        shared = True

    async def main() -> None:
        store = SharedStore(tmp_path / "sessions")
        store.batches = []
        await store.open()
        now = utcnow()
        await store.create_session(
            SessionRecord("s", now, now, "m", None, [], {}, None, None, None, "idle", None, 0, 0)
        )
        log = EventLog(store, unwatched_window=5.0)
        log.start()
        await log.emit("s", "turn_1", "turn.started", {})
        for _ in range(100):
            if store.batches:
                break
            await asyncio.sleep(0.02)
        assert store.batches == [1]
        await log.stop()
        await store.close()

    asyncio.run(main())


def test_a_session_many_follow_gets_fewer_larger_commits(tmp_path: Path) -> None:
    """Each commit costs every follower a wake-up and a write: with 30 followers deltas gather
    for three batch windows after a commit of deltas, with one follower for one."""

    async def commits_within(seconds: float, followers: int, root: Path) -> int:
        store = await _store(root, "s")
        log = EventLog(store, batch_window=1.0, unwatched_window=10.0)
        log.start()
        with contextlib.ExitStack() as stack:
            for _ in range(followers):
                stack.enter_context(log.subscribe("s"))
            await log.emit("s", "turn_1", "message.delta", {"text": "a"})
            await log.flush()  # a commit with a delta: it opens the window
            await log.emit("s", "turn_1", "message.delta", {"text": "b"})
            await asyncio.sleep(seconds)
            commits = len(store.batches)
        await log.stop()
        await store.close()
        return commits

    async def main() -> None:
        assert await commits_within(1.6, 1, tmp_path / "one") == 2
        assert await commits_within(1.6, 30, tmp_path / "crowd") == 1

    asyncio.run(main())


def test_a_followed_session_is_not_held_back_by_one_gathering_for_nobody(tmp_path: Path) -> None:
    """Each session's events have their own deadline: a streamed session's delta goes at once even
    while another session's events wait for the unwatched window, and a full batch goes at once."""

    async def main() -> None:
        store = await _store(tmp_path, "quiet", "live")
        log = EventLog(store, batch_size=10, unwatched_window=5.0)
        log.start()
        stream = log.follow("live", after=0, keepalive=30)
        receiving = asyncio.create_task(anext(stream))
        await asyncio.sleep(0.05)  # subscribed
        await log.emit("quiet", "turn_1", "turn.started", {})  # nobody follows it: up to 5 s
        await asyncio.sleep(0.1)
        await log.emit("live", "turn_2", "message.delta", {"text": "hi"})
        event = await asyncio.wait_for(receiving, 2)
        assert event is not None and event.data == {"text": "hi"}

        for n in range(10):  # a full batch of events nobody follows
            await log.emit("quiet", "turn_1", "message.delta", {"n": n})
        for _ in range(100):
            if sum(store.batches) == 12:
                break
            await asyncio.sleep(0.02)
        assert sum(store.batches) == 12, store.batches
        await stream.aclose()
        await log.stop()
        await store.close()

    asyncio.run(main())
