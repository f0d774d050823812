"""The native request bodies, each declared once: ``ccapi.sessions.params`` validates with these
classes and ``ccapi.api.openapi`` describes them from the same classes (class name = schema name).

A field whose value a dedicated parser checks (turn input, builtin tools, MCP servers, the
webhook) names that parser as its validator and the shape it accepts as its documented input.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator

from ccapi.config import PERMISSION_MODES
from ccapi.events import WEBHOOK_EVENT_TYPES
from ccapi.sessions.inputs import parse_input
from ccapi.sessions.mcp_servers import parse_mcp_servers
from ccapi.sessions.shape import Says, Shape
from ccapi.toolpolicy import BUILTIN_TOOL_NAMES

MAX_RESULTS = 128
_TOOL_NAME = "^[A-Za-z0-9_-]{1,64}$"
_ABSENT: Any = Field(None)  # the gateway's default applies: read with ``Shape.given``, never null

PermissionMode = Literal[PERMISSION_MODES]  # type: ignore[valid-type]
WebhookEvent = Literal[tuple(sorted(WEBHOOK_EVENT_TYPES))]  # type: ignore[valid-type]
BuiltinToolName = Literal[BUILTIN_TOOL_NAMES]  # type: ignore[valid-type]
_PERMISSION_MODE = Says(f"must be one of {', '.join(PERMISSION_MODES)}")
_MODEL = Says("must be a non-empty string (or left out, for the default)")
_BUDGET = Says("must be a positive number of US dollars (or null for no cap)")
#: Shared with the session as read (``ccapi.api.replies``), which shows what it was created with.
Budget = Annotated[
    float | None,
    Field(gt=0, le=1_000_000, description="spending cap in USD; a turn that reaches it fails with budget_exceeded"),
]
BuiltinTools = Annotated[
    Literal["all", "none"] | list[BuiltinToolName],
    Field(description="Claude Code's built-in tools: all, none (model-only), or these names"),
]
_REPLY_MODE = Says("stream and background must be booleans", whole=True)
_STRING = Says("must be a string")
_LONG_TEXT = Says("must be a string of at most 10,000 characters")


class ContentSource(Shape, extra="allow"):
    type: Annotated[Literal["base64", "url", "text"], Says("must be 'base64' or 'url'")]
    media_type: Annotated[str, _STRING] = ""
    data: Annotated[str, _STRING] = ""
    url: Annotated[str, _STRING] = ""


class InputBlock(Shape, extra="allow"):
    """A content block of turn input or of a tool result (``sessions.inputs`` checks its details)."""

    type: Annotated[Literal["text", "image", "document"], Says("must be one of text, image, document")]
    text: Annotated[str, Says("must be a non-empty string")] = Field("", min_length=1)
    source: Annotated[ContentSource, Says("must be an object")] = _ABSENT
    title: Annotated[str, _STRING] = ""
    context: Annotated[str, _STRING] = ""


def _blocks(value: Any) -> tuple[dict[str, Any], ...]:
    return tuple(parse_input(value))


_Input = Annotated[str, Field(min_length=1)] | Annotated[list[InputBlock], Field(min_length=1)]


class ToolDefinition(Shape, extra="ignore"):
    name: Annotated[str, Says("must match [A-Za-z0-9_-]{1,64}")] = Field(pattern=_TOOL_NAME)
    description: Annotated[str, _STRING] = ""
    input_schema: Annotated[dict[str, Any], Says("must be a JSON schema object with type 'object'")] = Field(
        description="a valid JSON Schema of type object (draft 2020-12 unless its $schema names another); "
        "an invalid one is a 400"
    )


class Webhook(Shape):
    url: str = Field(description="http(s); its host must be in CC_API_WEBHOOK_ALLOW")
    events: Annotated[list[WebhookEvent], Field(min_length=1)] = _ABSENT  # type: ignore[valid-type]


#: A subscription as ``WebhookPolicy.subscription`` checks it (at creation and in a ``PATCH`` alike), or ``null``.
_WebhookOrNone = Annotated[Any, PlainValidator(lambda value: value, json_schema_input_type=Webhook | None)]


class McpServer(Shape):
    type: Literal["stdio", "http"] = Field("stdio", description="stdio when omitted")
    command: str = ""
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str = Field("", description="http(s) URL of a streamable-HTTP MCP server")
    headers: dict[str, str] = Field(default_factory=dict)


_OUTPUT_SCHEMA = Says("must be a JSON schema of type object, or null")
_OUTPUT_SCHEMA_TEXT = (
    "structured output: a JSON schema of type object every answer must match; the model answers through Claude "
    "Code's StructuredOutput tool, and the turn's reply carries the checked value as structured_output"
)


class NewSession(Shape):
    model: Annotated[str, _MODEL] = _ABSENT
    system_prompt: Annotated[str | None, _STRING] = Field(None, description="any length; no NUL characters")
    tools: Annotated[list[ToolDefinition], Says("must be a list of {name, description, input_schema}")] = Field(
        default_factory=list
    )
    metadata: Annotated[dict[str, Any], Says("must be an object")] = Field(
        default_factory=dict,
        description="yours, kept and shown as given, up to 16 KB as JSON; the key 'compat' is reserved (it marks "
        "the compat endpoints' sessions, deleted once unused for CC_API_COMPAT_RETENTION)",
    )
    max_turns: Annotated[int | None, Says("must be an integer between 1 and 1000")] = Field(None, ge=1, le=1000)
    cwd: Annotated[str | None, Says("must be the absolute path of an existing directory")] = Field(
        None, description="absolute path of an existing directory"
    )
    permission_mode: Annotated[PermissionMode | None, _PERMISSION_MODE] = None
    builtin_tools: Annotated[Any, PlainValidator(lambda value: value, json_schema_input_type=BuiltinTools)] = None
    max_budget_usd: Annotated[Budget, _BUDGET] = None
    webhook: _WebhookOrNone = Field(
        None, description="Signed POSTs of this session's events (null: none, even if the gateway has a default)"
    )
    mcp_servers: Annotated[
        dict[str, dict[str, Any]], PlainValidator(parse_mcp_servers, json_schema_input_type=dict[str, McpServer])
    ] = Field(
        {},
        description="the session's own MCP servers, by name (not 'client'; at most 32): "
        "stdio commands run on the gateway host, or http URLs",
    )
    output_schema: Annotated[dict[str, Any] | None, _OUTPUT_SCHEMA] = Field(None, description=_OUTPUT_SCHEMA_TEXT)


class SessionChanges(Shape, json_schema_extra={"minProperties": 1}):
    max_budget_usd: Annotated[Budget, _BUDGET] = None
    model: Annotated[str, _MODEL] = _ABSENT
    permission_mode: Annotated[PermissionMode | None, _PERMISSION_MODE] = None
    system_prompt: Annotated[str | None, _STRING] = Field(None, description="null: none from the next turn on")
    output_schema: Annotated[dict[str, Any] | None, _OUTPUT_SCHEMA] = Field(
        None, description="null: free answers from the next turn on"
    )
    webhook: _WebhookOrNone = Field(
        None,
        description="Signed POSTs of the events written from now on, to this receiver (null: none); "
        "deliveries already owed to the previous one stay owed to it",
    )


class ReplyMode(Shape):
    """How a turn answers: its events as SSE (``stream``; the default is the Accept header's), or
    at once with 202 (``background``), else its JSON once it ends."""

    stream: Annotated[bool, _REPLY_MODE] = _ABSENT
    background: Annotated[bool, _REPLY_MODE] = False


class TurnInput(ReplyMode):
    input: Annotated[
        tuple[dict[str, Any], ...], Says("is required"), PlainValidator(_blocks, json_schema_input_type=_Input)
    ]
    queue: Annotated[bool, Says("must be a boolean")] = Field(
        False, description="while a turn runs, wait behind it (turn.queued, then turn.started) instead of a 409"
    )


class ToolResult(Shape):
    tool_call_id: Annotated[str, _STRING] = Field(min_length=1)
    content: Annotated[str | list[InputBlock], Says("must be a string or a list of text/image blocks")]
    is_error: Annotated[bool, Says("must be a boolean")] = False


class ToolResults(ReplyMode):
    results: Annotated[
        list[ToolResult],
        Says(
            "must be a non-empty list of {tool_call_id, content, is_error?}",
            too_long=f"at most {MAX_RESULTS} results per request",
        ),
    ] = Field(min_length=1, max_length=MAX_RESULTS)


class Decision(Shape):
    request_id: Annotated[str, _STRING] = Field(min_length=1)
    behavior: Annotated[Literal["allow", "deny"], Says('must be "allow" or "deny"')]
    message: Annotated[str, _LONG_TEXT] = Field(
        "", max_length=10_000, description="with deny: what Claude reads as the tool's error"
    )
    updated_input: Annotated[dict[str, Any] | None, Says("must be an object, and only with behavior allow")] = Field(
        None, description="with allow: run with this input instead"
    )
    scope: Annotated[
        Literal["call", "session"], Says('must be "call" or "session", and "session" only with behavior allow')
    ] = Field(
        "call",
        description="with allow, session: Claude Code stops asking for this tool while the session's "
        "Claude Code process lives",
    )


class Decisions(ReplyMode):
    decisions: Annotated[
        list[Decision],
        Says(
            'must be a non-empty list of {request_id, behavior: "allow" | "deny", message?, updated_input?, scope?}',
            too_long=f"at most {MAX_RESULTS} decisions per request",
        ),
    ] = Field(min_length=1, max_length=MAX_RESULTS)


class InterruptRequest(Shape):
    turn_id: Annotated[str | None, Says("must be a non-empty string")] = Field(
        None,
        min_length=1,
        description="the running turn, or a queued one to withdraw before it starts (default: the running turn)",
    )


class CompactRequest(Shape):
    instructions: Annotated[str | None, _LONG_TEXT] = Field(None, max_length=10_000)


class ForkRequest(Shape):
    turn_id: Annotated[str | None, Says("must be a non-empty string")] = Field(
        None, min_length=1, description="keep the conversation up to the end of this turn"
    )
    after_seq: Annotated[int | None, Says("must be a positive integer")] = Field(
        None, ge=1, description="keep it up to the last assistant message at or before this event seq"
    )


#: Every native body, by its OpenAPI schema name.
BODIES: tuple[type[Shape], ...] = (
    NewSession,
    SessionChanges,
    TurnInput,
    ToolResults,
    Decisions,
    InterruptRequest,
    CompactRequest,
    ForkRequest,
    ToolDefinition,
    McpServer,
)
