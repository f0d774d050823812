"""What the compat routes answer, in each provider's own format, each shape declared once: a
``TypedDict`` (class name = schema name), as the native replies are in ``ccapi.api.replies``.
The builders (``openai_chat.completion``, ``openai_responses.response``,
``anthropic_messages.message``, the error envelopes in ``errors``, the model list in
``ccapi.api.compat``) are annotated to return these classes, so mypy holds each reply to its
shape, and ``ccapi.api.openapi_compat`` writes the document's compat reply schemas from them.

The keys are the ones the server writes, including the formats' own it always fills the same
way (``system_fingerprint``, ``logprobs``, ``refusal``: null) so that clients generated from
the provider's SDK types find them. ``tests/test_replies.py`` holds the real replies to these
schemas. The streamed SSE events are described only as frames.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict  # pydantic reads typing's own only from Python 3.12

Object = dict[str, Any]
OpenAIErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "rate_limit_exceeded",
    "server_error",
]
AnthropicErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "overloaded_error",
    "api_error",
]
#: Why a reply ended, in OpenAI's words (Chat's ``finish_reason``).
FinishReason = Literal["stop", "tool_calls", "length"]
StopReason = Literal["end_turn", "tool_use", "max_tokens", "stop_sequence"]
#: A Responses output item's status: ``in_progress`` only in the stream's ``output_item.added``, ``incomplete``
#: only in a streamed ``response.failed`` (the text that had streamed when the turn failed).
ItemStatus = Literal["in_progress", "completed", "incomplete"]


# -- errors -------------------------------------------------------------------------
class OpenAIErrorDetail(TypedDict):
    message: str
    type: OpenAIErrorType
    param: str | None
    code: str


class OpenAIError(TypedDict):
    error: OpenAIErrorDetail


class AnthropicErrorDetail(TypedDict):
    type: AnthropicErrorType
    message: str


class AnthropicError(TypedDict):
    type: Literal["error"]
    error: AnthropicErrorDetail


# -- models -------------------------------------------------------------------------
class TopProvider(TypedDict):
    context_length: int
    max_completion_tokens: int


class CompatModel(TypedDict):
    id: str
    object: Literal["model"]
    type: Literal["model"]
    created: int
    created_at: str
    owned_by: str
    display_name: str
    lifecycle: Literal["active"]
    context_length: int
    context_window: int
    max_input_tokens: int
    max_completion_tokens: int
    max_output_tokens: int
    max_tokens: int
    top_provider: TopProvider


class CompatModelList(TypedDict):
    object: Literal["list"]
    data: list[CompatModel]
    has_more: bool
    first_id: str | None
    last_id: str | None


# -- OpenAI Chat Completions ----------------------------------------------------------
class ChatFunctionCall(TypedDict):
    name: str
    arguments: str


class ChatToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: ChatFunctionCall


class ChatCompletionMessage(TypedDict):
    role: Literal["assistant"]
    content: str | None
    refusal: str | None
    tool_calls: NotRequired[list[ChatToolCall]]


class ChatChoice(TypedDict):
    index: int
    message: ChatCompletionMessage
    finish_reason: FinishReason
    logprobs: Object | None


class PromptTokensDetails(TypedDict):
    """The prompt's cached part: read from the cache (``cached_tokens``) and written to it (``cache_write_tokens``:
    Anthropic's ``cache_creation_input_tokens``)."""

    cached_tokens: int
    cache_write_tokens: int


class ChatUsage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails


class ChatCompletion(TypedDict):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: str | None
    choices: list[ChatChoice]
    usage: ChatUsage


# -- OpenAI Responses -----------------------------------------------------------------
class OutputText(TypedDict):
    type: Literal["output_text"]
    text: str
    annotations: list[Object]
    logprobs: list[Object]


class OutputMessage(TypedDict):
    type: Literal["message"]
    id: str
    status: ItemStatus
    role: Literal["assistant"]
    content: list[OutputText]


class FunctionCallItem(TypedDict):
    type: Literal["function_call"]
    id: str
    call_id: str
    name: str
    arguments: str
    status: ItemStatus


class InputTokensDetails(TypedDict):
    cached_tokens: int
    cache_write_tokens: int


class OutputTokensDetails(TypedDict):
    reasoning_tokens: int


class ResponseUsage(TypedDict):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens_details: OutputTokensDetails


class IncompleteDetails(TypedDict):
    reason: Literal["max_output_tokens"]


class TextFormat(TypedDict):
    type: Literal["text", "json_object"]


class JsonSchemaFormat(TypedDict):
    type: Literal["json_schema"]
    name: str
    schema: Object
    description: str | None
    strict: bool | None


class ResponseText(TypedDict):
    format: TextFormat | JsonSchemaFormat
    verbosity: str | None


class FunctionTool(TypedDict):
    type: Literal["function"]
    name: str
    description: str | None
    parameters: Object | None
    strict: bool | None


class ResponseSettings(TypedDict):
    """What a response echoes of its request, as OpenAI's does (its SDK types require ``tools``, ``tool_choice`` and
    ``parallel_tool_calls``): the request's own values, or OpenAI's defaults for those it left out. The sampling
    knobs CC API checks but does not apply (``temperature``, ``top_p``) are ``null``, as nothing applied them."""

    instructions: str | None
    metadata: dict[str, Any]
    parallel_tool_calls: bool
    tool_choice: Literal["none", "auto", "required"] | Object
    tools: list[FunctionTool]
    text: ResponseText
    truncation: Literal["auto", "disabled"]
    previous_response_id: str | None
    store: bool
    prompt_cache_key: str | None
    temperature: float | None
    top_p: float | None


class Response(ResponseSettings):
    id: Annotated[str, Field(pattern="^resp_")]
    object: Literal["response"]
    created_at: int
    completed_at: int | None
    status: Literal["completed", "incomplete"]
    model: str
    output: list[OutputMessage | FunctionCallItem]
    usage: ResponseUsage | None
    error: Object | None
    incomplete_details: IncompleteDetails | None


# -- Anthropic Messages ---------------------------------------------------------------
class TextBlock(TypedDict):
    type: Literal["text"]
    text: str


class ToolUseBlock(TypedDict):
    type: Literal["tool_use"]
    id: str
    name: str
    input: Object


class MessageUsage(TypedDict):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


class Message(TypedDict):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[TextBlock | ToolUseBlock]
    stop_reason: StopReason
    stop_sequence: str | None
    usage: MessageUsage


#: Every compat reply shape the document names (``components.schemas``), errors first.
COMPAT_REPLIES: tuple[type, ...] = (
    OpenAIError,
    AnthropicError,
    CompatModel,
    CompatModelList,
    ChatCompletion,
    Response,
    Message,
)
