"""The real app in the test process, driven through sanic-testing's ASGI client: for contract tests that never
reach Claude Code (validation, routing, settings read from the environment), which would otherwise pay a gateway
process's start (~3.5 CPU-seconds) each. Its state starts as a gateway's does (store, event log, engine pool);
a test that needs Claude Code or the real HTTP server (timeouts, body limits, keep-alive) uses ``make_gateway``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sanic import Sanic

from ccapi.app import create_app
from ccapi.config import Settings
from tests.gateway import test_environment

if TYPE_CHECKING:  # imported by app.asgi_client when first used: its websockets import warns at collection otherwise
    from sanic_testing.testing import TestingResponse

_names = itertools.count()


class InProcessGateway:
    """``create_app`` on the offline test environment plus ``env``, answering ``request`` in this process."""

    def __init__(self, home: Path, mock_url: str | None = None, **env: str) -> None:
        settings = Settings.from_env({**test_environment(home, mock_url), **env})
        self.app = create_app(settings, name=f"ccapi_inprocess_{next(_names)}")
        # Sanic's start-up touch-up rewrites its shared protocol classes' code once per process; a second app
        # started in the same test process (another module's in-process app) failed in it with a KeyError
        self.app.config.TOUCHUP = False

    def request(self, method: str, path: str, **kwargs: Any) -> TestingResponse:
        """One request, as from a loopback client (the ASGI client's own Host would be refused)."""
        kwargs["headers"] = {"host": "127.0.0.1", **kwargs.get("headers", {})}

        async def send() -> TestingResponse:
            _, response = await self.app.asgi_client.request(method, path, **kwargs)
            assert response is not None
            return response

        return asyncio.run(send())


@contextlib.asynccontextmanager
async def serving(app: Sanic, port: int) -> AsyncIterator[None]:
    """``app`` listening on 127.0.0.1:``port`` in this test's own event loop (where a test can reach into its state
    meanwhile), started and stopped as Sanic starts and stops a server."""
    app.config.TOUCHUP = False  # see InProcessGateway
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True)
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        yield
    finally:
        await server.before_stop()
        server.close()
        await server.wait_closed()
        await server.after_stop()
