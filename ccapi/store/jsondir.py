"""The JSON-directory backend (``CC_API_SESSION_DIR``): one folder per session.

Every write is atomic — a temporary file, fsync, rename, fsync of the folder — so a
crash leaves either the old file or the new one, never half of one. Session ids are
validated before any path is built, and keys that come from elsewhere (project keys,
subpaths, idempotency keys) are hashed into file names, so no input can reach outside
the directory.

    <root>/.lock                                                       (held by the gateway that uses it)
    <root>/sessions/<session id>/session.json
    <root>/sessions/<session id>/turns/<turn id>.json
    <root>/sessions/<session id>/events/<first seq>-<last seq>.jsonl   (one file per batch)
    <root>/sessions/<session id>/idempotency/<sha256 of key>.json
    <root>/sessions/<session id>/webhooks/<seq>.json                   (one webhook delivery)
    <root>/owed/<session id>/<seq>.json                                (one a deleted session still owes)
    <root>/sessions/<session id>/compat_head.json                      (the compat affinity index)
    <root>/transcripts/<sha256 of project key>/<sdk session id>/<sha256 of subpath>/<n>.jsonl
    <root>/transcripts/.adopting/<sdk session id>/                     (a copy being put in place)

Session and turn records (and webhook deliveries) are also kept in memory (loaded at open),
so reads never scan. A session's events commit when its ``session.json`` records their last seq:
a batch writes its deliveries, then its events file, then ``session.json``. What an attempt that
stopped short of that wrote is removed (at once when a write fails, at the next open after a
crash), and events are read up to that seq only, each seq once, so a retried batch never shows twice.
A ``410 Gone``'s end of a webhook commits in ``session.json`` too (``_end_webhook``), before the deliveries
it fails are written: an open finishes an end that a crash interrupted.
A JSON directory serves one gateway process, so session leases live in memory: the store holds an
exclusive lock on ``<root>/.lock`` while it is open, and a second gateway is refused.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import structlog

from ccapi.errors import ApiError
from ccapi.events import Event
from ccapi.ids import is_safe_id, utcnow
from ccapi.store.base import OPEN_TURN_STATES, Store
from ccapi.store.outbox import (
    FAILED,
    PENDING,
    WebhookDelivery,
    deliveries_for,
    ended_by_gone,
    first_owed,
    might_notify,
)
from ccapi.store.records import SessionRecord, TranscriptLines, TurnEnd, TurnRecord

log = structlog.get_logger(__name__)

_MAIN = "main"
_DOOMED = ".deleted-"
_INDEXED_TRANSCRIPTS = 64
"""Transcript folders whose ``_TranscriptIndex`` is kept: the sessions in use; another is read again when it appends."""
_ENDING = "webhook_ending"
"""The ``session.json`` key of a 410's end (``_end_webhook``): kept until the session's next write (by then the end
is written, or its order keeps it safe), read by ``_load``, never by a ``SessionRecord``."""


class UnsafeId(ValueError):
    """An id that must not become part of a path."""


class DirectoryInUse(RuntimeError):
    """Another gateway (another open store) uses the JSON directory."""


class DamagedFile(ApiError):
    """A file of the JSON directory that is not what the store wrote (cut short or edited by another tool, a disk
    error): the store's own writes are atomic, so it never leaves one. It names the file, for the operator."""

    def __init__(self, path: Path, problem: Exception | str) -> None:
        super().__init__(
            f"the JSON directory's file {path} is damaged ({problem}): the gateway did not write it so; "
            "repair it from a backup, or remove the session's folder"
        )
        self.path = path


def atomic_write(path: Path, data: bytes) -> None:
    """A failed write (a full disk) removes its temporary file: it would hold the space the store needs back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _safe(value: str) -> str:
    if not is_safe_id(value):
        raise UnsafeId(f"unsafe id {value!r}")
    return value


def _jsonl(items: list[Any]) -> bytes:
    return b"".join(orjson.dumps(item) + b"\n" for item in items)


def _read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise DamagedFile(path, exc) from None


def _read_jsonl(path: Path) -> list[Any]:
    """A transcript's lines that parse, the damage logged: as Claude Code reads its own transcripts, and so that a
    damaged line holds up neither a resume nor the commits that mirror lines into it (a batch carries every
    session's events)."""
    return _read_lines(path, skip_damaged=True)


def _read_events_file(path: Path) -> list[Any]:
    """Every line, or ``DamagedFile``: a log with a line left out would not be gap-free."""
    return _read_lines(path, skip_damaged=False)


def _read_lines(path: Path, skip_damaged: bool) -> list[Any]:
    items, damaged = [], []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if not line:
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            if not skip_damaged:
                raise DamagedFile(path, f"line {number}: {exc}") from None
            damaged.append(number)
    if damaged:
        log.error("json_dir_damaged_lines_skipped", path=str(path), lines=damaged[:20], count=len(damaged))
    return items


def _seqs(path: Path) -> tuple[int, int] | None:
    """The first and last seq an events file's name gives (``<first>-<last>.jsonl``); ``None`` for a stray file."""
    first, _, last = path.stem.partition("-")
    return (int(first), int(last)) if first.isdigit() and last.isdigit() else None


@dataclasses.dataclass
class _TranscriptIndex:
    """What a transcript folder holds, read once and then kept up to date: appends check new lines against it
    instead of reading the whole transcript again (which grew with every turn of a long conversation)."""

    files: int
    uuids: set[str]


class JsonDirStore(Store):
    def __init__(self, root: Path) -> None:
        super().__init__()
        self._root = root
        self._sessions: dict[str, SessionRecord] = {}
        self._turns: dict[str, TurnRecord] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._webhooks: dict[str, WebhookDelivery] = {}
        self._lock: int | None = None
        self._unclean: set[str] = set()
        """Sessions where a failed commit may have left files that could not be removed then."""
        self._damaged: dict[str, DamagedFile] = {}
        """Sessions left unloaded at open because a file of theirs is damaged: asked for, they answer its error."""
        self._indexes: collections.OrderedDict[Path, _TranscriptIndex] = collections.OrderedDict()
        self._written_ahead: dict[int, TranscriptLines] = {}
        """Transcript lines an attempt at a batch wrote before the batch failed: its retry (the event log hands
        the same objects again) skips them, lines without a uuid included, which nothing else could match."""

    # -- paths -----------------------------------------------------------------
    def _session_dir(self, session_id: str) -> Path:
        return self._root / "sessions" / _safe(session_id)

    def _transcript_dir(self, project_key: str, session_id: str, subpath: str) -> Path:
        return (
            self._root
            / "transcripts"
            / _digest(project_key)
            / _safe(session_id)
            / (_digest(subpath) if subpath else _MAIN)
        )

    # -- lifecycle -------------------------------------------------------------
    def _open(self) -> None:
        self._take_lock()
        try:
            self._load()
        except BaseException:
            self._release_lock()
            raise

    def _take_lock(self) -> None:
        """Before anything is read or repaired: a second gateway would number events and hold leases on its own,
        and its repairs at open would remove what this one is writing."""
        self._root.mkdir(parents=True, exist_ok=True)
        lock = os.open(self._root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(lock, 32).decode(errors="replace").strip()
            os.close(lock)
            who = f"another gateway (pid {holder})" if holder.isdigit() else "another gateway"
            raise DirectoryInUse(
                f"{who} uses the JSON directory {self._root}: one directory serves one gateway at a time "
                "(stop that one, or give this one its own CC_API_SESSION_DIR)"
            ) from None
        os.ftruncate(lock, 0)
        os.write(lock, f"{os.getpid()}\n".encode())  # for the message above
        self._lock = lock

    def _release_lock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # the lock goes with it (and with the process, however it ends)
            self._lock = None

    def _load(self) -> None:
        """A session with a damaged file (``DamagedFile``) is left as it is on disk, unloaded, and logged: the
        gateway serves the others, and that session answers the error that names the file."""
        (self._root / "sessions").mkdir(parents=True, exist_ok=True)
        for folder in (self._root / "sessions").iterdir():
            if folder.name.startswith(_DOOMED):  # a delete that a crash interrupted: finish it
                shutil.rmtree(folder, ignore_errors=True)
                continue
            if not is_safe_id(folder.name) or not (folder / "session.json").is_file():
                continue
            try:
                self._load_session(folder)
            except DamagedFile as exc:
                self._damaged[folder.name] = exc
                log.error("json_dir_session_damaged", session_id=folder.name, path=str(exc.path), error=exc.message)
        for folder in self._owed_root.glob("*"):
            if folder.name in self._sessions:  # a delete a crash stopped before its rename: the session's own
                shutil.rmtree(folder, ignore_errors=True)  # copies are as new or newer (one done would go again)
                continue
            try:
                self._load_webhooks(folder, None, self._read_deliveries(folder))
            except DamagedFile as exc:  # the deleted session's other deliveries are not held up by it
                log.error("json_dir_delivery_damaged", path=str(exc.path), error=exc.message)

    def _load_session(self, folder: Path) -> None:
        """Everything is read before anything is kept or repaired, so a damaged file leaves no half of it."""
        saved = self._read_record(folder / "session.json", SessionRecord)
        ending = saved.pop(_ENDING, None)
        record = SessionRecord(**saved)
        turns = [TurnRecord(**self._read_record(path, TurnRecord)) for path in (folder / "turns").glob("*.json")]
        deliveries = self._read_deliveries(folder / "webhooks")
        self._sessions[folder.name] = record
        self._drop_uncommitted(record)  # what a crash left before the commit point
        self._turns.update((turn.id, turn) for turn in turns)
        self._load_webhooks(folder / "webhooks", record.last_seq, deliveries)
        if ending is not None:  # committed, maybe not finished: a crash may have come first
            self._finish_ending(record.id, ending)

    @staticmethod
    def _read_record(path: Path, shape: Any) -> dict[str, Any]:
        """A record file's fields, checked against the dataclass it becomes (``_ENDING`` aside)."""
        saved = _read_json(path)
        if not isinstance(saved, dict):
            raise DamagedFile(path, f"not a JSON object but {type(saved).__name__}")
        fields = {field.name for field in dataclasses.fields(shape)}
        required = {f.name for f in dataclasses.fields(shape) if f.default is f.default_factory is dataclasses.MISSING}
        unknown, missing = set(saved) - fields - {_ENDING}, required - set(saved)
        if unknown or missing:
            raise DamagedFile(path, f"fields missing {sorted(missing)}, unknown {sorted(unknown)}")
        return saved

    def _read_deliveries(self, folder: Path) -> list[tuple[Path, WebhookDelivery]]:
        return [(path, WebhookDelivery(**self._read_record(path, WebhookDelivery))) for path in folder.glob("*.json")]

    def _load_webhooks(
        self, folder: Path, last_seq: int | None, deliveries: list[tuple[Path, WebhookDelivery]]
    ) -> None:
        """``last_seq``: the session's last committed event (``None``: a deleted session's, all committed)."""
        for delivery_file, delivery in deliveries:
            if last_seq is not None and delivery.seq > last_seq:  # its event never committed
                delivery_file.unlink(missing_ok=True)
            else:
                self._webhooks[delivery.id] = dataclasses.replace(delivery, lease_owner=None, lease_until=0.0)

    def _close(self) -> None:
        self._sessions.clear()
        self._turns.clear()
        self._webhooks.clear()
        self._unclean.clear()
        self._damaged.clear()
        self._release_lock()

    def _ping(self) -> bool:
        return (self._root / "sessions").is_dir() and os.access(self._root / "sessions", os.W_OK)

    # -- sessions --------------------------------------------------------------
    def _write_session(self, record: SessionRecord, ending: dict[str, Any] | None = None) -> None:
        saved = dataclasses.asdict(record) if ending is None else {**dataclasses.asdict(record), _ENDING: ending}
        atomic_write(self._session_dir(record.id) / "session.json", orjson.dumps(saved))
        self._sessions[record.id] = record

    def _create_session(self, record: SessionRecord) -> None:
        self._write_session(record)

    def _get_session(self, session_id: str) -> SessionRecord | None:
        if session_id in self._damaged:
            raise self._damaged[session_id]
        return self._sessions.get(session_id)

    def _list_sessions(self, limit: int, after: str | None, statuses: Sequence[str] | None) -> list[SessionRecord]:
        chosen = (s for s in self._sessions.values() if statuses is None or s.status in statuses)
        ordered = sorted(chosen, key=lambda s: (s.created_at, s.id), reverse=True)
        if after is not None:
            cursor = self._sessions.get(after)
            if cursor is None:
                return []
            ordered = [s for s in ordered if (s.created_at, s.id) < (cursor.created_at, cursor.id)]
        return ordered[:limit]

    def _idle_sessions(self, before: str, after: tuple[str, str] | None, limit: int) -> list[SessionRecord]:
        idle = sorted((s for s in self._sessions.values() if s.updated_at < before), key=lambda s: (s.updated_at, s.id))
        return [s for s in idle if after is None or (s.updated_at, s.id) > after][:limit]

    def _update_session(self, session_id: str, fields: dict[str, Any]) -> None:
        record = self._sessions.get(session_id)
        if record is not None:
            self._write_session(dataclasses.replace(record, **fields))

    def _delete_session(self, session_id: str) -> bool:
        folder = self._session_dir(session_id)
        existed = self._sessions.pop(session_id, None) is not None
        self._leases.pop(session_id, None)
        self._unclean.discard(session_id)
        for turn_id in [t.id for t in self._turns.values() if t.session_id == session_id]:
            del self._turns[turn_id]
        for delivery in [d for d in self._webhooks.values() if d.session_id == session_id]:
            if delivery.state == PENDING:  # still owed (its client may wait for it): kept until it is done
                self._write_webhook(delivery)
            else:
                del self._webhooks[delivery.id]
        if folder.exists():
            # rename first so a crash mid-delete never leaves a half-session that loads
            doomed = folder.with_name(f"{_DOOMED}{session_id}-{os.getpid()}")
            os.replace(folder, doomed)
            shutil.rmtree(doomed)
        return existed

    # -- the compat affinity index -----------------------------------------------
    def _save_compat_head(self, session_id: str, key: str, data: dict[str, Any], updated_at: str) -> None:
        if session_id in self._sessions:
            atomic_write(
                self._session_dir(session_id) / "compat_head.json",
                orjson.dumps({"key": key, "data": data, "updated_at": updated_at}),
            )

    def _load_compat_heads(self, key: str | None, limit: int, since: str) -> list[dict[str, Any]]:
        found = []
        for session_id in self._sessions:
            path = self._session_dir(session_id) / "compat_head.json"
            if path.is_file():
                try:
                    saved = _read_json(path)
                except DamagedFile as exc:  # one session's head must not take every compat request down
                    log.error("json_dir_compat_head_damaged", path=str(path), error=exc.message)
                    continue
                if (key is None or saved["key"] == key) and saved["updated_at"] > since:
                    found.append(saved)
        found.sort(key=lambda saved: saved["updated_at"], reverse=True)
        return [saved["data"] for saved in found[:limit]]

    def _delete_compat_head(self, session_id: str) -> None:
        (self._session_dir(session_id) / "compat_head.json").unlink(missing_ok=True)

    # -- turns -----------------------------------------------------------------
    def _write_turn(self, record: TurnRecord) -> None:
        atomic_write(
            self._session_dir(record.session_id) / "turns" / f"{_safe(record.id)}.json",
            orjson.dumps(dataclasses.asdict(record)),
        )
        self._turns[record.id] = record

    def _create_turn(self, record: TurnRecord) -> None:
        self._write_turn(record)
        session = self._sessions[record.session_id]
        self._write_session(
            dataclasses.replace(session, turn_count=session.turn_count + 1, updated_at=utcnow(), status=record.status)
        )

    def _update_turn(self, turn_id: str, fields: dict[str, Any]) -> None:
        record = self._turns.get(turn_id)
        if record is not None:
            self._write_turn(dataclasses.replace(record, **fields))

    def _get_turn(self, turn_id: str) -> TurnRecord | None:
        return self._turns.get(turn_id)

    def _orphaned_turns(self, owner: str) -> list[TurnRecord]:
        now = time.time()

        def orphaned(session_id: str) -> bool:
            holder, expires_at = self._leases.get(session_id, (owner, 0.0))
            return holder == owner or expires_at < now

        return [t for t in self._turns.values() if t.status in OPEN_TURN_STATES and orphaned(t.session_id)]

    # -- leases ------------------------------------------------------------------
    def _acquire_lease(self, session_id: str, owner: str, ttl: float) -> str | None:
        now = time.time()
        holder, expires_at = self._leases.get(session_id, (owner, 0.0))
        if holder != owner and expires_at >= now:
            return holder
        self._leases[session_id] = (owner, now + ttl)
        return None

    def _renew_leases(self, owner: str, session_ids: list[str], ttl: float) -> None:
        for session_id in session_ids:
            if self._leases.get(session_id, ("", 0.0))[0] == owner:
                self._leases[session_id] = (owner, time.time() + ttl)

    def _release_lease(self, session_id: str, owner: str) -> None:
        if self._leases.get(session_id, ("", 0.0))[0] == owner:
            del self._leases[session_id]

    def _held_leases(self, owner: str) -> list[str]:
        return [sid for sid in self._sessions if self._leases.get(sid, (owner, 0.0))[0] == owner]

    # -- idempotency keys --------------------------------------------------------
    def _idempotency_file(self, session_id: str, key: str) -> Path:
        return self._session_dir(session_id) / "idempotency" / f"{_digest(key)}.json"

    def _find_idempotency_key(self, session_id: str, key: str) -> tuple[str, str] | None:
        path = self._idempotency_file(session_id, key)
        if not path.is_file():
            return None
        found = _read_json(path)
        return found["fingerprint"], found["turn_id"]

    def _save_idempotency_key(self, session_id: str, key: str, fingerprint: str, turn_id: str, created_at: str) -> None:
        atomic_write(
            self._idempotency_file(session_id, key),
            orjson.dumps({"key": key, "fingerprint": fingerprint, "turn_id": turn_id, "created_at": created_at}),
        )

    # -- events ----------------------------------------------------------------
    def _append_events(
        self, events: list[Event], ends: Sequence[TurnEnd], transcripts: Sequence[TranscriptLines]
    ) -> None:
        """Each file write is atomic, the batch is not: transcripts first, then each session's events
        (``_commit_events``), then the turn ends, in the order a crash recovers from (as when they were
        separate calls). When a write fails, the event log retries the whole batch with newer events
        behind it: what already committed is not written again (``_written_ahead``; lines are matched by uuid too)."""
        for lines in transcripts:
            if id(lines) not in self._written_ahead:
                self._append_transcript(lines.project_key, lines.session_id, lines.subpath, lines.entries)
                self._written_ahead[id(lines)] = lines
        by_session: dict[str, list[Event]] = {}
        for event in events:
            by_session.setdefault(event.session_id, []).append(event)
        notifying = might_notify(events)
        for session_id, batch in by_session.items():
            if session_id in self._sessions:  # else deleted while its last events were in flight
                self._commit_events(self._sessions[session_id], batch, session_id in notifying)
        for end in ends:
            self._update_turn(end.turn_id, end.turn)
            self._update_session(end.session_id, end.session)
            if end.release_lease_of is not None:
                self._release_lease(end.session_id, end.release_lease_of)
        self._written_ahead.clear()

    def _commit_events(self, record: SessionRecord, batch: list[Event], notifying: bool) -> None:
        """The batch's deliveries, its events file (named by its first and last seq), then ``last_seq`` in
        ``session.json``: the commit point. A failure before it is undone here, a crash before it at the next
        open (``_drop_uncommitted``): the retry's file has another name, and both would be read."""
        session_id = record.id
        batch = [event for event in batch if event.seq > record.last_seq]  # the rest: an earlier attempt committed it
        if not batch:
            return
        if session_id in self._unclean:
            self._drop_uncommitted(record)
        events_file = self._session_dir(session_id) / "events" / f"{batch[0].seq:012d}-{batch[-1].seq:012d}.jsonl"
        owed = deliveries_for(batch, {session_id: record.webhook}) if notifying else []
        try:
            for delivery in owed:
                self._write_webhook(delivery)
            atomic_write(events_file, _jsonl([dataclasses.asdict(event) for event in batch]))
            self._write_session(dataclasses.replace(record, last_seq=batch[-1].seq))
        except BaseException:
            self._undo_commit(record, batch[-1].seq, events_file, owed)
            raise

    def _undo_commit(
        self, record: SessionRecord, last_seq: int, events_file: Path, owed: list[WebhookDelivery]
    ) -> None:
        """Remove what a failed ``_commit_events`` wrote, unless its ``session.json`` is in place after all (only
        the folder's fsync failed): then it committed, and the retry must not write (nor send) it again."""
        with contextlib.suppress(OSError, ValueError, KeyError):
            on_disk = orjson.loads((self._session_dir(record.id) / "session.json").read_bytes())
            if on_disk["last_seq"] >= last_seq:
                self._sessions[record.id] = dataclasses.replace(record, last_seq=on_disk["last_seq"])
                return
        for delivery in owed:  # never claimed: the store thread did nothing else meanwhile
            self._webhooks.pop(delivery.id, None)
        try:
            events_file.unlink(missing_ok=True)
            for delivery in owed:
                (self._session_dir(record.id) / "webhooks" / f"{delivery.seq}.json").unlink(missing_ok=True)
        except OSError:
            self._unclean.add(record.id)  # removed before the session's next commit (or at the next open)

    def _drop_uncommitted(self, record: SessionRecord) -> None:
        """Remove the events files and deliveries of attempts that never reached their commit point: those
        after the session's ``last_seq`` (the event log numbers on from it, so they would be written again)."""
        folder = self._session_dir(record.id)
        for path in (folder / "events").glob("*.jsonl"):
            seqs = _seqs(path)
            if seqs is not None and seqs[0] > record.last_seq:
                path.unlink()
        for path in (folder / "webhooks").glob("*.json"):
            if path.stem.isdigit() and int(path.stem) > record.last_seq:
                path.unlink()  # not in memory: loaded after this at open, forgotten by ``_undo_commit`` later
        self._unclean.discard(record.id)

    def _event_files(self, session_id: str, after: int) -> list[Path]:
        folder = self._session_dir(session_id) / "events"
        if not folder.is_dir():
            return []
        ranges = sorted((seqs, p) for p in folder.iterdir() if p.suffix == ".jsonl" and (seqs := _seqs(p)))
        return [p for (_, last), p in ranges if last > after]

    def _list_events(self, session_id: str, after: int, limit: int, types: tuple[str, ...] | None) -> list[Event]:
        """Committed events (up to the session's ``last_seq``), each seq once and in order, whatever files a
        failed commit may have left (a store written before this rule holds overlapping ones: 1..8, 6..12)."""
        record = self._sessions.get(session_id)
        if record is None:
            return []
        found: list[Event] = []
        last = after
        for path in self._event_files(session_id, after):
            for item in _read_events_file(path):
                if not last < item["seq"] <= record.last_seq:
                    continue
                last = item["seq"]
                if not types or item["type"] in types:
                    found.append(Event(**item))
                    if len(found) == limit:
                        return found
        return found

    def _max_seq(self, session_id: str) -> int:
        record = self._sessions.get(session_id)
        return record.last_seq if record is not None else 0

    # -- the webhook outbox ----------------------------------------------------------
    @property
    def _owed_root(self) -> Path:
        return self._root / "owed"

    def _write_webhook(self, delivery: WebhookDelivery) -> None:
        """In the session's folder, or for a deleted session in ``owed/`` until it is done, then gone."""
        if delivery.session_id in self._sessions:
            atomic_write(
                self._session_dir(delivery.session_id) / "webhooks" / f"{delivery.seq}.json",
                orjson.dumps(dataclasses.asdict(delivery)),
            )
            self._webhooks[delivery.id] = delivery
            return
        owed = self._owed_root / _safe(delivery.session_id) / f"{delivery.seq}.json"
        if delivery.state == PENDING:
            atomic_write(owed, orjson.dumps(dataclasses.asdict(delivery)))
            self._webhooks[delivery.id] = delivery
            return
        owed.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the last one takes the folder along
            owed.parent.rmdir()
        self._webhooks.pop(delivery.id, None)

    def _claim_webhooks(
        self, owner: str, limit: int, lease: float, skip_urls: tuple[str, ...] = ()
    ) -> list[WebhookDelivery]:
        now = time.time()
        due = sorted(
            (
                d
                for d in first_owed(self._webhooks.values())
                if d.next_attempt_at <= now and d.lease_until < now and d.url not in skip_urls
            ),
            key=lambda d: d.next_attempt_at,
        )[:limit]
        claimed = [dataclasses.replace(d, lease_owner=owner, lease_until=now + lease) for d in due]
        self._webhooks.update((d.id, d) for d in claimed)  # a lease is process state: not written
        return claimed

    def _finish_webhook_attempt(self, delivery_id: str, owner: str, fields: dict[str, Any]) -> None:
        delivery = self._webhooks.get(delivery_id)
        if delivery is not None and delivery.lease_owner == owner:
            self._write_webhook(dataclasses.replace(delivery, **fields, lease_owner=None, lease_until=0.0))

    def _end_webhook(self, delivery_id: str, owner: str, fields: dict[str, Any], why: str) -> dict[str, Any] | None:
        """The end commits in ``session.json`` (``webhook: null`` with the end itself, ``_ENDING``), as events do,
        before any delivery file is written: a crash after it leaves the end for ``_load`` to finish, never a
        session without its webhook that still owes the URL deliveries, nor the reverse."""
        gone = self._webhooks.get(delivery_id)
        if gone is None:
            return None
        now = utcnow()
        record = self._sessions.get(gone.session_id)
        ended = ended_by_gone(record.webhook if record else None, gone.url)
        attempt = fields if gone.lease_owner == owner else None  # as ``_finish_webhook_attempt``
        ending = {"delivery_id": delivery_id, "url": gone.url, "attempt": attempt, "why": why, "at": now}
        if record is not None:  # a deleted session has no commit point: ``_finish_ending``'s order keeps it safe
            self._write_session(dataclasses.replace(record, webhook=None, updated_at=now) if ended else record, ending)
        self._finish_ending(gone.session_id, ending)
        return ended

    def _finish_ending(self, session_id: str, ending: dict[str, Any]) -> None:
        """Write what a 410's ``ending`` makes of the session's deliveries (again, after a crash: what is done is
        not pending any more): every other one still owed to the URL failed unsent, then, last, the one that got
        the 410 with its attempt. Until that one is written it is the first owed (``first_owed``), so the others
        wait behind it whatever stops this midway, and at worst it alone is sent again (at least once)."""
        unsent = {"state": FAILED, "completed_at": ending["at"], "last_error": ending["why"]}
        owed = [
            d
            for d in self._webhooks.values()
            if (d.session_id, d.url, d.state) == (session_id, ending["url"], PENDING) and d.id != ending["delivery_id"]
        ]
        for delivery in owed:  # a deleted session's are gone once done (``_write_webhook``)
            self._write_webhook(dataclasses.replace(delivery, **unsent))
        gone = self._webhooks.get(ending["delivery_id"])
        if gone is not None and gone.state == PENDING:
            recorded = ending["attempt"] or unsent  # its attempt, as SQL records it; unsent if another host held it
            self._write_webhook(dataclasses.replace(gone, **recorded, lease_owner=None, lease_until=0.0))

    def _first_owed_seqs(self, session_id: str) -> dict[str, int]:
        owed = first_owed(d for d in self._webhooks.values() if d.session_id == session_id)
        return {d.url: d.seq for d in owed}

    def _list_webhooks(
        self, session_id: str, after: int, limit: int, before: int | None, newest_first: bool
    ) -> list[WebhookDelivery]:
        found = sorted(
            (
                d
                for d in self._webhooks.values()
                if d.session_id == session_id and d.seq > after and (before is None or d.seq < before)
            ),
            key=lambda d: d.seq,
            reverse=newest_first,
        )
        return found[:limit]

    # -- transcripts -----------------------------------------------------------
    def _transcript_files(self, folder: Path) -> list[Path]:
        return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []

    def _append_transcript(
        self, project_key: str, session_id: str, subpath: str, entries: list[dict[str, Any]]
    ) -> None:
        folder = self._transcript_dir(project_key, session_id, subpath)
        index = self._transcript_index(folder)
        fresh = [e for e in entries if not isinstance(e.get("uuid"), str) or e["uuid"] not in index.uuids]
        if not fresh:
            return
        if not (folder / "key.json").is_file():
            atomic_write(
                folder / "key.json",
                orjson.dumps({"project_key": project_key, "session_id": session_id, "subpath": subpath}),
            )
        atomic_write(folder / f"{index.files + 1:09d}.jsonl", _jsonl(fresh))
        index.files += 1
        index.uuids.update(e["uuid"] for e in fresh if isinstance(e.get("uuid"), str))

    def _transcript_index(self, folder: Path) -> _TranscriptIndex:
        index = self._indexes.pop(folder, None)
        if index is None:
            files = self._transcript_files(folder)
            lines = (e for path in files for e in _read_jsonl(path) if isinstance(e, dict))
            uuids = {e["uuid"] for e in lines if isinstance(e.get("uuid"), str)}
            index = _TranscriptIndex(len(files), uuids)
        self._indexes[folder] = index  # the most recently used last
        if len(self._indexes) > _INDEXED_TRANSCRIPTS:
            self._indexes.popitem(last=False)
        return index

    def _forget_indexes(self, under: Path) -> None:
        """The folders under ``under`` were removed or replaced: their indexes are read again at the next append."""
        for folder in [folder for folder in self._indexes if folder.is_relative_to(under)]:
            del self._indexes[folder]

    def _load_transcript(self, project_key: str, session_id: str, subpath: str) -> list[dict[str, Any]] | None:
        files = self._transcript_files(self._transcript_dir(project_key, session_id, subpath))
        return [entry for path in files for entry in _read_jsonl(path)] or None

    def _list_transcripts(self, project_key: str) -> list[tuple[str, int]]:
        project = self._root / "transcripts" / _digest(project_key)
        listed = []
        for session in project.iterdir() if project.is_dir() else ():
            files = self._transcript_files(session / _MAIN)
            if files:
                listed.append((session.name, max(int(p.stat().st_mtime * 1000) for p in files)))
        return listed

    def _list_transcript_subpaths(self, project_key: str, session_id: str) -> list[str]:
        session = self._root / "transcripts" / _digest(project_key) / _safe(session_id)
        subpaths = []
        for folder in session.iterdir() if session.is_dir() else ():
            if folder.name != _MAIN and (folder / "key.json").is_file():
                subpaths.append(orjson.loads((folder / "key.json").read_bytes())["subpath"])
        return subpaths

    def _delete_transcript(self, project_key: str | None, session_id: str, subpath: str | None) -> None:
        projects = (
            [self._root / "transcripts" / _digest(project_key)]
            if project_key is not None
            else list((self._root / "transcripts").glob("*"))
        )
        for project in projects:
            target = project / _safe(session_id)
            if subpath is not None:
                target = target / (_digest(subpath) if subpath else _MAIN)
            self._forget_indexes(target)
            if target.exists():
                shutil.rmtree(target)

    def _adopt_transcript(self, session_id: str, project_key: str) -> bool:
        """The copy whose files were written last is the newest (a copy keeps its source's file
        times, so it is not newer than its source); it is assembled aside and renamed into
        place, so a crash leaves the old copy or none (the source stays)."""
        root, here, name = self._root / "transcripts", _digest(project_key), _safe(session_id)
        written: dict[str, int] = {}
        for project in root.glob("*"):
            files = list((project / name).glob("*/*.jsonl"))
            if files and not project.name.startswith("."):
                written[project.name] = max(f.stat().st_mtime_ns for f in files)
        if not written or written.get(here) == max(written.values()):
            return False
        source = root / max(written, key=written.__getitem__) / name
        staging = root / ".adopting" / name
        shutil.rmtree(staging, ignore_errors=True)
        for folder in source.iterdir():
            if not (folder / "key.json").is_file():
                continue  # a folder a crash left before its first write
            key = orjson.loads((folder / "key.json").read_bytes())
            atomic_write(staging / folder.name / "key.json", orjson.dumps({**key, "project_key": project_key}))
            for path in self._transcript_files(folder):
                atomic_write(staging / folder.name / path.name, path.read_bytes())
                written_at = path.stat().st_mtime_ns
                os.utime(staging / folder.name / path.name, ns=(written_at, written_at))
        target = root / here / name
        self._forget_indexes(target)
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)
        return True
