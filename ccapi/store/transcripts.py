"""The Claude Agent SDK's ``SessionStore`` protocol over CC API's own store.

Claude Code keeps its transcript in local JSONL files; through this mirror every line
also lands in CC API's database, and a resume materialises the transcript from there.
So an evicted session, a restarted gateway or a wiped ``CLAUDE_CONFIG_DIR`` loses no
context. Duck-typed, as the SDK expects: it probes for the optional methods.

The SDK keys a transcript by the project key of Claude Code's working directory, so
before a resume or a fork the engine ``adopt``s the session's transcript under the key
of the directory it runs in: a conversation is found by its session, wherever it ran.

With a ``queue`` (the event log), appends ride on its next commit instead of taking the
store thread for a transaction of their own, ahead of the turn's events; every read first
waits for what is queued, so a resume or a fork still reads its own writes.
"""

from __future__ import annotations

from typing import Any, Protocol

from claude_agent_sdk import project_key_for_directory

from ccapi.store.base import Store
from ccapi.store.records import TranscriptLines


def without_recorded_prompt(entry: dict[str, Any]) -> dict[str, Any]:
    """Claude Code records the system prompt it ran with (a ``prompt_snapshot`` attachment) and, resumed
    without a prompt of its own, runs with the recorded one. The session's prompt is an option of each start
    (a ``PATCH``, a compat request's instructions): a prompt given replaces the record
    (``CLAUDE_CODE_HOST_PROMPT_SUPERSEDES_RECORD``), and with the record emptied a prompt cleared stays cleared.
    The entry stays, so the chain of ``parentUuid``s through it holds."""
    attachment = entry.get("attachment")
    if entry.get("type") != "attachment" or not isinstance(attachment, dict):
        return entry
    if attachment.get("type") != "prompt_snapshot" or not attachment.get("systemPrompt"):
        return entry
    return {**entry, "attachment": {**attachment, "systemPrompt": []}}


class WriteQueue(Protocol):
    def mirror(self, lines: TranscriptLines) -> None: ...
    async def flush(self) -> None: ...


class TranscriptMirror:
    def __init__(self, store: Store, queue: WriteQueue | None = None) -> None:
        self._store = store
        self._queue = queue

    async def append(self, key: dict[str, Any], entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        lines = TranscriptLines(key["project_key"], key["session_id"], key.get("subpath", ""), entries)
        if self._queue is not None:
            self._queue.mirror(lines)
        else:
            await self._store.append_transcript(lines.project_key, lines.session_id, lines.subpath, lines.entries)

    async def load(self, key: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The transcript a resume starts from, its recorded system prompts emptied (``without_recorded_prompt``)."""
        await self._written()
        entries = await self._store.load_transcript(key["project_key"], key["session_id"], key.get("subpath", ""))
        return None if entries is None else [without_recorded_prompt(entry) for entry in entries]

    async def list_sessions(self, project_key: str) -> list[dict[str, Any]]:
        await self._written()
        return [
            {"session_id": session_id, "mtime": mtime}
            for session_id, mtime in await self._store.list_transcripts(project_key)
        ]

    async def list_subkeys(self, key: dict[str, Any]) -> list[str]:
        await self._written()
        return await self._store.list_transcript_subpaths(key["project_key"], key["session_id"])

    async def delete(self, key: dict[str, Any]) -> None:
        """Deleting a main transcript takes its subagent transcripts with it."""
        await self._written()
        await self._store.delete_transcript(key["project_key"], key["session_id"], key.get("subpath"))

    async def adopt(self, session_id: str, directory: str | None) -> None:
        """Make the session's newest transcript resumable by a Claude Code that runs in
        ``directory`` (``None``: this process's own), wherever it was written before."""
        await self._written()
        await self._store.adopt_transcript(session_id, project_key_for_directory(directory))

    async def _written(self) -> None:
        if self._queue is not None:
            await self._queue.flush()
