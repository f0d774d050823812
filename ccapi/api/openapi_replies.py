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


STRING = {"type": "string"}
INT = {"type": "integer"}
NULLABLE_STRING = {"type": "string", "nullable": True}
OBJECT = {"type": "object", "additionalProperties": True}
_USAGE = {
    "type": "object",
    "additionalProperties": True,
    "properties": {
        k: INT for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    },
}
_TOOL_CALL = {
    "type": "object",
    "required": ["tool_call_id", "name", "input"],
    "properties": {"tool_call_id": STRING, "name": STRING, "input": OBJECT},
}
_PERMISSION_REQUEST = {
    "type": "object",
    "required": ["request_id", "tool_name", "input"],
    "properties": {"request_id": STRING, "tool_name": STRING, "input": OBJECT, "tool_use_id": NULLABLE_STRING},
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
                    "message": STRING,
                    "details": OBJECT,
                },
            }
        },
    },
    "Info": {
        "type": "object",
        "required": ["name", "version", "sdk_version", "cli_version", "links"],
        "properties": {
            "name": STRING,
            "version": STRING,
            "sdk_version": STRING,
            "cli_version": STRING,
            "mock_model": {"type": "boolean"},
            "links": OBJECT,
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "database", "live_engines"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "database": STRING,
            "live_engines": INT,
            "max_live": INT,
            "queued_turns": INT,
            "mock_model": {"type": "boolean"},
            "permissions": {
                "type": "object",
                "properties": {
                    "default_mode": STRING,
                    "approvals": {"type": "string", "enum": ["on", "off"]},
                    "reason": STRING,
                },
            },
            "claude_credentials": OBJECT,
            "limits": {
                "type": "object",
                "properties": {
                    "auth": _AUTH,
                    "rate_limited": {"type": "boolean"},
                    "summary": {**NULLABLE_STRING, "description": "5-hour window 91% used, resets 09:13 UTC; ..."},
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
            "resets_at": NULLABLE_STRING,
            "blocking": {"type": "boolean"},
            "summary": STRING,
            "updated_at": STRING,
            "overage_status": NULLABLE_STRING,
            "overage_resets_at": NULLABLE_STRING,
        },
    },
    "Limits": {
        "type": "object",
        "required": ["auth", "windows", "rate_limited"],
        "properties": {
            "auth": _AUTH,
            "note": STRING,
            "windows": {"type": "array", "items": ref("LimitWindow")},
            "rate_limited": {"type": "boolean"},
            "retry_after": {"type": "integer", "nullable": True},
        },
    },
    "Model": {
        "type": "object",
        "required": ["id", "display_name", "context_window", "max_output_tokens", "aliases"],
        "properties": {
            "id": STRING,
            "display_name": STRING,
            "context_window": INT,
            "max_output_tokens": INT,
            "aliases": {"type": "array", "items": STRING},
        },
    },
    "ModelList": {
        "type": "object",
        "required": ["object", "data"],
        "properties": {"object": STRING, "default": STRING, "data": {"type": "array", "items": ref("Model")}},
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
            "id": STRING,
            "object": STRING,
            "status": {"type": "string", "enum": ["idle", "running", *_WAITING]},
            "model": STRING,
            "system_prompt": NULLABLE_STRING,
            "tools": {"type": "array", "items": OBJECT},
            "metadata": OBJECT,
            "max_turns": {"type": "integer", "nullable": True},
            "cwd": NULLABLE_STRING,
            "permission_mode": NULLABLE_STRING,
            "builtin_tools": _BUILTIN_TOOLS,
            "max_budget_usd": _BUDGET,
            "turn_count": INT,
            "last_event_seq": INT,
            "usage": OBJECT,
            "webhook": {"type": "object", "nullable": True, "properties": {"url": STRING, "events": _WEBHOOK_EVENTS}},
            "mcp_servers": {
                "type": "object",
                "description": "the session's MCP servers; env and headers show their names only",
                "additionalProperties": OBJECT,
            },
            "live": {"type": "boolean"},
            "running_turn_id": NULLABLE_STRING,
            "context": {"type": "object", "nullable": True, "additionalProperties": True},
            "created_at": STRING,
            "updated_at": STRING,
        },
    },
    "SessionList": {
        "type": "object",
        "required": ["object", "data", "has_more"],
        "properties": {
            "object": STRING,
            "data": {"type": "array", "items": ref("Session")},
            "has_more": {"type": "boolean"},
            "next_after": NULLABLE_STRING,
        },
    },
    "Deleted": {
        "type": "object",
        "required": ["id", "deleted"],
        "properties": {"id": STRING, "object": STRING, "deleted": {"type": "boolean"}},
    },
    "Turn": {
        "type": "object",
        "required": ["turn_id", "object", "session_id", "status", "output", "tool_calls"],
        "properties": {
            "turn_id": STRING,
            "object": STRING,
            "session_id": STRING,
            "number": INT,
            "kind": STRING,
            "status": {
                "type": "string",
                "enum": ["queued", "running", "completed", *_WAITING, "interrupted", "failed"],
                "description": "queued: waiting behind the running turn (number 0 until it starts)",
            },
            "output": {"type": "array", "items": OBJECT},
            "tool_calls": {"type": "array", "items": _TOOL_CALL},
            "permission_requests": {"type": "array", "items": _PERMISSION_REQUEST},
            "usage": _USAGE,
            "cost_usd": {"type": "number", "nullable": True},
            "duration_ms": {"type": "integer", "nullable": True},
            "stop_reason": NULLABLE_STRING,
            "last_event_seq": {"type": "integer", "nullable": True},
            "created_at": STRING,
            "completed_at": NULLABLE_STRING,
            "error": OBJECT,
        },
    },
    "TurnAccepted": {
        "type": "object",
        "required": ["turn_id", "status", "events_url"],
        "properties": {
            "turn_id": STRING,
            "object": STRING,
            "session_id": STRING,
            "status": STRING,
            "first_event_seq": INT,
            "events_url": STRING,
        },
    },
    "Compaction": {
        "type": "object",
        "required": ["session_id", "turn_id", "status"],
        "properties": {
            "object": STRING,
            "session_id": STRING,
            "turn_id": STRING,
            "status": STRING,
            "trigger": NULLABLE_STRING,
            "pre_tokens": {"type": "integer", "nullable": True},
            "post_tokens": {"type": "integer", "nullable": True},
            "last_event_seq": {"type": "integer", "nullable": True},
            "error": OBJECT,
        },
    },
    "Event": {
        "type": "object",
        "required": ["seq", "type", "session_id", "created_at", "data"],
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "type": {"type": "string", "enum": [e.value for e in EventType]},
            "session_id": STRING,
            "turn_id": STRING,
            "created_at": STRING,
            "data": OBJECT,
        },
    },
    "WebhookDelivery": {
        "type": "object",
        "required": ["id", "object", "session_id", "event_seq", "event_type", "url", "state", "attempts"],
        "properties": {
            "id": {"type": "string", "description": "the webhook-id header: the same on every attempt"},
            "object": STRING,
            "session_id": STRING,
            "turn_id": NULLABLE_STRING,
            "event_seq": INT,
            "event_type": STRING,
            "url": STRING,
            "state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
            "attempts": INT,
            "last_status": {"type": "integer", "nullable": True},
            "last_error": NULLABLE_STRING,
            "last_attempt_at": NULLABLE_STRING,
            "next_attempt_at": NULLABLE_STRING,
            "created_at": STRING,
            "completed_at": NULLABLE_STRING,
        },
    },
    "WebhookDeliveryList": {
        "type": "object",
        "required": ["object", "data", "has_more", "last_seq"],
        "properties": {
            "object": STRING,
            "data": {"type": "array", "items": ref("WebhookDelivery")},
            "has_more": {"type": "boolean"},
            "last_seq": INT,
        },
    },
    "EventList": {
        "type": "object",
        "required": ["object", "data", "has_more", "last_seq"],
        "properties": {
            "object": STRING,
            "data": {"type": "array", "items": ref("Event")},
            "has_more": {"type": "boolean"},
            "last_seq": INT,
        },
    },
}
