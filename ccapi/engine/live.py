"""One live Claude Code process for one session, behind a small async API.

The session's transcript comes from the gateway's store when the process starts (a resume is
materialised where Claude Code reads it) and goes back there from the file Claude Code writes
(``engine.transcript_tail``), not through the SDK's ``--session-mirror``, which copies every line
over stdout before each turn's result.
"""

from __future__ import annotations

import asyncio
import collections
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ClaudeSDKError, project_key_for_directory
from claude_agent_sdk._internal.session_resume import (  # what connect() runs when given a session_store
    MaterializedResume,
    apply_materialized_options,
    materialize_resume_session,
)
from claude_agent_sdk.types import Message, ResultMessage, SystemMessage

from ccapi.engine.errors import EngineError, explain_process_failure
from ccapi.engine.sdklog import demote_shutdown_noise
from ccapi.engine.spec import EngineSpec, build_options, mcp_config
from ccapi.engine.transcript_tail import TranscriptTail
from ccapi.paths import claude_config_dir

demote_shutdown_noise()
log = structlog.get_logger(__name__)

TRANSCRIPT_POLL_SECONDS = 1.0
"""How often a running turn's transcript is read into the store before its result: Claude Code
writes its file on a timer of about a second, so a turn paused on client tools (or a long one) has
its lines stored about when the SDK's mirror had them."""


class LiveEngine:
    """Wraps a connected ``ClaudeSDKClient``. ``busy`` is set while a turn runs so the
    pool never evicts an engine mid-turn."""

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.busy = False
        self.last_used = time.monotonic()
        #: Claude Code reports ``total_cost_usd`` summed over the process's life; turns
        #: need their own share, so the engine remembers what it had already reported.
        self.reported_cost = 0.0
        #: Turns of the session this process has in its context (see ``EngineSpec.generation``).
        self.generation = spec.generation
        #: Whether the session's options may have changed since this process started: it then takes
        #: no input ahead of a turn's record (``EnginePool.send_ahead``) until it is replaced.
        self.held = False
        self._ahead: asyncio.Task[None] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        servers = mcp_config(spec)
        self._prompt_file = _private_file("system-prompt", spec.system_prompt) if spec.system_prompt else None
        self._mcp_file = _private_file("mcp-config", servers) if servers else None
        self._options = build_options(
            spec,
            self._stderr.append,
            str(self._prompt_file) if self._prompt_file else None,
            str(self._mcp_file) if self._mcp_file else None,
        )
        self._client: ClaudeSDKClient | None = None
        self._materialized: MaterializedResume | None = None
        self._tail: TranscriptTail | None = None
        self._poll: asyncio.TimerHandle | None = None
        self._importing: asyncio.Task[None] | None = None
        self._connected = False

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    async def start(self) -> None:
        try:
            self._client = ClaudeSDKClient(await self._with_transcript(self._options))
            await self._client.connect()
        except ClaudeSDKError as exc:
            await self.close()
            raise explain_process_failure(self.stderr_tail, str(exc)) from exc
        finally:
            self._remove_private_files()  # Claude Code has read them by now (or never will)
        self._connected = True

    async def _with_transcript(self, options: ClaudeAgentOptions) -> ClaudeAgentOptions:
        """``options`` for a process that resumes the session's transcript from the store (written
        where Claude Code reads it: the SDK's own materialisation), with a tail on the file it writes."""
        transcripts = self.spec.transcripts
        if transcripts is None:
            return options
        if self.spec.resume:
            await transcripts.adopt(self.spec.resume, self.spec.cwd)
            self._materialized = await materialize_resume_session(replace(options, session_store=transcripts))
        if self._materialized is not None:
            options = apply_materialized_options(options, self._materialized)
        self._tail = TranscriptTail(
            claude_config_dir(options.env) / "projects", project_key_for_directory(options.cwd), options.resume
        )
        return options

    @property
    def sent_ahead(self) -> bool:
        """The next turn's input is already on its way to Claude Code (``send_ahead``)."""
        return self._ahead is not None

    def send_ahead(self, content: list[dict[str, Any]]) -> None:
        """Start writing the next turn's user message now; that turn's ``run`` waits for the write
        instead of sending it."""
        self._ahead = asyncio.create_task(self._send(content), name=f"send-ahead-{self.spec.session_id}")
        self._ahead.add_done_callback(_seen)  # its failure is the turn's (``run``), or nobody's once closed

    async def run(self, content: list[dict[str, Any]]) -> AsyncIterator[Message]:
        """Send one user message (unless it was sent ahead) and yield the SDK messages up to its
        result; with no content, the result of the turn Claude Code re-runs as it starts
        (``continue_turn``)."""
        self.last_used = time.monotonic()
        ahead, self._ahead = self._ahead, None
        assert self._client is not None, "run() before start()"
        tail = self._tail
        if tail is not None:
            self._poll = asyncio.get_running_loop().call_later(TRANSCRIPT_POLL_SECONDS, self._poll_transcript)
        try:
            if ahead is not None:
                await ahead
            elif content:
                await self._send(content)
            async for item in self._client.receive_response():
                if tail is not None:
                    if tail.session_id is None:
                        tail.know(item.data.get("session_id") if isinstance(item, SystemMessage) else None)
                    if isinstance(item, ResultMessage):
                        tail.know(item.session_id)
                        await self._import_transcript()  # before the turn's end is committed, to ride along
                yield item
        except ClaudeSDKError as exc:
            raise explain_process_failure(self.stderr_tail, str(exc)) from exc
        finally:
            if self._poll is not None:
                self._poll.cancel()
                self._poll = None
            self.last_used = time.monotonic()

    def _poll_transcript(self) -> None:
        """Armed while a turn runs (see ``TRANSCRIPT_POLL_SECONDS``)."""
        if self._importing is None or self._importing.done():
            self._importing = asyncio.create_task(self._import_transcript(), name=f"transcript-{self.spec.session_id}")
        self._poll = asyncio.get_running_loop().call_later(TRANSCRIPT_POLL_SECONDS, self._poll_transcript)

    async def _import_transcript(self) -> None:
        """Whatever Claude Code's transcript gained, into the store. A failure is logged, not the turn's:
        the lines stay in the file and the next import tries them again."""
        if self._tail is None:
            return
        try:
            await self._tail.import_new(self.spec.transcripts)
        except Exception as exc:  # noqa: BLE001 - the store's copy of a transcript never fails a turn
            log.warning("transcript_import_failed", session_id=self.spec.session_id, error=repr(exc))

    async def _send(self, content: list[dict[str, Any]]) -> None:
        message = {"type": "user", "message": {"role": "user", "content": content}, "parent_tool_use_id": None}
        assert self._client is not None, "a message sent before start()"
        await self._client.query(_single(message))

    async def interrupt(self) -> None:
        if self._connected and self._client is not None:
            try:
                await self._client.interrupt()
            except ClaudeSDKError as exc:
                raise EngineError("engine_error", f"interrupt failed: {exc}") from exc

    async def context_usage(self) -> dict[str, Any] | None:
        """The context window as Claude Code counts it, trimmed to what clients need."""
        if self._client is None:
            return None
        try:
            usage = await self._client.get_context_usage()
        except Exception:  # noqa: BLE001 - best effort: a session read must not fail on it
            return None
        return {
            "total_tokens": usage.get("totalTokens"),
            "max_tokens": usage.get("maxTokens"),
            "raw_max_tokens": usage.get("rawMaxTokens"),
            "percentage": usage.get("percentage"),
            "auto_compact": usage.get("isAutoCompactEnabled"),
        }

    def _remove_private_files(self) -> None:
        for file in (self._prompt_file, self._mcp_file):
            if file is not None:
                file.unlink(missing_ok=True)
        self._prompt_file = self._mcp_file = None

    async def close(self) -> None:
        """Stop the CLI process; safe to call twice."""
        self._remove_private_files()
        if self._ahead is not None:  # sent ahead of a turn that never ran
            self._ahead.cancel()
            self._ahead = None
        self._connected = False
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        try:
            if self._client is not None:
                await self._client.disconnect()
        except Exception:  # noqa: BLE001 - a dying process must not block shutdown
            pass
        if self._importing is not None:
            await self._importing
        if self._tail is not None:
            await self._import_transcript()  # what Claude Code wrote after the last result
            self._tail.close()
            self._tail = None
        if self._materialized is not None:
            await self._materialized.cleanup()
            self._materialized = None


def _private_file(kind: str, text: str) -> Path:
    """``text`` in a new file only this user can read (``mkstemp`` creates it 0600)."""
    handle, name = tempfile.mkstemp(prefix=f"ccapi-{kind}-", suffix=".txt")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(text)
    return Path(name)


def _seen(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


async def _single(message: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    yield message
