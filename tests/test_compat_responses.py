"""OpenAI Responses on native sessions: ``previous_response_id`` continues the session."""

from __future__ import annotations

from collections.abc import Iterator

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

PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": WEATHER_SCHEMA,
}


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_previous_response_id_continues_one_warm_session(client: openai.OpenAI, mock_model: MockModel) -> None:
    previous = None
    sessions = set()
    for turn in range(5):
        raw = client.responses.with_raw_response.create(
            model="sonnet", instructions="You are terse.", input=f"question {turn}", previous_response_id=previous
        )
        response = raw.parse()
        sessions.add(raw.headers["x-cc-session-id"])
        assert response.object == "response" and response.status == "completed"
        assert response.output_text == f"mock reply: question {turn}"
        assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
        previous = response.id

    mock_model.script(Reply(text="a streamed sixth answer in pieces"))
    stream = client.responses.create(
        model="sonnet", instructions="You are terse.", input="question 5", previous_response_id=previous, stream=True
    )
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == "a streamed sixth answer in pieces"
    assert events[-1].response.output_text == "a streamed sixth answer in pieces"
    assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))

    assert len(sessions) == 1
    assert_one_warm_session(mock_model, 6)
    assert [user_texts(b["messages"][-1])[-1] for b in main_requests(mock_model)] == [f"question {n}" for n in range(6)]


def test_previous_response_id_runs_with_the_requests_own_model_instructions_and_tools(
    client: openai.OpenAI, mock_model: MockModel
) -> None:
    """Nothing but the conversation carries over from the previous response (as on OpenAI): a request that names
    another model, other instructions or tools gets them, on the same conversation."""
    first = client.responses.with_raw_response.create(model="sonnet", instructions="Prompt A", input="hello")
    raw = client.responses.with_raw_response.create(
        model="opus",
        instructions="Prompt B",
        tools=[WEATHER_TOOL],
        input="second",
        previous_response_id=first.parse().id,
    )
    second = raw.parse()
    assert raw.headers["x-cc-session-id"] == first.headers["x-cc-session-id"]
    sent = main_requests(mock_model)[-1]
    assert sent["model"] == second.model != "claude-sonnet-4-5"
    assert "Prompt B" in str(sent["system"]) and "Prompt A" not in str(sent["system"])
    assert any(tool["name"].endswith("get_weather") for tool in sent["tools"])
    assert [user_texts(m)[-1] for m in sent["messages"] if m["role"] == "user"] == ["hello", "second"]

    third = client.responses.create(
        model="opus", instructions="Prompt C", input="third", previous_response_id=second.id
    )
    sent = main_requests(mock_model)[-1]
    assert sent["model"] == third.model and "Prompt C" in str(sent["system"]) and "Prompt B" not in str(sent["system"])
    assert not any(tool["name"].endswith("get_weather") for tool in sent.get("tools", []))

    client.responses.create(model="opus", input="fourth", previous_response_id=third.id)  # no instructions
    assert "Prompt" not in str(main_requests(mock_model)[-1]["system"])


def test_a_second_run_of_the_same_task_leaves_the_first_its_pending_tool_call(
    client: openai.OpenAI, mock_model: MockModel
) -> None:
    """Two runs of one task with the same opening message, the first paused on a function call: the second gets a
    session of its own, and the first's answer still continues it (it was interrupted as a line the client had left,
    and its answer was a 409)."""
    call = ToolUse("get_weather", {"city": "Oslo"})
    mock_model.script(Reply(tool_uses=(call,)), Reply(tool_uses=(call,)), Reply(text="Oslo: -3C, both runs agree."))
    first = client.responses.with_raw_response.create(model="sonnet", input="Weather in Oslo?", tools=[WEATHER_TOOL])
    second = client.responses.with_raw_response.create(model="sonnet", input="Weather in Oslo?", tools=[WEATHER_TOOL])
    assert second.headers["x-cc-session-id"] != first.headers["x-cc-session-id"]
    [pending] = [item for item in first.parse().output if item.type == "function_call"]
    done = client.responses.create(
        model="sonnet",
        previous_response_id=first.parse().id,
        tools=[WEATHER_TOOL],
        input=[{"type": "function_call_output", "call_id": pending.call_id, "output": "-3C"}],
    )
    assert done.output_text == "Oslo: -3C, both runs agree."
    assert [b["tool_use_id"] for b in tool_results_sent(mock_model)] == [pending.call_id]


def test_full_history_without_previous_response_id_also_rides_one_session(
    client: openai.OpenAI, mock_model: MockModel
) -> None:
    items: list = []
    sessions = set()
    for turn in range(3):
        items.append({"role": "user", "content": f"q{turn}"})
        raw = client.responses.with_raw_response.create(model="sonnet", input=items)
        sessions.add(raw.headers["x-cc-session-id"])
        items += [item.model_dump(exclude_none=True) for item in raw.parse().output]
    assert len(sessions) == 1
    assert_one_warm_session(mock_model, 3)


def test_function_call_round_trip(client: openai.OpenAI, mock_model: MockModel) -> None:
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Quito"}),)), Reply(text="Quito: 15C."))
    paused = client.responses.create(model="sonnet", input="Weather in Quito?", tools=[WEATHER_TOOL])
    calls = [item for item in paused.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].arguments == '{"city":"Quito"}'
    done = client.responses.create(
        model="sonnet",
        previous_response_id=paused.id,
        tools=[WEATHER_TOOL],
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "15C"}],
    )
    assert done.output_text == "Quito: 15C."
    assert [(b["tool_use_id"], result_text(b)) for b in tool_results_sent(mock_model)] == [(calls[0].call_id, "15C")]
    assert len(main_requests(mock_model)) == 2


def test_a_function_output_with_an_image_reaches_claude_as_an_image(
    client: openai.OpenAI, mock_model: MockModel
) -> None:
    """A screenshot tool's output (``input_image`` parts, as the Responses API takes them) is a tool result
    with an image block, not a 400."""
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Quito"}),)), Reply(text="Looks sunny."))
    paused = client.responses.create(model="sonnet", input="Weather in Quito?", tools=[WEATHER_TOOL])
    [call] = [item for item in paused.output if item.type == "function_call"]
    output = [
        {"type": "input_text", "text": "the sky:"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}"},
    ]
    done = client.responses.create(
        model="sonnet",
        previous_response_id=paused.id,
        tools=[WEATHER_TOOL],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": output}],
    )
    assert done.output_text == "Looks sunny."
    [result] = tool_results_sent(mock_model)
    assert result["tool_use_id"] == call.call_id
    kinds = [(block["type"], block.get("text") or block.get("source", {}).get("data")) for block in result["content"]]
    assert kinds[:2] == [("text", "the sky:"), ("image", PIXEL)]


def test_an_earlier_previous_response_id_forks_the_conversation_there(
    client: openai.OpenAI, gateway: Gateway, mock_model: MockModel
) -> None:
    """Naming a response older than the latest branches there, as OpenAI does: the model sees
    the conversation up to that response and the new input, nothing after; both lines go on. The
    branch is a compat session too (``CC_API_COMPAT_RETENTION`` applies to it)."""
    first = client.responses.with_raw_response.create(model="sonnet", input="one")
    origin = first.headers["x-cc-session-id"]
    second = client.responses.create(model="sonnet", input="two", previous_response_id=first.parse().id)
    branch = client.responses.with_raw_response.create(
        model="sonnet", input="branch", previous_response_id=first.parse().id
    )
    assert branch.parse().output_text == "mock reply: branch"
    assert branch.headers["x-cc-session-id"] != origin
    branch_session = gateway.client.get(f"/api/sessions/{branch.headers['x-cc-session-id']}").json()
    assert branch_session["metadata"] == {"compat": "openai.responses"}
    sent = str(main_requests(mock_model)[-1]["messages"])
    assert "one" in sent and "mock reply: one" in sent and "two" not in sent
    onward = client.responses.with_raw_response.create(
        model="sonnet", input="onward", previous_response_id=branch.parse().id
    )
    assert onward.headers["x-cc-session-id"] == branch.headers["x-cc-session-id"]
    back = client.responses.with_raw_response.create(model="sonnet", input="three", previous_response_id=second.id)
    assert back.headers["x-cc-session-id"] == origin and back.parse().output_text == "mock reply: three"


def test_unknown_previous_response_id_is_400_previous_response_not_found(client: openai.OpenAI) -> None:
    """The code OpenAI's SDKs and OpenClaw answer by resending the whole history."""
    first = client.responses.create(model="sonnet", input="one")
    session = first.id.split("_")[1]
    for unknown in ("resp_nope", f"resp_{'0' * 32}_3", f"resp_{session}_1", f"resp_{session}_999"):
        with pytest.raises(openai.BadRequestError) as error:
            client.responses.create(model="sonnet", input="x", previous_response_id=unknown)
        body = error.value.body
        assert error.value.code == "previous_response_not_found", body
        assert body["param"] == "previous_response_id" and body["type"] == "invalid_request_error"


def test_a_response_made_with_store_false_cannot_be_continued_by_id(client: openai.OpenAI) -> None:
    """store: false: the response's id names nothing; the client sends its history instead."""
    unstored = client.responses.create(model="sonnet", input="keep nothing", store=False)
    assert unstored.output_text == "mock reply: keep nothing"
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model="sonnet", input="x", previous_response_id=unstored.id)
    assert error.value.code == "previous_response_not_found"


def test_streamed_function_call(client: openai.OpenAI, mock_model: MockModel) -> None:
    mock_model.script(
        Reply(text="Checking.", tool_uses=(ToolUse("get_weather", {"city": "Lima"}),)), Reply(text="Lima: 20C.")
    )
    events = list(client.responses.create(model="sonnet", input="Lima?", tools=[WEATHER_TOOL], stream=True))
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert done.arguments == '{"city":"Lima"}'
    final = events[-1].response
    assert events[-1].type == "response.completed"
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.output_text == "Checking."
    call = final.output[1]
    resumed = client.responses.create(
        model="sonnet",
        previous_response_id=final.id,
        stream=True,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "20C"}],
    )
    assert list(resumed)[-1].response.output_text == "Lima: 20C."


def test_input_without_the_outputs_its_function_calls_wait_for_is_a_400(
    client: openai.OpenAI, mock_model: MockModel
) -> None:
    """A response paused on a function call, continued by ``previous_response_id`` with a user message instead of
    the call's output: OpenAI answers 400 (no tool output found); this was a 409, which the SDK retried twice to no
    end. The session still takes the output afterwards."""
    call = ToolUse("get_weather", {"city": "Oslo"})
    mock_model.script(Reply(tool_uses=(call,)), Reply(text="Oslo: -3C."))
    first = client.responses.create(model="sonnet", input="Weather in Oslo?", tools=[WEATHER_TOOL])
    [pending] = [item for item in first.output if item.type == "function_call"]
    with pytest.raises(openai.BadRequestError) as refused:
        client.with_options(max_retries=0).responses.create(
            model="sonnet", previous_response_id=first.id, tools=[WEATHER_TOOL], input="never mind, and Bergen?"
        )
    assert refused.value.param == "input" and "pending tool calls" in refused.value.message
    done = client.responses.create(
        model="sonnet",
        previous_response_id=first.id,
        tools=[WEATHER_TOOL],
        input=[{"type": "function_call_output", "call_id": pending.call_id, "output": "-3C"}],
    )
    assert done.output_text == "Oslo: -3C."
