"""OpenAI Responses (``POST /v1/responses``) ⇄ the canonical conversation.

Requests: ``instructions`` (and system/developer input messages) become the session's
system prompt, ``function`` tools its client tools, ``text.format`` its output schema
(``structured``); ``input`` is a string or a list of
message, ``function_call`` and ``function_call_output`` items. With
``previous_response_id`` the input is only what is new and goes to that response's
session (or a fork of it at that response, see ``router``). Replies: a ``response``
object, or the Responses SSE events (``response.created`` … ``response.completed``).

Response ids name their session and the seq the response started at
(``resp_<session>_<seq>``), so ``previous_response_id`` survives a gateway restart. With
``store: false`` a response gets an id that names nothing (``resp_<random>``): it cannot be
continued by ``previous_response_id``, as OpenAI would not have kept it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ccapi.catalog import ModelCatalog
from ccapi.compat.bodies import ResponseItem, ResponseRequest
from ccapi.compat.conversation import Conversation, Message, ToolCall, normalise
from ccapi.compat.errors import PreviousResponseNotFound, openai_error
from ccapi.compat.exchange import CompatRequest, ResponseRef, model_of
from ccapi.compat.openai_shared import (
    arguments,
    check_tool_choice,
    dump,
    finish_reason,
    function_tool,
    image_block,
    prompt_tokens,
    text_of,
)
from ccapi.compat.parsing import body_object, expect, pinned_session
from ccapi.compat.replies import (
    FunctionCallItem,
    ItemStatus,
    OutputMessage,
    OutputText,
    Response,
    ResponseUsage,
)
from ccapi.compat.reply import Reply, TextDelta
from ccapi.compat.structured import responses_schema
from ccapi.errors import ApiError, InvalidRequest
from ccapi.ids import new_id
from ccapi.sessions.inputs import parse_input
from ccapi.sessions.shape import checked
from ccapi.sessions.toolcalls import ToolResult

FORMAT = "openai.responses"
_RESPONSE_ID = re.compile(r"^resp_(?P<session>[0-9a-f]{32})_(?P<seq>[1-9][0-9]{0,17})$")


@dataclass(frozen=True)
class ResponsesRequest:
    request: CompatRequest
    stream: bool
    store: bool = True


def response_id(session_id: str, first_seq: int, store: bool = True) -> str:
    """The id a later ``previous_response_id`` continues from; unstored, one that names nothing."""
    return f"resp_{session_id.removeprefix('sess_')}_{first_seq}" if store else new_id("resp")


def parse(body: Any, catalog: ModelCatalog, default_model: str, pin_header: str | None) -> ResponsesRequest:
    shape = checked(ResponseRequest, body_object(body))
    items = [ResponseItem(role="user", content=shape.input)] if isinstance(shape.input, str) else shape.input
    system = [shape.instructions] if shape.instructions else []
    messages: list[Message] = []
    for index, item in enumerate(items):
        message = _item(item, f"input[{index}]", system)
        if message is not None:
            messages.append(message)
    previous = shape.previous_response_id
    conversation = Conversation(
        model=model_of(catalog, shape.model, default_model),
        system="\n\n".join(system) if system else None,
        tools=tuple(function_tool(tool.name, tool.description, tool.parameters) for tool in shape.tools or ()),
        messages=normalise(messages),
        output_schema=responses_schema(shape.text.format if shape.text else None),
    )
    check_tool_choice(shape.tool_choice, [tool["name"] for tool in conversation.tools], nested=False)
    if shape.background:
        raise InvalidRequest(
            "background responses are not available through CC API: a response is answered in its "
            "request (or streamed, with stream: true)"
        )
    if shape.conversation is not None:
        raise InvalidRequest(
            "conversation is not available through CC API: continue a response with "
            "previous_response_id, or send the whole input"
        )
    request = CompatRequest(
        conversation,
        FORMAT,
        pinned_session(pin_header, shape.metadata),
        _reference(previous) if previous is not None else None,
    )
    return ResponsesRequest(request, bool(shape.stream), shape.store is not False)


def _reference(previous: str) -> ResponseRef:
    match = _RESPONSE_ID.match(previous)
    if match is None:
        raise PreviousResponseNotFound(previous)
    return ResponseRef(f"sess_{match['session']}", int(match["seq"]), previous)


def _item(item: ResponseItem, where: str, system: list[str]) -> Message | None:
    kind = item.type
    if kind == "message":
        role, content = item.role, item.content
        if role in ("system", "developer"):
            system.append(text_of(content, f"{where}.content", ("input_text",)))
            return None
        if role == "user":
            return Message("user", content=tuple(_user_content(content, f"{where}.content")))
        if role == "assistant":
            return Message("assistant", text=text_of(content, f"{where}.content", ("output_text", "refusal")))
        raise InvalidRequest(f"{where}.role must be user, assistant, system or developer")
    if kind == "function_call":
        return Message(
            "assistant",
            tool_calls=(
                ToolCall(
                    expect(item.call_id, str, f"{where}.call_id", "a string"),
                    expect(item.name, str, f"{where}.name", "a string"),
                    arguments(item.arguments, f"{where}.arguments"),
                ),
            ),
        )
    if kind == "function_call_output":
        output = _output(item.output, f"{where}.output")
        return Message("tool", answers=(ToolResult(expect(item.call_id, str, f"{where}.call_id", "a string"), output),))
    return None  # reasoning: the session keeps Claude's own thinking


_TEXT_PARTS = ("input_text", "output_text")


def _output(output: Any, where: str) -> str | list[dict[str, Any]]:
    """A function's output: a string or text parts, or with an ``input_image`` among the parts, text and image
    blocks (a screenshot tool's image reaches Claude as an image in the tool result)."""
    parts = output if isinstance(output, list) else []
    if not any(isinstance(part, dict) and part.get("type") == "input_image" for part in parts):
        return text_of(output, where, _TEXT_PARTS)
    return _content_parts(parts, where, _TEXT_PARTS)


def _user_content(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return parse_input(content)
    parts = expect(content, list, where, "a string or an array of content parts")
    blocks = _content_parts(parts, where, ("input_text",))
    if not blocks:
        raise InvalidRequest(f"{where} must not be empty")
    return blocks


def _content_parts(parts: list[Any], where: str, text_types: tuple[str, ...]) -> list[dict[str, Any]]:
    """Text parts (of ``text_types``) and ``input_image`` parts as validated native blocks."""
    kinds = (*text_types, "input_image")
    blocks = []
    for index, part in enumerate(parts):
        part = expect(part, dict, f"{where}[{index}]", "an object")
        if part.get("type") in text_types:
            blocks.extend(parse_input([{"type": "text", "text": part.get("text")}]))
        elif part.get("type") == "input_image":
            blocks.append(image_block(part.get("image_url"), f"{where}[{index}].image_url"))
        else:
            raise InvalidRequest(f"{where}[{index}].type must be {', '.join(kinds[:-1])} or {kinds[-1]}")
    return blocks


# -- replies ------------------------------------------------------------------------
def _message_item(response: str, text: str, status: ItemStatus = "completed") -> OutputMessage:
    return {
        "type": "message",
        "id": f"msg_{response.removeprefix('resp_')}",
        "status": status,
        "role": "assistant",
        "content": [_text_part(text)] if status == "completed" else [],
    }


def _text_part(text: str) -> OutputText:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _call_item(call: ToolCall, status: ItemStatus = "completed") -> FunctionCallItem:
    return {
        "type": "function_call",
        "id": f"fc_{call.id}",
        "call_id": call.id,
        "name": call.name,
        "arguments": dump(call.input) if status == "completed" else "",
        "status": status,
    }


def _usage(usage: dict[str, int]) -> ResponseUsage:
    prompt, output = prompt_tokens(usage), int(usage.get("output_tokens") or 0)
    return {
        "input_tokens": prompt,
        "output_tokens": output,
        "total_tokens": prompt + output,
        "input_tokens_details": {"cached_tokens": int(usage.get("cache_read_input_tokens") or 0)},
        "output_tokens_details": {"reasoning_tokens": 0},
    }


def _envelope(
    id_: str,
    model: str,
    created: int,
    status: Literal["completed", "incomplete"],
    output: list[OutputMessage | FunctionCallItem],
    usage: ResponseUsage | None,
    incomplete: bool = False,
) -> Response:
    return {
        "id": id_,
        "object": "response",
        "created_at": created,
        "status": status,
        "model": model,
        "output": output,
        "usage": usage,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "temperature": None,
        "top_p": None,
        "text": {"format": {"type": "text"}},
        "truncation": "disabled",
    }


def response(reply: Reply, model: str, id_: str, created: int | None = None) -> Response:
    text: list[OutputMessage | FunctionCallItem] = [_message_item(id_, reply.text)] if reply.text else []
    output = text + [_call_item(c) for c in reply.tool_calls]
    truncated = finish_reason(reply) == "length"
    return _envelope(
        id_,
        model,
        created or int(time.time()),
        "incomplete" if truncated else "completed",
        output,
        _usage(reply.usage),
        incomplete=truncated,
    )


@dataclass
class ResponseStream:
    """The Responses API's SSE events for one streamed reply."""

    model: str
    id: str
    created: int = field(default_factory=lambda: int(time.time()))
    _sequence: int = 0
    _outputs: int = 0
    _text: list[str] | None = None

    def start(self) -> list[bytes]:
        return [
            self._event("response.created", {"response": self._snapshot()}),
            self._event("response.in_progress", {"response": self._snapshot()}),
        ]

    def delta(self, delta: TextDelta | ToolCall) -> list[bytes]:
        if isinstance(delta, TextDelta):
            frames = self._open_text() if self._text is None else []
            assert self._text is not None
            self._text.append(delta.text)
            return [
                *frames,
                self._event("response.output_text.delta", {**self._text_at(), "delta": delta.text, "logprobs": []}),
            ]
        frames = self._close_text()
        index = self._outputs
        self._outputs += 1
        done = _call_item(delta)
        return [
            *frames,
            self._event(
                "response.output_item.added", {"output_index": index, "item": _call_item(delta, "in_progress")}
            ),
            self._event(
                "response.function_call_arguments.delta",
                {"item_id": done["id"], "output_index": index, "delta": done["arguments"]},
            ),
            self._event(
                "response.function_call_arguments.done",
                {"item_id": done["id"], "output_index": index, "name": delta.name, "arguments": done["arguments"]},
            ),
            self._event("response.output_item.done", {"output_index": index, "item": done}),
        ]

    def end(self, reply: Reply) -> list[bytes]:
        final = response(reply, self.model, self.id, self.created)
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        return [*self._close_text(), self._event(kind, {"response": final})]

    def error(self, exc: ApiError) -> list[bytes]:
        error = openai_error(exc.type, exc.message)["error"]
        return [self._event("error", {"code": error["code"], "message": error["message"], "param": None})]

    def _snapshot(self) -> dict[str, Any]:
        """The response as the stream opens: in progress, so not yet a ``Response`` (whose status is final)."""
        return {**_envelope(self.id, self.model, self.created, "completed", [], None), "status": "in_progress"}

    def _text_at(self) -> dict[str, Any]:
        return {
            "item_id": f"msg_{self.id.removeprefix('resp_')}",
            "output_index": self._outputs - 1,
            "content_index": 0,
        }

    def _open_text(self) -> list[bytes]:
        self._text = []
        self._outputs += 1
        return [
            self._event(
                "response.output_item.added",
                {"output_index": self._outputs - 1, "item": _message_item(self.id, "", "in_progress")},
            ),
            self._event("response.content_part.added", {**self._text_at(), "part": _text_part("")}),
        ]

    def _close_text(self) -> list[bytes]:
        if self._text is None:
            return []
        text, self._text = "".join(self._text), None
        return [
            self._event("response.output_text.done", {**self._text_at(), "text": text, "logprobs": []}),
            self._event("response.content_part.done", {**self._text_at(), "part": _text_part(text)}),
            self._event(
                "response.output_item.done", {"output_index": self._outputs - 1, "item": _message_item(self.id, text)}
            ),
        ]

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        self._sequence += 1
        payload = {"type": kind, "sequence_number": self._sequence, **data}
        return f"event: {kind}\ndata: {dump(payload)}\n\n".encode()
