"""``cc-api acp``: the gateway's durable sessions behind the Agent Client Protocol (JSON-RPC on stdio).

- ``agent``: the ACP methods, each a call to a running gateway's native API;
- ``updates``: native events → ``session/update`` notifications (live and replayed);
- ``prompt``: ACP prompt blocks ↔ native turn input;
- ``options``: modes (permission modes), the model option, the client's MCP servers.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import cast

import httpx

from ccapi.client import AsyncClient, CCAPIError
from ccapi.envfile import with_env_file

NOT_RUNNING = """cc-api acp: no CC API gateway answers at {url} ({error}).
Start one first:  cc-api start        (in the background; `cc-api run` keeps it in a terminal)
or point at another:  cc-api acp --url http://host:port   (with CC_API_KEY set if it needs one)"""


def local_url() -> str:
    """The gateway this machine's ``cc-api start`` runs (its state file), else where the settings put it."""
    from ccapi.launcher import Launcher

    launcher = Launcher.from_environment()
    state = launcher.running_state()
    return state.url if state is not None else launcher.settings.base_url


def main(url: str | None = None) -> int:
    """Serve ACP on stdin/stdout until the client closes it; 1 (with a message on stderr) when no gateway answers.
    The key is ``CC_API_KEY`` from the environment, else from ``$CC_API_HOME/cc-api.env`` as for every command."""
    key = with_env_file(os.environ).get("CC_API_KEY") or None
    return asyncio.run(_serve(url or local_url(), key))


async def _serve(url: str, api_key: str | None) -> int:
    from acp import run_agent
    from acp.interfaces import Agent

    from ccapi.acp.agent import GatewayAgent

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
        await run_agent(cast("Agent", GatewayAgent(gateway, default_mode)))
    return 0
