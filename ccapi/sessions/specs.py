"""What a session's next turn runs with: its record, the gateway's defaults and policies turned into an
``EngineSpec``.

Kept apart from ``SessionService`` because it holds no turn state of its own: the permission and sandbox policies
found at start-up, the environment every Claude Code child gets, the launcher that starts it clean, and the routing
of a turn's client-tool calls and permission requests to the running turn they belong to.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import structlog
from claude_agent_sdk import ClaudeSDKError

from ccapi.childproc import ENGINE_TAG, install_launcher, withheld
from ccapi.config import Settings
from ccapi.engine import EngineSpec
from ccapi.engine.bridge import PermissionDecision, ToolOutcome
from ccapi.engine.reaper import home_tag, reap
from ccapi.engine.sandbox import SandboxPolicy, launch_files, login_files
from ccapi.engine.spec import MODEL_ONLY_ENV, engine_environment, find_cli, message_limit
from ccapi.errors import InvalidRequest
from ccapi.privacy import exposed_by, state_paths
from ccapi.sessions.turns import TurnRun
from ccapi.store import SessionRecord
from ccapi.store.transcripts import TranscriptMirror
from ccapi.toolpolicy import PermissionPolicy, recorded_builtin_tools

log = structlog.get_logger(__name__)


class EngineSpecs:
    def __init__(self, settings: Settings, transcripts: TranscriptMirror, running: Mapping[str, TurnRun]) -> None:
        self.settings = settings
        self.transcripts = transcripts
        self._running = running
        """The turns running in this process (``SessionService``'s), which client-tool calls and permission
        requests are routed to."""
        self.permissions = PermissionPolicy.detect()
        self._found_cli = _cli_or_none()
        self.sandbox = SandboxPolicy.detect(
            settings.sandbox,
            state_paths(settings),
            settings.sandbox_domains,
            launch_files(self._found_cli),
            login_files(),
        )
        self._env: Mapping[str, str] = {
            **withheld(os.environ, settings.pass_env),
            **engine_environment(
                settings.upstream_url,
                settings.tool_timeout,
                mock_model=settings.mock_model,
                retries=settings.upstream_retries,
                timeout=settings.upstream_timeout,
            ),
            ENGINE_TAG: home_tag(settings.home),
        }
        self._cli: str | None = None
        self._starting: dict[str, asyncio.Event] = {}

    async def reap_leftovers(self) -> None:
        """Kill what the Claude Code processes of an earlier gateway of this home left running: a gateway that
        died took its Claude Codes with it (``ccapi.childproc``), not the commands they were running."""
        if leftovers := await asyncio.to_thread(reap, f"{self._env[ENGINE_TAG]}/"):
            log.warning("reaped_leftover_processes", count=len(leftovers), pids=leftovers)

    def install_launcher(self) -> None:
        """Install the launcher that starts Claude Code clean (``ccapi.childproc``); with no Claude Code at all no
        child can start, and turns say why."""
        settings = self.settings
        if self._found_cli is not None:
            self._cli = str(
                install_launcher(settings.paths.run_dir, self._found_cli, settings.child_umask, settings.pass_env)
            )

    def check_cwd(self, cwd: str | None) -> None:
        """A session's own working directory may be neither ``/`` nor in the gateway's state: Claude Code's
        sandbox lets Bash write where a session works, so the state would be neither hidden nor safe there (nor
        anything at all, from ``/``)."""
        if cwd is None:
            return
        exposed = exposed_by(Path(cwd), self.settings)
        if exposed == "root":
            raise InvalidRequest("cwd must not be the file system's root: give the session a folder of its own")
        if exposed == "state":
            raise InvalidRequest("cwd must not be in the gateway's state (CC_API_HOME, its database or session folder)")

    def cwd(self, cwd: str | None) -> str | None:
        """A session's working directory: its own, else the gateway's ``CC_API_CWD``."""
        return cwd or (str(self.settings.cwd) if self.settings.cwd else None)

    def spec(self, session: SessionRecord) -> EngineSpec:
        has_tools = bool(session.tools)
        settings = self.settings
        builtin_tools = recorded_builtin_tools(session.builtin_tools)
        requested_mode = session.permission_mode or (
            settings.tool_permission_mode if has_tools else settings.permission_mode
        )
        return EngineSpec(
            session_id=session.id,
            model=session.model,
            system_prompt=session.system_prompt,
            cwd=self.cwd(session.cwd),
            permission_mode=self.permissions.mode_for(requested_mode, builtin_tools),
            # with client tools the turn counts only Claude Code's own tool rounds (see TurnRun)
            max_turns=session.max_turns or (None if has_tools else settings.max_turns),
            resume=session.sdk_session_id,
            generation=session.turn_count,
            env=self._env if builtin_tools != "none" else {**self._env, **MODEL_ONLY_ENV},
            tools=tuple(session.tools),
            resolve_tool=functools.partial(self._resolve_tool, session.id),
            transcripts=self.transcripts,
            max_message_bytes=message_limit(settings.max_body_bytes),
            cli_path=self._cli,
            builtin_tools=builtin_tools,
            max_budget_usd=session.max_budget_usd,
            mcp_servers=session.mcp_servers or {},
            output_schema=session.output_schema,
            spent_usd=float(session.usage.get("cost_usd", 0.0)),
            ask_permission=functools.partial(self._ask_permission, session.id),
            gate_tool=functools.partial(self._gate_tool, session.id),
            sandbox=self.sandbox.settings,
            denied_tools=self.sandbox.denied_tools,
        )

    @contextlib.contextmanager
    def turn_starting(self, session_id: str) -> Iterator[None]:
        """While a turn is being recorded: its input may have gone to Claude Code already
        (``EnginePool.send_ahead``), and a call back from it (a client tool, a permission check)
        waits for the turn instead of finding none."""
        started = self._starting[session_id] = asyncio.Event()
        try:
            yield
        finally:
            del self._starting[session_id]
            started.set()

    async def _run_of(self, session_id: str) -> TurnRun | None:
        started = self._starting.get(session_id)
        if session_id not in self._running and started is not None:
            await started.wait()
        return self._running.get(session_id)

    async def _resolve_tool(self, session_id: str, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        run = await self._run_of(session_id)
        if run is None:
            return ToolOutcome("no turn is waiting for this tool call", is_error=True)
        return await run.desk.resolve(name, arguments)

    async def _gate_tool(self, session_id: str, tool_use_id: str) -> str | None:
        run = await self._run_of(session_id)
        return None if run is None else await run.gate_tool(tool_use_id)

    async def _ask_permission(
        self, session_id: str, tool_name: str, input_: dict[str, Any], tool_use_id: str | None
    ) -> PermissionDecision:
        run = await self._run_of(session_id)
        if run is None:
            return PermissionDecision(False, "no turn of this session is running")
        return await run.ask_permission(tool_name, input_, tool_use_id)


def _cli_or_none() -> str | None:
    """The Claude Code CLI the SDK starts; ``None`` where there is none (turns then say why)."""
    try:
        return find_cli()
    except ClaudeSDKError:
        return None
