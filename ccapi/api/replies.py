"""What the native routes answer, each shape declared once: a ``TypedDict`` (class name = schema
name). The renderers (``ccapi.api.render`` and the route handlers) are annotated to return these
classes, so mypy holds each reply to its shape, and ``ccapi.api.openapi`` writes the document's
reply schemas from the same classes through ``ccapi.api.openapi_shapes``.

TypedDicts rather than pydantic models: a reply is built on the hot path of every turn, and a
TypedDict is a plain ``dict`` at run time (no validation, no copy), while pydantic still reads it
for the JSON Schema. A key the server leaves out of some replies is ``NotRequired``; a nested
object stored with a record (tool calls, permission requests, usage) keeps optional what records
written by older versions may lack. Dicts built below the API layer (events, limits, models,
error envelopes) are typed ``dict[str, Any]`` there and take their shape here, at the boundary;
``tests/test_replies.py`` holds the real replies to these schemas.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic reads typing's own only from Python 3.12

from ccapi.events import EventType
from ccapi.sessions.bodies import Budget, BuiltinTools, WebhookEvent

ErrorType = Literal[
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
]
DeliveryState = Literal["pending", "delivered", "failed"]
SessionStatus = Literal["idle", "running", "requires_action", "requires_approval"]
TurnStatus = Literal["queued", "running", "completed", "requires_action", "requires_approval", "interrupted", "failed"]
Auth = Annotated[
    Literal["subscription", "api_key", "mock", "unknown"],
    Field(description="the kind of Claude account; only a subscription has usage windows"),
]
Object = dict[str, Any]


class ErrorDetail(TypedDict):
    type: ErrorType
    message: str
    details: NotRequired[Object]


@with_config(ConfigDict(extra="forbid"))
class Error(TypedDict):
    """The SPEC envelope of every native error."""

    error: ErrorDetail


class Info(TypedDict):
    name: str
    version: str
    sdk_version: str
    cli_version: str
    mock_model: bool
    links: dict[str, str]


class Permissions(TypedDict):
    default_mode: str
    approvals: Literal["on", "off"]
    reason: str


class Sandbox(TypedDict):
    enabled: bool
    mode: str
    mechanism: str | None
    reason: str


class Credentials(TypedDict):
    found: bool
    source: str | None
    message: str


class LimitsSummary(TypedDict):
    auth: Auth
    rate_limited: bool
    summary: Annotated[str | None, Field(description="5-hour window 91% used, resets 09:13 UTC; ...")]


DatabaseState = Literal["ok", "unreachable", "refusing_writes"]


class Health(TypedDict):
    """The keyless part, and with the key (or none set) where credentials, modes and usage stand."""

    status: Literal["ok", "unavailable"]
    database: Annotated[
        DatabaseState,
        Field(description="refusing_writes: it reads, but has refused event writes for CC_API_STORE_WRITE_TIMEOUT"),
    ]
    live_engines: int
    max_live: int
    queued_turns: int
    mock_model: bool
    permissions: NotRequired[Permissions]
    sandbox: NotRequired[Sandbox]
    claude_credentials: NotRequired[Credentials]
    limits: NotRequired[LimitsSummary]
    cwd: NotRequired[
        Annotated[
            str,
            Field(
                description="where Claude Code runs for a session without its own cwd: CC_API_CWD, else the gateway's"
            ),
        ]
    ]


class LimitWindow(TypedDict):
    window: Annotated[str, Field(description="five_hour, seven_day, seven_day_opus, seven_day_sonnet, overage")]
    status: Literal["allowed", "allowed_warning", "rejected"]
    utilization: Annotated[float | None, Field(description="fraction used, 0-1")]
    resets_at: str | None
    blocking: bool
    summary: str
    updated_at: str
    overage_status: NotRequired[str]
    overage_resets_at: NotRequired[str | None]


class Limits(TypedDict):
    auth: Auth
    note: str
    windows: list[LimitWindow]
    rate_limited: bool
    retry_after: int | None


class Model(TypedDict):
    id: str
    display_name: str
    context_window: int
    max_output_tokens: int
    aliases: list[str]


class ModelList(TypedDict):
    object: Literal["list"]
    default: str
    data: list[Model]


class SessionWebhook(TypedDict, total=False):
    url: str
    events: Annotated[list[WebhookEvent], Field(min_length=1)]  # type: ignore[valid-type]


class Session(TypedDict):
    id: str
    object: Literal["session"]
    status: SessionStatus
    model: str
    system_prompt: str | None
    tools: list[Object]
    metadata: Object
    max_turns: int | None
    cwd: str | None
    permission_mode: str | None
    builtin_tools: BuiltinTools
    max_budget_usd: Budget
    turn_count: int
    last_event_seq: int
    usage: Object
    webhook: SessionWebhook | None
    mcp_servers: Annotated[
        dict[str, Object], Field(description="the session's MCP servers; env and headers show their names only")
    ]
    output_schema: Annotated[Object | None, Field(description="the JSON schema every answer must match, if any")]
    live: bool
    running_turn_id: str | None
    context: NotRequired[Object | None]
    created_at: str
    updated_at: str


class SessionList(TypedDict):
    object: Literal["list"]
    data: list[Session]
    has_more: bool
    next_after: str | None


class Deleted(TypedDict):
    id: str
    object: Literal["session.deleted"]
    deleted: bool


class ToolCall(TypedDict):
    tool_call_id: str
    name: str
    input: Object


class PermissionRequest(TypedDict):
    request_id: str
    tool_name: str
    input: Object
    tool_use_id: NotRequired[str | None]


@with_config(ConfigDict(extra="allow"))
class Usage(TypedDict, total=False):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


class Turn(TypedDict):
    turn_id: str
    object: Literal["turn"]
    session_id: str
    number: int
    kind: str
    status: Annotated[
        TurnStatus, Field(description="queued: waiting behind the running turn (number 0 until it starts)")
    ]
    output: list[Object]
    tool_calls: list[ToolCall]
    permission_requests: list[PermissionRequest]
    usage: Usage
    cost_usd: float | None
    duration_ms: int | None
    stop_reason: str | None
    last_event_seq: int | None
    created_at: str
    completed_at: str | None
    error: NotRequired[Object]
    structured_output: Annotated[
        NotRequired[Object],
        Field(description="the answer (an object), checked against the session's output_schema (if it has one)"),
    ]


class TurnAccepted(TypedDict):
    turn_id: str
    object: Literal["turn"]
    session_id: str
    status: Literal["running", "queued"]
    first_event_seq: int
    events_url: str


class Compaction(TypedDict):
    object: Literal["compaction"]
    session_id: str
    turn_id: str
    status: TurnStatus
    trigger: str | None
    pre_tokens: int | None
    post_tokens: int | None
    last_event_seq: int | None
    error: NotRequired[Object]


class Event(TypedDict):
    seq: Annotated[int, Field(ge=1)]
    type: EventType
    session_id: str
    turn_id: NotRequired[str]
    created_at: str
    data: Object


class EventList(TypedDict):
    object: Literal["list"]
    data: list[Event]
    has_more: bool
    last_seq: int


class WebhookDelivery(TypedDict):
    id: Annotated[str, Field(description="the webhook-id header: the same on every attempt")]
    object: Literal["webhook.delivery"]
    session_id: str
    turn_id: str | None
    event_seq: int
    event_type: str
    url: str
    state: DeliveryState
    attempts: int
    last_status: int | None
    last_error: str | None
    last_attempt_at: str | None
    next_attempt_at: str | None
    waiting_for: str | None
    created_at: str
    completed_at: str | None


class WebhookDeliveryList(TypedDict):
    object: Literal["list"]
    data: list[WebhookDelivery]
    has_more: bool
    last_seq: int


#: Every reply shape the document names (``components.schemas``), errors first.
REPLIES: tuple[type, ...] = (
    Error,
    Info,
    Health,
    LimitWindow,
    Limits,
    Model,
    ModelList,
    Session,
    SessionList,
    Deleted,
    Turn,
    TurnAccepted,
    Compaction,
    Event,
    WebhookDelivery,
    WebhookDeliveryList,
    EventList,
)
