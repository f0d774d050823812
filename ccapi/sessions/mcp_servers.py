"""A session's own MCP servers (``mcp_servers``): checked here, handed to Claude Code as they are.

The shape is Claude Code's own (``.mcp.json``'s ``mcpServers``, the SDK's ``McpStdioServerConfig`` /
``McpHttpServerConfig``): ``{"name": {"type": "stdio", "command", "args"?, "env"?}}`` or
``{"name": {"type": "http", "url", "headers"?}}``. Claude Code skips a server it cannot start without
failing the turn, so everything it would trip over is a 400 here instead. A stdio server is a command
run on the gateway host as the gateway's user, like a Bash call.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from ccapi.errors import InvalidRequest

MAX_SERVERS = 32
RESERVED = ("client",)
"""The gateway's own in-process server of client tools (``ccapi.engine.bridge.CLIENT_SERVER``)."""
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHAPES = {"stdio": {"type", "command", "args", "env"}, "http": {"type", "url", "headers"}}


def parse_mcp_servers(value: Any) -> dict[str, dict[str, Any]]:
    """The validated, normalised servers (each with its ``type``); ``None`` is none."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest('mcp_servers must be an object: {"name": {"type": "stdio" | "http", ...}}')
    if len(value) > MAX_SERVERS:
        raise InvalidRequest(f"at most {MAX_SERVERS} mcp_servers", {"got": len(value)})
    return {_name(name): _server(f"mcp_servers.{name}", server) for name, server in value.items()}


def _name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidRequest(f"mcp_servers name {name!r} must match [A-Za-z0-9_-]{{1,64}}")
    if name in RESERVED:
        raise InvalidRequest(f"mcp_servers name {name!r} is the gateway's own (client tools); choose another")
    return name


def _server(where: str, server: Any) -> dict[str, Any]:
    if not isinstance(server, dict):
        raise InvalidRequest(f"{where} must be an object")
    kind = server.get("type", "stdio")
    if not isinstance(kind, str) or kind not in _SHAPES:
        raise InvalidRequest(f'{where}.type must be "stdio" or "http"', {"got": kind})
    unknown = sorted(set(server) - _SHAPES[kind])
    if unknown:
        raise InvalidRequest(f"{where} has unknown field(s) for type {kind}: {', '.join(unknown)}")
    if kind == "stdio":
        command, args = server.get("command"), server.get("args", [])
        if not isinstance(command, str) or not command.strip() or "\x00" in command:
            raise InvalidRequest(f"{where}.command must be a non-empty string (the program to run)")
        if not isinstance(args, list) or not all(isinstance(a, str) and "\x00" not in a for a in args):
            raise InvalidRequest(f"{where}.args must be a list of strings")
        return {"type": "stdio", "command": command, "args": args, "env": _strings(f"{where}.env", server)}
    if not _http_url(server.get("url")):
        raise InvalidRequest(f"{where}.url must be an http(s) URL")
    url = server["url"]
    return {"type": "http", "url": url, "headers": _strings(f"{where}.headers", server)}


def _http_url(url: Any) -> bool:
    try:
        parts = urlsplit(url) if isinstance(url, str) and "\x00" not in url else None
        return parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # an unparseable host such as "[::1"
        return False


def _strings(where: str, server: dict[str, Any]) -> dict[str, str]:
    value = server.get(where.rsplit(".", 1)[1], {})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and "\x00" not in k + v for k, v in value.items()
    ):
        raise InvalidRequest(f"{where} must be an object of strings")
    return value


def public_view(servers: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """The servers as ``GET /api/sessions/{id}`` shows them: environment and header values may be
    credentials, so only their names are shown."""
    shown = {}
    for name, server in (servers or {}).items():
        view = {k: v for k, v in server.items() if k not in ("env", "headers")}
        for secret in ("env", "headers"):
            if secret in server:
                view[secret] = sorted(server[secret])
        shown[name] = view
    return shown
