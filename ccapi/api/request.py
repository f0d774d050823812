"""Small parsing helpers shared by the route handlers."""

from __future__ import annotations

from typing import Any

import orjson
from sanic import Request

from ccapi.errors import InvalidRequest


def json_body(request: Request) -> Any:
    """The body as JSON; an empty body is ``None``. Malformed JSON or invalid UTF-8 is a 400."""
    if not request.body:
        return None
    try:
        return orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc.msg}") from None


def int_arg(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer") from None
    if not minimum <= value <= maximum:
        raise InvalidRequest(f"{name} must be between {minimum} and {maximum}")
    return value


def wants_event_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")
