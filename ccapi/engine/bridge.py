"""The client-tool bridge: tools declared by the API client, served to Claude through an
in-process SDK MCP server owned by the gateway.

Claude Code calls the tool; the handler does not run anything itself. It asks the
``ToolResolver`` (the sessions layer) for the result, which pauses the turn until the
client posts it. Claude Code names the tools ``mcp__client__<name>``; clients only ever
see ``<name>``.

The MCP call carries the arguments but not the model's ``tool_use`` id, so the resolver
matches a call to the ``tool_use`` block by name and input, oldest first; identical
calls are interchangeable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from claude_agent_sdk import HookMatcher, SdkMcpTool, create_sdk_mcp_server
from claude_agent_sdk.types import (
    HookContext,
    HookInput,
    HookJSONOutput,
    McpSdkServerConfig,
    PermissionResultAllow,
    PermissionResultDeny,
    PermissionRuleValue,
    PermissionUpdate,
    ToolPermissionContext,
)

CLIENT_SERVER = "client"
CLIENT_TOOL_PREFIX = f"mcp__{CLIENT_SERVER}__"
STRUCTURED_OUTPUT_TOOL = "StructuredOutput"
"""The tool Claude Code offers the model for a session's output schema: a valid call answers, and ends the turn."""


@dataclass(frozen=True)
class ToolOutcome:
    """What a client tool returned: text or Anthropic content blocks, and whether it failed."""

    content: str | list[dict[str, Any]]
    is_error: bool = False


ToolResolver = Callable[[str, dict[str, Any]], Awaitable[ToolOutcome]]


@dataclass(frozen=True)
class PermissionDecision:
    """The answer to one of Claude Code's permission checks: run the call (maybe with changed
    input) or refuse it with a message Claude reads as the tool's error. ``for_session``: and
    let Claude Code run this tool without asking again while its process lives."""

    allow: bool
    message: str = ""
    updated_input: dict[str, Any] | None = None
    for_session: bool = False


PermissionAsker = Callable[[str, dict[str, Any], str | None], Awaitable[PermissionDecision]]
"""``(tool name, input, tool_use id)`` → the decision; the sessions layer waits for the client."""


ToolGate = Callable[[str], Awaitable[str | None]]
"""``(tool_use id)`` of a call of Claude Code's own tools on its main thread → ``None`` to let it run, or the
message Claude Code stops the turn with instead (the sessions layer's round limit)."""


def plain_tool_name(name: str) -> str | None:
    """``mcp__client__get_weather`` → ``get_weather``; None for any other tool."""
    return name[len(CLIENT_TOOL_PREFIX) :] if name.startswith(CLIENT_TOOL_PREFIX) else None


def client_tool_server(tools: list[dict[str, Any]], resolve: ToolResolver) -> McpSdkServerConfig:
    return create_sdk_mcp_server(CLIENT_SERVER, tools=[_tool(spec, resolve) for spec in tools])


def client_tool_rules(tools: list[dict[str, Any]]) -> list[str]:
    """The permission rule that allows every client tool: one server-wide rule (``mcp__client``)
    rather than a name each, which past ~1,700 long names overflowed Linux's 128 KiB limit on
    one argument (``--allowedTools``) and failed every turn."""
    return [f"mcp__{CLIENT_SERVER}"] if tools else []


def _tool(spec: dict[str, Any], resolve: ToolResolver) -> SdkMcpTool[Any]:
    name = spec["name"]

    async def handler(arguments: dict[str, Any]) -> dict[str, Any]:
        outcome = await resolve(name, arguments)
        return {"content": _mcp_content(outcome.content), "is_error": outcome.is_error}

    return SdkMcpTool(
        name=name,
        description=spec.get("description", ""),
        input_schema=wire_schema(spec["input_schema"]),
        handler=handler,
    )


def wire_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The declared schema in the shape the SDK passes through unchanged. The SDK reads a dict
    without a string ``type`` *and* ``properties`` as a map of parameter names to Python types:
    ``{"type": "object"}`` would reach the model as one required string parameter named
    ``type``, and a ``$schema`` key would make Claude Code drop the tool. An object schema
    without ``properties`` means the same with ``"properties": {}``."""
    return {"type": "object", "properties": {}, **schema}


def permission_callback(ask: PermissionAsker) -> Any:
    """An SDK ``can_use_tool`` that hands each check to ``ask``."""

    async def can_use_tool(
        name: str, input_: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResultAllow | PermissionResultDeny:
        decision = await ask(name, input_, context.tool_use_id)
        if decision.allow:
            remember = [_allow_tool_for_session(name)] if decision.for_session else None
            return PermissionResultAllow(updated_input=decision.updated_input, updated_permissions=remember)
        return PermissionResultDeny(message=decision.message)

    return can_use_tool


def tool_gate_hook(gate: ToolGate) -> HookMatcher:
    """A ``PreToolUse`` hook that asks ``gate`` before each call of Claude Code's own tools (and a session MCP
    server's) on the main thread runs; the client's tools are not matched (no round trip) and a subagent's
    calls pass, and so does the answer (``StructuredOutput``), which is no round of tools. A stop refuses the call
    and ends the turn there (``continue: false``): the call never runs and the model is not asked again. An
    interrupt sent after the round's message came too late for both under load. Hooks run in every permission
    mode, where ``can_use_tool`` does not (``bypassPermissions``)."""

    async def pre_tool_use(input_: HookInput, tool_use_id: str | None, _context: HookContext) -> HookJSONOutput:
        if tool_use_id is None or "agent_id" in input_:
            return {}
        stop = await gate(tool_use_id)
        if stop is None:
            return {}
        return {
            "continue_": False,
            "stopReason": stop,
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": stop,
            },
        }

    return HookMatcher(matcher=f"^(?!{CLIENT_TOOL_PREFIX}|{STRUCTURED_OUTPUT_TOOL}$)", hooks=[pre_tool_use])


def _allow_tool_for_session(name: str) -> PermissionUpdate:
    """Claude Code's own "don't ask again this session" rule, for every use of the tool. It lives
    in the Claude Code process: once the gateway releases that (idle, restart), Claude Code asks again."""
    return PermissionUpdate(
        type="addRules", rules=[PermissionRuleValue(tool_name=name)], behavior="allow", destination="session"
    )


def _mcp_content(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Anthropic-shaped result blocks (what clients send) as MCP content (what the SDK takes)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [_mcp_block(block) for block in content]


def _mcp_block(block: dict[str, Any]) -> dict[str, Any]:
    if block["type"] == "image":
        return {"type": "image", "data": block["source"]["data"], "mimeType": block["source"]["media_type"]}
    return {"type": "text", "text": block["text"]}
