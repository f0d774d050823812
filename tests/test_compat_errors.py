"""Compat errors as the official ``openai`` and ``anthropic`` SDKs parse them, everywhere under ``/v1/``: a path
the gateway does not serve (``404``) and a wrong method (``405``, with ``Allow``) have no route, so no blueprint's
error handler, and came in the native envelope; they, Sanic's own ``413`` and the routes' errors answer in the
provider's envelope, so the SDKs raise their own error classes with the gateway's message, type and code. OpenAI's
``error.param`` names the request field at fault where the gateway knows it. ``/api/...`` keeps the native
envelope. No test here runs a turn: every error comes before one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import anthropic
import httpx
import openai
import pytest

from ccapi.config import Settings
from tests.gateway import Gateway

USER: Any = [{"role": "user", "content": "hello"}]  # Any: some requests below are wrong on purpose
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
TOO_LARGE = "Request body exceeds the size limit"  # Sanic's words, as the gateway passes them on


def _huge() -> Any:
    """One message longer than the default body limit (``CC_API_MAX_BODY_BYTES``)."""
    return [{"role": "user", "content": "x" * Settings.max_body_bytes}]


@pytest.fixture
def oai(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(gateway: Gateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.base_url, api_key="unused", max_retries=0) as client:
        yield client


def _openai_error(error: openai.APIStatusError, status: int, type_: str, code: str, message: str) -> None:
    """The SDK read OpenAI's envelope: ``type``, ``code`` and the gateway's own ``message``, and nothing else."""
    assert error.status_code == status, error.body
    assert isinstance(error.body, dict) and set(error.body) == {"message", "type", "param", "code"}, error.body
    assert (error.type, error.code, error.body["message"]) == (type_, code, message)


def _anthropic_error(error: anthropic.APIStatusError, status: int, type_: str, message: str) -> None:
    """The SDK read Anthropic's envelope: the message (in ``str(error)``), its type and the request id."""
    assert error.status_code == status
    assert error.body == {"type": "error", "error": {"type": type_, "message": message}}
    assert message in str(error) and f"type: {type_}" in str(error)
    assert error.response.headers["request-id"] == error.response.headers["x-request-id"]


def test_openai_sdk_reads_errors_of_paths_and_methods_the_gateway_lacks(gateway: Gateway, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        oai.embeddings.create(model="sonnet", input="hello")
    _openai_error(missing.value, 404, "not_found_error", "not_found", "no route for POST /v1/embeddings")
    assert missing.value.param is None
    with pytest.raises(openai.NotFoundError) as legacy:
        oai.completions.create(model="sonnet", prompt="hello")
    _openai_error(legacy.value, 404, "not_found_error", "not_found", "no route for POST /v1/completions")
    with pytest.raises(openai.APIStatusError) as wrong_method:
        oai.get("/chat/completions", cast_to=object)
    message = "Method GET not allowed for URL /v1/chat/completions"
    _openai_error(wrong_method.value, 405, "invalid_request_error", "invalid_request", message)
    assert "POST" in wrong_method.value.response.headers["allow"]
    with pytest.raises(openai.APIStatusError) as too_large:  # refused by Sanic as the body comes in
        oai.chat.completions.create(model="sonnet", messages=_huge())
    _openai_error(too_large.value, 413, "invalid_request_error", "payload_too_large", TOO_LARGE)

    native = gateway.client.get("/api/no-such-thing")  # the native API keeps its own envelope, exactly
    assert native.status_code == 404
    assert native.json() == {"error": {"type": "not_found", "message": "no route for GET /api/no-such-thing"}}
    native = gateway.client.put("/api/sessions", json={})
    assert native.status_code == 405 and "POST" in native.headers["allow"]
    expected = {"type": "invalid_request", "message": "Method PUT not allowed for URL /api/sessions"}
    assert native.json() == {"error": expected}
    big = {"metadata": {"note": "x" * Settings.max_body_bytes}}  # not on the shared client: the 413 closes its line
    native = httpx.post(f"{gateway.base_url}/api/sessions", json=big)
    assert native.status_code == 413
    assert native.json() == {"error": {"type": "payload_too_large", "message": TOO_LARGE}}


def test_anthropic_sdk_reads_errors_of_paths_and_methods_the_gateway_lacks(
    gateway: Gateway, claude: anthropic.Anthropic
) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.count_tokens(model="sonnet", messages=USER)
    _anthropic_error(missing.value, 404, "not_found_error", "no route for POST /v1/messages/count_tokens")
    with pytest.raises(anthropic.NotFoundError) as batches:
        claude.messages.batches.list()
    _anthropic_error(batches.value, 404, "not_found_error", "no route for GET /v1/messages/batches")
    with pytest.raises(anthropic.APIStatusError) as wrong_method:
        claude.get("/v1/messages", cast_to=object)
    message = "Method GET not allowed for URL /v1/messages"
    _anthropic_error(wrong_method.value, 405, "invalid_request_error", message)
    assert "POST" in wrong_method.value.response.headers["allow"]
    with pytest.raises(anthropic.APIStatusError) as too_large:
        claude.messages.create(model="sonnet", max_tokens=10, messages=_huge())
    _anthropic_error(too_large.value, 413, "request_too_large", TOO_LARGE)
    with pytest.raises(anthropic.BadRequestError) as refused:  # a route's own 400, as before
        claude.messages.create(model="sonnet", max_tokens=10, messages=USER, tool_choice=cast(Any, {"type": "tool"}))
    _anthropic_error(
        refused.value, 400, "invalid_request_error", "tool_choice.name is required when tool_choice.type is tool"
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": ""}, "model"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice.function.name",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "messages[0].content[0].type"),
        (
            {"messages": [*USER, {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": 5}}]}]},
            "messages[1].tool_calls[0].function.name",
        ),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"messages": []}, "messages"),  # the body's shape checks, as the native API's
        ({"temperature": "warm"}, "temperature"),
    ],
)
def test_openai_errors_name_the_request_field_at_fault(oai: openai.OpenAI, body: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(**{"model": "sonnet", "messages": USER, **body})
    assert refused.value.param == param and refused.value.code == "invalid_request", refused.value.body
    assert refused.value.type == "invalid_request_error"


def test_openai_param_names_the_model_or_responses_field_and_nothing_it_cannot_name(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        oai.chat.completions.create(model="no-such-model", messages=USER)
    assert (unknown.value.code, unknown.value.param) == ("model_not_found", "model")
    with pytest.raises(openai.BadRequestError) as background:
        oai.responses.create(model="sonnet", input="hello", background=True)
    assert background.value.param == "background"
    with pytest.raises(openai.BadRequestError) as role:
        oai.responses.create(model="sonnet", input=cast(Any, [{"type": "message", "role": "robot", "content": "hi"}]))
    assert role.value.param == "input[0].role", role.value.body
    with pytest.raises(openai.NotFoundError) as retrieved:  # a URL's model, not a field of a request body
        oai.models.retrieve("no-such-model")
    assert (retrieved.value.code, retrieved.value.param) == ("model_not_found", None)
    with pytest.raises(openai.BadRequestError) as whole:  # a body that is no object names no field
        oai.post("/chat/completions", body=[1, 2], cast_to=object)
    with pytest.raises(openai.BadRequestError) as native:  # checked as a native session's: its own field names
        oai.chat.completions.create(
            model="sonnet", messages=USER, tools=[{"type": "function", "function": {"name": "no spaces"}}]
        )
    assert native.value.param is None and "tools[0].name" in native.value.message
    assert whole.value.param is None and whole.value.body == {
        "message": "the request body must be a JSON object",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_request",
    }
