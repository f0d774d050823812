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

A response echoes what its request set (``instructions``, ``tools``, ``tool_choice``, ``text``, ``metadata``, …:
``ResponseSettings``), as OpenAI's does, in the JSON reply and in every streamed snapshot of it. A streamed reply
that fails ends in ``response.failed`` (the response, ``status: failed``, with its ``error``), then the ``error``
event.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from ccapi.catalog import ModelCatalog
from ccapi.compat.bodies import ResponseFormat, ResponseItem, ResponseRequest, ResponseTool
from ccapi.compat.conversation import Conversation, Message, ToolCall, normalise
from ccapi.compat.errors import PreviousResponseNotFound, openai_error
from ccapi.compat.exchange import CompatRequest, ResponseRef, model_of
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
from ccapi.compat.replies import (
    FunctionCallItem,
    FunctionTool,
    ItemStatus,
    JsonSchemaFormat,
    OutputMessage,
    OutputText,
    Response,
    ResponseSettings,
    ResponseText,
    ResponseUsage,
    TextFormat,
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


#: A response's settings when its request set none: OpenAI's defaults.
DEFAULT_SETTINGS: ResponseSettings = {
    "instructions": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "text": {"format": {"type": "text"}, "verbosity": None},
    "truncation": "disabled",
    "previous_response_id": None,
    "store": True,
    "prompt_cache_key": None,
    "temperature": None,
    "top_p": None,
}


@dataclass(frozen=True)
class ResponsesRequest:
    request: CompatRequest
    stream: bool
    store: bool = True
    settings: ResponseSettings = field(default_factory=lambda: DEFAULT_SETTINGS)


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
            "request (or streamed, with stream: true)",
            param="background",
        )
    if shape.conversation is not None:
        raise InvalidRequest(
            "conversation is not available through CC API: continue a response with "
            "previous_response_id, or send the whole input",
            param="conversation",
        )
    request = CompatRequest(
        conversation,
        FORMAT,
        pinned_session(pin_header, shape.metadata),
        _reference(previous) if previous is not None else None,
    )
    return ResponsesRequest(request, bool(shape.stream), shape.store is not False, _settings(shape))


def _settings(shape: ResponseRequest) -> ResponseSettings:
    """What the response echoes of the request (checked already: ``text.format`` by ``responses_schema``, the tool
    choice by ``check_tool_choice``)."""
    text_format = shape.text.format if shape.text else None
    metadata = shape.metadata.model_dump(exclude_none=True) if shape.metadata else {}
    return {
        "instructions": shape.instructions,
        "metadata": metadata,
        "parallel_tool_calls": shape.parallel_tool_calls is not False,
        "tool_choice": shape.tool_choice if shape.tool_choice is not None else "auto",
        "tools": [_tool_echo(tool) for tool in shape.tools or ()],
        "text": _text_echo(text_format, shape.text.verbosity if shape.text else None),
        "truncation": shape.truncation or "disabled",
        "previous_response_id": shape.previous_response_id,
        "store": shape.store is not False,
        "prompt_cache_key": shape.prompt_cache_key if isinstance(shape.prompt_cache_key, str) else None,
        "temperature": None,
        "top_p": None,
    }


def _tool_echo(tool: ResponseTool) -> FunctionTool:
    strict = (tool.model_extra or {}).get("strict")
    return {
        "type": "function",
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
        "strict": strict if isinstance(strict, bool) else None,
    }


def _text_echo(text_format: ResponseFormat | None, verbosity: str | None) -> ResponseText:
    """``text.format`` as the request gave it (``{"type": "text"}`` when it gave none)."""
    chosen: TextFormat | JsonSchemaFormat = {"type": "text"}
    if text_format is not None and text_format.type == "json_schema":
        spec = text_format.model_extra or {}
        chosen = {
            "type": "json_schema",
            "name": spec["name"],
            "schema": spec["schema"],
            "description": spec.get("description"),
            "strict": spec.get("strict"),
        }
    elif text_format is not None and text_format.type == "json_object":
        chosen = {"type": "json_object"}
    return {"format": chosen, "verbosity": verbosity}


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
        raise InvalidRequest(f"{where}.role must be user, assistant, system or developer", param=f"{where}.role")
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
    blocks = _content_parts(parts, where, ("input_text",), files=True)
    if not blocks:
        raise InvalidRequest(f"{where} must not be empty", param=where)
    return blocks


def _content_parts(
    parts: list[Any], where: str, text_types: tuple[str, ...], files: bool = False
) -> list[dict[str, Any]]:
    """Text parts (of ``text_types``), ``input_image`` parts and (``files``) ``input_file`` parts as validated native
    blocks."""
    kinds = (*text_types, "input_image", *(("input_file",) if files else ()))
    blocks = []
    for index, part in enumerate(parts):
        at = f"{where}[{index}]"
        part = expect(part, dict, at, "an object")
        if part.get("type") in text_types:
            blocks.append(input_block({"type": "text", "text": part.get("text")}, at))
        elif part.get("type") == "input_image":
            if part.get("file_id") is not None and part.get("image_url") is None:
                raise InvalidRequest(
                    f"{at}.file_id: CC API has no Files API to read an uploaded image from; send the image as "
                    "image_url (an http(s) URL or data:image/png;base64,...)",
                    param=f"{at}.file_id",
                )
            blocks.append(image_block(part.get("image_url"), f"{at}.image_url"))
        elif part.get("type") == "input_file" and files:
            blocks.append(file_block(part, at))
        else:
            raise InvalidRequest(f"{at}.type must be {', '.join(kinds[:-1])} or {kinds[-1]}", param=f"{at}.type")
    return blocks


# -- replies ------------------------------------------------------------------------
def _message_id(response: str) -> str:
    """A reply's message item is named by its response (a response holds one message)."""
    return f"msg_{response.removeprefix('resp_')}"


def _message_item(response: str, text: str, status: ItemStatus = "completed") -> OutputMessage:
    return {
        "type": "message",
        "id": _message_id(response),
        "status": status,
        "role": "assistant",
        "content": [] if status == "in_progress" else [_text_part(text)],
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
        "input_tokens_details": {
            "cached_tokens": int(usage.get("cache_read_input_tokens") or 0),
            "cache_write_tokens": int(usage.get("cache_creation_input_tokens") or 0),
        },
        "output_tokens_details": {"reasoning_tokens": 0},
    }


def response(
    reply: Reply, model: str, id_: str, settings: ResponseSettings = DEFAULT_SETTINGS, created: int | None = None
) -> Response:
    text: list[OutputMessage | FunctionCallItem] = [_message_item(id_, reply.text)] if reply.text else []
    truncated = finish_reason(reply) == "length"
    return {
        "id": id_,
        "object": "response",
        "created_at": created or int(time.time()),
        "completed_at": None if truncated else int(time.time()),
        "status": "incomplete" if truncated else "completed",
        "model": model,
        "output": text + [_call_item(c) for c in reply.tool_calls],
        "usage": _usage(reply.usage),
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if truncated else None,
        **settings,
    }


@dataclass
class ResponseStream:
    """The Responses API's SSE events for one streamed reply: ``response.created`` and ``response.in_progress``,
    each output item's ``output_item.added`` … ``output_item.done`` (a message's text part and text deltas, a
    function call's arguments) and ``response.completed`` (or ``response.incomplete``); a failure ends it with
    ``response.failed`` and ``error``."""

    model: str
    id: str
    settings: ResponseSettings = field(default_factory=lambda: DEFAULT_SETTINGS)
    created: int = field(default_factory=lambda: int(time.time()))
    _sequence: int = 0
    _done: list[OutputMessage | FunctionCallItem] = field(default_factory=list)
    _text: list[str] | None = None

    def start(self) -> list[bytes]:
        return [
            self._event("response.created", {"response": self._snapshot("in_progress")}),
            self._event("response.in_progress", {"response": self._snapshot("in_progress")}),
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
        index = len(self._done)
        done = _call_item(delta)
        self._done.append(done)
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
        final = response(reply, self.model, self.id, self.settings, self.created)
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        return [*self._close_text(), self._event(kind, {"response": final})]

    def error(self, exc: ApiError) -> list[bytes]:
        """``response.failed``, the response as it stood (the items it had streamed, text cut short as an
        ``incomplete`` message) with its ``error``, as OpenAI ends a response that fails; then the ``error`` event,
        for the clients that read only that."""
        error = openai_error(exc.type, exc.message)["error"]
        output = list(self._done)
        if self._text is not None:
            output.append(_message_item(self.id, "".join(self._text), "incomplete"))
        failed = {
            **self._snapshot("failed"),
            "output": output,
            "error": {"code": _FAILED_CODES.get(exc.type, "server_error"), "message": exc.message},
        }
        return [
            self._event("response.failed", {"response": failed}),
            self._event("error", {"code": error["code"], "message": error["message"], "param": error["param"]}),
        ]

    def _snapshot(self, status: str) -> dict[str, Any]:
        """The response before it settles: not yet a ``Response`` (whose status is final)."""
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "completed_at": None,
            "status": status,
            "model": self.model,
            "output": [],
            "usage": None,
            "error": None,
            "incomplete_details": None,
            **self.settings,
        }

    def _text_at(self) -> dict[str, Any]:
        return {"item_id": _message_id(self.id), "output_index": len(self._done), "content_index": 0}

    def _open_text(self) -> list[bytes]:
        self._text = []
        return [
            self._event(
                "response.output_item.added",
                {"output_index": len(self._done), "item": _message_item(self.id, "", "in_progress")},
            ),
            self._event("response.content_part.added", {**self._text_at(), "part": _text_part("")}),
        ]

    def _close_text(self) -> list[bytes]:
        if self._text is None:
            return []
        text, self._text = "".join(self._text), None
        at, item = self._text_at(), _message_item(self.id, text)
        self._done.append(item)
        return [
            self._event("response.output_text.done", {**at, "text": text, "logprobs": []}),
            self._event("response.content_part.done", {**at, "part": _text_part(text)}),
            self._event("response.output_item.done", {"output_index": at["output_index"], "item": item}),
        ]

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        self._sequence += 1
        payload = {"type": kind, "sequence_number": self._sequence, **data}
        return f"event: {kind}\ndata: {dump(payload)}\n\n".encode()


#: A failed response's ``error.code``, in the Responses API's vocabulary (its SDK types list most of the codes; Codex
#: reads ``context_length_exceeded`` there too).
_FAILED_CODES = {
    "rate_limited": "rate_limit_exceeded",
    "context_length_exceeded": "context_length_exceeded",
    "upstream_invalid_request": "invalid_prompt",
}
