"""One error envelope for everything, including Sanic's own 404/405/413 and crashes; under ``/v1/`` the compat
formats' own envelopes, spelled from it."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from sanic import HTTPResponse, Request
from sanic.exceptions import RequestCancelled, SanicException
from sanic.handlers import ErrorHandler
from sanic.response import json

from ccapi.api import compat
from ccapi.api.replies import Error, ErrorType
from ccapi.errors import ApiError

log = structlog.get_logger(__name__)

CLIENT_CLOSED = 499  # nginx's status for "the client closed the connection first"; only ever logged
_SANIC_TYPES: dict[int, ErrorType] = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    405: "invalid_request",
    408: "invalid_request",
    413: "payload_too_large",
}


def error_response(status: int, type_: ErrorType, message: str, headers: dict[str, str] | None = None) -> HTTPResponse:
    body: Error = {"error": {"type": type_, "message": message}}
    return json(body, status=status, headers=headers, dumps=_dumps)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class EnvelopeErrorHandler(ErrorHandler):
    """Renders every exception as the SPEC envelope, or on a compat path as its format's; never a traceback, never
    HTML. One handler for both, not a blueprint's: a path no route matched (``404``, ``405``) has no blueprint."""

    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        native = self._native(request, exception)
        if compat.serves(getattr(request, "path", "")):
            return compat.respelled_error(request, exception, native)
        return native

    def _native(self, request: Request, exception: Exception) -> HTTPResponse:
        if isinstance(exception, RequestCancelled):  # the client hung up; its turn runs on, nothing failed
            log.info("client_disconnected", path=getattr(request, "path", None))
            return error_response(CLIENT_CLOSED, "invalid_request", "the client closed the connection")
        if isinstance(exception, ApiError):
            return json(exception.envelope(), status=exception.status, headers=exception.headers, dumps=_dumps)
        if isinstance(exception, SanicException):
            status = exception.status_code
            if status >= 500:
                log.error("sanic_error", status=status, path=getattr(request, "path", None), error=str(exception))
                return error_response(status, "internal", "internal error")
            message = str(exception) if status != 404 else f"no route for {request.method} {request.path}"
            return error_response(
                status,
                _SANIC_TYPES.get(status, "invalid_request"),
                message,
                headers=getattr(exception, "headers", None),
            )
        log.exception("unhandled_error", path=getattr(request, "path", None))
        return error_response(500, "internal", "internal error; the gateway log has the details")
