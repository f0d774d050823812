"""``GET /`` and ``GET /healthz``: what is running, and whether it can serve."""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import cast

import claude_agent_sdk
from claude_agent_sdk._cli_version import __cli_version__
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, html, json

from ccapi import __version__
from ccapi.api.console import ConsolePage
from ccapi.api.middleware import presented_key
from ccapi.api.replies import DatabaseState, Health, Info, LimitsSummary, Permissions, Sandbox

bp = Blueprint("info")
_CONSOLE = ConsolePage.load()


@bp.get("/")
async def service_info(request: Request) -> HTTPResponse:
    """Service name, versions and links; no session data, so it needs no key. A browser (whose
    ``Accept`` prefers ``text/html``) gets the console page instead, which asks for the key itself."""
    if request.accept.match("application/json", "text/html") == "text/html":
        return html(_CONSOLE.body, headers=_CONSOLE.headers)
    settings = request.app.ctx.settings
    body: Info = {
        "name": "cc-api",
        "version": __version__,
        "sdk_version": claude_agent_sdk.__version__,
        "cli_version": __cli_version__,
        "mock_model": settings.mock_model,
        "links": {
            "health": "/healthz",
            "models": "/api/models",
            "limits": "/api/limits",
            "sessions": "/api/sessions",
            "docs": "/docs",
            "openapi": "/docs/openapi.json",
        },
    }
    return json(body, headers={"Vary": "Accept"})


@bp.get("/healthz")
async def healthz(request: Request) -> HTTPResponse:
    """Liveness and readiness; open without a key so supervisors can probe it. With ``CC_API_KEY``
    set, a caller without the key learns only whether the gateway serves and how busy it is: where
    credentials live, the permission mode, the sandbox and subscription usage need the key."""
    ctx = request.app.ctx
    database: DatabaseState = "ok"
    if not await ctx.store.ping():
        database = "unreachable"
    elif ctx.events.stalled is not None:  # it reads, but has refused the event log's writes for a while
        database = "refusing_writes"
    health: Health = {
        "status": "ok" if database == "ok" else "unavailable",
        "database": database,
        "live_engines": ctx.pool.live_count,
        "max_live": ctx.pool.max_live,
        "queued_turns": ctx.pool.queued,
        "mock_model": ctx.settings.mock_model,
    }
    if _may_see_details(request):
        credentials = ctx.credentials
        # the permission policy, the sandbox and the limit board build their parts below this layer
        health["permissions"] = cast(Permissions, ctx.service.permissions.describe(ctx.settings.permission_mode))
        health["sandbox"] = cast(Sandbox, ctx.service.sandbox.describe())
        health["claude_credentials"] = {
            "found": credentials.found,
            "source": credentials.source,
            "message": credentials.message,
        }
        health["limits"] = cast(LimitsSummary, ctx.limits.health())
        health["cwd"] = _default_cwd(ctx.settings.cwd)
    return json(health, status=200 if database == "ok" else 503)


def _default_cwd(configured: Path | None) -> str:
    """Where Claude Code runs for a session made without a ``cwd``: ``CC_API_CWD``, else the directory the gateway
    runs in (Claude Code inherits it). ACP's ``session/list`` reports it for such sessions."""
    return os.path.abspath(configured or os.getcwd())


def _may_see_details(request: Request) -> bool:
    expected = request.app.ctx.settings.api_key
    if not expected:
        return True
    given = presented_key(request)
    return given is not None and hmac.compare_digest(given, expected.encode())
