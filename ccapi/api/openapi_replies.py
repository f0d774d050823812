"""The OpenAPI schemas of what the native routes answer (and the error envelope), merged into the
document by ``ccapi.api.openapi``. The session as read echoes fields of the body that created it,
so those take their schemas from the declared bodies."""

from __future__ import annotations

from typing import Any

from ccapi.api.openapi_shapes import schemas
from ccapi.events import EventType
from ccapi.sessions.bodies import BODIES


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_STRING = {"type": "string"}
_INT = {"type": "integer"}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_OBJECT = {"type": "object", "additionalProperties": True}
_USAGE = {
    "type": "object",
    "additionalProperties": True,
    "properties": {
        k: _INT for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
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
BODY_SCHEMAS = schemas(BODIES)
#: The session as read shows what it was created with, in the shapes it was asked in.
_BUILTIN_TOOLS = BODY_SCHEMAS["NewSession"]["properties"]["builtin_tools"]
_BUDGET = BODY_SCHEMAS["NewSession"]["properties"]["max_budget_usd"]
_WEBHOOK_EVENTS = BODY_SCHEMAS["NewSession"]["properties"]["webhook"]["properties"]["events"]
_WAITING = ["requires_action", "requires_approval"]
_AUTH = {
    "type": "string",
    "enum": ["subscription", "api_key", "mock", "unknown"],
    "description": "the kind of Claude account; only a subscription has usage windows",
}

REPLY_SCHEMAS: dict[str, Any] = {
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
