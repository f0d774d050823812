"""Wire fidelity of the compat endpoints, as a client built on the providers' own types sees it: every reply and
every streamed event validates against the official ``openai`` and ``anthropic`` SDKs' models (a field they require
is there, with the right type), the SSE framing and the event order are each format's own, and a Responses reply
echoes the settings of its request (``text.format``, ``tools``, ``tool_choice``, ``instructions``, ...)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pydantic
import pytest
from anthropic.types import Message, ModelInfo, RawMessageStreamEvent
from openai.types import Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

from ccapi.compat.conversation import ToolCall
from ccapi.compat.errors import TurnFailed, anthropic_error, failure, openai_error
from ccapi.compat.openai_responses import ResponseStream
from ccapi.compat.reply import TextDelta
from ccapi.testing import MockError, MockModel, Reply, ToolUse
from tests.compat_support import WEATHER_SCHEMA, main_requests
from tests.gateway import Gateway

CALL = Reply(text="Checking the weather now.", tool_uses=(ToolUse("get_weather", {"city": "Rome"}),))
RESPONSE_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
MESSAGE_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RawMessageStreamEvent)


class Weather(pydantic.BaseModel):
    city: str


def frames(gateway: Gateway, path: str, body: dict[str, Any]) -> list[tuple[str | None, str]]:
    """Each SSE frame's ``event:`` name (``None`` without one) and ``data``; comments (keep-alives) left out."""
    out: list[tuple[str | None, str]] = []
    with gateway.client.stream("POST", path, json=body) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
        for block in response.read().decode().split("\n\n"):
            lines = [line for line in block.split("\n") if line and not line.startswith(":")]
            if lines:
                event = next((line[7:] for line in lines if line.startswith("event: ")), None)
                [data] = [line[6:] for line in lines if line.startswith("data: ")]
                out.append((event, data))
    return out


@pytest.fixture
def oai(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_chat_replies_and_chunks_are_the_sdks_types(gateway: Gateway, mock_model: MockModel) -> None:
    """A completion that calls a tool, and its stream with ``include_usage``: no ``event:`` lines, a role chunk
    first, the finish reason, then the usage chunk (``choices: []``; every chunk before it has ``usage: null``) and
    ``data: [DONE]``."""
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
    ask = {"model": "sonnet", "messages": [{"role": "user", "content": "Rome?"}], "tools": tools}
    mock_model.script(CALL)
    reply = gateway.client.post("/v1/chat/completions", json=ask)
    completion = ChatCompletion.model_validate(reply.json())
    assert completion.choices[0].finish_reason == "tool_calls" and completion.choices[0].message.tool_calls

    mock_model.script(CALL)
    sent = frames(gateway, "/v1/chat/completions", {**ask, "stream": True, "stream_options": {"include_usage": True}})
    assert all(event is None for event, _ in sent) and sent[-1][1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(data) for _, data in sent[:-1]]
    raw = [orjson.loads(data) for _, data in sent[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0
    assert all("usage" in chunk and chunk["usage"] is None for chunk in raw[:-1])
    assert chunks[-1].usage.prompt_tokens_details is not None
    assert chunks[-1].usage.prompt_tokens_details.cache_write_tokens is not None
    [call] = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert call.id and call.function and call.function.name == "get_weather"


def test_responses_replies_and_events_are_the_sdks_types(gateway: Gateway, mock_model: MockModel) -> None:
    """A response that calls a tool, and its stream: each frame's ``event:`` is its data's ``type``, in the
    documented order (a message item's part and text, then the call's arguments, each item added then done)."""
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA}
    ask = {"model": "sonnet", "input": "Rome?", "tools": [tool]}
    mock_model.script(CALL)
    response = Response.model_validate(gateway.client.post("/v1/responses", json=ask).json())
    assert [item.type for item in response.output] == ["message", "function_call"]
    assert response.usage is not None and response.usage.input_tokens_details.cache_write_tokens == 0

    mock_model.script(CALL)
    sent = frames(gateway, "/v1/responses", {**ask, "stream": True})
    events = [RESPONSE_EVENT.validate_json(data) for _, data in sent]
    assert [event for event, _ in sent] == [e.type for e in events]
    kinds = [e.type for e in events if e.type != "response.output_text.delta"]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))
    assert {e.response.id for e in events if hasattr(e, "response")} == {events[-1].response.id}
    final = events[-1].response
    assert final.status == "completed" and final.completed_at and final.output[1].type == "function_call"


def test_messages_replies_and_events_are_the_sdks_types(gateway: Gateway, mock_model: MockModel) -> None:
    """A message that calls a tool, and its stream: ``message_start``, each block's start, deltas and stop,
    ``message_delta`` with the stop reason and the usage, ``message_stop``; each reply names its ``request-id``,
    as Anthropic's SDKs read it."""
    tools = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]
    ask = {"model": "sonnet", "max_tokens": 100, "messages": [{"role": "user", "content": "Rome?"}], "tools": tools}
    mock_model.script(CALL)
    raw = gateway.client.post("/v1/messages", json=ask)
    message = Message.model_validate(raw.json())
    assert message.stop_reason == "tool_use" and [b.type for b in message.content] == ["text", "tool_use"]
    assert raw.headers["request-id"] == raw.headers["x-request-id"]

    mock_model.script(CALL)
    sent = frames(gateway, "/v1/messages", {**ask, "stream": True})
    events = [MESSAGE_EVENT.validate_json(data) for _, data in sent]
    assert [event for event, _ in sent] == [e.type for e in events]
    assert [e.type for e in events if e.type != "content_block_delta"] == [
        "message_start",
        "content_block_start",
        "content_block_stop",
        "content_block_start",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    delta = next(e for e in events if e.type == "message_delta")
    assert delta.delta.stop_reason == "tool_use" and delta.usage.input_tokens and delta.usage.output_tokens

    with (
        anthropic.Anthropic(base_url=gateway.base_url, api_key="unused", max_retries=0) as client,
        pytest.raises(anthropic.NotFoundError) as unknown,
    ):
        client.messages.create(model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.request_id and unknown.value.response.headers["x-request-id"] == unknown.value.request_id


def test_models_are_both_sdks_model_types(gateway: Gateway) -> None:
    listed = gateway.client.get("/v1/models").json()["data"]
    assert listed
    for model in listed:
        Model.model_validate(model)
        assert ModelInfo.model_validate(model).lifecycle == "active"


def test_a_response_echoes_its_requests_settings(oai: openai.OpenAI, mock_model: MockModel) -> None:
    """As OpenAI's does: ``text.format`` (what ``responses.parse`` asked for), ``tools``, ``tool_choice``,
    ``parallel_tool_calls``, ``instructions``, ``metadata``, ``prompt_cache_key`` and ``previous_response_id``, in
    the JSON reply and in every streamed snapshot; a request that sets none gets OpenAI's defaults."""
    tool = openai.pydantic_function_tool(Weather, name="get_weather")
    asked: dict[str, Any] = {
        "model": "sonnet",
        "instructions": "Answer in JSON.",
        "tools": [tool],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False,
        "metadata": {"ticket": "T-1"},
        "prompt_cache_key": "conversation-7",
    }
    first = oai.responses.parse(input="Weather in Paris?", text_format=Weather, **asked)
    assert first.output_parsed == Weather(city="mock")
    text_format = first.text.format if first.text else None
    assert text_format is not None and text_format.type == "json_schema" and text_format.name == "Weather"
    assert text_format.schema_ == Weather.model_json_schema() | {"additionalProperties": False}
    assert text_format.strict is True
    assert first.instructions == "Answer in JSON." and first.metadata == {"ticket": "T-1"}
    assert first.tool_choice.type == "function" and first.tool_choice.name == "get_weather"
    assert first.parallel_tool_calls is False and first.prompt_cache_key == "conversation-7"
    [echoed] = first.tools
    assert echoed.type == "function" and echoed.name == "get_weather" and echoed.strict is True
    assert echoed.parameters == tool["function"]["parameters"]
    assert first.previous_response_id is None and first.store is True

    with oai.responses.stream(
        input="And in Lyon?", text_format=Weather, previous_response_id=first.id, **asked
    ) as stream:
        snapshots = [event.response for event in stream if hasattr(event, "response")]
        final = stream.get_final_response()
    assert final.output_parsed == Weather(city="mock")
    assert [s.status for s in snapshots] == ["in_progress", "in_progress", "completed"]
    for snapshot in snapshots:
        assert snapshot.previous_response_id == first.id and snapshot.instructions == "Answer in JSON."
        assert snapshot.text == first.text and snapshot.tools == first.tools
        assert snapshot.tool_choice == first.tool_choice and snapshot.parallel_tool_calls is False

    plain = oai.responses.create(model="sonnet", input="hello", store=False)
    assert plain.text is not None and plain.text.format.type == "text"
    assert (plain.tools, plain.tool_choice, plain.parallel_tool_calls, plain.instructions) == ([], "auto", True, None)
    assert plain.store is False and plain.metadata == {}


def test_a_streamed_response_that_fails_ends_in_response_failed_then_error() -> None:
    """``response.failed`` (status ``failed``, its ``error``, the items streamed so far, text cut short as an
    ``incomplete`` message) is the lifecycle's last, as OpenAI ends a failed response; the ``error`` event follows
    for clients that read only that. Both are the SDK's types."""
    stream = ResponseStream("claude-sonnet-4-5", "resp_0123")
    sent = [
        *stream.start(),
        *stream.delta(ToolCall("toolu_1", "get_weather", {"city": "Rome"})),
        *stream.delta(TextDelta("Halfway thr")),
        *stream.error(TurnFailed("the model's service failed")),
    ]
    events = [RESPONSE_EVENT.validate_json(frame.split(b"\ndata: ", 1)[1]) for frame in sent]
    assert [e.type for e in events][-2:] == ["response.failed", "error"]
    failed, error = events[-2:]
    assert failed.response.status == "failed" and failed.response.id == "resp_0123"
    assert failed.response.error.code == "server_error"
    assert failed.response.error.message == "the model's service failed"
    assert [(item.type, item.status) for item in failed.response.output] == [
        ("function_call", "completed"),
        ("message", "incomplete"),
    ]
    assert failed.response.output[1].content[0].text == "Halfway thr"
    assert (error.code, error.message) == ("upstream_error", "the model's service failed")
    assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))


def test_sse_frames_are_named_for_their_event(gateway: Gateway, mock_model: MockModel) -> None:
    """Raw framing as the SDKs' decoders split it: ``event: NAME`` then ``data: JSON`` for Responses and Messages,
    ``data:`` alone for Chat, each frame ended by a blank line."""
    mock_model.script(Reply(text="framed"))
    with httpx.Client(base_url=gateway.base_url, timeout=60) as http:
        body = http.post("/v1/responses", json={"model": "sonnet", "input": "frame", "stream": True}).text
    assert body.endswith("\n\n") and body.startswith(("event: response.created\ndata: {", ": keep-alive"))
    for block in filter(None, body.split("\n\n")):
        if not block.startswith(":"):
            event, data = block.split("\n")
            assert orjson.loads(data.removeprefix("data: "))["type"] == event.removeprefix("event: ")


PROMPT_TOO_LONG = Reply(
    error=MockError(400, "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum")
)


def test_a_conversation_past_the_context_window_is_the_clients_400(gateway: Gateway, mock_model: MockModel) -> None:
    """The model's API refusing the prompt as too long is a 400 in each format (OpenAI's
    ``context_length_exceeded``, Anthropic's ``invalid_request_error`` with its words), as agent clients expect
    before they compact their history: not a 502 the SDKs would send again (here with their default two retries,
    and the model asked once each time). Streamed too: the status line waits for the reply's first delta, so a
    turn refused before it said anything is the same 400, not a 200 whose stream ends in an error."""
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused") as client:
        mock_model.script(PROMPT_TOO_LONG)
        with pytest.raises(openai.BadRequestError) as chat:
            client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "a long one"}])
        assert chat.value.code == "context_length_exceeded" and chat.value.type == "invalid_request_error"
        assert chat.value.response.headers["x-cc-session-id"].startswith("sess_")

        mock_model.script(PROMPT_TOO_LONG)
        with pytest.raises(openai.BadRequestError) as streamed:
            list(
                client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "s"}], stream=True)
            )
        assert streamed.value.code == "context_length_exceeded"

        mock_model.script(PROMPT_TOO_LONG)
        with (
            pytest.raises(openai.BadRequestError) as response,
            client.responses.stream(model="sonnet", input="a long one, streamed") as stream,
        ):
            list(stream)
        assert response.value.code == "context_length_exceeded"

    with anthropic.Anthropic(base_url=gateway.base_url, api_key="unused") as client:
        ask = [{"role": "user", "content": "a long one"}]
        mock_model.script(PROMPT_TOO_LONG)
        with pytest.raises(anthropic.BadRequestError) as created:
            client.messages.create(model="sonnet", max_tokens=10, messages=ask)
        mock_model.script(PROMPT_TOO_LONG)
        with (
            pytest.raises(anthropic.BadRequestError) as streamed_message,
            client.messages.stream(model="sonnet", max_tokens=10, messages=ask) as stream,
        ):
            stream.get_final_message()
    for error in (created.value, streamed_message.value):
        assert error.body["error"]["type"] == "invalid_request_error"
        assert "prompt is too long" in error.message.lower()
    assert len(main_requests(mock_model)) == 5  # one model call each: nothing retried


def test_what_an_upstream_failure_is_in_a_compat_reply() -> None:
    """The model's API refusing a request (a 400) is the client's 400, any other upstream failure the 502 of a
    failed turn."""
    too_long = failure(
        {"type": "upstream_error", "message": "Prompt is too long · …", "reason": "invalid_request", "status": 400}
    )
    assert (too_long.status, too_long.type) == (400, "context_length_exceeded")
    refused = failure(
        {"type": "upstream_error", "message": "API Error: 400 bad block", "reason": "unknown", "status": 400}
    )
    assert (refused.status, refused.type) == (400, "upstream_invalid_request")
    assert openai_error(refused.type, refused.message)["error"]["type"] == "invalid_request_error"
    assert anthropic_error(too_long.type, too_long.message)["error"]["type"] == "invalid_request_error"
    for upstream in ({"status": 500, "reason": "server_error"}, {"status": 401, "reason": "authentication_failed"}, {}):
        failed = failure({"type": "upstream_error", "message": "API Error", **upstream})
        assert (failed.status, failed.type) == (502, "upstream_error")
