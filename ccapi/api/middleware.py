"""Request middleware: API-key auth, request ids, one JSON log line per request, and a
deadline on receiving the request body."""

from __future__ import annotations

import asyncio
import hmac
import re
import time
import uuid
from typing import Any

import structlog
from sanic import HTTPResponse, Request
from sanic.exceptions import BadRequest, RequestTimeout
from sanic.http import Http

from ccapi.errors import Unauthorized
from ccapi.observability.logs import log_soon

log = structlog.get_logger("ccapi.http")

OPEN_PATHS = frozenset({"/", "/healthz"})
#: ``NONE`` is Sanic's stand-in for a request whose head never fully arrived (timed out or
#: malformed): it has no route and no headers, and only carries that error's answer.
_UNGUARDED_METHODS = frozenset({"OPTIONS", "NONE"})
_MAX_REQUEST_ID = 200
#: Where agent clients look for a local model server's own API (Hermes tries each on every call: Ollama's
#: ``/api/tags``, LM Studio's ``/api/v1/models``, llama.cpp's ``/props``, vLLM's ``/version``). The gateway is
#: none of those, so it answers ``404`` as before (a client then falls back to ``/v1/models``), but logs those
#: answers at debug level: at info they filled the log with a few lines of noise per call.
SERVER_PROBES = frozenset({"/api/tags", "/api/v1/models", "/v1/props", "/props", "/version"})


class DeadlineRequest(Request):
    """A request whose whole body must arrive within ``REQUEST_TIMEOUT`` seconds.

    Sanic reads the body after routing, under the (day-long) response timeout, and its own
    ``REQUEST_TIMEOUT`` only bounds the quiet gap between two packets of the head; so a client
    trickling a body a few bytes per second would hold a connection for as long as it liked.
    """

    def __init__(self, url_bytes: bytes, *args: Any, **kwargs: Any) -> None:
        try:
            super().__init__(url_bytes, *args, **kwargs)
        except BadRequest:
            if kwargs.get("method") != "NONE":
                raise
            # Sanic's stand-in request for answering a bad head: a URL with control bytes failed
            # again there and the client got no answer at all, only a traceback in the log
            try:
                super().__init__(_escaped_url(url_bytes), *args, **kwargs)
            except BadRequest:
                # a target that is no path at all (``CONNECT host:443``, ``GET foo``, ``GET ?``): the same,
                # so it is answered (and logged) as that text under ``/``
                super().__init__(_as_path(url_bytes), *args, **kwargs)

    async def receive_body(self) -> None:
        if _arrived(self.stream):  # most requests: nothing to wait for, so no deadline task either
            await super().receive_body()
            return
        timeout = self.app.config.REQUEST_TIMEOUT
        try:
            await asyncio.wait_for(super().receive_body(), timeout)
        except TimeoutError:
            if isinstance(self.stream, Http):  # answer, then close: never drain the rest of a trickle
                self.stream.keep_alive = False
                self.stream.request_body = None
            raise RequestTimeout(f"the request body did not arrive within {timeout:g} s") from None


def _arrived(stream: object) -> bool:
    """The whole body (or none) is in the connection's buffer already: reading it cannot wait on the client."""
    if not isinstance(stream, Http) or stream.expecting_continue:
        return False
    body = stream.request_body
    return not body or (body is True and len(stream.recv_buffer) >= (stream.request_bytes_left or 0))


def _escaped_url(url: bytes) -> bytes:
    """``url`` with control bytes and spaces percent-encoded: parseable, and safe to log."""
    return re.sub(rb"[\x00-\x20\x7f]", lambda match: b"%%%02X" % match[0][0], url)


def _as_path(url: bytes) -> bytes:
    """``url`` as a path: ``/`` and every byte but letters, digits and ``/._~-`` percent-encoded. Whatever
    it held, this parses (``_escaped_url`` of ``evil.com:443`` or ``foo`` does not: no path, no scheme)."""
    return b"/" + re.sub(rb"[^A-Za-z0-9/._~-]", lambda match: b"%%%02X" % match[0][0], url).lstrip(b"/")


def presented_key(request: Request) -> bytes | None:
    """The key as bytes: both headers stripped alike, and undecodable header bytes (which Sanic
    hands on as surrogates) kept comparable instead of failing to encode."""
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    key = token if scheme.lower() == "bearer" and token else request.headers.get("x-api-key")
    return key.strip().encode(errors="surrogateescape") if key is not None else None


async def authenticate(request: Request) -> None:
    """Every route except ``/`` and ``/healthz`` needs the key when ``CC_API_KEY`` is set —
    including ones added later and the OpenAPI docs, so nothing slips through."""
    expected = request.app.ctx.settings.api_key
    if not expected or request.path in OPEN_PATHS or request.method in _UNGUARDED_METHODS:
        return
    given = presented_key(request)
    if given is None or not hmac.compare_digest(given, expected.encode()):
        raise Unauthorized("missing or wrong API key: send 'Authorization: Bearer <CC_API_KEY>' or 'x-api-key'")


async def start_request(request: Request) -> None:
    request.ctx.started = time.perf_counter()
    request.ctx.request_id = _request_id(request.headers.get("x-request-id"))


def _request_id(given: str | None) -> str:
    """The client's ``x-request-id`` when it is a sane token; otherwise (undecodable bytes,
    control characters, a novel) a fresh one, so the request is still logged and echoed."""
    if given and len(given) <= _MAX_REQUEST_ID and given.isascii() and given.isprintable():
        return given
    return uuid.uuid4().hex


async def finish_request(request: Request, response: HTTPResponse) -> None:
    request_id = getattr(request.ctx, "request_id", None)
    if request_id:
        response.headers["x-request-id"] = request_id
    response.headers.setdefault("x-content-type-options", "nosniff")
    response.headers.setdefault("x-frame-options", "DENY")  # no answer is a page another site may frame
    started = getattr(request.ctx, "started", None)
    fields = {
        "request_id": request_id,
        "method": request.method,
        "path": request.path,
        "status": response.status,
        "body_bytes": len(request.body or b""),
        "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
    }
    if response.status == 404 and request.path in SERVER_PROBES:
        log.debug("request", **fields)
    else:
        log_soon(log, "request", **fields)
