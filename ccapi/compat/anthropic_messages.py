"""Anthropic Messages (``POST /v1/messages``) ⇄ the canonical conversation.

Requests: ``system`` becomes the session's system prompt, ``tools`` its client tools,
``output_config.format`` its output schema (``structured``);
``tool_result`` blocks in a user message answer the session's pending calls (any text
next to them is appended to the last result). Replies: a ``message``, or the Messages
SSE events (``message_start`` … ``message_stop``). Thinking blocks a client echoes are
ignored: they belong to the session, which already has them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ccapi.catalog import ModelCatalog
from ccapi.compat.bodies import AnthropicTool, AnthropicToolChoice, Thinking
from ccapi.compat.bodies import MessagesRequest as MessagesBody
from ccapi.compat.conversation import Conversation, Message, ToolCall, normalise
from ccapi.compat.errors import anthropic_error
from ccapi.compat.exchange import CompatRequest, model_of
from ccapi.compat.parsing import body_object, expect, input_block, pinned_session
from ccapi.compat.replies import Message as MessageReply
from ccapi.compat.replies import MessageUsage, StopReason, TextBlock, ToolUseBlock
from ccapi.compat.reply import Reply, TextDelta
from ccapi.compat.structured import messages_schema
from ccapi.errors import ApiError, InvalidRequest
from ccapi.sessions.shape import checked
from ccapi.sessions.toolcalls import ToolResult

FORMAT = "anthropic.messages"
_IGNORED_BLOCKS = ("thinking", "redacted_thinking")


@dataclass(frozen=True)
class MessagesRequest:
    request: CompatRequest
    stream: bool


def parse(body: Any, catalog: ModelCatalog, default_model: str, pin_header: str | None) -> MessagesRequest:
    shape = checked(MessagesBody, body_object(body))
    parsed: list[Message] = []
    for index, message in enumerate(shape.messages):
        where = f"messages[{index}]"
        content = message.content
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        blocks = expect(content, list, f"{where}.content", "a string or an array of content blocks")
        if message.role == "user":
            parsed.extend(_user(blocks, f"{where}.content"))
        else:
            parsed.append(_assistant(blocks, f"{where}.content"))
    conversation = Conversation(
        model=model_of(catalog, shape.model, default_model),
        system=_system(shape.system),
        tools=tuple(_tool(tool, f"tools[{index}]") for index, tool in enumerate(shape.tools or ())),
        messages=normalise(parsed),
        output_schema=messages_schema(shape.output_config, shape.output_format),
    )
    _check_tool_choice(shape.tool_choice, [tool["name"] for tool in conversation.tools])
    _check_thinking(shape.thinking, shape.max_tokens)
    stop = tuple(shape.stop_sequences or ())
    return MessagesRequest(
        CompatRequest(conversation, FORMAT, pinned_session(pin_header, shape.metadata), stop=stop), bool(shape.stream)
    )


def _system(system: Any) -> str | None:
    if system is None or isinstance(system, str):
        return system or None
    blocks = expect(system, list, "system", "a string or an array of text blocks")
    texts = []
    for index, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise InvalidRequest(f"system[{index}] must be a text block")
        texts.append(expect(block.get("text"), str, f"system[{index}].text", "a string"))
    return "\n\n".join(texts) or None


def _user(blocks: list[Any], where: str) -> list[Message]:
    """Content blocks and tool results, in order: ``normalise`` merges them back."""
    out: list[Message] = []
    for index, block in enumerate(blocks):
        block = expect(block, dict, f"{where}[{index}]", "an object")
        if block.get("type") == "tool_result":
            out.append(Message("tool", answers=(_answer(block, f"{where}[{index}]"),)))
        else:
            out.append(Message("user", content=(input_block(_input_block(block), f"{where}[{index}]"),)))
    if not out:
        raise InvalidRequest(f"{where} must not be empty")
    return out


def _input_block(block: dict[str, Any]) -> dict[str, Any]:
    """The block without Anthropic-only decorations (``cache_control``, ``citations``)."""
    return {key: value for key, value in block.items() if key in ("type", "text", "source", "title", "context")}


def _answer(block: dict[str, Any], where: str) -> ToolResult:
    call_id = expect(block.get("tool_use_id"), str, f"{where}.tool_use_id", "a string")
    is_error = expect(block.get("is_error", False), bool, f"{where}.is_error", "a boolean")
    content = block.get("content", "")
    if not isinstance(content, str):
        items = expect(content, list, f"{where}.content", "a string or an array of text/image blocks")
        content = []
        for n, item in enumerate(items):
            if not isinstance(item, dict) or item.get("type") not in ("text", "image"):
                raise InvalidRequest(f"{where}.content[{n}] must be a text or image block")
            content.append(input_block(_input_block(item), f"{where}.content[{n}]"))
    return ToolResult(call_id, content, is_error)


def _assistant(blocks: list[Any], where: str) -> Message:
    texts, calls = [], []
    for index, block in enumerate(blocks):
        block = expect(block, dict, f"{where}[{index}]", "an object")
        kind, at = block.get("type"), f"{where}[{index}]"
        if kind == "text":
            texts.append(expect(block.get("text"), str, f"{at}.text", "a string"))
        elif kind == "tool_use":
            calls.append(
                ToolCall(
                    expect(block.get("id"), str, f"{at}.id", "a string"),
                    expect(block.get("name"), str, f"{at}.name", "a string"),
                    expect(block.get("input", {}), dict, f"{at}.input", "an object"),
                )
            )
        elif kind not in _IGNORED_BLOCKS:
            raise InvalidRequest(f"{at}.type must be text, tool_use or thinking")
    return Message("assistant", text="".join(texts), tool_calls=tuple(calls))


def _check_tool_choice(choice: AnthropicToolChoice | None, declared: list[str]) -> None:
    """As Anthropic checks it (a tool it names must be declared); not enforced: Claude Code decides."""
    if choice is None or choice.type != "tool":
        return
    if choice.name is None:
        raise InvalidRequest("tool_choice.name is required when tool_choice.type is tool")
    if choice.name not in declared:
        raise InvalidRequest(f"tool_choice.name names no tool of the request: {choice.name!r}", {"tools": declared})


def _check_thinking(thinking: Thinking | None, max_tokens: int | None) -> None:
    if thinking is None or thinking.type != "enabled":
        return
    if thinking.budget_tokens is None:
        raise InvalidRequest("thinking.budget_tokens is required when thinking.type is enabled")
    if max_tokens is not None and thinking.budget_tokens >= max_tokens:
        raise InvalidRequest("thinking.budget_tokens must be less than max_tokens")


def _tool(tool: AnthropicTool, where: str) -> dict[str, Any]:
    kind = (tool.model_extra or {}).get("type") or "custom"
    if kind != "custom":
        raise InvalidRequest(
            f"{where}: server tools ({kind}) are not available through CC API; "
            "declare client tools (name, description, input_schema)"
        )
    return {"name": tool.name, "description": tool.description or "", "input_schema": tool.input_schema}


# -- replies ------------------------------------------------------------------------
def _stop_reason(reply: Reply) -> StopReason:
    if reply.tool_calls and reply.status == "requires_action":
        return "tool_use"
    if reply.stop_sequence is not None:
        return "stop_sequence"
    return "max_tokens" if reply.truncated else "end_turn"


def _stop_sequence(reply: Reply) -> str | None:
    """The stop sequence the text ends before, when it is why the reply ended."""
    return reply.stop_sequence if _stop_reason(reply) == "stop_sequence" else None


def _usage(usage: dict[str, int]) -> MessageUsage:
    return {
        "input_tokens": int(usage.get("input_tokens") or 0),
        "output_tokens": int(usage.get("output_tokens") or 0),
        "cache_creation_input_tokens": int(usage.get("cache_creation_input_tokens") or 0),
        "cache_read_input_tokens": int(usage.get("cache_read_input_tokens") or 0),
    }


def _tool_use(call: ToolCall) -> ToolUseBlock:
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}


def message(reply: Reply, model: str) -> MessageReply:
    text: list[TextBlock | ToolUseBlock] = [{"type": "text", "text": reply.text}] if reply.text else []
    content = text + [_tool_use(c) for c in reply.tool_calls]
    return {
        "id": f"msg_{uuid.uuid4().hex}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(reply),
        "stop_sequence": _stop_sequence(reply),
        "usage": _usage(reply.usage),
    }


@dataclass
class MessageStream:
    """The Messages API's SSE events for one streamed reply; a text block is opened at the
    first text delta and closed before a tool use starts."""

    model: str
    id: str = field(default_factory=lambda: f"msg_{uuid.uuid4().hex}")
    _blocks: int = 0
    _text_open: bool = False

    def start(self) -> list[bytes]:
        return [
            _frame(
                "message_start",
                {
                    "message": {
                        "id": self.id,
                        "type": "message",
                        "role": "assistant",
                        "model": self.model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": _usage({}),
                    }
                },
            )
        ]

    def delta(self, delta: TextDelta | ToolCall) -> list[bytes]:
        if isinstance(delta, TextDelta):
            frames = [] if self._text_open else [self._open({"type": "text", "text": ""})]
            self._text_open = True
            return [
                *frames,
                _frame(
                    "content_block_delta",
                    {"index": self._blocks - 1, "delta": {"type": "text_delta", "text": delta.text}},
                ),
            ]
        frames = self._close_text()
        frames.append(self._open({**_tool_use(delta), "input": {}}))
        frames.append(
            _frame(
                "content_block_delta",
                {
                    "index": self._blocks - 1,
                    "delta": {"type": "input_json_delta", "partial_json": orjson.dumps(delta.input).decode()},
                },
            )
        )
        frames.append(_frame("content_block_stop", {"index": self._blocks - 1}))
        return frames

    def end(self, reply: Reply) -> list[bytes]:
        return [
            *self._close_text(),
            _frame(
                "message_delta",
                {
                    "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": _stop_sequence(reply)},
                    "usage": _usage(reply.usage),
                },
            ),
            _frame("message_stop", {}),
        ]

    def error(self, exc: ApiError) -> list[bytes]:
        return [_frame("error", anthropic_error(exc.type, exc.message))]

    def _open(self, block: dict[str, Any]) -> bytes:
        self._blocks += 1
        return _frame("content_block_start", {"index": self._blocks - 1, "content_block": block})

    def _close_text(self) -> list[bytes]:
        if not self._text_open:
            return []
        self._text_open = False
        return [_frame("content_block_stop", {"index": self._blocks - 1})]


def _frame(event: str, data: Mapping[str, Any]) -> bytes:
    payload = data if event == "error" else {"type": event, **data}
    return b"event: %s\ndata: %s\n\n" % (event.encode(), orjson.dumps(payload))
