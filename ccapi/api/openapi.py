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
from ccapi.events import EventType

JSON = "application/json"
SSE = "text/event-stream"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    described = {400: "Invalid request", 401: "Missing or wrong API key",
                 403: "Refused: a Host that does not name the gateway, or a cross-origin browser request",
                 404: "Not found", 409: "Conflict with the session's state", 413: "Body too large",
                 415: "A request body that is not application/json",
                 503: "Every live Claude session is busy; see Retry-After"}
    common = (401, 403, 413, 415) if 401 not in statuses else ()
    return {str(s): _json(ref("Error"), described[s]) for s in sorted({*statuses, *common})}


_STRING = {"type": "string"}
_INT = {"type": "integer"}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_OBJECT = {"type": "object", "additionalProperties": True}
_USAGE = {"type": "object", "additionalProperties": True,
          "properties": {k: _INT for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                                            "cache_read_input_tokens")}}
_SOURCE = {"type": "object", "required": ["type"], "additionalProperties": True, "properties": {
    "type": {"type": "string", "enum": ["base64", "url", "text"]},
    "media_type": _STRING, "data": _STRING, "url": _STRING}}
_INPUT_BLOCK = {"type": "object", "required": ["type"], "additionalProperties": True, "properties": {
    "type": {"type": "string", "enum": ["text", "image", "document"]},
    "text": {"type": "string", "minLength": 1}, "source": _SOURCE, "title": _STRING, "context": _STRING}}
_TOOL_CALL = {"type": "object", "required": ["tool_call_id", "name", "input"], "properties": {
    "tool_call_id": _STRING, "name": _STRING, "input": _OBJECT}}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "additionalProperties": False, "properties": {
        "error": {"type": "object", "required": ["type", "message"], "additionalProperties": False, "properties": {
            "type": {"type": "string", "enum": ["invalid_request", "unauthorized", "forbidden", "not_found", "conflict",
                                                "payload_too_large", "upstream_error", "unavailable",
                                                "internal"]},
            "message": _STRING, "details": _OBJECT}}}},
    "Info": {"type": "object", "required": ["name", "version", "sdk_version", "cli_version", "links"],
             "properties": {"name": _STRING, "version": _STRING, "sdk_version": _STRING, "cli_version": _STRING,
                            "mock_model": {"type": "boolean"}, "links": _OBJECT}},
    "Health": {"type": "object", "required": ["status", "database", "live_engines"], "properties": {
        "status": {"type": "string", "enum": ["ok", "unavailable"]}, "database": _STRING,
        "live_engines": _INT, "max_live": _INT, "queued_turns": _INT, "mock_model": {"type": "boolean"},
        "claude_credentials": _OBJECT}},
    "Model": {"type": "object", "required": ["id", "display_name", "context_window", "max_output_tokens", "aliases"],
              "properties": {"id": _STRING, "display_name": _STRING, "context_window": _INT,
                             "max_output_tokens": _INT, "aliases": {"type": "array", "items": _STRING}}},
    "ModelList": {"type": "object", "required": ["object", "data"], "properties": {
        "object": _STRING, "default": _STRING, "data": {"type": "array", "items": ref("Model")}}},
    "ToolDefinition": {"type": "object", "required": ["name", "input_schema"], "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}, "description": _STRING,
        "input_schema": _OBJECT}},
    "NewSession": {"type": "object", "additionalProperties": False, "properties": {
        "model": _STRING, "system_prompt": _STRING, "tools": {"type": "array", "items": ref("ToolDefinition")},
        "metadata": _OBJECT, "max_turns": {"type": "integer", "minimum": 1, "maximum": 1000},
        "cwd": {"type": "string", "description": "absolute path of an existing directory"},
        "permission_mode": {"type": "string", "enum": list(PERMISSION_MODES)}}},
    "Session": {"type": "object", "required": ["id", "object", "status", "model", "tools", "turn_count",
                                               "last_event_seq", "created_at", "updated_at"], "properties": {
        "id": _STRING, "object": _STRING,
        "status": {"type": "string", "enum": ["idle", "running", "requires_action"]},
        "model": _STRING, "system_prompt": _NULLABLE_STRING, "tools": {"type": "array", "items": _OBJECT},
        "metadata": _OBJECT, "max_turns": {"type": "integer", "nullable": True}, "cwd": _NULLABLE_STRING,
        "permission_mode": _NULLABLE_STRING, "turn_count": _INT, "last_event_seq": _INT, "usage": _OBJECT,
        "live": {"type": "boolean"}, "running_turn_id": _NULLABLE_STRING,
        "context": {"type": "object", "nullable": True, "additionalProperties": True},
        "created_at": _STRING, "updated_at": _STRING}},
    "SessionList": {"type": "object", "required": ["object", "data", "has_more"], "properties": {
        "object": _STRING, "data": {"type": "array", "items": ref("Session")}, "has_more": {"type": "boolean"},
        "next_after": _NULLABLE_STRING}},
    "Deleted": {"type": "object", "required": ["id", "deleted"], "properties": {
        "id": _STRING, "object": _STRING, "deleted": {"type": "boolean"}}},
    "TurnInput": {"type": "object", "required": ["input"], "additionalProperties": False, "properties": {
        "input": {"oneOf": [{"type": "string", "minLength": 1},
                            {"type": "array", "minItems": 1, "items": _INPUT_BLOCK}]},
        "stream": {"type": "boolean"}, "background": {"type": "boolean"}}},
    "ToolResults": {"type": "object", "required": ["results"], "additionalProperties": False, "properties": {
        "results": {"type": "array", "minItems": 1, "maxItems": 128, "items": {
            "type": "object", "required": ["tool_call_id", "content"], "additionalProperties": False,
            "properties": {"tool_call_id": {"type": "string", "minLength": 1},
                           "content": {"oneOf": [_STRING, {"type": "array", "items": _INPUT_BLOCK}]},
                           "is_error": {"type": "boolean"}}}},
        "stream": {"type": "boolean"}, "background": {"type": "boolean"}}},
    "Turn": {"type": "object", "required": ["turn_id", "object", "session_id", "status", "output", "tool_calls"],
             "properties": {
                 "turn_id": _STRING, "object": _STRING, "session_id": _STRING, "number": _INT, "kind": _STRING,
                 "status": {"type": "string", "enum": ["running", "completed", "requires_action", "interrupted",
                                                       "failed"]},
                 "output": {"type": "array", "items": _OBJECT}, "tool_calls": {"type": "array", "items": _TOOL_CALL},
                 "usage": _USAGE, "cost_usd": {"type": "number", "nullable": True},
                 "duration_ms": {"type": "integer", "nullable": True}, "stop_reason": _NULLABLE_STRING,
                 "last_event_seq": {"type": "integer", "nullable": True}, "created_at": _STRING,
                 "completed_at": _NULLABLE_STRING, "error": _OBJECT}},
    "TurnAccepted": {"type": "object", "required": ["turn_id", "status", "events_url"], "properties": {
        "turn_id": _STRING, "object": _STRING, "session_id": _STRING, "status": _STRING,
        "first_event_seq": _INT, "events_url": _STRING}},
    "Compaction": {"type": "object", "required": ["session_id", "turn_id", "status"], "properties": {
        "object": _STRING, "session_id": _STRING, "turn_id": _STRING, "status": _STRING,
        "trigger": _NULLABLE_STRING, "pre_tokens": {"type": "integer", "nullable": True},
        "post_tokens": {"type": "integer", "nullable": True}, "last_event_seq": {"type": "integer", "nullable": True},
        "error": _OBJECT}},
    "Event": {"type": "object", "required": ["seq", "type", "session_id", "created_at", "data"], "properties": {
        "seq": {"type": "integer", "minimum": 1}, "type": {"type": "string", "enum": [e.value for e in EventType]},
        "session_id": _STRING, "turn_id": _STRING, "created_at": _STRING, "data": _OBJECT}},
    "EventList": {"type": "object", "required": ["object", "data", "has_more", "last_seq"], "properties": {
        "object": _STRING, "data": {"type": "array", "items": ref("Event")}, "has_more": {"type": "boolean"},
        "last_seq": _INT}},
}

_SESSION_ID = {"name": "session_id", "in": "path", "required": True, "schema": _STRING}
_TURN_ID = {"name": "turn_id", "in": "path", "required": True, "schema": _STRING}
_IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255}}
#: One SSE frame: ``id: <seq>``, ``event: <type>``, ``data: <Event as JSON>``.
_SSE_RESPONSE = {SSE: {"schema": {"type": "object", "required": ["id", "event", "data"], "properties": {
    "id": {"type": "string", "pattern": "^[0-9]+$"}, "event": {"type": "string", "enum": [e.value for e in EventType]},
    "data": {"type": "string", "description": "the Event object as JSON"}}}}}


def _turn_replies(accepts_background: bool = True) -> dict[str, Any]:
    replies: dict[str, Any] = {"200": {"description": "The turn once it ends or pauses on client tool calls "
                                                      "(JSON), or its events (SSE with stream: true)",
                                       "content": {JSON: {"schema": ref("Turn")}, **_SSE_RESPONSE}}}
    if accepts_background:
        replies["202"] = _json(ref("TurnAccepted"), "Started in the background")
    return replies


def _op(summary: str, responses: dict[str, Any], *, parameters: list[Any] | None = None,
        body: str | None = None, tags: tuple[str, ...] = ("sessions",), body_required: bool = True) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": list(tags), "responses": responses,
                          "parameters": parameters or []}
    if "info" in tags:
        op["security"] = []  # readable without the key: it reveals no session data
    if body:
        op["requestBody"] = {"required": body_required, "content": {JSON: {"schema": ref(body)}}}
    return op


PATHS: dict[str, Any] = {
    "/": {"get": _op("Service info", {"200": _json(ref("Info"), "Versions and links")}, tags=("info",))},
    "/healthz": {"get": _op("Liveness and readiness", {
        "200": _json(ref("Health"), "Ready"), "503": _json(ref("Health"), "Database unreachable")}, tags=("info",))},
    "/api/models": {"get": _op("Known models", {"200": _json(ref("ModelList"), "Models"), **_errors(401)},
                               tags=("models",))},
    "/api/sessions": {
        "get": _op("List sessions, newest first", {"200": _json(ref("SessionList"), "A page"), **_errors(400)},
                   parameters=[{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                           "maximum": 100}},
                               {"name": "after", "in": "query", "schema": _STRING}]),
        "post": _op("Create a session", {"201": _json(ref("Session"), "Created"), **_errors(400)},
                    body="NewSession", body_required=False),
    },
    "/api/sessions/{session_id}": {
        "get": _op("Read a session", {"200": _json(ref("Session"), "The session"), **_errors(404)},
                   parameters=[_SESSION_ID]),
        "delete": _op("Delete a session and everything it owns",
                      {"200": _json(ref("Deleted"), "Deleted"), **_errors(404)}, parameters=[_SESSION_ID]),
    },
    "/api/sessions/{session_id}/turns": {
        "post": _op("Send new input", {**_turn_replies(), **_errors(400, 404, 409, 503)},
                    parameters=[_SESSION_ID, _IDEMPOTENCY], body="TurnInput")},
    "/api/sessions/{session_id}/turns/{turn_id}": {
        "get": _op("Read a turn", {"200": _json(ref("Turn"), "The turn"), **_errors(404)},
                   parameters=[_SESSION_ID, _TURN_ID])},
    "/api/sessions/{session_id}/tool-results": {
        "post": _op("Continue the paused turn with client tool results",
                    {**_turn_replies(), **_errors(400, 404, 409)},
                    parameters=[_SESSION_ID, _IDEMPOTENCY], body="ToolResults")},
    "/api/sessions/{session_id}/interrupt": {
        "post": _op("Stop the running turn", {"200": _json(ref("Turn"), "The interrupted turn"),
                                              **_errors(404, 409)}, parameters=[_SESSION_ID])},
    "/api/sessions/{session_id}/compact": {
        "post": _op("Compact the conversation now", {"200": _json(ref("Compaction"), "Tokens before and after"),
                                                     **_errors(400, 404, 409, 503)},
                    parameters=[_SESSION_ID], body="CompactRequest", body_required=False)},
    "/api/sessions/{session_id}/fork": {
        "post": _op("Branch the conversation at a turn into a new session (nothing is replayed)",
                    {"201": _json(ref("Session"), "The new session"), **_errors(400, 404, 409)},
                    parameters=[_SESSION_ID], body="ForkRequest", body_required=False)},
    "/api/sessions/{session_id}/events": {
        "get": _op("The durable event log", {"200": _json(ref("EventList"), "A page of events"),
                                             **_errors(400, 404)},
                   parameters=[_SESSION_ID,
                               {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                               {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                           "maximum": 1000}},
                               {"name": "types", "in": "query", "schema": _STRING,
                                "description": "comma-separated event types"}])},
    "/api/sessions/{session_id}/events/stream": {
        "get": _op("The event log as Server-Sent Events, then live", {
            "200": {"description": "Replay, then the live tail", "content": _SSE_RESPONSE}, **_errors(400, 404)},
            parameters=[_SESSION_ID,
                        {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                        {"name": "Last-Event-ID", "in": "header", "schema": {"type": "integer", "minimum": 0}}])},
}
SCHEMAS["CompactRequest"] = {"type": "object", "additionalProperties": False,
                             "properties": {"instructions": {"type": "string", "maxLength": 10000}}}
SCHEMAS["ForkRequest"] = {"type": "object", "additionalProperties": False, "properties": {
    "turn_id": {"type": "string", "description": "keep the conversation up to the end of this turn"},
    "after_seq": {"type": "integer", "minimum": 1,
                  "description": "keep it up to the last assistant message at or before this event seq"}}}
SCHEMAS.update(COMPAT_SCHEMAS)
PATHS.update(COMPAT_PATHS)

DOCUMENT: dict[str, Any] = {
    "info": {"title": "CC API", "version": __version__,
             "description": "Session-oriented HTTP gateway over the Claude Agent SDK"},
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                            "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
    },
    "security": [{"bearer": []}, {"apiKey": []}],
}
