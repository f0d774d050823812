"""``GET /api/models``: the models a session may name."""

from __future__ import annotations

from typing import cast

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from ccapi.api.replies import Model, ModelList

bp = Blueprint("models", url_prefix="/api")


@bp.get("/models")
async def list_models(request: Request) -> HTTPResponse:
    catalog = request.app.ctx.catalog
    body: ModelList = {
        "object": "list",
        "default": request.app.ctx.settings.model,
        "data": [cast(Model, model.to_dict()) for model in catalog.models],  # built by ccapi.catalog
    }
    return json(body)
