"""The compat endpoints check the fields they ignore as the real APIs check them: a value OpenAI or
Anthropic would refuse is a 400 in the format's envelope that changes nothing, and what real clients
send passes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ccapi.catalog import ModelCatalog
from ccapi.compat.anthropic_messages import parse as parse_messages
from ccapi.compat.openai_chat import parse as parse_chat
from ccapi.compat.openai_responses import parse as parse_responses
from ccapi.errors import InvalidRequest
from ccapi.testing import MockModel
from tests.gateway import Gateway

MODEL = "claude-sonnet-4-5"
FUNCTION = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}
PARSERS = {"chat": parse_chat, "responses": parse_responses, "messages": parse_messages}


def _body(endpoint: str, **fields: Any) -> dict[str, Any]:
    if endpoint == "chat":
        base = {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": FUNCTION}]}
    elif endpoint == "responses":
        base = {"input": "hi", "tools": [{"type": "function", **FUNCTION}]}
    else:
        base = {
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        }
    return {"model": MODEL, **base, **fields}


def _parse(endpoint: str, body: dict[str, Any]) -> Any:
    return PARSERS[endpoint](body, ModelCatalog.from_setting(None), MODEL, None)


REFUSED = [
    ("chat", {"temperature": "hot"}, "temperature must be a number from 0 to 2"),
    ("chat", {"temperature": 2.5}, "temperature must be a number from 0 to 2"),
    ("chat", {"top_p": 1.5}, "top_p must be a number from 0 to 1"),
    ("chat", {"n": 3}, "n must be 1"),
    ("chat", {"n": True}, "n must be 1"),
    ("chat", {"presence_penalty": -3}, "presence_penalty must be a number from -2 to 2"),
    ("chat", {"max_tokens": "100"}, "max_tokens must be a positive integer"),
    ("chat", {"max_completion_tokens": 0}, "max_completion_tokens must be a positive integer"),
    ("chat", {"stop": ["a", "b", "c", "d", "e"]}, "stop must be a string or an array of up to 4 strings"),
    ("chat", {"stop": 5}, "stop must be a string or an array of up to 4 strings"),
    ("chat", {"seed": "x"}, "seed must be an integer"),
    ("chat", {"user": 5}, "user must be a string"),
    ("chat", {"parallel_tool_calls": "yes"}, "parallel_tool_calls must be a boolean"),
    ("chat", {"logprobs": True}, "logprobs are not available"),
    ("chat", {"tool_choice": "sometimes"}, "tool_choice must be none, auto, required or a function"),
    ("chat", {"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice.function.name names no"),
    ("chat", {"stream_options": {"include_usage": True}}, "stream_options is only allowed when stream is true"),
    ("chat", {"stream": True, "stream_options": {"include_usage": "yes"}}, "include_usage must be a boolean"),
    ("chat", {"response_format": {"type": "xml"}}, "response_format.type must be text, json_object or json_schema"),
    ("chat", {"response_format": "json"}, "response_format must be an object"),
    ("chat", {"metadata": {"user_id": 5}}, "metadata.user_id must be a string"),
    ("responses", {"temperature": 3}, "temperature must be a number from 0 to 2"),
    ("responses", {"max_output_tokens": 5}, "max_output_tokens must be an integer of at least 16"),
    ("responses", {"tool_choice": {"type": "function", "name": "nope"}}, "tool_choice.name names no tool"),
    ("responses", {"tool_choice": {"type": "file_search"}}, "tool_choice must be none, auto, required"),
    ("responses", {"truncation": "middle"}, "truncation must be auto or disabled"),
    ("responses", {"reasoning": {"effort": 5}}, "reasoning.effort must be a string"),
    ("responses", {"text": {"format": {"type": "yaml"}}}, "text.format.type must be text, json_object or json_schema"),
    ("responses", {"include": "x"}, "include must be an array of strings"),
    ("responses", {"background": True}, "background responses are not available"),
    ("responses", {"conversation": "conv_1"}, "conversation is not available"),
    ("messages", {"temperature": 1.5}, "temperature must be a number from 0 to 1"),
    ("messages", {"top_k": -1}, "top_k must be a non-negative integer"),
    ("messages", {"stop_sequences": "STOP"}, "stop_sequences must be an array of strings"),
    ("messages", {"tool_choice": "auto"}, "tool_choice must be an object"),
    ("messages", {"tool_choice": {"type": "tool"}}, "tool_choice.name is required"),
    ("messages", {"tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice.name names no tool"),
    ("messages", {"tool_choice": {"type": "sometimes"}}, "tool_choice.type must be auto, any, tool or none"),
    ("messages", {"thinking": 5}, "thinking must be an object"),
    ("messages", {"thinking": {"type": "enabled"}}, "thinking.budget_tokens is required"),
    ("messages", {"thinking": {"type": "enabled", "budget_tokens": 512}}, "at least 1024"),
    ("messages", {"thinking": {"type": "enabled", "budget_tokens": 8000}}, "less than max_tokens"),
    ("messages", {"metadata": {"user_id": 5}}, "metadata.user_id must be a string"),
]


@pytest.mark.parametrize(("endpoint", "fields", "message"), REFUSED)
def test_a_value_the_real_api_refuses_is_refused(endpoint: str, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        _parse(endpoint, _body(endpoint, **fields))
    assert message in refused.value.message


ACCEPTED = [
    ("chat", {"temperature": 0, "top_p": 1, "n": 1, "max_tokens": 1024, "seed": 7, "user": "u", "stop": "END"}),
    ("chat", {"stream": True, "stream_options": {"include_usage": True}, "tool_choice": "auto", "logprobs": False}),
    ("chat", {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "reasoning_effort": "high"}),
    ("chat", {"tool_choice": "required", "parallel_tool_calls": True, "frequency_penalty": -2, "stop": ["a", "b"]}),
    ("chat", {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}),
    ("chat", {"temperature": None, "n": None, "stream_options": None, "tool_choice": None}),
    ("responses", {"tool_choice": {"type": "function", "name": "get_weather"}, "max_output_tokens": 16}),
    ("responses", {"reasoning": {"effort": "xhigh", "summary": "auto"}, "include": ["reasoning.encrypted_content"]}),
    ("responses", {"text": {"verbosity": "low"}, "truncation": "auto", "background": False, "store": False}),
    ("responses", {"tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}, "temperature": 1}),
    ("messages", {"thinking": {"type": "adaptive", "display": "summarized"}, "output_config": {"effort": "xhigh"}}),
    ("messages", {"thinking": {"type": "enabled", "budget_tokens": 1024}, "temperature": 1, "top_k": 0}),
    ("messages", {"tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}}),
    ("messages", {"tool_choice": {"type": "any"}, "stop_sequences": ["\n\nHuman:"], "metadata": {"user_id": "u1"}}),
    ("messages", {"tools": [{"type": None, "name": "get_weather", "input_schema": {"type": "object"}}]}),
]


@pytest.mark.parametrize(("endpoint", "fields"), ACCEPTED)
def test_what_real_clients_send_is_accepted(endpoint: str, fields: dict[str, Any]) -> None:
    _parse(endpoint, _body(endpoint, **fields))


@pytest.mark.parametrize(
    ("endpoint", "path", "fields"),
    [
        ("chat", "/v1/chat/completions", {"n": 2}),
        ("responses", "/v1/responses", {"background": True}),
        ("messages", "/v1/messages", {"temperature": 1.5}),
    ],
)
def test_a_refused_request_is_a_400_in_the_formats_envelope_and_changes_nothing(
    gateway: Gateway, mock_model: MockModel, endpoint: str, path: str, fields: dict[str, Any]
) -> None:
    sessions = gateway.client.get("/api/sessions").json()["data"]
    response = httpx.post(f"{gateway.base_url}{path}", json=_body(endpoint, **fields))
    assert response.status_code == 400, response.text
    body = response.json()
    error = body["error"]
    assert error["type"] == "invalid_request_error"
    assert next(iter(fields)) in error["message"]
    if endpoint == "messages":
        assert body["type"] == "error"
    else:
        assert set(error) == {"message", "type", "param", "code"}
    assert gateway.client.get("/api/sessions").json()["data"] == sessions
    assert mock_model.message_requests() == []
