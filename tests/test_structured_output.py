"""Structured output on native sessions: ``output_schema`` at creation (or by ``PATCH``) becomes Claude Code's
output schema, and each turn's reply carries the checked answer as ``structured_output``."""

from __future__ import annotations

from typing import Any

from ccapi.client import Client
from ccapi.testing import MockModel, Reply, ToolUse
from ccapi.testing.mock_model import STRUCTURED_OUTPUT_TOOL
from tests.compat_support import main_requests
from tests.gateway import Gateway

VERDICT = {
    "type": "object",
    "properties": {"verdict": {"enum": ["pass", "fail"]}, "reasons": {"type": "array", "items": {"type": "string"}}},
    "required": ["verdict"],
}


def _offered(body: dict[str, Any]) -> dict[str, Any]:
    return {tool["name"]: tool for tool in body.get("tools") or ()}


def test_a_sessions_output_schema_shapes_every_answer_until_it_is_cleared(
    gateway: Gateway, mock_model: MockModel
) -> None:
    session = gateway.create_session(output_schema=VERDICT, builtin_tools="none")
    assert session["output_schema"] == VERDICT
    answer = {"verdict": "fail", "reasons": ["no tests"]}
    mock_model.script(Reply(text="Reviewing.", tool_uses=(ToolUse(STRUCTURED_OUTPUT_TOOL, answer),)))
    reply = gateway.turn(session["id"], "Review this change.")
    assert (reply["status"], reply["structured_output"]) == ("completed", answer), reply
    fetched = gateway.client.get(f"/api/sessions/{session['id']}/turns/{reply['turn_id']}").json()
    assert fetched["structured_output"] == answer, "kept with the turn"
    [ended] = [e for e in gateway.events(session["id"]) if e["type"] == "turn.completed"]
    assert ended["data"]["structured_output"] == answer

    url = f"/api/sessions/{session['id']}"
    assert gateway.client.patch(url, json={"output_schema": None}).json()["output_schema"] is None
    plain = gateway.turn(session["id"], "Thanks.")
    assert plain["status"] == "completed" and "structured_output" not in plain, plain
    asked, free = main_requests(mock_model)
    assert _offered(asked)[STRUCTURED_OUTPUT_TOOL]["input_schema"] == VERDICT
    assert _offered(free) == {}, "Claude Code restarted without the schema, on the same transcript"
    assert [m["role"] for m in free["messages"]] == ["user", "assistant", "user"]


def test_the_python_client_sets_a_schema_and_reads_the_answer(gateway: Gateway, mock_model: MockModel) -> None:
    with Client(gateway.base_url) as client:
        session = client.create_session(output_schema=VERDICT, builtin_tools="none")
        mock_model.script(Reply(tool_uses=(ToolUse(STRUCTURED_OUTPUT_TOOL, {"verdict": "pass"}),)))
        assert client.send(session.id, "Again.").structured_output == {"verdict": "pass"}


def test_a_schema_claude_code_cannot_honour_is_refused_and_changes_nothing(
    gateway: Gateway, mock_model: MockModel
) -> None:
    refusals = {
        "a string's schema": ({"type": "string"}, "output_schema.type must be object"),
        "not a schema": ("verdict", "output_schema must be a JSON schema"),
        "an invalid schema": ({"type": "object", "properties": 5}, "not a valid JSON Schema"),
    }
    before = gateway.session_ids()
    for case, (schema, message) in refusals.items():
        refused = gateway.client.post("/api/sessions", json={"output_schema": schema})
        assert refused.status_code == 400 and message in refused.json()["error"]["message"], (case, refused.text)
    assert gateway.session_ids() == before
    session = gateway.create_session()
    url = f"/api/sessions/{session['id']}"
    for case, (schema, message) in refusals.items():
        refused = gateway.client.patch(url, json={"output_schema": schema})
        assert refused.status_code == 400 and message in refused.json()["error"]["message"], (case, refused.text)
    assert gateway.client.get(url).json()["output_schema"] is None
    assert not mock_model.message_requests()
