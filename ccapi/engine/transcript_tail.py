"""Claude Code's own transcript files, read as they grow, into the gateway's store.

A session is resumable because every line of Claude Code's transcript is also in CC API's
database (``store.transcripts.TranscriptMirror``). The SDK can send the lines there as Claude
Code writes them (``--session-mirror``: each batch of lines copied to stdout as a frame, read and
flushed by the SDK before the turn's result), but that costs each warm turn ~1.5 % of its
latency (docs/benchmarks.md). Claude Code writes the same lines to its local JSONL file anyway,
and the file holds all of a turn's lines by the time its result arrives, so the engine reads what
the file gained instead: at each result (the lines then ride the turn's end commit, so an
acknowledged turn's transcript is stored), about once a second while a turn runs (a turn paused
on client tools has its lines stored as the mirror had them), and a last time as the process
closes. What lands in the store is what the mirror sent: the file's lines less the bookkeeping
types Claude Code keeps for itself, and each subagent's ``.meta.json`` sidecar as an
``agent_metadata`` entry, keyed as the SDK keys them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

log = logging.getLogger(__name__)

UNMIRRORED_TYPES = frozenset(
    {"api-request", "api-request-shape", "api-request-blob", "api-request-resumed", "cost-state"}
)
"""Lines Claude Code keeps in its local file for itself and never sends to a mirror; a resume does
without them (~10 KB a turn)."""


class TranscriptSink(Protocol):
    """Where the lines go: the SDK's ``SessionStore.append`` (a ``TranscriptMirror``)."""

    async def append(self, key: dict[str, Any], entries: list[dict[str, Any]]) -> None: ...


@dataclass
class _Tracked:
    """One file being read: where its next line starts, and the sidecar already imported."""

    offset: int = 0
    fd: int | None = None
    meta_mtime: int | None = None


@dataclass
class TranscriptTail:
    """The new lines of one SDK session's transcript files under ``projects_dir``.

    Files that exist when the session becomes known (a resume's, materialised from the store) are
    in the store already: only what Claude Code appends counts. Each file stays open, so a turn
    whose main transcript alone grew costs two system calls and the parsing of its new lines (this
    runs on the reply's path)."""

    projects_dir: Path
    project_key: str
    """Where the file should be: the SDK's key of Claude Code's working directory; if Claude Code
    named its project directory otherwise, the file is looked up by its session id."""
    session_id: str | None = None
    _files: dict[str, _Tracked] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        if self.session_id is not None:
            self._skip_existing()

    def know(self, session_id: str | None) -> None:
        """The SDK session Claude Code reported (a fresh process names it in its first messages)."""
        if self.session_id is None and session_id:
            self.session_id = session_id

    async def import_new(self, sink: TranscriptSink) -> None:
        """Append what the files gained since the last call to ``sink``, in file order."""
        if self.session_id is None:
            return
        async with self._lock:
            for key, entries in self._read_new():
                await sink.append(key, entries)

    def close(self) -> None:
        for tracked in self._files.values():
            if tracked.fd is not None:
                os.close(tracked.fd)
                tracked.fd = None

    def _skip_existing(self) -> None:
        for path in self._paths():
            self._files[path] = _Tracked(os.stat(path).st_size, meta_mtime=_mtime(_sidecar(path)))

    @property
    def _project_dir(self) -> str:
        return os.path.join(self.projects_dir, self.project_key)

    def _paths(self) -> list[str]:
        main = os.path.join(self._project_dir, f"{self.session_id}.jsonl")
        if main not in self._files and not os.path.exists(main):
            found = next(iter(sorted(Path(self.projects_dir).glob(f"*/{self.session_id}.jsonl"))), None)
            if found is None:
                return []  # not written yet
            self.project_key = found.parent.name
            main = str(found)
        paths = [main]
        subagents = os.path.join(self._project_dir, str(self.session_id), "subagents")
        if os.path.isdir(subagents):
            paths.extend(sorted(str(path) for path in Path(subagents).rglob("*.jsonl")))
        return paths

    def _read_new(self) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        batches = []
        for path in self._paths():
            tracked = self._files.setdefault(path, _Tracked())
            entries = _grown(path, tracked)
            subpath = self._subpath(path)
            if subpath is not None:
                meta = _new_metadata(path, tracked)
                if meta is not None:
                    entries.append(meta)
            if entries:
                key: dict[str, Any] = {"project_key": self.project_key, "session_id": self.session_id}
                if subpath is not None:
                    key["subpath"] = subpath
                batches.append((key, entries))
        return batches

    def _subpath(self, path: str) -> str | None:
        """A subagent's file as the SDK keys it (``subagents/agent-<id>``); ``None`` for the main one."""
        if os.path.dirname(path) == self._project_dir:
            return None
        return Path(path).relative_to(os.path.join(self._project_dir, str(self.session_id))).with_suffix("").as_posix()


def _grown(path: str, tracked: _Tracked) -> list[dict[str, Any]]:
    """The whole lines ``path`` gained since ``tracked.offset`` (one still being written waits)."""
    if tracked.fd is None:
        tracked.fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    size = os.fstat(tracked.fd).st_size
    if size < tracked.offset:  # cut short behind our back: what it held is stored already
        log.warning("transcript %s shrank from %d to %d bytes; reading on from its end", path, tracked.offset, size)
        tracked.offset = size
    if size == tracked.offset:
        return []
    data = os.pread(tracked.fd, size - tracked.offset, tracked.offset)
    end = data.rfind(b"\n") + 1
    entries = []
    for line in data[:end].splitlines():
        if not line.strip():
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning("transcript %s: a line that is not JSON was skipped (%d bytes)", path, len(line))
            continue
        if entry.get("type") not in UNMIRRORED_TYPES:
            entries.append(entry)
    tracked.offset += end
    return entries


def _new_metadata(path: str, tracked: _Tracked) -> dict[str, Any] | None:
    """A subagent's ``.meta.json`` sidecar as the ``agent_metadata`` entry a mirror gets, if it changed."""
    sidecar = _sidecar(path)
    mtime = _mtime(sidecar)
    if mtime is None or mtime == tracked.meta_mtime:
        return None
    tracked.meta_mtime = mtime
    try:
        with open(sidecar, "rb") as file:
            meta = orjson.loads(file.read())
    except (OSError, orjson.JSONDecodeError):
        return None
    # the discriminator last, so a stray "type" in Claude Code's sidecar cannot shadow it (as the SDK's import does)
    return {**meta, "type": "agent_metadata"} if isinstance(meta, dict) else None


def _sidecar(transcript: str) -> str:
    return transcript[: -len(".jsonl")] + ".meta.json"


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None
