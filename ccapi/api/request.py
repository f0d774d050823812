"""Small parsing helpers shared by the route handlers."""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any

import orjson
from sanic import Request

from ccapi.errors import InvalidRequest, UnsupportedMediaType

MAX_DEPTH = 200
"""Deepest nesting a body may have. orjson writes at most 255 levels, and what a body carries is
stored a few levels down (an event's data, a transcript line): deeper was a 500 at the write."""
_LONG_NUMBER = re.compile(rb"\d{20}")
_PLAIN_INT = re.compile(r"-?[0-9]{1,20}")


def json_body(request: Request) -> Any:
    """The body as JSON; an empty body is ``None``. Malformed JSON, invalid UTF-8, nesting deeper
    than ``MAX_DEPTH`` and integers beyond 64 bits (which orjson reads as floats, so a client's
    ``2**70`` came back as ``1.18e21``) are 400s; a compressed body (``Content-Encoding``) a 415."""
    body = request.body
    if not body:
        return None
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):  # read as JSON, a gzipped body was a 400 about invalid UTF-8
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding[:40]!r} is not supported: send the request body uncompressed",
            headers={"Accept-Encoding": "identity"},
        )
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc.msg}") from None
    if value is None:  # ``null`` is not an empty body: no route takes it
        raise InvalidRequest("the request body must be a JSON object")
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise InvalidRequest(f"the request body is nested more than {MAX_DEPTH} levels deep")
    if _LONG_NUMBER.search(body):  # rare: only then parse again, seeing the integers
        json.loads(body, parse_int=_integer)
    return value


def _integer(text: str) -> int:
    value = int(text)
    if not -(2**63) <= value < 2**64:
        raise InvalidRequest(f"integers in the request body must fit in 64 bits; {text[:30]} does not")
    return value


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item if isinstance(child, (list, dict)))
    return deepest


def int_arg(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.args.get(name)
    return default if raw is None else plain_int(raw, name, minimum, maximum)


def names_arg(request: Request, name: str, known: Collection[str], what: str) -> list[str] | None:
    """A filter's names: ``name=a,b``, or ``name=a&name=b`` (how many clients write a list; reading only the first
    left the rest out without a word); ``None`` when none is given. A name not in ``known`` is a 400 (a typo would
    read as "none of those yet")."""
    names = [item for raw in request.args.getlist(name, []) for item in raw.split(",") if item]
    unknown = [item for item in names if item not in known]
    if unknown:
        raise InvalidRequest(f"{name} names no {what}: {', '.join(unknown)[:200]}", {"known": sorted(known)})
    return names or None


def plain_int(raw: str, name: str, minimum: int, maximum: int) -> int:
    """``raw`` as written in ASCII digits (Python's ``int`` also takes ``1_0``, `` +1 `` and other scripts' digits,
    so a cursor a client mistyped was read as another one)."""
    if _PLAIN_INT.fullmatch(raw) is None:
        raise InvalidRequest(f"{name} must be an integer")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise InvalidRequest(f"{name} must be between {minimum} and {maximum}")
    return value


def wants_event_stream(request: Request) -> bool:
    """Whether the ``Accept`` header prefers Server-Sent Events to the JSON reply: ``text/event-stream`` named,
    acceptable (``q`` above 0), rated above ``application/json`` and no lower than a wildcard. A client that takes
    either (``application/json, text/event-stream``, as MCP clients send) gets the default reply."""
    rated = _rated(request.headers.get("accept", ""))
    sse = rated.get("text/event-stream", 0.0)
    wildcard = max(rated.get("*/*", 0.0), rated.get("text/*", 0.0))
    return sse > 0 and sse > rated.get("application/json", 0.0) and sse >= wildcard


def _rated(accept: str) -> dict[str, float]:
    """The media ranges of an ``Accept`` header and their ``q`` (1 unless said; an unreadable ``q`` is 0)."""
    rated: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        if media:
            rated[media.lower()] = max(q, rated.get(media.lower(), 0.0))
    return rated
