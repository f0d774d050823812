"""``GET /api/limits``: where the subscription's usage windows stand, as Claude Code last reported."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

bp = Blueprint("limits", url_prefix="/api")


@bp.get("/limits")
async def get_limits(request: Request) -> HTTPResponse:
    return json(request.app.ctx.limits.view())
