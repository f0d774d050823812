"""``cc-api acp``: the gateway's durable sessions behind the Agent Client Protocol (JSON-RPC on stdio).

- ``agent``: the ACP methods, each a call to a running gateway's native API;
- ``updates``: native events → ``session/update`` notifications (live and replayed);
- ``prompt``: ACP prompt blocks ↔ native turn input;
- ``commands``: the slash commands it advertises and runs itself (``/compact``);
- ``options``: modes (permission modes), the model option, the client's MCP servers;
- ``framing``: the client's lines checked before the library reads them.
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast

import httpx

from ccapi.client import AsyncClient, CCAPIError

NOT_RUNNING = """cc-api acp: no CC API gateway answers at {url} ({error}).
Start one first:  cc-api start        (in the background; `cc-api run` keeps it in a terminal)
or point at another:  cc-api acp --url http://host:port   (with CC_API_KEY set if it needs one)"""


def serve(url: str, api_key: str | None) -> int:
    """Serve ACP on stdin/stdout until the client closes it; 1 (with a message on stderr) when no gateway answers.
    ``cc-api acp`` (``ccapi.daemon.cli``) finds the gateway and its key."""
    return asyncio.run(_serve(url, api_key))


async def _serve(url: str, api_key: str | None) -> int:
    from acp import run_agent
    from acp.core import DEFAULT_STDIO_BUFFER_LIMIT_BYTES
    from acp.interfaces import Agent
    from acp.stdio import stdio_streams

    from ccapi.acp.agent import GatewayAgent
    from ccapi.acp.framing import checked_lines

    async with AsyncClient(url, api_key) as gateway:
        try:
            health = await gateway.health()
            await gateway.models()  # an /api route: a wrong or missing CC_API_KEY shows here, not mid-session
        except httpx.TransportError as exc:
            print(NOT_RUNNING.format(url=url, error=type(exc).__name__), file=sys.stderr)
            return 1
        except CCAPIError as exc:
            hint = " (set CC_API_KEY to the gateway's key)" if exc.status == 401 else ""
            print(f"cc-api acp: the gateway at {url} refused: {exc}{hint}", file=sys.stderr)
            return 1
        default_mode = (health.get("permissions") or {}).get("default_mode", "default")
        # The library routes by method name and answers "method not found" for what an agent lacks, so the
        # agent implements only what it supports rather than the whole ``acp.interfaces.Agent`` protocol.
        stdin, stdout = await stdio_streams(limit=DEFAULT_STDIO_BUFFER_LIMIT_BYTES)
        lines, pump, answered = checked_lines(stdin, stdout, DEFAULT_STDIO_BUFFER_LIMIT_BYTES)
        try:
            await run_agent(cast("Agent", GatewayAgent(gateway, default_mode)), stdout, lines, observers=[answered])
        finally:
            pump.cancel()
    return 0
