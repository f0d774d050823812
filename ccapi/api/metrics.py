"""``GET /metrics``: the process's figures in the Prometheus text format (needs the key when one is set)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from ccapi.observability.metrics import CONTENT_TYPE

bp = Blueprint("metrics")


@bp.get("/metrics")
async def metrics(request: Request) -> HTTPResponse:
    return raw(request.app.ctx.metrics.render(), content_type=CONTENT_TYPE)
