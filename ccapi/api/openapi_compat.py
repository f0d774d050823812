"""The OpenAPI description of the compat routes (``/v1/...``), merged into the written
document by ``ccapi.api.openapi``. Bodies are described as loosely as the providers'
own APIs accept them; the reply and error shapes are each format's own. Both are declared
once, in ``ccapi.compat.bodies`` and ``ccapi.compat.replies``: their schemas come from there."""

from __future__ import annotations

from typing import Any

from ccapi.api.openapi_shapes import ref, schemas
from ccapi.compat.bodies import COMPAT_BODIES
from ccapi.compat.parsing import AFFINITY_HEADERS
from ccapi.compat.replies import COMPAT_REPLIES

JSON = "application/json"
SSE = "text/event-stream"
STRING = {"type": "string"}

#: One Server-Sent Event in the format's own shapes: ``data`` is the event's JSON (or ``[DONE]``).
_STREAM_FRAME = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": STRING,
        "data": {"type": "string", "description": "the format's event object as JSON"},
        "id": STRING,
    },
}


def _errors(schema: str, *statuses: int) -> dict[str, Any]:
    described = {
        400: "Invalid request, or one the model's API refused as invalid (OpenAI code context_length_exceeded when "
        "the conversation no longer fits the model's context window)",
        401: "Missing or wrong API key",
        404: "Unknown model, session or response",
        409: "The session is in another state than the request assumes",
        413: "Body too large",
        422: "The turn reached a round limit (max_turns); the message names it",
        429: "A Claude subscription usage window is spent (rate_limited); Retry-After says when it "
        "resets, plus x-ratelimit-* (OpenAI) or anthropic-ratelimit-unified-* (Anthropic) headers",
        502: "The turn failed upstream; x-should-retry: false when the model's API failed (Claude Code has retried "
        "it already)",
        503: "Every live Claude session is busy (see Retry-After), the gateway is stopping, or its store "
        "refuses writes",
    }
    return {
        str(s): {"description": described[s], "content": {JSON: {"schema": ref(schema)}}}
        for s in sorted({*statuses, 401, 413})
    }


#: On a compat reply while a subscription window is in warning, for the client to log.
_LIMIT_HEADERS = {
    f"x-cc-ratelimit-{name}": {"schema": STRING, "description": text}
    for name, text in (
        ("status", "allowed_warning (or rejected): only while a usage window is in warning"),
        ("window", "five_hour, seven_day, ..."),
        ("utilization", "fraction used, 0-1"),
        ("reset", "when the window resets (ISO 8601)"),
    )
}


def _reply(schema: str, description: str) -> dict[str, Any]:
    return {
        "200": {
            "description": description,
            "headers": {"x-cc-session-id": {"schema": STRING}, **_LIMIT_HEADERS},
            "content": {JSON: {"schema": ref(schema)}, SSE: {"schema": _STREAM_FRAME}},
        }
    }


def _operation(summary: str, body: str, reply: str, error: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "tags": ["compat"],
        "parameters": [
            {
                "name": "x-cc-session-id",
                "in": "header",
                "required": False,
                "schema": STRING,
                "description": "pin the request to this native session",
            },
            {
                "name": "x-cc-builtin-tools",
                "in": "header",
                "required": False,
                "schema": STRING,
                "description": "all, none or Read,Grep: Claude Code's built-in tools for the session "
                "this request creates (default CC_API_COMPAT_BUILTIN_TOOLS, none)",
            },
            *(
                {
                    "name": name,
                    "in": "header",
                    "required": False,
                    "schema": STRING,
                    "description": "the client's own conversation key: tried first, verified by history",
                }
                for name in AFFINITY_HEADERS
            ),
        ],
        "requestBody": {"required": True, "content": {JSON: {"schema": ref(body)}}},
        "responses": {
            **_reply(reply, "The reply (JSON, or SSE with stream: true)"),
            **_errors(error, 400, 404, 409, 422, 429, 502, 503),
        },
    }


COMPAT_SCHEMAS: dict[str, Any] = schemas((*COMPAT_BODIES, *COMPAT_REPLIES))

COMPAT_PATHS: dict[str, Any] = {
    "/v1/models": {
        "get": {
            "summary": "Models, in OpenAI's list shape (Anthropic's fields too)",
            "tags": ["compat"],
            "responses": {
                "200": {"description": "Models", "content": {JSON: {"schema": ref("CompatModelList")}}},
                **_errors("OpenAIError"),
            },
        }
    },
    "/v1/models/{model_id}": {
        "get": {
            "summary": "One model, by id or alias, with its context window and output limit",
            "tags": ["compat"],
            "parameters": [{"name": "model_id", "in": "path", "required": True, "schema": STRING}],
            "responses": {
                "200": {"description": "The model", "content": {JSON: {"schema": ref("CompatModel")}}},
                **_errors("OpenAIError", 404),
            },
        }
    },
    "/v1/chat/completions": {
        "post": _operation(
            "OpenAI Chat Completions on a native session", "ChatCompletionRequest", "ChatCompletion", "OpenAIError"
        )
    },
    "/v1/responses": {
        "post": _operation("OpenAI Responses on a native session", "ResponseRequest", "Response", "OpenAIError")
    },
    "/v1/messages": {
        "post": _operation("Anthropic Messages on a native session", "MessagesRequest", "Message", "AnthropicError")
    },
}
