"""Structured output on the compat endpoints: Chat's ``response_format``, Responses' ``text.format`` and Anthropic's
``output_config.format`` reach Claude Code as its output schema (the model is offered a ``StructuredOutput`` tool),
and the reply's text is the checked value as JSON; driven by the ``openai`` and ``anthropic`` packages."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pydantic
import pytest

from ccapi.catalog import ModelCatalog
from ccapi.compat.anthropic_messages import parse as parse_messages
from ccapi.compat.openai_chat import parse as parse_chat
from ccapi.compat.openai_responses import parse as parse_responses
from ccapi.errors import InvalidRequest
from ccapi.testing import MockModel, Reply, ToolUse
from ccapi.testing.mock_model import STRUCTURED_OUTPUT_TOOL
from tests.compat_support import WEATHER_SCHEMA, main_requests, user_texts
from tests.gateway import Gateway

MODEL = "claude-sonnet-4-5"
STRICT = {**WEATHER_SCHEMA, "additionalProperties": False}
CHAT_FORMAT = {"type": "json_schema", "json_schema": {"name": "weather", "schema": STRICT, "strict": True}}
WEATHER_TOOL = {  # strict: the ``openai`` package's ``parse`` takes no other
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather for a city", "parameters": STRICT, "strict": True},
}


class Weather(pydantic.BaseModel):
    city: str


def _answer(value: dict[str, Any], text: str | None = None) -> Reply:
    """The model answering as a session with an output schema must: by calling Claude Code's tool."""
    return Reply(text=text, tool_uses=(ToolUse(STRUCTURED_OUTPUT_TOOL, value),))


def _offered(body: dict[str, Any]) -> dict[str, Any]:
    """The tools a model request offered, by name."""
    return {tool["name"]: tool for tool in body.get("tools") or ()}


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_chat_json_schema_is_the_sessions_output_schema_and_a_later_request_without_it_goes_on_warm(
    client: openai.OpenAI, mock_model: MockModel
) -> None:
    mock_model.script(_answer({"city": "Paris"}, text="Let me see."))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Where is the Louvre?"}]
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, response_format=CHAT_FORMAT)
    first = raw.parse().choices[0]
    assert first.finish_reason == "stop"
    assert first.message.content == '{"city":"Paris"}'  # the checked value, none of the model's own text

    messages += [{"role": "assistant", "content": first.message.content}, {"role": "user", "content": "Thanks!"}]
    again = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
    assert again.parse().choices[0].message.content == "mock reply: Thanks!"
    assert again.headers["x-cc-session-id"] == raw.headers["x-cc-session-id"]

    asked, plain = main_requests(mock_model)
    assert list(_offered(asked)) == [STRUCTURED_OUTPUT_TOOL]  # a model-only session: only Claude Code's tool
    assert _offered(asked)[STRUCTURED_OUTPUT_TOOL]["input_schema"] == STRICT
    assert _offered(plain) == {}  # Claude Code restarted without the schema, on the same transcript
    assert [m["role"] for m in plain["messages"]] == ["user", "assistant", "user"]
    assert plain["messages"][1]["content"][-1]["name"] == STRUCTURED_OUTPUT_TOOL
    assert user_texts(plain["messages"][-1])[-1] == "Thanks!"


def test_chat_parse_with_client_tools_calls_them_first_then_answers_in_the_schema(
    client: openai.OpenAI, mock_model: MockModel
) -> None:
    """``response_format`` with tools, as an agent asks: the tool calls come back as usual (without the model's
    text), and the answer after their results is the JSON the client's ``parse`` reads."""
    mock_model.script(
        Reply(text="Checking.", tool_uses=(ToolUse("get_weather", {"city": "Oslo"}, id="toolu_w1"),)),
        _answer({"city": "Oslo"}),
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Oslo?"}]
    paused = client.chat.completions.parse(
        model=MODEL, messages=messages, tools=[WEATHER_TOOL], response_format=Weather
    )
    call = paused.choices[0]
    assert call.finish_reason == "tool_calls" and call.message.content is None
    assert [c.function.name for c in call.message.tool_calls or ()] == ["get_weather"]

    messages += [
        call.message.model_dump(exclude_none=True, exclude={"parsed"}),
        {"role": "tool", "tool_call_id": call.message.tool_calls[0].id, "content": "sunny"},
    ]
    done = client.chat.completions.parse(model=MODEL, messages=messages, tools=[WEATHER_TOOL], response_format=Weather)
    assert done.choices[0].message.parsed == Weather(city="Oslo")

    bodies = main_requests(mock_model)
    assert len(bodies) == 2  # the paused turn went on: one session, no restart
    assert all({"mcp__client__get_weather", STRUCTURED_OUTPUT_TOOL} == set(_offered(b)) for b in bodies)


def test_chat_streamed_json_object_is_the_json_in_the_stream(client: openai.OpenAI, mock_model: MockModel) -> None:
    mock_model.script(_answer({"answer": 42}, text="Thinking about it out loud."))
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Answer in JSON."}],
            response_format={"type": "json_object"},
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"answer": 42}
    assert chunks[-1].choices[0].finish_reason == "stop"
    (body,) = main_requests(mock_model)
    assert _offered(body)[STRUCTURED_OUTPUT_TOOL]["input_schema"] == {"type": "object"}


@pytest.mark.parametrize("stream", [False, True])
def test_responses_text_format_is_answered_in_the_schema(
    client: openai.OpenAI, mock_model: MockModel, stream: bool
) -> None:
    mock_model.script(_answer({"city": "Rome"}))
    text = {"format": {"type": "json_schema", "name": "weather", "schema": STRICT, "strict": True}}
    if stream:
        events = list(client.responses.create(model=MODEL, input="Where is the Colosseum?", text=text, stream=True))
        assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == '{"city":"Rome"}'
        response = events[-1].response
    else:
        response = client.responses.create(model=MODEL, input="Where is the Colosseum?", text=text)
    assert response.status == "completed" and response.output_text == '{"city":"Rome"}'
    (body,) = main_requests(mock_model)
    assert _offered(body)[STRUCTURED_OUTPUT_TOOL]["input_schema"] == STRICT


def test_messages_output_config_format_is_answered_in_the_schema(gateway: Gateway, mock_model: MockModel) -> None:
    """The ``anthropic`` package's ``parse`` sends ``output_config.format``; the mock, unscripted, calls Claude
    Code's tool with a minimal value of the schema, as a model must."""
    with anthropic.Anthropic(base_url=gateway.base_url, api_key="unused", max_retries=0) as client:
        parsed = client.messages.parse(
            model=MODEL,
            max_tokens=1024,
            messages=[{"role": "user", "content": "Where is the Prado?"}],
            output_format=Weather,
        )
        assert parsed.parsed_output == Weather(city="mock")
        assert parsed.stop_reason == "end_turn"
        with client.messages.stream(
            model=MODEL,
            max_tokens=1024,
            messages=[{"role": "user", "content": "And the Uffizi?"}],
            output_config={"format": {"type": "json_schema", "schema": STRICT}},
        ) as stream:
            assert json.loads(stream.get_final_text()) == {"city": "mock"}
    schemas = [_offered(body)[STRUCTURED_OUTPUT_TOOL]["input_schema"] for body in main_requests(mock_model)]
    assert schemas[0]["properties"] == {"city": {"title": "City", "type": "string"}} and schemas[1] == STRICT


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ([Reply(text="It is in Paris."), Reply(text="Paris, I said.")], "without the structured output"),
        ([_answer({"town": 3}, text=None)] * 5, "Failed to provide valid structured output after 5 attempts"),
    ],
    ids=["text-twice", "invalid-five-times"],
)
def test_a_turn_without_structured_output_is_an_error_not_text(
    client: openai.OpenAI, mock_model: MockModel, script: list[Reply], message: str
) -> None:
    """Claude Code reminds a model that answers in text once, and gives up after five calls that do not validate:
    the client gets an error in its format, never text it would take for JSON."""
    mock_model.script(*script)
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Where?"}], response_format=CHAT_FORMAT
        )
    assert failed.value.status_code == 502
    assert message in failed.value.body["message"]  # type: ignore[index]
    bodies = main_requests(mock_model)
    assert len(bodies) == len(script)
    if len(script) == 2:
        assert "[structured-output-enforce]" in user_texts(bodies[1]["messages"][-1])[-1]


# -- what the formats refuse ---------------------------------------------------------
def _parse(endpoint: str, **fields: Any) -> Any:
    catalog = ModelCatalog.from_setting(None)
    if endpoint == "chat":
        return parse_chat({"messages": [{"role": "user", "content": "hi"}], **fields}, catalog, MODEL, None)
    if endpoint == "responses":
        return parse_responses({"input": "hi", **fields}, catalog, MODEL, None)
    return parse_messages(
        {"max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **fields}, catalog, MODEL, None
    )


def _chat_schema(**spec: Any) -> dict[str, Any]:
    return {"response_format": {"type": "json_schema", "json_schema": spec}}


def _text_format(**spec: Any) -> dict[str, Any]:
    return {"text": {"format": {"type": "json_schema", **spec}}}


ASKED = [
    ("chat", {"response_format": {"type": "json_object"}}, {"type": "object"}),
    ("chat", _chat_schema(name="w", schema=STRICT, strict=True, description="d"), STRICT),
    ("chat", _chat_schema(name="w"), {"type": "object"}),
    ("chat", _chat_schema(name="w", schema={"properties": {"a": {}}}), {"type": "object", "properties": {"a": {}}}),
    ("chat", {"response_format": {"type": "text"}}, None),
    ("responses", _text_format(name="w", schema=STRICT), STRICT),
    ("responses", {"text": {"format": {"type": "json_object"}}}, {"type": "object"}),
    ("responses", {"text": {"verbosity": "low"}}, None),
    ("messages", {"output_config": {"format": {"type": "json_schema", "schema": STRICT}, "effort": "high"}}, STRICT),
    ("messages", {"output_format": {"type": "json_schema", "schema": STRICT}}, STRICT),
    ("messages", {"output_config": {"effort": "low"}}, None),
]


@pytest.mark.parametrize(("endpoint", "fields", "schema"), ASKED)
def test_the_schema_a_request_asks_for(endpoint: str, fields: dict[str, Any], schema: dict[str, Any] | None) -> None:
    """``json_object`` is any object, and a schema that names no type is an object's."""
    assert _parse(endpoint, **fields).request.conversation.output_schema == schema


REFUSED = [
    ("chat", {"response_format": {"type": "json_schema"}}, "response_format.json_schema must be an object"),
    ("chat", _chat_schema(schema=STRICT), "response_format.json_schema.name must be 1 to 64 letters"),
    ("chat", _chat_schema(name="a b", schema=STRICT), "response_format.json_schema.name must be 1 to 64 letters"),
    ("chat", _chat_schema(name="w", schema=STRICT, strict="yes"), "response_format.json_schema.strict must be a bool"),
    ("chat", _chat_schema(name="w", schema="{}"), "response_format.json_schema.schema must be a JSON schema"),
    ("chat", _chat_schema(name="w", schema={"type": "array"}), "response_format.json_schema.schema.type must be obj"),
    ("chat", _chat_schema(name="w", schema={"type": "object", "required": 5}), "is not a valid JSON Schema"),
    ("responses", _text_format(name="w"), "text.format.schema must be a JSON schema"),
    ("responses", _text_format(schema=STRICT), "text.format.name must be 1 to 64 letters"),
    ("responses", _text_format(name="w", schema={"type": "string"}), "text.format.schema.type must be object"),
    ("messages", {"output_config": "json"}, "output_config must be an object"),
    ("messages", {"output_config": {"format": {"type": "xml"}}}, "output_config.format.type must be json_schema"),
    ("messages", {"output_config": {"format": {"type": "json_schema"}}}, "output_config.format.schema must be a JSON"),
    ("messages", {"output_format": {"type": "json_schema", "schema": {"type": "array"}}}, "output_format.schema.type"),
    (
        "messages",
        {"output_format": {"type": "json_schema", "schema": STRICT}, "output_config": {"format": {}}},
        "not both",
    ),
]


@pytest.mark.parametrize(("endpoint", "fields", "message"), REFUSED)
def test_a_format_that_cannot_be_honoured_is_refused(endpoint: str, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        _parse(endpoint, **fields)
    assert message in refused.value.message


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "hi"}], **_chat_schema(name="w", schema={"type": "array"})},
        ),
        ("/v1/responses", {"input": "hi", **_text_format(name="w", schema={"type": "array"})}),
        (
            "/v1/messages",
            {
                "max_tokens": 64,
                "messages": [{"role": "user", "content": "hi"}],
                "output_config": {"format": {"type": "json_schema", "schema": {"type": "array"}}},
            },
        ),
    ],
)
def test_a_refused_format_is_a_400_in_the_formats_envelope_and_reaches_no_model(
    gateway: Gateway, mock_model: MockModel, path: str, body: dict[str, Any]
) -> None:
    response = httpx.post(f"{gateway.base_url}{path}", json={"model": MODEL, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and "type must be object" in error["message"]
    assert mock_model.message_requests() == []


def test_an_edited_history_after_structured_replies_forks_at_the_last_shared_answer(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """Structured answers to a, b and c; then a's history with a new d: a branch at a's answer (its turn ends on
    Claude Code's tool result, not on an assistant message) holding a and d, not a new session given the history."""
    messages: list[dict[str, Any]] = []
    with httpx.Client(base_url=f"{gateway.base_url}/v1", timeout=60) as http:

        def chat(history: list[dict[str, Any]]) -> tuple[str, str]:
            reply = http.post(
                "/chat/completions", json={"model": MODEL, "messages": history, "response_format": CHAT_FORMAT}
            )
            assert reply.status_code == 200, reply.text
            return reply.headers["x-cc-session-id"], reply.json()["choices"][0]["message"]["content"]

        for city in ("Paris", "Rome", "Oslo"):
            mock_model.script(_answer({"city": city}))
            messages.append({"role": "user", "content": f"Where is {city}?"})
            main, answer = chat(messages)
            messages.append({"role": "assistant", "content": answer})
        mock_model.clear()
        mock_model.script(_answer({"city": "Lima"}))
        branch, answer = chat([*messages[:2], {"role": "user", "content": "Where is Lima?"}])
    assert branch != main and json.loads(answer) == {"city": "Lima"}
    [first] = main_requests(mock_model)
    assert [user_texts(m) for m in first["messages"] if m["role"] == "user" and user_texts(m)] == [
        ["Where is Paris?"],
        ["Where is Lima?"],
    ]
    assert "<conversation_history>" not in str(first["messages"])
    created = gateway.events(branch)[0]
    assert created["data"].get("forked_from", {}).get("session_id") == main, created
