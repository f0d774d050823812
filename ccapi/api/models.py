"""``GET /api/models``: the models a session may name."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

bp = Blueprint("models", url_prefix="/api")


@bp.get("/models")
async def list_models(request: Request) -> HTTPResponse:
    catalog = request.app.ctx.catalog
    return json(
        {
            "object": "list",
            "default": request.app.ctx.settings.model,
            "data": [model.to_dict() for model in catalog.models],
        }
    )
