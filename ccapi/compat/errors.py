"""Each wire format's own error envelope, from the gateway's one error vocabulary.

Compat clients (the ``openai`` and ``anthropic`` SDKs, Hermes, OpenClaw) parse errors in
their provider's shape; the native envelope would reach their users as an unreadable
blob. The HTTP status stays the native one.
"""

from __future__ import annotations

import re
from typing import Any

from ccapi.compat.replies import AnthropicError, AnthropicErrorType, OpenAIError, OpenAIErrorType
from ccapi.errors import ApiError, Conflict, NotFound, Unavailable
from ccapi.limits import RateLimited, epoch
from ccapi.sessions.lease import RETRY_AFTER_SECONDS

_OPENAI_TYPES: dict[str, OpenAIErrorType] = {
    "invalid_request": "invalid_request_error",
    "unauthorized": "authentication_error",
    "forbidden": "permission_error",
    "not_found": "not_found_error",
    "model_not_found": "not_found_error",
    "conflict": "invalid_request_error",
    "payload_too_large": "invalid_request_error",
    "unavailable": "server_error",
    "upstream_error": "server_error",
    "turn_limit": "invalid_request_error",
    "rate_limited": "rate_limit_exceeded",
    "previous_response_not_found": "invalid_request_error",
    "upstream_invalid_request": "invalid_request_error",
    "context_length_exceeded": "invalid_request_error",
    "internal": "server_error",
}
#: The request field an error type is always about (``error.param``); others name theirs (``param_of``).
_OPENAI_PARAMS = {"previous_response_not_found": "previous_response_id"}
_ANTHROPIC_TYPES: dict[str, AnthropicErrorType] = {
    "invalid_request": "invalid_request_error",
    "unauthorized": "authentication_error",
    "forbidden": "permission_error",
    "not_found": "not_found_error",
    "model_not_found": "not_found_error",
    "conflict": "invalid_request_error",
    "payload_too_large": "request_too_large",
    "unavailable": "overloaded_error",
    "upstream_error": "api_error",
    "turn_limit": "invalid_request_error",
    "rate_limited": "rate_limit_error",
    "upstream_invalid_request": "invalid_request_error",
    "context_length_exceeded": "invalid_request_error",
    "internal": "api_error",
}
#: How Anthropic (``prompt is too long: N tokens > M maximum``) and Claude Code (``Prompt is too long · …``) say the
#: conversation no longer fits the model's context window.
_PROMPT_TOO_LONG = re.compile(r"prompt is too long", re.IGNORECASE)


#: On a ``502`` for a turn that failed upstream: Claude Code has retried the model's API already
#: (``CC_API_UPSTREAM_RETRIES``), so the ``openai`` and ``anthropic`` SDKs, which obey this header, do not send the
#: request twice more (each retry a turn in a new session, as long again). Other failures stay retriable.
NO_RETRY = {"x-should-retry": "false"}


class TurnFailed(ApiError):
    """The session's turn failed upstream: natively a ``failed`` turn, for a compat
    client an error response, as its provider would answer."""

    status, type = 502, "upstream_error"


def openai_error(type_: str, message: str, param: str | None = None) -> OpenAIError:
    """``{"error": {"message", "type", "param", "code"}}``; ``code`` is the native type."""
    return {
        "error": {
            "message": message,
            "type": _OPENAI_TYPES.get(type_, "server_error"),
            "param": param or _OPENAI_PARAMS.get(type_),
            "code": type_,
        }
    }


def anthropic_error(type_: str, message: str) -> AnthropicError:
    """``{"type": "error", "error": {"type", "message"}}``."""
    return {"type": "error", "error": {"type": _ANTHROPIC_TYPES.get(type_, "api_error"), "message": message}}


class ModelNotFound(NotFound):
    """A model no name of the catalog's: OpenAI's ``model_not_found`` code (Anthropic's ``not_found_error``).
    ``param``: the request field that named it, none for a URL's (``GET /v1/models/{id}``)."""

    type = "model_not_found"

    def __init__(self, message: str, details: dict[str, Any] | None = None, param: str | None = "model") -> None:
        super().__init__(message, details, param=param)


def param_of(exception: Exception) -> str | None:
    """The request field ``exception`` is about, where the code that raised it knew (``ApiError.param``)."""
    return exception.param if isinstance(exception, ApiError) else None


class UpstreamInvalidRequest(ApiError):
    """The model's API refused the turn's request as invalid (a 400): what the client sent cannot be answered as it
    stands, so it is the client's 400 — not a server fault that its SDK would send again, twice, to the same end."""

    status, type = 400, "upstream_invalid_request"


class ContextLengthExceeded(UpstreamInvalidRequest):
    """The conversation no longer fits the model's context window (and Claude Code could not compact it): OpenAI's
    ``context_length_exceeded`` code, and Anthropic's ``invalid_request_error`` with its ``prompt is too long``
    words, which agent clients read as the signal to compact their own history."""

    type = "context_length_exceeded"


class PreviousResponseNotFound(ApiError):
    """``previous_response_id`` names no response that can be continued: OpenAI's code for it,
    which its SDKs and OpenClaw answer by sending the whole history instead."""

    status, type = 400, "previous_response_not_found"

    def __init__(self, response_id: object) -> None:
        super().__init__(f"Previous response with id {response_id!r} not found.")


class TurnLimit(ApiError):
    """The turn reached a round limit of the gateway's (``max_turns``): not an upstream fault
    to retry, nor truncated output, but a limit the client is told about by name."""

    status, type = 422, "turn_limit"


def failure(error: dict[str, Any] | None) -> ApiError:
    error = error or {}
    message = str(error.get("message") or "the turn failed")
    if error.get("type") == "max_turns":
        return TurnLimit(message, {"reason": "max_turns"})
    if error.get("type") == "rate_limited":
        return RateLimited.from_error(error)
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if error.get("type") in ("cancelled", "unavailable"):  # a queued turn withdrawn, or with no slot to start in
        return Unavailable(message, headers=retry)
    if error.get("type") == "conflict":  # a queued turn whose session another host drives now
        return Conflict(message, headers=retry)
    if error.get("type") == "upstream_error" and error.get("status") == 400:  # Claude Code's reason: any
        refused = ContextLengthExceeded if _PROMPT_TOO_LONG.search(message) else UpstreamInvalidRequest
        return refused(message, {"reason": error.get("reason"), "upstream_status": 400})
    if error.get("type") == "upstream_error":  # Claude Code has retried the model's API already
        return TurnFailed(message, {"reason": "upstream_error"}, headers=dict(NO_RETRY))
    return TurnFailed(message, {"reason": error.get("type")})


def rate_limit_headers(exc: RateLimited, anthropic: bool) -> dict[str, str]:
    """The format's own rate-limit headers on a 429, besides ``Retry-After``: Anthropic's
    unified subscription headers, or OpenAI's ``x-ratelimit-*`` reset and remaining count."""
    if anthropic:
        headers = {"anthropic-ratelimit-unified-status": "rejected"}
        if exc.window:
            headers["anthropic-ratelimit-unified-representative-claim"] = exc.window
        if exc.resets_at:
            headers["anthropic-ratelimit-unified-reset"] = str(epoch(exc.resets_at))
        return headers
    return {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": f"{exc.retry_after}s"}
