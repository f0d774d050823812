"""What the stores do when the machine, or another tool, gets in the way: a JSON directory with a file cut short or
edited by hand, and a disk that fills up under a write. The gateway keeps serving what is sound, names what is not,
and leaves nothing behind that holds the space it needs back or that would load wrong once space returns."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from ccapi.events import Event
from ccapi.store import JsonDirStore, SessionRecord, TurnRecord, jsondir
from ccapi.store.databases import sqlite_database
from ccapi.store.jsondir import DamagedFile
from ccapi.store.records import TranscriptLines
from ccapi.store.sql import SqlStore
from ccapi.testing import MockModel, Reply


def _session(session_id: str) -> SessionRecord:
    at = "2026-01-01T00:00:00.000Z"
    return SessionRecord(session_id, at, at, "claude-sonnet-4-5", None, [], {}, None, None, None, "idle", None, 0, 0)


def _event(session_id: str, seq: int, type_: str = "message.delta") -> Event:
    return Event(seq, type_, session_id, "turn_1", "2026-01-01T00:00:00.000Z", {"n": seq})


async def _two_sessions(root: Path) -> None:
    """``sess_ok`` and ``sess_bad``, each with a turn, three events, a webhook delivery and a compat head."""
    store = JsonDirStore(root)
    await store.open()
    webhook = {"url": "http://127.0.0.1:9/h", "events": ["turn.completed"]}
    for session_id in ("sess_ok", "sess_bad"):
        await store.create_session(replace(_session(session_id), webhook=webhook))
        turn = TurnRecord("turn_" + session_id, session_id, 1, "running", "hi", "2026-01-01T00:00:00.000Z")
        await store.create_turn(turn)
        await store.append_events(
            [_event(session_id, 1), _event(session_id, 2), _event(session_id, 3, "turn.completed")]
        )
        await store.save_compat_head(session_id, "k", {"session_id": session_id}, "2026-01-01T00:00:01.000Z")
    await store.close()


_DAMAGE = {
    "session.json cut short": ("sessions/sess_bad/session.json", lambda data: data[: len(data) // 2]),
    "session.json edited into a list": ("sessions/sess_bad/session.json", lambda data: b"[]"),
    "session.json with a field removed": ("sessions/sess_bad/session.json", lambda data: b'{"id": "sess_bad"}'),
    "a turn emptied": ("sessions/sess_bad/turns/turn_sess_bad.json", lambda data: b""),
    "a webhook delivery overwritten": ("sessions/sess_bad/webhooks/3.json", lambda data: b"\x00\x00garbage"),
}


@pytest.mark.parametrize("damage", list(_DAMAGE))
def test_json_directory_a_damaged_session_file_is_named_and_the_other_sessions_load(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A file of one session cut short (another tool crashed writing it) or edited by hand: the store opens, the
    sound session is served as it was, and the damaged one answers an error naming its file (its folder untouched,
    for the operator to repair) instead of the gateway refusing to start."""
    relative, spoil = _DAMAGE[damage]
    damaged = tmp_path / relative

    async def main() -> None:
        await _two_sessions(tmp_path)
        damaged.write_bytes(spoil(damaged.read_bytes()))
        before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "sessions" / "sess_bad").rglob("*"))

        store = JsonDirStore(tmp_path)
        await store.open()
        assert [s.id for s in await store.list_sessions(10, None)] == ["sess_ok"]
        assert [e.seq for e in await store.list_events("sess_ok")] == [1, 2, 3]
        assert await store.get_turn("turn_sess_ok") is not None
        assert [d.seq for d in await store.list_webhooks("sess_ok", 0, 10)] == [3]
        with pytest.raises(DamagedFile) as raised:
            await store.get_session("sess_bad")
        assert str(damaged) in raised.value.message and raised.value.status == 500
        assert await store.get_turn("turn_sess_bad") is None and await store.list_webhooks("sess_bad", 0, 10) == []
        assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "sessions" / "sess_bad").rglob("*")) == before

        # the store goes on: the sound session takes new events and a new session is created
        await store.append_events([_event("sess_ok", 4)])
        await store.create_session(_session("sess_new"))
        assert await store.max_seq("sess_ok") == 4
        await store.close()

    asyncio.run(main())


def test_json_directory_a_damaged_events_file_is_named_when_read(tmp_path: Path) -> None:
    """An events file cut short: reading that session's log says which file is damaged (a client sees a 500 whose
    message names it), never a bare decoding error; the other sessions read as before."""

    async def main() -> None:
        await _two_sessions(tmp_path)
        (events_file,) = (tmp_path / "sessions" / "sess_bad" / "events").glob("*.jsonl")
        events_file.write_bytes(events_file.read_bytes()[:-20])
        (events_file.parent / "notes.jsonl").write_bytes(b"a stray file an editor left\n")  # not an events file

        store = JsonDirStore(tmp_path)
        await store.open()
        with pytest.raises(DamagedFile, match=str(events_file)):
            await store.list_events("sess_bad")
        assert [e.seq for e in await store.list_events("sess_ok")] == [1, 2, 3]
        await store.close()

    asyncio.run(main())


def test_json_directory_a_damaged_transcript_line_holds_up_no_commit(tmp_path: Path) -> None:
    """A transcript file with a damaged line (cut short, say): the next batch that mirrors lines into it still
    commits (a batch carries every session's events, so a failure here stalled the whole event log, and with it
    every session's replies), and a resume reads the lines that are sound."""

    async def main() -> None:
        store = JsonDirStore(tmp_path)
        await store.open()
        await store.create_session(_session("sess_t"))
        await store.append_transcript("proj", "sdk_1", "", [{"uuid": "a", "n": 1}, {"uuid": "b", "n": 2}])
        await store.close()
        (transcript,) = (tmp_path / "transcripts").rglob("000000001.jsonl")
        transcript.write_bytes(transcript.read_bytes()[:-8])  # the second line cut short

        store = JsonDirStore(tmp_path)
        await store.open()
        lines = TranscriptLines("proj", "sdk_1", "", [{"uuid": "c", "n": 3}])
        await asyncio.wait_for(store.append_events([_event("sess_t", 1)], transcripts=[lines]), 10)
        assert [e.seq for e in await store.list_events("sess_t")] == [1]
        assert await store.load_transcript("proj", "sdk_1", "") == [{"uuid": "a", "n": 1}, {"uuid": "c", "n": 3}]
        await store.close()

    asyncio.run(main())


def test_json_directory_a_damaged_compat_head_does_not_fail_every_compat_request(tmp_path: Path) -> None:
    async def main() -> None:
        await _two_sessions(tmp_path)
        (tmp_path / "sessions" / "sess_bad" / "compat_head.json").write_bytes(b'{"key": "k", "da')
        store = JsonDirStore(tmp_path)
        await store.open()
        assert await store.load_compat_heads("k", 10) == [{"session_id": "sess_ok"}]
        await store.close()

    asyncio.run(main())


def _leftovers(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.name.endswith(".tmp"))


def test_json_directory_a_write_the_disk_refuses_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk refuses a batch's events file after part of it was written: the write fails, and its temporary
    file goes with it (it held the space the store needs back, and every retry of a longer batch left another).
    Once the disk takes writes again, the retry commits each event once."""

    async def main() -> None:
        store = JsonDirStore(tmp_path)
        await store.open()
        await store.create_session(_session("sess_d"))
        await store.append_events([_event("sess_d", 1)])
        real_fsync = os.fsync
        full = True

        def fsync(fd: int) -> None:
            if full and os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
                raise OSError(errno.ENOSPC, "No space left on device")
            real_fsync(fd)

        monkeypatch.setattr(jsondir.os, "fsync", fsync)
        for last in (3, 5):  # the event log retries with newer events behind
            with pytest.raises(OSError, match="No space"):
                await store.append_events([_event("sess_d", n) for n in range(2, last + 1)])
            assert _leftovers(tmp_path) == []
        full = False
        await store.append_events([_event("sess_d", n) for n in range(2, 7)])
        await store.close()

        reopened = JsonDirStore(tmp_path)
        await reopened.open()
        assert [e.seq for e in await reopened.list_events("sess_d")] == list(range(1, 7))
        await reopened.close()

    asyncio.run(main())


@pytest.fixture
def tiny_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 256 KB tmpfs (root only: skipped elsewhere), unmounted afterwards."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:  # lazily if a failed test left a file open there: the mount must not outlive the test
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)


def test_json_directory_on_a_disk_that_fills_up_keeps_what_it_acknowledged(tiny_disk: Path) -> None:
    """A real full disk: every batch that returned is there exactly once, in order, after space returns and the
    store opens again; the batches the disk refused left no partial file behind, and the log goes on gap-free."""
    root = tiny_disk / "store"
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * 96 * 1024)  # what the operator removes to give space back

    async def main() -> None:
        store = JsonDirStore(root)
        await store.open()
        try:
            await store.create_session(_session("sess_full"))
            committed, refused = 0, 0
            for _ in range(60):
                batch = [replace(_event("sess_full", committed + n), data={"text": "x" * 2000}) for n in range(1, 6)]
                try:
                    await store.append_events(batch)
                    committed += 5
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    refused += 1
            assert committed and refused, "the disk never filled up (or never took a batch)"
            assert _leftovers(root) == []
        finally:
            await store.close()
        filler.unlink()

        reopened = JsonDirStore(root)
        await reopened.open()
        try:
            assert [e.seq for e in await reopened.list_events("sess_full")] == list(range(1, committed + 1))
            await reopened.append_events([_event("sess_full", committed + 1)])
            assert [e.seq for e in await reopened.list_events("sess_full")] == list(range(1, committed + 2))
        finally:
            await reopened.close()

    asyncio.run(main())


@pytest.fixture(scope="module")
def backend() -> str:
    return "jsondir"


@pytest.mark.slow  # a gateway of its own, started twice
def test_a_gateway_on_a_json_directory_with_a_damaged_session_starts_and_names_it(
    make_gateway, mock_model: MockModel
) -> None:
    """Before, the gateway refused to start at all (an orjson decoding error, naming no file)."""
    gw = make_gateway()
    sound, damaged = gw.create_session(), gw.create_session()
    mock_model.script(Reply(text="noted"))
    assert gw.turn(sound["id"], "remember: tangerine")["status"] == "completed"
    gw.stop()
    record = Path(gw.env["CC_API_SESSION_DIR"]) / "sessions" / damaged["id"] / "session.json"
    record.write_bytes(record.read_bytes()[:40])

    gw.start()
    assert gw.client.get("/healthz").status_code == 200
    assert [s["id"] for s in gw.client.get("/api/sessions").json()["data"]] == [sound["id"]]
    answer = gw.client.get(f"/api/sessions/{damaged['id']}")
    assert answer.status_code == 500 and str(record) in answer.json()["error"]["message"]
    assert "json_dir_session_damaged" in gw.log_path.read_text()
    mock_model.script(Reply(text="tangerine"))
    assert gw.turn(sound["id"], "what was it?")["status"] == "completed"


def test_json_directory_a_delete_stopped_by_a_crash_sends_no_delivery_again_at_every_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway dies in a session's delete after it set the deliveries still owed aside (``owed/``) and before
    the session's folder went: the session is back after the restart, its delivery is sent, and it stays sent. It
    was loaded from the stale copy set aside, as pending, and sent again at every start of the gateway."""

    async def main() -> None:
        store = JsonDirStore(tmp_path)
        await store.open()
        webhook = {"url": "http://127.0.0.1:9/h", "events": ["turn.completed"]}
        await store.create_session(replace(_session("sess_w"), webhook=webhook))
        await store.append_events([_event("sess_w", 1, "turn.completed")])
        real_replace = os.replace

        def dies_renaming_the_folder(source: Path, target: Path) -> None:
            if jsondir._DOOMED in str(target):
                raise SystemExit("killed")  # nothing after this runs
            real_replace(source, target)

        monkeypatch.setattr(jsondir.os, "replace", dies_renaming_the_folder)
        with pytest.raises(SystemExit):
            await store.delete_session("sess_w")
        monkeypatch.setattr(jsondir.os, "replace", real_replace)
        await store.close()

        sent = []
        for _start in range(3):
            store = JsonDirStore(tmp_path)
            await store.open()
            assert await store.get_session("sess_w") is not None
            for delivery in await store.claim_webhooks("host", 10, lease=60):
                sent.append(delivery.id)
                await store.finish_webhook_attempt(delivery.id, "host", {"state": "delivered", "attempts": 1})
            await store.close()
        assert sent == ["sess_w_1"]

        store = JsonDirStore(tmp_path)  # and deleted for good, nothing is owed
        await store.open()
        assert await store.delete_session("sess_w")
        assert await store.claim_webhooks("host", 10, lease=60) == []
        await store.close()
        assert not (tmp_path / "owed" / "sess_w").exists()

    asyncio.run(main())


def test_sqlite_on_a_disk_that_fills_up_says_so(tiny_disk: Path) -> None:
    """SQLite rolls a transaction back itself when the disk is full; peewee's own rollback then failed with "cannot
    rollback - no transaction is active", and that is what the log and the store's 503 said. The disk's error comes
    through now, and what was committed before stays."""

    async def main() -> None:
        store = SqlStore(sqlite_database(tiny_disk / "sessions.db"))
        await store.open()
        try:
            await store.create_session(_session("sess_full"))
            committed, told = 0, ""
            for _ in range(200):
                batch = [replace(_event("sess_full", committed + n), data={"text": "x" * 4000}) for n in range(1, 6)]
                try:
                    await store.append_events(batch)
                    committed += 5
                except Exception as exc:  # noqa: BLE001 - what it says is the point
                    told = str(exc)
                    break
            assert committed and told, "the disk never filled up (or never took a batch)"
            assert "full" in told and "no transaction is active" not in told, told
            assert [e.seq for e in await store.list_events("sess_full", limit=1000)] == list(range(1, committed + 1))
        finally:
            await store.close()

    asyncio.run(main())
