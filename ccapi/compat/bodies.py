"""The compat request bodies, each declared once: the format parsers check a body's shape with
these classes (``ccapi.sessions.shape.checked``) and ``ccapi.api.openapi_compat`` describes
them from the same classes (class name = schema name).

Looser than the native bodies, as the providers are: unknown fields (the SDKs send many) are kept
and ignored, and ``null`` (or, where the parsers always read it so, any falsy value) means unset.
The knobs Claude Code does not expose (``temperature``, ``top_p``, ``max_tokens``, ...) are ignored too
(stop sequences are honoured by cutting the reply's text, see ``ccapi.compat.stops``), but checked as
the provider checks them: a value the real API refuses is a 400 here as well, not a client bug that
only shows when the client moves to the real API. A field whose check depends on where it
is (a message's content is read by its role) is ``documented``: declared for the document, and
checked by the parser that converts it into the ``Conversation``, in the same words as ever.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, PlainValidator
from pydantic.json_schema import SkipJsonSchema

from ccapi.sessions.shape import Says, Shape

Unset = SkipJsonSchema[None]  # accepted (as "not given"), never documented
_FALSY_IS_UNSET = BeforeValidator(lambda value: value or None)
_MODELS: list[Any] = ["claude-sonnet-4-5", "sonnet", "opus", "haiku", "anthropic/claude-opus-4.6"]
_STRING = Says("must be a string")
_BOOLEAN = Says("must be a boolean")
_OBJECT = Says("must be an object")
_ARRAY = Says("must be an array")
_MESSAGES = Says("must be a non-empty array")
_TOOL_NAME = Annotated[str, Field(pattern="^[A-Za-z0-9_-]{1,64}$")]
_USER_TEXT = Annotated[str, Field(min_length=1)]
_INPUT_TEXT = Annotated[str, Field(json_schema_extra={"minLength": 1})]  # "" gets ``parse_input``'s words
_UpTo1 = Annotated[Annotated[float, Field(ge=0, le=1)] | Unset, Says("must be a number from 0 to 1")]
_UpTo2 = Annotated[Annotated[float, Field(ge=0, le=2)] | Unset, Says("must be a number from 0 to 2")]
_Penalty = Annotated[Annotated[float, Field(ge=-2, le=2)] | Unset, Says("must be a number from -2 to 2")]
_Tokens = Annotated[Annotated[int, Field(ge=1)] | Unset, Says("must be a positive integer")]
_Integer = Annotated[int | Unset, Says("must be an integer")]
_String = Annotated[str | Unset, _STRING]
_Boolean = Annotated[bool | Unset, _BOOLEAN]
_Strings = Annotated[list[str] | Unset, Says("must be an array of strings")]
_ToolChoice: Any = Field(
    None,
    description="checked (a function it names must be among the tools) but not enforced: Claude Code decides "
    "when to call a tool",
)


def documented(kind: Any) -> PlainValidator:
    """Any value is let through (its parser checks it), and the document describes it as ``kind``."""
    return PlainValidator(lambda value: value, json_schema_input_type=kind)


_MODEL: Any = Field(
    None,
    description="an Anthropic id, Claude Code alias or router-style name",
    json_schema_extra={"example": "claude-sonnet-4-5", "enum": _MODELS},
)
_CACHE_KEY: Any = Field(
    None,
    description="the client's own conversation key: the session that served it is tried first, "
    "and the history still decides",
)
Model = Annotated[Any, documented(str)]  # ``exchange.model_of`` checks it against the catalog
CacheKey = Annotated[Any, documented(str)]  # ``parsing.affinity_key`` reads it only if it is a string


class Loose(Shape):
    """A provider's object: unknown fields are kept (and ignored), values are not coerced."""

    model_config = ConfigDict(extra="allow")


class Metadata(Loose, json_schema_extra={"additionalProperties": {"type": "string"}}):
    cc_session_id: Annotated[str | Unset, _STRING] = None
    user_id: _String = Field(None, description="Anthropic: a conversation key, as prompt_cache_key")


class ParametersSchema(Loose):
    """A function's parameters: a JSON Schema of type object (checked when the session is made)."""

    type: Literal["object"] = "object"


_Parameters = Annotated[Any, documented(ParametersSchema)]


class ChatFunction(Loose, json_schema_extra={"required": ["name"]}):
    name: Annotated[Any, documented(_TOOL_NAME)] = None  # checked when the session is made
    description: Annotated[str | Unset, _FALSY_IS_UNSET, _STRING] = None
    parameters: _Parameters = None


class ChatTool(Loose, json_schema_extra={"required": ["type", "function"]}):
    type: Annotated[Literal["function"], Says("must be function")] = "function"
    function: Annotated[ChatFunction, _OBJECT]


class ChatMessage(Loose):
    role: Annotated[
        Literal["system", "developer", "user", "assistant", "tool"],
        Says("must be system, developer, user, assistant or tool"),
    ]
    content: Annotated[Any, documented(_USER_TEXT | list[dict[str, Any]] | None)] = None
    tool_calls: Annotated[Any, documented(list[dict[str, Any]])] = None
    tool_call_id: Annotated[Any, documented(str)] = None


class StreamOptions(Loose):
    include_usage: _Boolean = None


class ResponseFormat(Loose):
    """Chat's ``response_format``, Responses' ``text.format``: ``json_object`` or ``json_schema`` (its name and
    schema under ``json_schema`` in Chat, beside ``type`` in Responses) makes the reply's text JSON matching it
    (``ccapi.compat.structured`` reads and checks the rest)."""

    type: Annotated[Literal["text", "json_object", "json_schema"], Says("must be text, json_object or json_schema")]


class ChatCompletionRequest(Loose):
    model: Model = _MODEL
    messages: Annotated[list[ChatMessage], _MESSAGES] = Field(min_length=1)
    tools: Annotated[list[ChatTool] | Unset, _FALSY_IS_UNSET, _ARRAY] = None
    tool_choice: Annotated[Any, documented(Literal["none", "auto", "required"] | dict[str, Any])] = _ToolChoice
    stream: Annotated[bool | Unset, _BOOLEAN] = None
    stream_options: Annotated[StreamOptions | Unset, _FALSY_IS_UNSET, _OBJECT] = None
    metadata: Annotated[Metadata | Unset, _OBJECT] = None
    prompt_cache_key: CacheKey = _CACHE_KEY
    n: Annotated[Annotated[int, Field(ge=1, le=1)] | Unset, Says("must be 1: CC API answers with one choice")] = None
    temperature: _UpTo2 = None
    top_p: _UpTo1 = None
    presence_penalty: _Penalty = None
    frequency_penalty: _Penalty = None
    max_tokens: _Tokens = None
    max_completion_tokens: _Tokens = None
    stop: Annotated[
        str | Annotated[list[str], Field(max_length=4)] | Unset, Says("must be a string or an array of up to 4 strings")
    ] = None
    seed: _Integer = None
    user: _String = None
    parallel_tool_calls: _Boolean = None
    logprobs: Annotated[bool | Unset, _BOOLEAN] = Field(None, description="true is a 400: not available")
    reasoning_effort: _String = None
    response_format: Annotated[ResponseFormat | Unset, _OBJECT] = None


class ResponseTool(ChatFunction, json_schema_extra={"required": ["type", "name"]}):
    type: Annotated[Literal["function"], Says("must be function: hosted tools are not available through CC API")]


class ResponseItem(Loose):
    type: Annotated[
        Literal["message", "function_call", "function_call_output", "reasoning"],
        Says("must be message, function_call, function_call_output or reasoning"),
    ] = "message"
    role: Annotated[Any, documented(Literal["user", "assistant", "system", "developer"])] = None
    content: Annotated[Any, documented(_USER_TEXT | list[dict[str, Any]])] = None
    call_id: Annotated[Any, documented(str)] = None
    name: Annotated[Any, documented(str)] = None
    arguments: Annotated[Any, documented(str)] = None
    output: Annotated[
        Any, documented(str | list[dict[str, Any]]), Field(description="a string, or input_text and input_image parts")
    ] = None


class Reasoning(Loose):
    effort: _String = None
    summary: _String = None


class ResponseText(Loose):
    format: Annotated[ResponseFormat | Unset, _OBJECT] = None
    verbosity: _String = None


class ResponseRequest(Loose):
    model: Model = _MODEL
    instructions: Annotated[str | Unset, _FALSY_IS_UNSET, _STRING] = None
    previous_response_id: Annotated[str | Unset, _STRING] = Field(
        None,
        description="continue that response (an earlier one than the latest forks there); unknown: "
        "400 with code previous_response_not_found",
    )
    store: Annotated[bool | Unset, _BOOLEAN] = Field(
        None, description="false: the response's id names nothing and cannot be continued by previous_response_id"
    )
    input: Annotated[
        _INPUT_TEXT | Annotated[list[ResponseItem], Field(json_schema_extra={"minItems": 1})],
        Says("must be a string or a non-empty array of items"),
    ]
    tools: Annotated[list[ResponseTool] | Unset, _FALSY_IS_UNSET, _ARRAY] = None
    tool_choice: Annotated[Any, documented(Literal["none", "auto", "required"] | dict[str, Any])] = _ToolChoice
    stream: Annotated[bool | Unset, _BOOLEAN] = None
    metadata: Annotated[Metadata | Unset, _OBJECT] = None
    prompt_cache_key: CacheKey = _CACHE_KEY
    temperature: _UpTo2 = None
    top_p: _UpTo1 = None
    max_output_tokens: Annotated[Annotated[int, Field(ge=16)] | Unset, Says("must be an integer of at least 16")] = None
    top_logprobs: Annotated[Annotated[int, Field(ge=0, le=20)] | Unset, Says("must be an integer from 0 to 20")] = None
    parallel_tool_calls: _Boolean = None
    user: _String = None
    include: _Strings = None
    truncation: Annotated[Literal["auto", "disabled"] | Unset, Says("must be auto or disabled")] = None
    reasoning: Annotated[Reasoning | Unset, _OBJECT] = None
    text: Annotated[ResponseText | Unset, _OBJECT] = None
    background: Annotated[bool | Unset, _BOOLEAN] = Field(
        None, description="true is a 400: a response is answered in its request (or streamed)"
    )
    conversation: Annotated[Any, documented(str | dict[str, Any])] = Field(
        None, description="a 400: conversations are not stored apart; continue with previous_response_id"
    )


class AnthropicTool(Loose, json_schema_extra={"required": ["name", "input_schema"]}):
    """A client tool (``type`` custom or left out; the parser turns server tools away by name)."""

    name: Annotated[Any, documented(_TOOL_NAME)] = None  # checked when the session is made
    description: Annotated[Any, documented(str)] = None
    input_schema: _Parameters = None


class AnthropicMessage(Loose):
    role: Annotated[Literal["user", "assistant"], Says("must be user or assistant")]
    content: Annotated[
        Any, documented(_USER_TEXT | list[dict[str, Any]]), Says("must be a string or an array of content blocks")
    ]


class AnthropicToolChoice(Loose):
    type: Annotated[Literal["auto", "any", "tool", "none"], Says("must be auto, any, tool or none")]
    name: _String = None
    disable_parallel_tool_use: _Boolean = None


class Thinking(Loose):
    type: Annotated[Literal["enabled", "disabled", "adaptive"], Says("must be enabled, disabled or adaptive")]
    budget_tokens: Annotated[Annotated[int, Field(ge=1024)] | Unset, Says("must be an integer of at least 1024")] = None


class MessagesRequest(Loose):
    model: Model = _MODEL
    max_tokens: Annotated[Annotated[int, Field(ge=1)] | Unset, Says("must be a positive integer")] = None
    system: Annotated[Any, documented(str | list[dict[str, Any]])] = None
    messages: Annotated[list[AnthropicMessage], _MESSAGES] = Field(min_length=1)
    tools: Annotated[list[AnthropicTool] | Unset, _FALSY_IS_UNSET, _ARRAY] = None
    tool_choice: Annotated[AnthropicToolChoice | Unset, _OBJECT] = _ToolChoice
    stream: Annotated[bool | Unset, _BOOLEAN] = None
    metadata: Annotated[Metadata | Unset, _OBJECT] = None
    temperature: _UpTo1 = None
    top_p: _UpTo1 = None
    top_k: Annotated[Annotated[int, Field(ge=0)] | Unset, Says("must be a non-negative integer")] = None
    stop_sequences: _Strings = None
    thinking: Annotated[Thinking | Unset, _OBJECT] = None
    output_config: Annotated[Any, documented(dict[str, Any])] = Field(
        None, description='format {"type": "json_schema", "schema"}: the reply\'s text is JSON matching the schema'
    )
    output_format: Annotated[Any, documented(dict[str, Any])] = Field(
        None, description="the deprecated name of output_config.format"
    )


#: Every compat request body, by its OpenAPI schema name.
COMPAT_BODIES: tuple[type[Shape], ...] = (ChatCompletionRequest, ResponseRequest, MessagesRequest)
