"""Structured output on native sessions: ``output_schema`` at creation (or by ``PATCH``) becomes Claude Code's
output schema, and each turn's reply carries the checked answer as ``structured_output``."""

from __future__ import annotations

from typing import Any

from ccapi.client import Client
from ccapi.testing import MockModel, Reply, ToolUse
from ccapi.testing.mock_model import STRUCTURED_OUTPUT_TOOL
from tests.compat_support import main_requests, user_texts
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


def test_the_mock_answers_an_unscripted_turn_in_the_schema(gateway: Gateway, mock_model: MockModel) -> None:
    """Without a script the mock calls ``StructuredOutput`` with a value of the schema, as a model must: an enum's
    first value, a const, the first of several types (it sent ``null``, which Claude Code refused five times)."""
    schema = {
        **VERDICT,
        "properties": {**VERDICT["properties"], "kind": {"const": "review"}, "note": {"type": ["string", "null"]}},
        "required": ["verdict", "kind", "note"],
    }
    session = gateway.create_session(output_schema=schema, builtin_tools="none")
    reply = gateway.turn(session["id"], "Review this change.")
    assert reply["status"] == "completed", reply
    assert reply["structured_output"] == {"verdict": "pass", "kind": "review", "note": "mock"}


def test_a_session_with_a_schema_forks_at_a_structured_turn(gateway: Gateway, mock_model: MockModel) -> None:
    """Each of its turns ends on Claude Code's result of the ``StructuredOutput`` call, not on an assistant message:
    that result is the fork point (it was a 409 saying the turn still waited for tool results)."""
    session = gateway.create_session(output_schema=VERDICT, builtin_tools="none")
    first = gateway.turn(session["id"], "Review change one.")
    gateway.turn(session["id"], "Review change two.")
    for point in ({"turn_id": first["turn_id"]}, {}):
        forked = gateway.client.post(f"/api/sessions/{session['id']}/fork", json=point)
        assert forked.status_code == 201, forked.text
        branch = forked.json()
        assert branch["output_schema"] == VERDICT
        mock_model.clear()
        mock_model.script(Reply(tool_uses=(ToolUse(STRUCTURED_OUTPUT_TOOL, {"verdict": "fail"}),)))
        reply = gateway.turn(branch["id"], "Review change three.")
        assert (reply["status"], reply["structured_output"]) == ("completed", {"verdict": "fail"}), reply
        [sent] = main_requests(mock_model)
        typed = [text for message in sent["messages"] if message["role"] == "user" for text in user_texts(message)]
        expected = ["Review change one.", *([] if point else ["Review change two."]), "Review change three."]
        assert typed == expected, point


def test_a_session_with_a_schema_compacts_and_answers_in_it_after(gateway: Gateway, mock_model: MockModel) -> None:
    """Claude Code's summary request offers the ``StructuredOutput`` tool too, and tells the model to answer in text
    only: the mock does (it called the tool, and the compaction failed: "summarization produced empty response")."""
    session = gateway.create_session(output_schema=VERDICT, builtin_tools="none")
    gateway.turn(session["id"], "Review change one.")
    compacted = gateway.client.post(f"/api/sessions/{session['id']}/compact", json={})
    assert compacted.status_code == 200, compacted.text
    assert compacted.json()["pre_tokens"], compacted.json()
    mock_model.script(Reply(tool_uses=(ToolUse(STRUCTURED_OUTPUT_TOOL, {"verdict": "fail"}),)))
    reply = gateway.turn(session["id"], "Review change two.")
    assert (reply["status"], reply["structured_output"]) == ("completed", {"verdict": "fail"}), reply


def test_the_answer_is_no_round_of_claude_codes_own_tools(make_gateway, mock_model: MockModel) -> None:
    """With client tools the turn may take ``CC_API_TOOL_MAX_TURNS`` rounds of Claude Code's own tools; the
    ``StructuredOutput`` call answers, as text would, and is not one (it was refused at the limit: the turn failed
    ``max_turns`` without its answer)."""
    gw = make_gateway(CC_API_TOOL_MAX_TURNS="1")
    lookup = {"name": "lookup", "description": "Look a change up", "input_schema": {"type": "object"}}
    session = gw.create_session(output_schema=VERDICT, tools=[lookup], builtin_tools=["Read"])
    mock_model.script(
        Reply(tool_uses=(ToolUse("Read", {"file_path": str(gw.home / "user")}),)),
        Reply(tool_uses=(ToolUse(STRUCTURED_OUTPUT_TOOL, {"verdict": "pass"}),)),
    )
    reply = gw.allow(session["id"], gw.turn(session["id"], "Review this change."))
    assert (reply["status"], reply.get("structured_output")) == ("completed", {"verdict": "pass"}), reply
