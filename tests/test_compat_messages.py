"""Anthropic Messages on native sessions, driven by the ``anthropic`` package itself."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import pytest

from ccapi.testing import MockModel, Reply, ToolUse
from tests.compat_support import (
    WEATHER_SCHEMA,
    assert_one_warm_session,
    main_requests,
    result_text,
    tool_results_sent,
    user_texts,
)
from tests.gateway import Gateway

WEATHER_TOOL = {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER_SCHEMA}


@pytest.fixture
def client(gateway: Gateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.base_url, api_key="unused", max_retries=0) as client:
        yield client


def test_growing_transcript_with_a_streamed_reply_rides_one_session(
    client: anthropic.Anthropic, mock_model: MockModel
) -> None:
    messages: list[dict] = []
    sessions = set()
    for turn in range(5):
        messages.append({"role": "user", "content": f"question {turn}"})
        raw = client.messages.with_raw_response.create(
            model="claude-sonnet-4-5", max_tokens=256, system="You are terse.", messages=messages
        )
        message = raw.parse()
        sessions.add(raw.headers["x-cc-session-id"])
        assert message.type == "message" and message.role == "assistant" and message.stop_reason == "end_turn"
        assert [block.type for block in message.content] == ["text"]
        assert message.content[0].text == f"mock reply: question {turn}"
        assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
        messages.append({"role": "assistant", "content": [block.model_dump() for block in message.content]})

    mock_model.script(Reply(text="the sixth answer arrives in several pieces"))
    messages.append({"role": "user", "content": [{"type": "text", "text": "question 5"}]})
    with client.messages.stream(model="sonnet", max_tokens=256, system="You are terse.", messages=messages) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
        sessions.add(stream.response.headers["x-cc-session-id"])
    assert len(deltas) > 1 and "".join(deltas) == "the sixth answer arrives in several pieces"
    assert final.content[0].text == "".join(deltas) and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0

    assert len(sessions) == 1
    assert_one_warm_session(mock_model, 6)
    assert [user_texts(b["messages"][-1])[-1] for b in main_requests(mock_model)] == [f"question {n}" for n in range(6)]


def test_tool_use_round_trip(client: anthropic.Anthropic, mock_model: MockModel) -> None:
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Rome"}),)), Reply(text="Rome is 23C."))
    messages: list = [{"role": "user", "content": "Weather in Rome?"}]
    first = client.messages.with_raw_response.create(
        model="sonnet", max_tokens=256, messages=messages, tools=[WEATHER_TOOL]
    )
    paused = first.parse()
    assert paused.stop_reason == "tool_use"
    call = paused.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather" and call.input == {"city": "Rome"}

    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in paused.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "23C"}]},
    ]
    second = client.messages.with_raw_response.create(
        model="sonnet", max_tokens=256, messages=messages, tools=[WEATHER_TOOL]
    )
    assert second.headers["x-cc-session-id"] == first.headers["x-cc-session-id"]
    done = second.parse()
    assert done.stop_reason == "end_turn" and done.content[0].text == "Rome is 23C."
    assert [(b["tool_use_id"], result_text(b)) for b in tool_results_sent(mock_model)] == [(call.id, "23C")]
    assert len(main_requests(mock_model)) == 2


def test_streamed_tool_use_is_a_tool_use_block(client: anthropic.Anthropic, mock_model: MockModel) -> None:
    mock_model.script(
        Reply(text="Checking.", tool_uses=(ToolUse("get_weather", {"city": "Bern"}),)), Reply(text="Bern is mild.")
    )
    messages: list = [{"role": "user", "content": "Bern?"}]
    with client.messages.stream(model="sonnet", max_tokens=256, messages=messages, tools=[WEATHER_TOOL]) as stream:
        paused = stream.get_final_message()
    assert paused.stop_reason == "tool_use"
    assert [b.type for b in paused.content] == ["text", "tool_use"]
    assert paused.content[0].text == "Checking." and paused.content[1].input == {"city": "Bern"}
    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in paused.content]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": paused.content[1].id,
                    "content": [{"type": "text", "text": "mild"}],
                }
            ],
        },
    ]
    with client.messages.stream(model="sonnet", max_tokens=256, messages=messages, tools=[WEATHER_TOOL]) as stream:
        assert stream.get_final_text() == "Bern is mild."
    assert result_text(tool_results_sent(mock_model)[0]) == "mild"


def test_errors_use_the_anthropic_envelope(client: anthropic.Anthropic, gateway: Gateway) -> None:
    with pytest.raises(anthropic.NotFoundError) as unknown:
        client.messages.create(model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": unknown.value.body["error"]["message"]},
    }
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model="sonnet", max_tokens=10, messages=[{"role": "assistant", "content": "hi"}])
    assert bad.value.body["error"]["type"] == "invalid_request_error"
    raw = httpx.post(f"{gateway.base_url}/v1/messages", content=b"[]", headers={"content-type": "application/json"})
    assert raw.status_code == 400 and raw.json()["type"] == "error"


def test_models_list_reads_the_catalog(client: anthropic.Anthropic) -> None:
    models = list(client.models.list())
    assert "claude-sonnet-4-5" in [m.id for m in models]
    assert all(m.type == "model" and m.display_name for m in models)
