"""One live Claude Code process for one session, behind a small async API."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from claude_agent_sdk import ClaudeSDKClient, ClaudeSDKError
from claude_agent_sdk.types import Message

from ccapi.childproc import ENGINE_TAG
from ccapi.engine.errors import EngineError, explain_process_failure
from ccapi.engine.reaper import clear_stale_probes, engine_tag, reap
from ccapi.engine.sandbox import PRIVATE_FILE_PREFIX
from ccapi.engine.sdklog import demote_shutdown_noise
from ccapi.engine.spec import EngineSpec, build_options, mcp_config

demote_shutdown_noise()

MODE_SWITCH_WAIT = 10.0
"""How long a live permission mode switch (``LiveEngine.set_permission_mode``) waits for Claude Code's answer."""


class LiveEngine:
    """Wraps a connected ``ClaudeSDKClient``. ``busy`` is set while a turn runs so the
    pool never evicts an engine mid-turn. ``on_exit`` hears of a Claude Code process that ends
    while the engine is open (killed, out of memory): ``exited`` is set first."""

    def __init__(self, spec: EngineSpec, on_exit: Callable[[LiveEngine], None] | None = None) -> None:
        self.spec = spec
        self.busy = False
        self.exited = False
        self._on_exit = on_exit
        self._watch: asyncio.Task[None] | None = None
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
        #: What this process and everything it starts carry in their environment (``ccapi.engine.reaper``).
        self.tag = engine_tag(spec.env[ENGINE_TAG]) if ENGINE_TAG in spec.env else None
        servers = mcp_config(spec)
        self._prompt_file = _private_file("system-prompt", spec.system_prompt) if spec.system_prompt else None
        self._mcp_file = _private_file("mcp-config", servers) if servers else None
        self._client = ClaudeSDKClient(
            build_options(
                dataclasses.replace(spec, env={**spec.env, ENGINE_TAG: self.tag}) if self.tag else spec,
                self._stderr.append,
                str(self._prompt_file) if self._prompt_file else None,
                str(self._mcp_file) if self._mcp_file else None,
            )
        )
        self._connected = False

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    async def start(self) -> None:
        try:
            if self.spec.resume and self.spec.transcripts is not None:
                await self.spec.transcripts.adopt(self.spec.resume, self.spec.cwd)
            await self._client.connect()
        except ClaudeSDKError as exc:
            await self.close()
            raise explain_process_failure(self.stderr_tail, str(exc)) from exc
        finally:
            self._remove_private_files()  # Claude Code has read them by now (or never will)
        self._connected = True
        self._watch = asyncio.create_task(self._watch_exit(), name=f"engine-exit-{self.spec.session_id}")

    async def _watch_exit(self) -> None:
        """Wait for the process to end; one that ends while the engine is open is reported (``on_exit``). The SDK
        has no public handle on its process: its transport's, where it has one."""
        process = getattr(getattr(self._client, "_transport", None), "_process", None)
        if process is None:
            return
        await process.wait()
        if self._connected:
            self.exited = True
            if self._on_exit is not None:
                self._on_exit(self)

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
        try:
            if ahead is not None:
                await ahead
            elif content:
                await self._send(content)
            async for item in self._client.receive_response():
                yield item
        except ClaudeSDKError as exc:
            raise explain_process_failure(self.stderr_tail, str(exc)) from exc
        finally:
            self.last_used = time.monotonic()

    async def _send(self, content: list[dict[str, Any]]) -> None:
        message = {"type": "user", "message": {"role": "user", "content": content}, "parent_tool_use_id": None}
        await self._client.query(_single(message))

    async def interrupt(self) -> None:
        if self._connected:
            try:
                await self._client.interrupt()
            except ClaudeSDKError as exc:
                raise EngineError("engine_error", f"interrupt failed: {exc}") from exc

    async def set_permission_mode(self, mode: str) -> bool:
        """Switch the running Claude Code to ``mode`` now, in a turn or between turns: its next permission check
        is under it. The spec then says so, so the next turn finds the process as it would start it and does not
        restart it (every process with built-in tools has the permission callback, ``permission_asker``, even one
        started in ``bypassPermissions``). False (nothing changed) when it cannot: the process is not running (still
        starting, closed, ended) or it does not answer."""
        if not self._connected or self.exited:
            return False
        try:
            await asyncio.wait_for(self._client.set_permission_mode(mode), MODE_SWITCH_WAIT)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - not switched (or not known to be): the caller restarts it instead
            return False
        self.spec = dataclasses.replace(self.spec, permission_mode=mode)
        return True

    async def context_usage(self) -> dict[str, Any] | None:
        """The context window as Claude Code counts it, trimmed to what clients need."""
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
        """Stop the CLI process, and whatever it started that outlived it; safe to call twice."""
        self._remove_private_files()
        if self._ahead is not None:  # sent ahead of a turn that never ran
            self._ahead.cancel()
            self._ahead = None
        self._connected = False
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        try:
            await self._client.disconnect()
        except Exception:  # noqa: BLE001 - a dying process must not block shutdown
            pass
        if self.tag is not None:
            await asyncio.to_thread(reap, self.tag)
        await asyncio.to_thread(clear_stale_probes)


def _private_file(kind: str, text: str) -> Path:
    """``text`` in a new file only this user can read (``mkstemp`` creates it 0600)."""
    handle, name = tempfile.mkstemp(prefix=f"{PRIVATE_FILE_PREFIX}{kind}-", suffix=".txt")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(text)
    return Path(name)


def _seen(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


async def _single(message: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    yield message
