"""Built-in tool policy: which of Claude Code's own tools a session declares to the model,
and a default that works as root (no IS_SANDBOX anywhere in this module)."""

from __future__ import annotations

import os
import time

import orjson
import pytest

from ccapi.testing import MockModel, Reply, ToolUse
from ccapi.testing.mock_model import last_user_text
from ccapi.toolpolicy import BUILTIN_TOOL_NAMES
from tests.gateway import Gateway

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _declared(mock: MockModel) -> list[list[str]]:
    return [sorted(t["name"] for t in r.body.get("tools") or []) for r in mock.message_requests(include_side=False)]


def test_none_declares_only_the_clients_tools(gateway: Gateway, mock_model: MockModel) -> None:
    session = gateway.create_session(tools=[WEATHER], builtin_tools="none")
    assert session["builtin_tools"] == "none"
    reply = gateway.turn(session["id"], "hello")
    assert reply["status"] == "completed", reply
    assert _declared(mock_model) == [["mcp__client__get_weather"]]
    assert gateway.client.get(f"/api/sessions/{session['id']}").json()["builtin_tools"] == "none"


def test_none_without_client_tools_is_a_bare_model(gateway: Gateway, mock_model: MockModel) -> None:
    session = gateway.create_session(builtin_tools="none")
    reply = gateway.turn(session["id"], "just talk")
    assert reply["status"] == "completed" and reply["output"][-1]["text"] == "mock reply: just talk"
    requests = mock_model.message_requests(include_side=False)
    assert len(requests) == 1 and requests[0].body["tools"] == []
    body = orjson.dumps(requests[0].body)
    assert len(body) < 4_000, len(body)  # ~100 KB with Claude Code's agent
    assert b"total_tokens" not in body  # attachments are off for a model-only session


def test_a_list_declares_exactly_those(gateway: Gateway, mock_model: MockModel) -> None:
    session = gateway.create_session(builtin_tools=["Read", "Grep", "Glob"])
    assert session["builtin_tools"] == ["Read", "Grep", "Glob"]
    assert gateway.turn(session["id"], "look around")["status"] == "completed"
    assert _declared(mock_model) == [["Glob", "Grep", "Read"]]


def test_unknown_tool_name_is_a_400_that_lists_the_known_ones(gateway: Gateway) -> None:
    response = gateway.client.post("/api/sessions", json={"builtin_tools": ["Read", "Telnet"]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request" and "Telnet" in error["message"]
    assert error["details"]["known"] == list(BUILTIN_TOOL_NAMES)
    for bad in ("some", 3, [1]):
        assert gateway.client.post("/api/sessions", json={"builtin_tools": bad}).status_code == 400


def test_default_is_all_and_works_as_root_without_is_sandbox(gateway: Gateway, mock_model: MockModel) -> None:
    """Default settings (bypassPermissions asked for, built-in tools on): as root the turn still completes."""
    session = gateway.create_session()
    assert session["builtin_tools"] == "all"
    reply = gateway.turn(session["id"], "hello there")
    assert reply["status"] == "completed", reply
    declared = _declared(mock_model)[0]
    assert {"Bash", "Read", "Write", "Edit"} <= set(declared)
    health = gateway.client.get("/healthz").json()["permissions"]
    if os.geteuid() == 0:
        assert health["approvals"] == "on" and health["default_mode"] == "default"
        assert "root" in health["reason"] and "IS_SANDBOX" in health["reason"]
    else:
        assert health["approvals"] == "off" and health["default_mode"] == "bypassPermissions"


def test_a_subagent_reports_within_its_turn_and_each_later_turn_gets_its_own_answer(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """Claude Code runs a subagent in the background unless told otherwise and, once it reports, starts a model turn
    of its own. Nobody asked for that turn: its answer became the next turn's reply, and every later reply was the
    answer to the question before. Background tasks (and scheduled prompts) are off for the gateway's Claude Code."""
    session = gateway.create_session()
    mock_model.script(
        Reply(
            tool_uses=(
                ToolUse("Agent", {"description": "look", "prompt": "look around", "subagent_type": "general-purpose"}),
            )
        )
    )
    assert gateway.turn(session["id"], "use a subagent")["status"] == "completed"
    asked = [last_user_text(r.body) for r in mock_model.message_requests(include_side=False)]
    assert "look around" in asked, asked  # the subagent ran within the turn
    time.sleep(1.5)  # what a subagent sent to the background would need to report, and a turn of its own to run
    for question in ("second question", "third question"):
        reply = gateway.turn(session["id"], question)
        assert reply["status"] == "completed" and reply["output"][-1]["text"] == f"mock reply: {question}", reply
    assert len(mock_model.message_requests(include_side=False)) == len(asked) + 2  # no turn nobody asked for
    reporting_later = {"CronCreate", "CronDelete", "CronList", "Monitor", "ScheduleWakeup"}
    assert {"Agent", "Bash"} <= set(_declared(mock_model)[0]) and not reporting_later & set(_declared(mock_model)[0])


@pytest.mark.slow
def test_gateway_default_policy_from_the_environment(make_gateway, mock_model: MockModel) -> None:
    gw = make_gateway(CC_API_BUILTIN_TOOLS="Read,Glob", IS_SANDBOX=None)
    session = gw.create_session()
    assert session["builtin_tools"] == ["Read", "Glob"]
    assert gw.turn(session["id"], "hi")["status"] == "completed"
    assert _declared(mock_model) == [["Glob", "Read"]]


@pytest.mark.parametrize(
    "sandbox", [None, *(pytest.param(value, marks=pytest.mark.slow) for value in ("1", "yes", "true"))]
)
def test_a_default_turn_completes_whatever_is_sandbox_says(
    request: pytest.FixtureRequest, make_gateway, mock_model: MockModel, sandbox
) -> None:
    """Claude Code takes only IS_SANDBOX=1 as root; the gateway follows that rule exactly, so `yes` and
    `true` (set by some shells and containers) ask for approvals instead of failing every turn. Where the
    bypass holds, a built-in tool runs without asking (no permission callback is passed there)."""
    # without IS_SANDBOX: the module's gateway is that one
    gw = (
        request.getfixturevalue("gateway") if sandbox is None else make_gateway(IS_SANDBOX=sandbox, CC_API_SANDBOX=None)
    )
    session = gw.create_session()
    reply = gw.turn(session["id"], "hello")
    assert reply["status"] == "completed", reply
    health = gw.client.get("/healthz").json()["permissions"]
    bypass = os.geteuid() != 0 or sandbox == "1"
    assert health["approvals"] == ("off" if bypass else "on"), health
    if not bypass and sandbox:
        assert f"IS_SANDBOX={sandbox!r}" in health["reason"], health
    if bypass:
        target = gw.home / "ran.txt"  # in its working directory: Claude Code's sandbox keeps Bash's writes there
        mock_model.script(Reply(tool_uses=(ToolUse("Bash", {"command": f"echo ran > {target}"}),)), Reply(text="ok"))
        ran = gw.turn(gw.create_session(builtin_tools=["Bash"])["id"], "run it")
        assert ran["status"] == "completed" and target.read_text() == "ran\n", ran
