"""What an ACP client may switch on a session: the mode (Claude Code's permission modes) and the model (a
``model`` select config option, which acpx's ``--model`` and Zed's model picker use), and how an editor's MCP
servers become the session's ``mcp_servers``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from acp.schema import (
    HttpMcpServer,
    McpServerStdio,
    SessionConfigOptionSelect,
    SessionConfigSelectOption,
    SessionMode,
    SessionModeState,
)

from ccapi.config import PERMISSION_MODES

MODEL_OPTION = "model"
MODES = {
    "default": ("Ask", "Claude Code asks before tools that change things; you approve each call"),
    "acceptEdits": ("Accept edits", "File edits run without asking; other tools ask"),
    "plan": ("Plan", "Claude plans and reads, and changes nothing"),
    "bypassPermissions": ("Bypass", "Nothing asks (as root without IS_SANDBOX=1 the gateway asks anyway)"),
}
assert tuple(MODES) == PERMISSION_MODES


def mode_state(current: str) -> SessionModeState:
    return SessionModeState(
        current_mode_id=current,
        available_modes=[SessionMode(id=mode, name=name, description=why) for mode, (name, why) in MODES.items()],
    )


def model_option(current: str, models: Iterable[dict[str, Any]]) -> SessionConfigOptionSelect:
    choices = [SessionConfigSelectOption(value=m["id"], name=m.get("display_name") or m["id"]) for m in models]
    if current not in {choice.value for choice in choices}:
        choices.insert(0, SessionConfigSelectOption(value=current, name=current))
    return SessionConfigOptionSelect(
        type="select", id=MODEL_OPTION, name="Model", category="model", current_value=current, options=choices
    )


def native_mcp_servers(servers: Iterable[Any] | None) -> dict[str, dict[str, Any]]:
    """The client's stdio and HTTP servers by a name the gateway takes; SSE servers (not advertised) are left out."""
    native: dict[str, dict[str, Any]] = {}
    for server in servers or ():
        if isinstance(server, McpServerStdio):
            config: dict[str, Any] = {
                "type": "stdio",
                "command": server.command,
                "args": list(server.args),
                "env": {variable.name: variable.value for variable in server.env},
            }
        elif isinstance(server, HttpMcpServer):
            config = {"type": "http", "url": server.url, "headers": {h.name: h.value for h in server.headers}}
        else:
            continue
        native[_unique(_name(server.name), native)] = config
    return native


def _name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:60] or "server"
    return f"{safe}_" if safe == "client" else safe


def _unique(name: str, taken: dict[str, Any]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    return candidate
