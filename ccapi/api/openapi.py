"""The OpenAPI document: every route, body, response and the error envelope.

Written as data rather than inferred from handlers, so it says exactly what the API
does (the schema fuzz test holds the server to it); sanic-ext serves it with its UI at
``/docs`` and ``/docs/openapi.json``.
"""

from __future__ import annotations

from typing import Any

from ccapi import __version__
from ccapi.api.openapi_compat import COMPAT_PATHS, COMPAT_SCHEMAS
from ccapi.config import PERMISSION_MODES
from ccapi.events import WEBHOOK_EVENT_TYPES, EventType
from ccapi.toolpolicy import BUILTIN_TOOL_NAMES

JSON = "application/json"
SSE = "text/event-stream"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


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
        503: "Every live Claude session is busy; see Retry-After",
    }
    common = (401, 403, 413, 415) if 401 not in statuses else ()
    return {str(s): _json(ref("Error"), described[s]) for s in sorted({*statuses, *common})}


_STRING = {"type": "string"}
_INT = {"type": "integer"}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_OBJECT = {"type": "object", "additionalProperties": True}
_SEQ = {"type": "integer", "minimum": 0, "maximum": 2**62}
_USAGE = {
    "type": "object",
    "additionalProperties": True,
    "properties": {
        k: _INT for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    },
}
_SOURCE = {
    "type": "object",
    "required": ["type"],
    "additionalProperties": True,
    "properties": {
        "type": {"type": "string", "enum": ["base64", "url", "text"]},
        "media_type": _STRING,
        "data": _STRING,
        "url": _STRING,
    },
}
_INPUT_BLOCK = {
    "type": "object",
    "required": ["type"],
    "additionalProperties": True,
    "properties": {
        "type": {"type": "string", "enum": ["text", "image", "document"]},
        "text": {"type": "string", "minLength": 1},
        "source": _SOURCE,
        "title": _STRING,
        "context": _STRING,
    },
}
_WEBHOOK_EVENTS = {"type": "array", "minItems": 1, "items": {"type": "string", "enum": sorted(WEBHOOK_EVENT_TYPES)}}
_WEBHOOK = {
    "type": "object",
    "required": ["url"],
    "additionalProperties": False,
    "nullable": True,
    "description": "Signed POSTs of this session's events (null: none, even if the gateway has a default)",
    "properties": {
        "url": {"type": "string", "description": "http(s); its host must be in CC_API_WEBHOOK_ALLOW"},
        "events": _WEBHOOK_EVENTS,
    },
}
_TOOL_CALL = {
    "type": "object",
    "required": ["tool_call_id", "name", "input"],
    "properties": {"tool_call_id": _STRING, "name": _STRING, "input": _OBJECT},
}
_PERMISSION_REQUEST = {
    "type": "object",
    "required": ["request_id", "tool_name", "input"],
    "properties": {"request_id": _STRING, "tool_name": _STRING, "input": _OBJECT, "tool_use_id": _NULLABLE_STRING},
}
_BUILTIN_TOOLS = {
    "oneOf": [
        {"type": "string", "enum": ["all", "none"]},
        {"type": "array", "items": {"type": "string", "enum": list(BUILTIN_TOOL_NAMES)}},
    ],
    "description": "Claude Code's built-in tools: all, none (model-only), or these names",
}
_BUDGET = {
    "type": "number",
    "minimum": 0,
    "exclusiveMinimum": True,
    "maximum": 1000000,
    "nullable": True,
    "description": "spending cap in USD; a turn that reaches it fails with budget_exceeded",
}
_WAITING = ["requires_action", "requires_approval"]
_AUTH = {
    "type": "string",
    "enum": ["subscription", "api_key", "mock", "unknown"],
    "description": "the kind of Claude account; only a subscription has usage windows",
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "additionalProperties": False,
                "properties": {
                    "type": {
                        "type": "string",
                        "enum": [
                            "invalid_request",
                            "unauthorized",
                            "forbidden",
                            "not_found",
                            "conflict",
                            "payload_too_large",
                            "upstream_error",
                            "unavailable",
                            "rate_limited",
                            "internal",
                        ],
                    },
                    "message": _STRING,
                    "details": _OBJECT,
                },
            }
        },
    },
    "Info": {
        "type": "object",
        "required": ["name", "version", "sdk_version", "cli_version", "links"],
        "properties": {
            "name": _STRING,
            "version": _STRING,
            "sdk_version": _STRING,
            "cli_version": _STRING,
            "mock_model": {"type": "boolean"},
            "links": _OBJECT,
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "database", "live_engines"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "database": _STRING,
            "live_engines": _INT,
            "max_live": _INT,
            "queued_turns": _INT,
            "mock_model": {"type": "boolean"},
            "permissions": {
                "type": "object",
                "properties": {
                    "default_mode": _STRING,
                    "approvals": {"type": "string", "enum": ["on", "off"]},
                    "reason": _STRING,
                },
            },
            "claude_credentials": _OBJECT,
            "limits": {
                "type": "object",
                "properties": {
                    "auth": _AUTH,
                    "rate_limited": {"type": "boolean"},
                    "summary": {**_NULLABLE_STRING, "description": "5-hour window 91% used, resets 09:13 UTC; ..."},
                },
            },
        },
    },
    "LimitWindow": {
        "type": "object",
        "required": ["window", "status"],
        "properties": {
            "window": {
                "type": "string",
                "description": "five_hour, seven_day, seven_day_opus, seven_day_sonnet, overage",
            },
            "status": {"type": "string", "enum": ["allowed", "allowed_warning", "rejected"]},
            "utilization": {"type": "number", "nullable": True, "description": "fraction used, 0-1"},
            "resets_at": _NULLABLE_STRING,
            "blocking": {"type": "boolean"},
            "summary": _STRING,
            "updated_at": _STRING,
            "overage_status": _NULLABLE_STRING,
            "overage_resets_at": _NULLABLE_STRING,
        },
    },
    "Limits": {
        "type": "object",
        "required": ["auth", "windows", "rate_limited"],
        "properties": {
            "auth": _AUTH,
            "note": _STRING,
            "windows": {"type": "array", "items": ref("LimitWindow")},
            "rate_limited": {"type": "boolean"},
            "retry_after": {"type": "integer", "nullable": True},
        },
    },
    "Model": {
        "type": "object",
        "required": ["id", "display_name", "context_window", "max_output_tokens", "aliases"],
        "properties": {
            "id": _STRING,
            "display_name": _STRING,
            "context_window": _INT,
            "max_output_tokens": _INT,
            "aliases": {"type": "array", "items": _STRING},
        },
    },
    "ModelList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {"object": _STRING, "default": _STRING, "data": {"type": "array", "items": ref("Model")}},
    },
    "ToolDefinition": {
        "type": "object",
        "required": ["name", "input_schema"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
            "description": _STRING,
            "input_schema": {
                **_OBJECT,
                "description": "a valid JSON Schema of type object (draft 2020-12 unless "
                "its $schema names another); an invalid one is a 400",
            },
        },
    },
    "NewSession": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "model": _STRING,
            "system_prompt": {"type": "string", "description": "any length; no NUL characters"},
            "tools": {"type": "array", "items": ref("ToolDefinition")},
            "metadata": _OBJECT,
            "max_turns": {"type": "integer", "minimum": 1, "maximum": 1000},
            "cwd": {"type": "string", "description": "absolute path of an existing directory"},
            "permission_mode": {"type": "string", "enum": list(PERMISSION_MODES)},
            "builtin_tools": _BUILTIN_TOOLS,
            "max_budget_usd": _BUDGET,
            "webhook": _WEBHOOK,
            "mcp_servers": {
                "type": "object",
                "description": "the session's own MCP servers, by name (not 'client'; at most 32): "
                "stdio commands run on the gateway host, or http URLs",
                "additionalProperties": ref("McpServer"),
            },
        },
    },
    "McpServer": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "enum": ["stdio", "http"], "description": "stdio when omitted"},
            "command": _STRING,
            "args": {"type": "array", "items": _STRING},
            "env": {"type": "object", "additionalProperties": _STRING},
            "url": {"type": "string", "description": "http(s) URL of a streamable-HTTP MCP server"},
            "headers": {"type": "object", "additionalProperties": _STRING},
        },
    },
    "SessionChanges": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "max_budget_usd": _BUDGET,
            "model": _STRING,
            "permission_mode": {"type": "string", "enum": list(PERMISSION_MODES)},
        },
    },
    "Session": {
        "type": "object",
        "required": [
            "id",
            "object",
            "status",
            "model",
            "tools",
            "turn_count",
            "last_event_seq",
            "created_at",
            "updated_at",
        ],
        "properties": {
            "id": _STRING,
            "object": _STRING,
            "status": {"type": "string", "enum": ["idle", "running", *_WAITING]},
            "model": _STRING,
            "system_prompt": _NULLABLE_STRING,
            "tools": {"type": "array", "items": _OBJECT},
            "metadata": _OBJECT,
            "max_turns": {"type": "integer", "nullable": True},
            "cwd": _NULLABLE_STRING,
            "permission_mode": _NULLABLE_STRING,
            "builtin_tools": _BUILTIN_TOOLS,
            "max_budget_usd": _BUDGET,
            "turn_count": _INT,
            "last_event_seq": _INT,
            "usage": _OBJECT,
            "webhook": {"type": "object", "nullable": True, "properties": {"url": _STRING, "events": _WEBHOOK_EVENTS}},
            "mcp_servers": {
                "type": "object",
                "description": "the session's MCP servers; env and headers show their names only",
                "additionalProperties": _OBJECT,
            },
            "live": {"type": "boolean"},
            "running_turn_id": _NULLABLE_STRING,
            "context": {"type": "object", "nullable": True, "additionalProperties": True},
            "created_at": _STRING,
            "updated_at": _STRING,
        },
    },
    "SessionList": {
        "type": "object",
        "required": ["object", "data", "has_more"],
        "properties": {
            "object": _STRING,
            "data": {"type": "array", "items": ref("Session")},
            "has_more": {"type": "boolean"},
            "next_after": _NULLABLE_STRING,
        },
    },
    "Deleted": {
        "type": "object",
        "required": ["id", "deleted"],
        "properties": {"id": _STRING, "object": _STRING, "deleted": {"type": "boolean"}},
    },
    "TurnInput": {
        "type": "object",
        "required": ["input"],
        "additionalProperties": False,
        "properties": {
            "input": {
                "oneOf": [{"type": "string", "minLength": 1}, {"type": "array", "minItems": 1, "items": _INPUT_BLOCK}]
            },
            "stream": {"type": "boolean"},
            "background": {"type": "boolean"},
            "queue": {
                "type": "boolean",
                "description": "while a turn runs, wait behind it (turn.queued, then turn.started) instead of a 409",
            },
        },
    },
    "ToolResults": {
        "type": "object",
        "required": ["results"],
        "additionalProperties": False,
        "properties": {
            "results": {
                "type": "array",
                "minItems": 1,
                "maxItems": 128,
                "items": {
                    "type": "object",
                    "required": ["tool_call_id", "content"],
                    "additionalProperties": False,
                    "properties": {
                        "tool_call_id": {"type": "string", "minLength": 1},
                        "content": {"oneOf": [_STRING, {"type": "array", "items": _INPUT_BLOCK}]},
                        "is_error": {"type": "boolean"},
                    },
                },
            },
            "stream": {"type": "boolean"},
            "background": {"type": "boolean"},
        },
    },
    "Decisions": {
        "type": "object",
        "required": ["decisions"],
        "additionalProperties": False,
        "properties": {
            "decisions": {
                "type": "array",
                "minItems": 1,
                "maxItems": 128,
                "items": {
                    "type": "object",
                    "required": ["request_id", "behavior"],
                    "additionalProperties": False,
                    "properties": {
                        "request_id": {"type": "string", "minLength": 1},
                        "behavior": {"type": "string", "enum": ["allow", "deny"]},
                        "message": {
                            "type": "string",
                            "maxLength": 10000,
                            "description": "with deny: what Claude reads as the tool's error",
                        },
                        "updated_input": {**_OBJECT, "description": "with allow: run with this input instead"},
                        "scope": {
                            "type": "string",
                            "enum": ["call", "session"],
                            "description": "with allow, session: Claude Code stops asking for this tool while "
                            "the session's Claude Code process lives",
                        },
                    },
                },
            },
            "stream": {"type": "boolean"},
            "background": {"type": "boolean"},
        },
    },
    "Turn": {
        "type": "object",
        "required": ["turn_id", "object", "session_id", "status", "output", "tool_calls"],
        "properties": {
            "turn_id": _STRING,
            "object": _STRING,
            "session_id": _STRING,
            "number": _INT,
            "kind": _STRING,
            "status": {
                "type": "string",
                "enum": ["queued", "running", "completed", *_WAITING, "interrupted", "failed"],
                "description": "queued: waiting behind the running turn (number 0 until it starts)",
            },
            "output": {"type": "array", "items": _OBJECT},
            "tool_calls": {"type": "array", "items": _TOOL_CALL},
            "permission_requests": {"type": "array", "items": _PERMISSION_REQUEST},
            "usage": _USAGE,
            "cost_usd": {"type": "number", "nullable": True},
            "duration_ms": {"type": "integer", "nullable": True},
            "stop_reason": _NULLABLE_STRING,
            "last_event_seq": {"type": "integer", "nullable": True},
            "created_at": _STRING,
            "completed_at": _NULLABLE_STRING,
            "error": _OBJECT,
        },
    },
    "TurnAccepted": {
        "type": "object",
        "required": ["turn_id", "status", "events_url"],
        "properties": {
            "turn_id": _STRING,
            "object": _STRING,
            "session_id": _STRING,
            "status": _STRING,
            "first_event_seq": _INT,
            "events_url": _STRING,
        },
    },
    "Compaction": {
        "type": "object",
        "required": ["session_id", "turn_id", "status"],
        "properties": {
            "object": _STRING,
            "session_id": _STRING,
            "turn_id": _STRING,
            "status": _STRING,
            "trigger": _NULLABLE_STRING,
            "pre_tokens": {"type": "integer", "nullable": True},
            "post_tokens": {"type": "integer", "nullable": True},
            "last_event_seq": {"type": "integer", "nullable": True},
            "error": _OBJECT,
        },
    },
    "Event": {
        "type": "object",
        "required": ["seq", "type", "session_id", "created_at", "data"],
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "type": {"type": "string", "enum": [e.value for e in EventType]},
            "session_id": _STRING,
            "turn_id": _STRING,
            "created_at": _STRING,
            "data": _OBJECT,
        },
    },
    "WebhookDelivery": {
        "type": "object",
        "required": ["id", "object", "session_id", "event_seq", "event_type", "url", "state", "attempts"],
        "properties": {
            "id": {"type": "string", "description": "the webhook-id header: the same on every attempt"},
            "object": _STRING,
            "session_id": _STRING,
            "turn_id": _NULLABLE_STRING,
            "event_seq": _INT,
            "event_type": _STRING,
            "url": _STRING,
            "state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
            "attempts": _INT,
            "last_status": {"type": "integer", "nullable": True},
            "last_error": _NULLABLE_STRING,
            "last_attempt_at": _NULLABLE_STRING,
            "next_attempt_at": _NULLABLE_STRING,
            "created_at": _STRING,
            "completed_at": _NULLABLE_STRING,
        },
    },
    "WebhookDeliveryList": {
        "type": "object",
        "required": ["object", "data", "has_more", "last_seq"],
        "properties": {
            "object": _STRING,
            "data": {"type": "array", "items": ref("WebhookDelivery")},
            "has_more": {"type": "boolean"},
            "last_seq": _INT,
        },
    },
    "EventList": {
        "type": "object",
        "required": ["object", "data", "has_more", "last_seq"],
        "properties": {
            "object": _STRING,
            "data": {"type": "array", "items": ref("Event")},
            "has_more": {"type": "boolean"},
            "last_seq": _INT,
        },
    },
}

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
            ],
        ),
        "post": _op(
            "Create a session",
            {"201": _json(ref("Session"), "Created"), **_errors(400)},
            body="NewSession",
            body_required=False,
        ),
    },
    "/api/sessions/{session_id}": {
        "get": _op(
            "Read a session", {"200": _json(ref("Session"), "The session"), **_errors(404)}, parameters=[_SESSION_ID]
        ),
        "patch": _op(
            "Change the spending cap, model or permission mode (for the next turn)",
            {"200": _json(ref("Session"), "The session"), **_errors(400, 404)},
            parameters=[_SESSION_ID],
            body="SessionChanges",
        ),
        "delete": _op(
            "Delete a session and everything it owns",
            {"200": _json(ref("Deleted"), "Deleted"), **_errors(404)},
            parameters=[_SESSION_ID],
        ),
    },
    "/api/sessions/{session_id}/webhooks": {
        "get": _op(
            "The session's webhook deliveries: state, attempts, last error",
            {"200": _json(ref("WebhookDeliveryList"), "A page, in event order"), **_errors(400, 404)},
            parameters=[
                _SESSION_ID,
                {
                    "name": "after",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0},
                    "description": "an event seq: deliveries of later events",
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
            {**_turn_replies(), **_errors(400, 404, 409)},
            parameters=[_SESSION_ID, _IDEMPOTENCY],
            body="ToolResults",
        )
    },
    "/api/sessions/{session_id}/permissions": {
        "post": _op(
            "Allow or deny the built-in tool calls the paused turn waits on",
            {**_turn_replies(), **_errors(400, 404, 409)},
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
            {"201": _json(ref("Session"), "The new session"), **_errors(400, 404, 409)},
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
                {"name": "types", "in": "query", "schema": _STRING, "description": "comma-separated event types"},
            ],
        )
    },
    "/api/sessions/{session_id}/events/stream": {
        "get": _op(
            "The event log as Server-Sent Events, then live",
            {"200": {"description": "Replay, then the live tail", "content": _SSE_RESPONSE}, **_errors(400, 404)},
            parameters=[
                _SESSION_ID,
                {"name": "after", "in": "query", "schema": _SEQ},
                {"name": "Last-Event-ID", "in": "header", "schema": _SEQ},
            ],
        )
    },
}
SCHEMAS["CompactRequest"] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"instructions": {"type": "string", "maxLength": 10000}},
}
SCHEMAS["InterruptRequest"] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "turn_id": {
            "type": "string",
            "minLength": 1,
            "description": "the running turn, or a queued one to withdraw before it starts (default: the running turn)",
        }
    },
}
SCHEMAS["ForkRequest"] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "turn_id": {"type": "string", "description": "keep the conversation up to the end of this turn"},
        "after_seq": {
            "type": "integer",
            "minimum": 1,
            "description": "keep it up to the last assistant message at or before this event seq",
        },
    },
}
SCHEMAS.update(COMPAT_SCHEMAS)
PATHS.update(COMPAT_PATHS)

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
