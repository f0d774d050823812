"""Errors that reach clients. Each carries its HTTP status and the SPEC envelope type,
so every layer can raise one and the API renders it the same way."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """``param``: the request field at fault, where the code that raised it knows (``messages[0].content``); the
    native envelope leaves it out (its message names the field), OpenAI's has a place for it (``error.param``)."""

    status = 500
    type = "internal"

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.param = param

    def envelope(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class InvalidRequest(ApiError):
    status, type = 400, "invalid_request"


class Unauthorized(ApiError):
    status, type = 401, "unauthorized"


class Forbidden(ApiError):
    status, type = 403, "forbidden"


class NotFound(ApiError):
    status, type = 404, "not_found"


class Conflict(ApiError):
    status, type = 409, "conflict"


class PayloadTooLarge(ApiError):
    status, type = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, type = 415, "invalid_request"


class Unavailable(ApiError):
    status, type = 503, "unavailable"
