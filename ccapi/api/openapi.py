"""The OpenAPI document: every route, body, response and the error envelope.

Routes are written as data (here and in ``openapi_compat``) rather than inferred from handlers;
the native request bodies are generated from the classes the server validates them with
(``ccapi.sessions.bodies``) and the replies from the types its renderers are checked against
(``ccapi.api.replies``), so neither can drift. The schema fuzz test
holds the server to the whole; ``ccapi.api.reference`` serves it at ``/docs`` and
``/docs/openapi.json``.
"""

from __future__ import annotations

from typing import Any

from ccapi import __version__
from ccapi.api.openapi_compat import COMPAT_PATHS, COMPAT_SCHEMAS
from ccapi.api.openapi_shapes import ref, schemas
from ccapi.api.replies import REPLIES
from ccapi.events import EventType
from ccapi.sessions.bodies import BODIES

JSON = "application/json"
SSE = "text/event-stream"


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    described = {
        400: "Invalid request",
        401: "Missing or wrong API key",
        403: "Refused: a Host that does not name the gateway, or a cross-origin browser request",
        404: "Not found",
        409: "Conflict with the session's state",
        413: "Body too large",
        415: "A request body that is not application/json",
        429: "A Claude subscription usage window is spent (rate_limited): no turn starts until it "
        "resets; Retry-After and details.resets_at say when",
        503: "Every live Claude session is busy (see Retry-After), the gateway is stopping, or its store "
        "refuses writes",
    }
    common = (401, 403, 413, 415) if 401 not in statuses else ()
    return {str(s): _json(ref("Error"), described[s]) for s in sorted({*statuses, *common})}


_STRING = {"type": "string"}
_SEQ = {"type": "integer", "minimum": 0, "maximum": 2**62}

_SESSION_ID = {"name": "session_id", "in": "path", "required": True, "schema": _STRING}
_TURN_ID = {"name": "turn_id", "in": "path", "required": True, "schema": _STRING}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
#: One SSE frame: ``id: <seq>``, ``event: <type>``, ``data: <Event as JSON>``.
_SSE_RESPONSE = {
    SSE: {
        "schema": {
            "type": "object",
            "required": ["id", "event", "data"],
            "properties": {
                "id": {"type": "string", "pattern": "^[0-9]+$"},
                "event": {"type": "string", "enum": [e.value for e in EventType]},
                "data": {"type": "string", "description": "the Event object as JSON"},
            },
        }
    }
}


def _turn_replies(accepts_background: bool = True) -> dict[str, Any]:
    replies: dict[str, Any] = {
        "200": {
            "description": "The turn once it ends or pauses on client tool calls or "
            "permission requests (JSON), or its events (SSE with stream)",
            "content": {JSON: {"schema": ref("Turn")}, **_SSE_RESPONSE},
        }
    }
    if accepts_background:
        replies["202"] = _json(ref("TurnAccepted"), "Started in the background")
    return replies


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    parameters: list[Any] | None = None,
    body: str | None = None,
    tags: tuple[str, ...] = ("sessions",),
    body_required: bool = True,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": list(tags),
        "responses": responses,
        "parameters": parameters or [],
    }
    if "info" in tags:
        op["security"] = []  # readable without the key: it reveals no session data
    if body:
        op["requestBody"] = {"required": body_required, "content": {JSON: {"schema": ref(body)}}}
    return op


PATHS: dict[str, Any] = {
    "/": {
        "get": _op(
            "Service info; a browser (Accept: text/html) gets the console page",
            {
                "200": {
                    "description": "Versions and links, or the console page",
                    "content": {JSON: {"schema": ref("Info")}, "text/html": {"schema": {"type": "string"}}},
                }
            },
            tags=("info",),
        )
    },
    "/healthz": {
        "get": _op(
            "Liveness and readiness",
            {"200": _json(ref("Health"), "Ready"), "503": _json(ref("Health"), "Database unreachable")},
            tags=("info",),
        )
    },
    "/docs": {
        "get": _op(
            "This reference as one page (no script, nothing loaded from elsewhere)",
            {
                "200": {"description": "The API reference", "content": {"text/html": {"schema": {"type": "string"}}}},
                **_errors(),
            },
            tags=("docs",),
        )
    },
    "/docs/openapi.json": {
        "get": _op(
            "This OpenAPI document",
            {"200": _json({"type": "object"}, "The OpenAPI 3.0 document"), **_errors()},
            tags=("docs",),
        )
    },
    "/metrics": {
        "get": _op(
            "The gateway's figures in the Prometheus text format (per process)",
            {
                "200": {
                    "description": "Prometheus exposition format 0.0.4",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **_errors(),
            },
            tags=("metrics",),
        )
    },
    "/api/limits": {
        "get": _op(
            "Subscription usage windows as Claude Code last reported them",
            {"200": _json(ref("Limits"), "The auth mode and the latest state per window"), **_errors()},
            tags=("limits",),
        )
    },
    "/api/models": {
        "get": _op("Known models", {"200": _json(ref("ModelList"), "Models"), **_errors(401)}, tags=("models",))
    },
    "/api/sessions": {
        "get": _op(
            "List sessions, newest first",
            {"200": _json(ref("SessionList"), "A page"), **_errors(400)},
            parameters=[
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                {"name": "after", "in": "query", "schema": _STRING},
                {
                    "name": "status",
                    "in": "query",
                    "schema": _STRING,
                    "description": "only sessions in these statuses (idle, running, requires_action, "
                    "requires_approval): comma-separated, or the parameter repeated",
                },
            ],
        ),
        "post": _op(
            "Create a session",
            {"201": _json(ref("Session"), "Created"), **_errors(400, 503)},
            body="NewSession",
            body_required=False,
        ),
    },
    "/api/sessions/{session_id}": {
        "get": _op(
            "Read a session", {"200": _json(ref("Session"), "The session"), **_errors(404)}, parameters=[_SESSION_ID]
        ),
        "patch": _op(
            "Change the spending cap, model, permission mode, system prompt, output schema or webhook (for the next "
            "turn); a 409 while another gateway host runs a turn of the session",
            {"200": _json(ref("Session"), "The session"), **_errors(400, 404, 409, 503)},
            parameters=[_SESSION_ID],
            body="SessionChanges",
        ),
        "delete": _op(
            "Delete a session and everything it owns",
            {"200": _json(ref("Deleted"), "Deleted"), **_errors(404, 503)},
            parameters=[_SESSION_ID],
        ),
    },
    "/api/sessions/{session_id}/webhooks": {
        "get": _op(
            "The session's webhook deliveries: state, attempts, last error",
            {
                "200": _json(ref("WebhookDeliveryList"), "A page, in event order or newest first"),
                **_errors(400, 404),
            },
            parameters=[
                _SESSION_ID,
                {
                    "name": "order",
                    "in": "query",
                    "schema": {"type": "string", "enum": ["asc", "desc"], "default": "asc"},
                    "description": "asc: in event order; desc: newest first (page on with before=last_seq)",
                },
                {"name": "after", "in": "query", "schema": _SEQ, "description": "deliveries of later events only"},
                {
                    "name": "before",
                    "in": "query",
                    "schema": {**_SEQ, "minimum": 1},
                    "description": "deliveries of earlier events only",
                },
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
            ],
        )
    },
    "/api/sessions/{session_id}/turns": {
        "post": _op(
            "Send new input",
            {**_turn_replies(), **_errors(400, 404, 409, 429, 503)},
            parameters=[_SESSION_ID, _IDEMPOTENCY],
            body="TurnInput",
        )
    },
    "/api/sessions/{session_id}/turns/{turn_id}": {
        "get": _op(
            "Read a turn", {"200": _json(ref("Turn"), "The turn"), **_errors(404)}, parameters=[_SESSION_ID, _TURN_ID]
        )
    },
    "/api/sessions/{session_id}/tool-results": {
        "post": _op(
            "Continue the paused turn with client tool results",
            {**_turn_replies(), **_errors(400, 404, 409, 503)},
            parameters=[_SESSION_ID, _IDEMPOTENCY],
            body="ToolResults",
        )
    },
    "/api/sessions/{session_id}/permissions": {
        "post": _op(
            "Allow or deny the built-in tool calls the paused turn waits on",
            {**_turn_replies(), **_errors(400, 404, 409, 503)},
            parameters=[_SESSION_ID, _IDEMPOTENCY],
            body="Decisions",
        )
    },
    "/api/sessions/{session_id}/interrupt": {
        "post": _op(
            "Stop the running turn, or withdraw a queued one",
            {"200": _json(ref("Turn"), "The interrupted (or withdrawn) turn"), **_errors(400, 404, 409)},
            parameters=[_SESSION_ID],
            body="InterruptRequest",
            body_required=False,
        )
    },
    "/api/sessions/{session_id}/compact": {
        "post": _op(
            "Compact the conversation now",
            {"200": _json(ref("Compaction"), "Tokens before and after"), **_errors(400, 404, 409, 429, 503)},
            parameters=[_SESSION_ID],
            body="CompactRequest",
            body_required=False,
        )
    },
    "/api/sessions/{session_id}/fork": {
        "post": _op(
            "Branch the conversation at a turn into a new session (nothing is replayed)",
            {"201": _json(ref("Session"), "The new session"), **_errors(400, 404, 409, 503)},
            parameters=[_SESSION_ID],
            body="ForkRequest",
            body_required=False,
        )
    },
    "/api/sessions/{session_id}/events": {
        "get": _op(
            "The durable event log",
            {"200": _json(ref("EventList"), "A page of events"), **_errors(400, 404)},
            parameters=[
                _SESSION_ID,
                {"name": "after", "in": "query", "schema": _SEQ},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                {
                    "name": "types",
                    "in": "query",
                    "schema": _STRING,
                    "description": "comma-separated event types, or the parameter repeated",
                },
            ],
        )
    },
    "/api/sessions/{session_id}/events/stream": {
        "get": _op(
            "The event log as Server-Sent Events, then live",
            {"200": {"description": "Replay, then the live tail", "content": _SSE_RESPONSE}, **_errors(400, 404, 503)},
            parameters=[
                _SESSION_ID,
                {"name": "after", "in": "query", "schema": _SEQ},
                {"name": "Last-Event-ID", "in": "header", "schema": _SEQ},
                {
                    "name": "types",
                    "in": "query",
                    "schema": _STRING,
                    "description": "comma-separated event types, or the parameter repeated",
                },
            ],
        )
    },
}
PATHS.update(COMPAT_PATHS)
SCHEMAS: dict[str, Any] = {**schemas(REPLIES), **schemas(BODIES), **COMPAT_SCHEMAS}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "CC API",
        "version": __version__,
        "description": "Session-oriented HTTP gateway over the Claude Agent SDK",
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
        },
    },
    "security": [{"bearer": []}, {"apiKey": []}],
    "tags": [
        {"name": tag} for tag in dict.fromkeys(t for item in PATHS.values() for op in item.values() for t in op["tags"])
    ],
}
