"""OpenAI Chat Completions (``POST /v1/chat/completions``) ⇄ the canonical conversation.

Requests: ``system``/``developer`` messages become the session's system prompt,
``tools`` of type ``function`` its client tools, ``response_format`` its output schema
(``structured``); ``user``, ``assistant`` (with ``tool_calls``) and ``tool`` messages the
conversation. Replies: a ``chat.completion``,
or ``chat.completion.chunk`` SSE frames ending in ``data: [DONE]``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ccapi.catalog import ModelCatalog
from ccapi.compat.bodies import ChatCompletionRequest, ChatFunction, ChatMessage
from ccapi.compat.conversation import Conversation, Message, ToolCall, normalise
from ccapi.compat.errors import openai_error
from ccapi.compat.exchange import CompatRequest, model_of
from ccapi.compat.openai_shared import (
    arguments,
    check_tool_choice,
    dump,
    file_block,
    finish_reason,
    function_tool,
    image_block,
    prompt_tokens,
    text_of,
)
from ccapi.compat.parsing import body_object, expect, input_block, pinned_session
from ccapi.compat.replies import ChatCompletion, ChatCompletionMessage, ChatToolCall, ChatUsage
from ccapi.compat.reply import Reply, TextDelta
from ccapi.compat.structured import chat_schema
from ccapi.errors import ApiError, InvalidRequest
from ccapi.sessions.inputs import parse_input
from ccapi.sessions.shape import checked
from ccapi.sessions.toolcalls import ToolResult

FORMAT = "openai.chat"


@dataclass(frozen=True)
class ChatRequest:
    request: CompatRequest
    stream: bool
    include_usage: bool


def parse(body: Any, catalog: ModelCatalog, default_model: str, pin_header: str | None) -> ChatRequest:
    shape = checked(ChatCompletionRequest, body_object(body))
    system: list[str] = []
    parsed: list[Message] = []
    for index, message in enumerate(shape.messages):
        where = f"messages[{index}]"
        if message.role in ("system", "developer"):
            system.append(text_of(message.content, f"{where}.content", ("text",)))
        elif message.role == "user":
            parsed.append(Message("user", content=tuple(_user_content(message.content, f"{where}.content"))))
        elif message.role == "assistant":
            parsed.append(_assistant(message, where))
        else:
            call_id = expect(message.tool_call_id, str, f"{where}.tool_call_id", "a string")
            content = text_of(message.content, f"{where}.content", ("text",))
            parsed.append(Message("tool", answers=(ToolResult(call_id, content),)))
    conversation = Conversation(
        model=model_of(catalog, shape.model, default_model),
        system="\n\n".join(system) if system else None,
        tools=tuple(_tool(tool.function) for tool in shape.tools or ()),
        messages=normalise(parsed),
        output_schema=chat_schema(shape.response_format),
    )
    check_tool_choice(shape.tool_choice, [tool["name"] for tool in conversation.tools], nested=True)
    if shape.stream_options is not None and not shape.stream:
        raise InvalidRequest("stream_options is only allowed when stream is true", param="stream_options")
    if shape.logprobs:
        raise InvalidRequest("logprobs are not available through CC API", param="logprobs")
    stop = (shape.stop,) if isinstance(shape.stop, str) else tuple(shape.stop or ())
    request = CompatRequest(conversation, FORMAT, pinned_session(pin_header, shape.metadata), stop=stop)
    options = shape.stream_options
    return ChatRequest(request, bool(shape.stream), bool(options and options.include_usage))


def _user_content(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return parse_input(content)
    parts = expect(content, list, where, "a string or an array of content parts")
    blocks = []
    for index, part in enumerate(parts):
        at = f"{where}[{index}]"
        part = expect(part, dict, at, "an object")
        if part.get("type") == "text":
            blocks.append(input_block({"type": "text", "text": part.get("text")}, at))
        elif part.get("type") == "image_url":
            image = expect(part.get("image_url"), dict, f"{at}.image_url", "an object")
            blocks.append(image_block(image.get("url"), f"{at}.image_url.url"))
        elif part.get("type") == "file":
            blocks.append(file_block(expect(part.get("file"), dict, f"{at}.file", "an object"), f"{at}.file"))
        else:
            raise InvalidRequest(f"{at}.type must be text, image_url or file", param=f"{at}.type")
    if not blocks:
        raise InvalidRequest(f"{where} must not be empty", param=where)
    return blocks


def _assistant(message: ChatMessage, where: str) -> Message:
    calls = []
    for index, call in enumerate(expect(message.tool_calls or [], list, f"{where}.tool_calls", "an array")):
        at = f"{where}.tool_calls[{index}]"
        call = expect(call, dict, at, "an object")
        function = expect(call.get("function"), dict, f"{at}.function", "an object")
        calls.append(
            ToolCall(
                expect(call.get("id"), str, f"{at}.id", "a string"),
                expect(function.get("name"), str, f"{at}.function.name", "a string"),
                arguments(function.get("arguments"), f"{at}.function.arguments"),
            )
        )
    text = text_of(message.content, f"{where}.content", ("text", "refusal"))
    return Message("assistant", text=text, tool_calls=tuple(calls))


def _tool(function: ChatFunction) -> dict[str, Any]:
    return function_tool(function.name, function.description, function.parameters)


# -- replies ------------------------------------------------------------------------
def _tool_call(call: ToolCall) -> ChatToolCall:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": dump(call.input)}}


def _usage(usage: dict[str, int]) -> ChatUsage:
    prompt, completion = prompt_tokens(usage), int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {
            "cached_tokens": int(usage.get("cache_read_input_tokens") or 0),
            "cache_write_tokens": int(usage.get("cache_creation_input_tokens") or 0),
        },
    }


def completion(reply: Reply, model: str) -> ChatCompletion:
    message: ChatCompletionMessage = {
        "role": "assistant",
        "content": reply.text or (None if reply.tool_calls else ""),
        "refusal": None,
    }
    if reply.tool_calls:
        message["tool_calls"] = [_tool_call(call) for call in reply.tool_calls]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(reply), "logprobs": None}],
        "usage": _usage(reply.usage),
    }


@dataclass
class ChatStream:
    """``chat.completion.chunk`` frames for one streamed reply."""

    model: str
    include_usage: bool
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))
    _calls: int = 0

    def start(self) -> list[bytes]:
        return [self._chunk({"role": "assistant", "content": ""})]

    def delta(self, delta: TextDelta | ToolCall) -> list[bytes]:
        if isinstance(delta, TextDelta):
            return [self._chunk({"content": delta.text})]
        index, self._calls = self._calls, self._calls + 1
        return [self._chunk({"tool_calls": [{"index": index, **_tool_call(delta)}]})]

    def end(self, reply: Reply) -> list[bytes]:
        frames = [self._chunk({}, finish_reason(reply))]
        if self.include_usage:
            frames.append(self._frame({**self._head(), "choices": [], "usage": _usage(reply.usage)}))
        return [*frames, b"data: [DONE]\n\n"]

    def error(self, exc: ApiError) -> list[bytes]:
        return [self._frame(openai_error(exc.type, exc.message))]

    def _head(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        """A chunk of the choice; with ``include_usage``, its ``usage`` is null (as OpenAI sends it on every chunk
        but the last, the usage chunk)."""
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        usage = {"usage": None} if self.include_usage else {}
        return self._frame({**self._head(), "choices": [choice], **usage})

    @staticmethod
    def _frame(payload: Mapping[str, Any]) -> bytes:
        return f"data: {dump(payload)}\n\n".encode()
