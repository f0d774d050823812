"""Request bodies are declared once (``ccapi/sessions/bodies.py``): a wrong field gets a 400 that
names it in the API's words, and the OpenAPI document describes the same declaration.
In-process: no gateway (the HTTP side is tests/test_errors.py and tests/test_schema_fuzz.py)."""

from __future__ import annotations

from typing import Any

import pytest

from ccapi.api.openapi import DOCUMENT
from ccapi.catalog import ModelCatalog
from ccapi.compat import anthropic_messages, openai_chat, openai_responses
from ccapi.errors import InvalidRequest
from ccapi.sessions.params import DecisionsRequest, ForkRequest, SessionChanges, ToolResultsRequest, TurnRequest

RESULT = {"tool_call_id": "toolu_1", "content": "12C"}
USER = {"role": "user", "content": "hi"}
CATALOG = ModelCatalog.from_setting(None)


@pytest.mark.parametrize(
    ("parse", "body", "message"),
    [
        (TurnRequest.from_json, {}, "input is required"),
        (TurnRequest.from_json, {"input": "x", "queue": 1}, "queue must be a boolean"),
        (TurnRequest.from_json, {"input": "x", "stream": None}, "stream and background must be booleans"),
        (TurnRequest.from_json, "x", "the request body must be a JSON object"),
        (ToolResultsRequest.from_json, {"results": []}, "results must be a non-empty list of"),
        (ToolResultsRequest.from_json, {"results": [RESULT, 3]}, "results[1] must be an object"),
        (
            ToolResultsRequest.from_json,
            {"results": [{**RESULT, "is_error": 1}]},
            "results[0].is_error must be a boolean",
        ),
        (ToolResultsRequest.from_json, {"results": [{**RESULT, "extra": 1}]}, "results[0] has unknown field(s): extra"),
        (
            ToolResultsRequest.from_json,
            {"results": [{**RESULT, "content": [{"type": "image", "source": {"type": "file"}}]}]},
            "results[0].content[0].source.type must be 'base64' or 'url'",
        ),
        (ToolResultsRequest.from_json, {"results": [RESULT] * 129}, "at most 128 results per request"),
        (
            DecisionsRequest.from_json,
            {"decisions": [{"request_id": "perm_1", "behavior": "maybe"}]},
            'decisions[0].behavior must be "allow" or "deny"',
        ),
        (ForkRequest.from_json, {"after_seq": True}, "after_seq must be a positive integer"),
        (ForkRequest.from_json, {"turn_id": "turn_1", "after_seq": 1}, "give turn_id or after_seq, not both"),
    ],
)
def test_a_wrong_field_is_named_in_the_apis_words(parse: Any, body: Any, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(body)
    assert caught.value.message.startswith(message), caught.value.message


def test_unknown_fields_are_listed_with_the_allowed_ones() -> None:
    with pytest.raises(InvalidRequest) as caught:
        SessionChanges.from_json({"colour": "blue", "model": "sonnet"}, catalog=None)  # type: ignore[arg-type]
    assert caught.value.message == "unknown field(s): colour"
    assert caught.value.details == {
        "allowed": ["max_budget_usd", "model", "output_schema", "permission_mode", "system_prompt", "webhook"]
    }


def test_the_document_describes_the_declared_bodies() -> None:
    """What the document says a body holds is what the parser reads: same fields, same limits."""
    schemas = DOCUMENT["components"]["schemas"]
    results = schemas["ToolResults"]["properties"]["results"]
    assert (results["minItems"], results["maxItems"]) == (1, 128)
    assert results["items"]["required"] == ["tool_call_id", "content"]
    assert schemas["NewSession"]["properties"]["max_turns"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "nullable": True,
    }
    budget = schemas["SessionChanges"]["properties"]["max_budget_usd"]
    assert (budget["minimum"], budget["exclusiveMinimum"], budget["nullable"]) == (0, True, True)
    assert schemas["TurnInput"]["required"] == ["input"] and schemas["TurnInput"]["additionalProperties"] is False
    assert "title" not in str(schemas["Decisions"]) and "anyOf" not in str(schemas["NewSession"])


@pytest.mark.parametrize(
    ("parse", "body", "message"),
    [
        (openai_chat.parse, {"messages": []}, "messages must be a non-empty array"),
        (openai_chat.parse, {"messages": [USER], "stream": "yes"}, "stream must be a boolean"),
        (openai_chat.parse, {"messages": [{"role": "bot"}]}, "messages[0].role must be system, developer, user"),
        (openai_chat.parse, {"messages": [USER], "tools": [{"function": 3}]}, "tools[0].function must be an object"),
        (openai_responses.parse, {"input": [{"type": "web"}]}, "input[0].type must be message, function_call"),
        (openai_responses.parse, {"input": "hi", "store": "no"}, "store must be a boolean"),
        (anthropic_messages.parse, {"messages": [USER], "max_tokens": 0}, "max_tokens must be a positive integer"),
        (anthropic_messages.parse, {"messages": [USER], "metadata": {"cc_session_id": 1}}, "metadata.cc_session_id"),
    ],
)
def test_a_compat_body_names_its_wrong_field(parse: Any, body: Any, message: str) -> None:
    """The compat declarations check shapes in the API's words, as the hand-written checks did."""
    with pytest.raises(InvalidRequest) as caught:
        parse(body, CATALOG, "sonnet", None)
    assert caught.value.message.startswith(message), caught.value.message


def test_a_compat_body_keeps_unknown_fields_and_takes_null_as_unset() -> None:
    """Provider SDKs send sampling knobs and nulls: accepted, ignored, defaults apply."""
    body = {"messages": [USER], "temperature": 0.2, "stream": None, "tools": None, "stream_options": None}
    parsed = openai_chat.parse(body, CATALOG, "sonnet", None)
    assert (parsed.stream, parsed.include_usage, parsed.request.conversation.tools) == (False, False, ())
    stored = openai_responses.parse({"input": "hi", "store": None, "instructions": None}, CATALOG, "sonnet", None)
    assert stored.store and stored.request.conversation.system is None


def test_the_document_describes_the_declared_compat_bodies() -> None:
    """The compat request schemas are generated from ``ccapi/compat/bodies.py``, doc hints included."""
    schemas = DOCUMENT["components"]["schemas"]
    chat = schemas["ChatCompletionRequest"]
    assert chat["required"] == ["messages"] and chat["additionalProperties"] is True
    assert chat["properties"]["model"]["enum"][0] == "claude-sonnet-4-5"
    assert "nullable" not in chat["properties"]["stream"]  # null is accepted, never advertised
    assert schemas["MessagesRequest"]["properties"]["max_tokens"] == {"type": "integer", "minimum": 1}
    assert schemas["ResponseRequest"]["properties"]["tools"]["items"]["required"] == ["type", "name"]
