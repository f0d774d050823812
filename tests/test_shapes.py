"""Request bodies are declared once (``ccapi/sessions/bodies.py``): a wrong field gets a 400 that
names it in the API's words, and the OpenAPI document describes the same declaration.
In-process: no gateway (the HTTP side is tests/test_errors.py and tests/test_schema_fuzz.py)."""

from __future__ import annotations

from typing import Any

import pytest

from ccapi.api.openapi import DOCUMENT
from ccapi.errors import InvalidRequest
from ccapi.sessions.params import DecisionsRequest, ForkRequest, SessionChanges, ToolResultsRequest, TurnRequest

RESULT = {"tool_call_id": "toolu_1", "content": "12C"}


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
    assert caught.value.details == {"allowed": ["max_budget_usd", "model", "permission_mode"]}


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
