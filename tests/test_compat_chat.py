"""OpenAI Chat Completions on native sessions, driven by the ``openai`` package itself."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
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

WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER_SCHEMA},
}


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_growing_transcript_rides_one_warm_session(client: openai.OpenAI, mock_model: MockModel) -> None:
    messages: list[dict] = [{"role": "system", "content": "You are terse."}]
    sessions = set()
    for turn in range(6):
        messages.append({"role": "user", "content": f"question {turn}"})
        raw = client.chat.completions.with_raw_response.create(model="claude-sonnet-4-5", messages=messages)
        completion = raw.parse()
        sessions.add(raw.headers["x-cc-session-id"])
        assert completion.object == "chat.completion"
        assert completion.model == "claude-sonnet-4-5"
        choice = completion.choices[0]
        assert choice.finish_reason == "stop" and choice.message.role == "assistant"
        assert choice.message.content == f"mock reply: question {turn}"
        assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
        assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
        messages.append({"role": "assistant", "content": choice.message.content})

    assert len(sessions) == 1
    assert_one_warm_session(mock_model, 6)
    bodies = main_requests(mock_model)
    assert [user_texts(b["messages"][-1])[-1] for b in bodies] == [f"question {n}" for n in range(6)]
    assert all(b["system"] and "You are terse." in str(b["system"]) for b in bodies)


def test_a_user_message_that_begins_with_a_slash_is_for_the_model(client: openai.OpenAI, mock_model: MockModel) -> None:
    """Claude Code runs a user message that begins with one of its commands instead of asking the model: a user of a
    chat client who typed ``/clear`` emptied the session's context behind the client's back (its next request, the
    whole history, reached the model as its last message alone), and ``/cost`` answered without the model."""
    messages: list[dict] = [{"role": "user", "content": "remember the word apricot"}]
    for text in ("/clear", "/cost", "what was the word?"):
        reply = client.chat.completions.create(model="claude-sonnet-4-5", messages=messages)
        messages += [{"role": "assistant", "content": reply.choices[0].message.content}]
        messages += [{"role": "user", "content": text}]
    last = client.chat.completions.create(model="claude-sonnet-4-5", messages=messages)
    assert last.choices[0].message.content == "mock reply: what was the word?"
    bodies = main_requests(mock_model)
    assert len(bodies) == 4  # every request asked the model
    assert [user_texts(b["messages"][-1])[-1].strip() for b in bodies[1:3]] == ["/clear", "/cost"]
    assert "remember the word apricot" in str(bodies[-1]["messages"]), "the context survived"


def test_streamed_reply_is_valid_chunks_and_continues_the_session(client: openai.OpenAI, mock_model: MockModel) -> None:
    mock_model.script(Reply(text="one two three four five six seven"))
    messages = [{"role": "user", "content": "count"}]
    first = client.chat.completions.with_raw_response.create(model="sonnet", messages=messages)
    session = first.headers["x-cc-session-id"]
    messages += [
        {"role": "assistant", "content": first.parse().choices[0].message.content},
        {"role": "user", "content": "again"},
    ]
    mock_model.script(Reply(text="eight nine ten eleven twelve thirteen"))
    with client.chat.completions.with_streaming_response.create(
        model="sonnet", messages=messages, stream=True, stream_options={"include_usage": True}
    ) as response:
        assert response.headers["x-cc-session-id"] == session
        chunks = list(response.parse())
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text_chunks = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(text_chunks) > 1  # streamed in pieces, not one block
    assert "".join(text_chunks) == "eight nine ten eleven twelve thirteen"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert_one_warm_session(mock_model, 2)


def test_function_calling_round_trip(client: openai.OpenAI, mock_model: MockModel) -> None:
    mock_model.script(
        Reply(text="Let me check.", tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)),
        Reply(text="Oslo is at -3C."),
    )
    messages: list = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.with_raw_response.create(model="sonnet", messages=messages, tools=[WEATHER_TOOL])
    paused = first.parse().choices[0]
    assert paused.finish_reason == "tool_calls"
    assert paused.message.content == "Let me check."
    call = paused.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"Oslo"}'

    messages += [
        paused.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "-3C and snowing"},
    ]
    second = client.chat.completions.with_raw_response.create(model="sonnet", messages=messages, tools=[WEATHER_TOOL])
    assert second.headers["x-cc-session-id"] == first.headers["x-cc-session-id"]
    done = second.parse().choices[0]
    assert done.finish_reason == "stop" and done.message.content == "Oslo is at -3C."
    assert done.message.tool_calls is None
    sent = tool_results_sent(mock_model)
    assert [(b["tool_use_id"], result_text(b)) for b in sent] == [(call.id, "-3C and snowing")]
    assert len(main_requests(mock_model)) == 2  # the paused turn continued: no new turn, no re-seeding


def test_streamed_tool_call_arrives_as_tool_call_deltas(client: openai.OpenAI, mock_model: MockModel) -> None:
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Lima"}),)), Reply(text="Sunny."))
    messages: list = [{"role": "user", "content": "Lima?"}]
    chunks = list(client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER_TOOL], stream=True))
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and calls[0].function.name == "get_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": calls[0].id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": calls[0].function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
    ]
    done = client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER_TOOL])
    assert done.choices[0].message.content == "Sunny."


def test_errors_use_the_openai_envelope(client: openai.OpenAI, gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "unknown model" in unknown.value.message
    assert unknown.value.body["type"] == "not_found_error" and unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="sonnet", messages=[{"role": "wizard", "content": "hi"}])
    assert bad.value.body["type"] == "invalid_request_error" and "role" in bad.value.body["message"]
    raw = httpx.post(
        f"{gateway.base_url}/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert raw.status_code == 400 and set(raw.json()["error"]) == {"message", "type", "param", "code"}


def test_a_compat_session_is_model_only_the_clients_tool_alone(
    client: openai.OpenAI, gateway: Gateway, mock_model: MockModel
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_TOOL]
    )
    assert raw.parse().choices[0].message.content == "mock reply: weather?"
    assert [[t["name"] for t in b["tools"]] for b in main_requests(mock_model)] == [["mcp__client__get_weather"]]
    session = gateway.client.get(f"/api/sessions/{raw.headers['x-cc-session-id']}").json()
    assert session["builtin_tools"] == "none"


def test_a_header_gives_a_new_compat_session_built_in_tools(gateway: Gateway, mock_model: MockModel) -> None:
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "read it"}]}
    response = gateway.client.post("/v1/chat/completions", json=body, headers={"x-cc-builtin-tools": "Read,Glob"})
    assert response.status_code == 200, response.text
    assert [sorted(t["name"] for t in b["tools"]) for b in main_requests(mock_model)] == [["Glob", "Read"]]
    bad = gateway.client.post("/v1/chat/completions", json=body, headers={"x-cc-builtin-tools": "Shell"})
    assert bad.status_code == 400 and "Shell" in bad.json()["error"]["message"]


def test_a_reply_cut_at_the_output_limit_is_length_not_an_error(
    client: openai.OpenAI, gateway: Gateway, mock_model: MockModel
) -> None:
    """Claude Code resumes a reply cut at its output limit a few times, then gives up with its own error message.
    The reply so far is the client's, cut for length (``finish_reason: length``, Anthropic's ``max_tokens``, the
    turn's ``stop_reason``), not a 502 that threw it away: the stop reason was Claude Code's error message's
    (``stop_sequence``), so the cut was never seen as one."""

    def cut_every_time() -> None:
        mock_model.script(*(Reply(text=f"part{n} ", stop_reason="max_tokens") for n in range(8)))

    cut_every_time()
    completion = client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "a saga"}])
    [choice] = completion.choices
    assert choice.finish_reason == "length" and "part0" in (choice.message.content or ""), completion
    cut_every_time()
    message = gateway.client.post(
        "/v1/messages", json={"model": "sonnet", "max_tokens": 100, "messages": [{"role": "user", "content": "more"}]}
    )
    assert message.status_code == 200 and message.json()["stop_reason"] == "max_tokens", message.text
    cut_every_time()
    session = gateway.create_session()
    turn = gateway.client.post(f"/api/sessions/{session['id']}/turns", json={"input": "again"}).json()
    ended = (turn["status"], turn["stop_reason"], turn["error"]["reason"])
    assert ended == ("failed", "max_tokens", "max_output_tokens"), turn
