"""What the engine needs to know to run one session, and how that becomes SDK options."""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from claude_agent_sdk import CanUseToolShadowedWarning, ClaudeAgentOptions, HookMatcher
from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport
from claude_agent_sdk.types import HookEvent

from ccapi.childproc import GATEWAY_PID
from ccapi.engine.bridge import (
    CLIENT_SERVER,
    CLIENT_TOOL_PREFIX,
    PermissionAsker,
    ToolGate,
    ToolResolver,
    client_tool_rules,
    client_tool_server,
    permission_callback,
    tool_gate_hook,
)
from ccapi.engine.sandbox import confined_writes, private_transcripts, unlisted_conversations
from ccapi.toolpolicy import BuiltinTools, sdk_tools


def silence_client_tool_shadowing() -> None:
    """The SDK warns when ``allowed_tools`` lets a whole tool skip ``can_use_tool``. The gateway's
    ``allowed_tools`` lists only the session's client tools, on purpose: the client runs them and
    decides what they do, so no permission prompt may stand in front of them. That warning says
    nothing an operator can act on, so it is filtered once, for exactly those tool names; any other
    shadowing (of a built-in tool) still warns."""
    client_tool = rf"(?:{re.escape(CLIENT_TOOL_PREFIX)}[^\s,]+|mcp__{CLIENT_SERVER})"  # a tool, or the server's rule
    warnings.filterwarnings(
        "ignore",
        message=rf"can_use_tool will not be invoked for: {client_tool}(, {client_tool})*\. ",
        category=CanUseToolShadowedWarning,
    )
    # ``bypassPermissions`` shadows the callback until the mode is switched (``permission_asker``): on purpose too
    warnings.filterwarnings(
        "ignore",
        message=r"can_use_tool will not be invoked: permission_mode 'bypassPermissions'",
        category=CanUseToolShadowedWarning,
    )


silence_client_tool_shadowing()


@dataclass(frozen=True)
class EngineSpec:
    """Everything a live engine is built from; the sessions layer fills it in."""

    session_id: str
    model: str
    system_prompt: str | None
    cwd: str | None
    permission_mode: str
    max_turns: int | None
    """``None``: Claude Code does not bound the turn's model rounds (the sessions layer does)."""
    resume: str | None = None
    generation: int = 0
    """How many turns the session had when this spec was made. A live engine that has seen
    fewer (another host ran turns meanwhile) is stale and is replaced by a resumed one."""
    env: Mapping[str, str] = field(default_factory=dict)
    tools: tuple[dict[str, Any], ...] = ()
    resolve_tool: ToolResolver | None = None
    transcripts: Any = None
    """A ``SessionStore`` (duck-typed: a ``TranscriptMirror``) that mirrors Claude Code's
    transcript, so ``resume`` works from the gateway's database rather than the CLI's local
    files, whichever host or working directory wrote it."""
    max_message_bytes: int = 1024 * 1024
    """The largest single message Claude Code may send back (see ``message_limit``)."""
    cli_path: str | None = None
    """The launcher that starts Claude Code clean (``ccapi.childproc``); the SDK's own CLI when unset."""
    builtin_tools: BuiltinTools = "all"
    max_budget_usd: float | None = None
    """The session's spending cap; Claude Code enforces it on the process's cumulative cost."""
    spent_usd: float = 0.0
    """What the session had cost before this spec's turn: a process started now gets the rest."""
    ask_permission: PermissionAsker | None = None
    gate_tool: ToolGate | None = None
    """Asked before each call of Claude Code's own tools runs when the sessions layer bounds the turn's
    rounds (``max_turns`` is ``None``): it may stop the turn there."""
    sandbox: Mapping[str, Any] | None = None
    """The SDK's ``sandbox`` settings for Bash (``ccapi.engine.sandbox``); ``None``: no sandbox."""
    denied_tools: tuple[str, ...] = ()
    """Permission deny rules that keep built-in file tools off the gateway's state and ``/proc``."""
    continue_turn: bool = False
    """The turn has no input: Claude Code, started fresh, re-runs the turn its transcript ends
    in (tool results a client's history brought, see ``engine.history``)."""
    mcp_servers: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """The session's own MCP servers (stdio, http), as Claude Code takes them."""
    output_schema: Mapping[str, Any] | None = None
    """The JSON schema (of type object) every turn's answer must match (``--json-schema``): Claude Code offers the
    model a ``StructuredOutput`` tool with it and reports the checked value as the result's ``structured_output``."""

    @property
    def budget_left(self) -> float | None:
        return None if self.max_budget_usd is None else round(self.max_budget_usd - self.spent_usd, 8)

    @property
    def process_key(self) -> tuple[Any, ...]:
        """What a live process was started with that a session may change between turns; a
        live engine started with another key is replaced by a resumed one."""
        return (
            self.max_budget_usd,
            self.model,
            self.permission_mode,
            self.system_prompt,
            self.tools,
            self.output_schema,
        )


def message_limit(max_body_bytes: int) -> int:
    """The SDK's per-message read buffer for a gateway that accepts bodies of ``max_body_bytes``.

    Claude Code sends each message (an input it echoes, a reply) as one JSON line, escaped and
    wrapped, so anything a body could carry must fit with room to spare; the SDK's own default,
    1 MiB, failed turns that the 10 MiB body limit let in. The buffer only grows as large as
    the longest line actually sent."""
    return max(1024 * 1024, 4 * max_body_bytes)


def build_options(
    spec: EngineSpec,
    stderr: Callable[[str], None],
    system_prompt_file: str | None = None,
    mcp_config_file: str | None = None,
) -> ClaudeAgentOptions:
    """``include_partial_messages`` gives token-level ``message.delta`` events; ``stderr``
    lets failures name their cause (e.g. the root/bypassPermissions refusal). Client tools
    are always allowed: the client, not a permission prompt, decides what they do. Built-in
    tools are limited to the session's policy, and their permission checks (in a mode that
    asks) go to ``ask_permission``.

    The system prompt goes in a private file when there is one: as an argument it would
    fail every turn past Linux's 128 KiB per-argument limit, and be readable by every local
    user in the process list. The session's own MCP servers always do (``mcp_config_file``, see
    ``mcp_config``): the SDK would put them on the command line as JSON, their ``env`` and
    ``headers`` (tokens) with them. Only the in-process server of client tools, which holds no
    secret and must reach the SDK as an object, stays an argument; Claude Code merges the two."""
    if spec.mcp_servers and not mcp_config_file:
        raise ValueError("a session's MCP servers go to Claude Code in a private file, never on its command line")
    mcp_servers: dict[str, Any] = {}
    if spec.tools and spec.resolve_tool is not None:
        mcp_servers[CLIENT_SERVER] = client_tool_server(list(spec.tools), spec.resolve_tool)
    return ClaudeAgentOptions(
        model=spec.model,
        system_prompt={"type": "file", "path": system_prompt_file} if system_prompt_file else spec.system_prompt,
        cwd=spec.cwd,
        permission_mode=spec.permission_mode,  # type: ignore[arg-type]
        max_turns=spec.max_turns,
        resume=spec.resume,
        include_partial_messages=True,
        env={
            **spec.env,
            **(MCP_WAIT_ENV if spec.mcp_servers else {}),
            **(CONTINUE_ENV if spec.continue_turn else {}),
        },
        stderr=stderr,
        setting_sources=[],
        mcp_servers=mcp_servers,
        extra_args={"mcp-config": mcp_config_file} if mcp_config_file else {},
        allowed_tools=client_tool_rules(list(spec.tools)),
        tools=sdk_tools(spec.builtin_tools),
        max_budget_usd=None if spec.budget_left is None else max(spec.budget_left, 1e-6),
        can_use_tool=permission_callback(ask) if (ask := permission_asker(spec)) is not None else None,
        hooks=engine_hooks(spec),
        session_store=spec.transcripts,
        session_store_flush="eager",
        max_buffer_size=spec.max_message_bytes,
        cli_path=spec.cli_path,
        sandbox=dict(spec.sandbox) if spec.sandbox is not None and spec.builtin_tools != "none" else None,  # type: ignore[arg-type]
        disallowed_tools=[*UNATTENDED_TOOLS, *PEER_TOOLS, *spec.denied_tools] if spec.builtin_tools != "none" else [],
        output_format={"type": "json_schema", "schema": dict(spec.output_schema)} if spec.output_schema else None,
    )


def mcp_config(spec: EngineSpec) -> str | None:
    """The session's own MCP servers as a ``--mcp-config`` file's text, if it has any."""
    return json.dumps({"mcpServers": spec.mcp_servers}) if spec.mcp_servers else None


def permission_asker(spec: EngineSpec) -> PermissionAsker | None:
    """Who answers Claude Code's approvals for this session, if it can ask any: only with built-in
    tools. In ``bypassPermissions`` Claude Code approves every call before it would ask, but a
    process started so still gets the callback: switched live to a mode that asks (a ``PATCH`` to
    ``default`` mid-turn, to take back control), it must have someone to ask."""
    if spec.builtin_tools == "none":
        return None
    return spec.ask_permission


def engine_hooks(spec: EngineSpec) -> dict[HookEvent, list[HookMatcher]] | None:
    """The gateway's ``PreToolUse`` hooks: the round limit's gate (``tool_gate``), file tools kept off other
    sessions' conversations (``private_transcripts``) and, where Bash is sandboxed, file writes kept to the same
    places (``confined_writes``); and its ``PostToolUse`` one, which takes other sessions' files out of what a Glob
    lists (``unlisted_conversations``)."""
    hooks = [tool_gate_hook(gate)] if (gate := tool_gate(spec)) is not None else []
    if spec.builtin_tools == "none":
        return {"PreToolUse": hooks} if hooks else None
    hooks.append(private_transcripts())
    if spec.sandbox is not None:
        hooks.append(confined_writes(spec.cwd or os.getcwd()))
    return {"PreToolUse": hooks, "PostToolUse": [unlisted_conversations()]}


def tool_gate(spec: EngineSpec) -> ToolGate | None:
    """Who may stop a call of Claude Code's own tools before it runs: where the sessions layer, not Claude
    Code, bounds the turn's rounds (a session with client tools)."""
    return spec.gate_tool if spec.max_turns is None else None


def find_cli() -> str:
    """The Claude Code CLI the SDK would start by itself (its bundled one, else ``claude`` on PATH)."""
    return SubprocessCLITransport(prompt="", options=ClaudeAgentOptions())._find_cli()


MOCK_API_KEY = "cc-api-mock-model"

MCP_WAIT_ENV = {"MCP_CONNECTION_NONBLOCKING": "false"}
"""Claude Code connects a session's own MCP servers in the background and sends the first request without
their tools; told this, it waits for them (or their failure) first, so the first turn can use them."""

CONTINUE_ENV = {"CLAUDE_CODE_RESUME_INTERRUPTED_TURN": "1", "CLAUDE_CODE_RESUME_INTERRUPTED_TURN_MAX_AGE_MS": "0"}
"""Claude Code re-runs, as it starts, a turn its resumed transcript ends in without a reply,
however long the turn waited for a live slot (``0``: no age limit)."""

UNATTENDED_TOOLS = ("Monitor", "ScheduleWakeup")
"""Claude Code's tools whose work reports later, as a model turn it starts by itself between the gateway's turns
(a monitor's events, a scheduled wake-up): nobody reads that turn, and its answer would be the next turn's reply.
Background tasks and scheduled prompts are off by environment (``engine_environment``); these two are not, so
they are never declared."""

PEER_TOOLS = ("ListAgents", "SendMessage")
"""Claude Code's tools that reach the other Claude Code sessions of this host: every session it runs (each of this
gateway's, the user's own interactive ones) lists the others as its peers (``ListAgents``) and takes a message from
any of them into its conversation, running a model turn on it by itself (``SendMessage``). One session could so
write into another's conversation, and tell it to answer with what it holds; those turns run between the
gateway's, unread (see ``UNATTENDED_TOOLS``). Subagents still report to the session that started them; background
agents and teammates, the other recipients, are off. They are never declared, and the gateway's Claude Code takes no
message from its peers either (``NO_PEER_INBOX``)."""

NO_PEER_INBOX = {"CLAUDE_CODE_HARBOR_KITE": "0"}
"""Claude Code's cross-session messaging off (checked with Claude Code 2.1.332, where this variable decides its gate
before any feature flag): on, every Claude Code listens on a socket of its own (``$TMPDIR/cc-socks/<pid>.sock``),
named with an auth key in its config directory (``sessions/<pid>.json``, ``sessions/<pid>.<hash>.key``), and a
message a peer sends there (the user's own interactive Claude Code, any process of the user that reads the key)
lands in its conversation as a ``<cross-session-message>``, on which it runs a model turn by itself, between the
gateway's turns, unread. Off, it binds no socket and publishes no key: peers do not list it and a message to it is
refused as unreachable. It still records itself as running there (pid, session id, working directory), as every
Claude Code does; nothing can be sent through that."""

MODEL_ONLY_ENV = {"CLAUDE_CODE_DISABLE_ATTACHMENTS": "1"}
"""Extra environment of a session without built-in tools: Claude Code's per-request attachments
(the ``<system-reminder>`` with the remaining token budget, file and task reminders) serve its
agent, not a model-only session. Its environment, model and date reminders are not governed by
this and stay (about 1 KB on a first request)."""


def engine_environment(
    upstream_url: str | None,
    tool_timeout: float,
    *,
    mock_model: bool = False,
    retries: int | None = None,
    timeout: float | None = None,
) -> dict[str, str]:
    """Environment the gateway sets for every Claude Code child, on top of what
    ``ccapi.childproc.child_environment`` lets through from its own: this gateway's pid as the
    owner mark; no telemetry or update checks from a daemon; client tools offered to the model
    directly (not deferred behind tool search) and allowed to wait for the client longer than
    the gateway's own tool timeout; a resumed transcript runs under the session's system prompt
    as it is now, not the one recorded in it (a compat request's prompt is an option of each
    request); no background tasks and no scheduled prompts (a subagent sent to the background, or
    a prompt scheduled for later, ends in a model turn Claude Code starts by itself, between the
    gateway's turns: nobody reads it, and its answer became the next turn's reply); no messages from
    other Claude Code sessions of the host, which end in such a turn too (``NO_PEER_INBOX``); the configured
    upstream, retry budget and request timeout when set (Claude Code's own defaults otherwise: 10
    retries, 10 minutes); and a dummy key for the mock so a real key is never sent to it."""
    env = {
        GATEWAY_PID: str(os.getpid()),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "ENABLE_TOOL_SEARCH": "false",
        "MCP_TOOL_TIMEOUT": str(int((tool_timeout + 60) * 1000)),
        "CLAUDE_CODE_HOST_PROMPT_SUPERSEDES_RECORD": "1",
        "CLAUDE_CODE_DISABLE_BACKGROUND_TASKS": "1",
        "CLAUDE_CODE_DISABLE_CRON": "1",
        **NO_PEER_INBOX,
    }
    if upstream_url:
        env["ANTHROPIC_BASE_URL"] = upstream_url
    if retries is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(retries)
    if timeout is not None:
        env["API_TIMEOUT_MS"] = str(int(timeout * 1000))
    if mock_model:
        env["ANTHROPIC_API_KEY"] = MOCK_API_KEY
    return env
