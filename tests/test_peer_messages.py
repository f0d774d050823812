"""A session cannot write into another session's conversation through Claude Code's peer messaging: every Claude
Code on a host lists the others (``ListAgents``) and takes their messages (``SendMessage``) into its conversation,
running a model turn on each by itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ccapi.testing import MockModel, Reply, ToolUse

pytestmark = pytest.mark.slow  # a gateway and two sessions

MESSAGE = "peer-message-6230"


def test_a_session_cannot_message_another_sessions_claude_code(
    make_gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """With all of Claude Code's tools (the default), a session is offered neither ListAgents nor SendMessage, and a
    SendMessage call to another running session's Claude Code, by the name it is listed under, is refused: nothing
    reaches that session's conversation. Asking for either tool by name is a 400 naming the tools there are."""
    gw = make_gateway()
    (tmp_path / "victim").mkdir()
    victim = gw.create_session(cwd=str(tmp_path / "victim"))
    assert gw.turn(victim["id"], "hello")["status"] == "completed"
    config = Path(gw.env["CLAUDE_CONFIG_DIR"])
    [running] = config.glob("sessions/*.json")
    name = json.loads(running.read_text())["name"]

    (tmp_path / "sender").mkdir()
    sender = gw.create_session(cwd=str(tmp_path / "sender"))
    mock_model.clear()
    send = ToolUse("SendMessage", {"to": name, "message": MESSAGE})
    mock_model.script(Reply(tool_uses=(ToolUse("ListAgents", {}), send)), Reply(text="ok"))
    reply = gw.turn(sender["id"], "tell the other session")
    while reply["status"] == "requires_approval":
        reply = gw.allow(sender["id"], reply)
    assert reply["status"] == "completed", reply
    [first, *_] = mock_model.message_requests(include_side=False)
    declared = {tool["name"] for tool in first.body["tools"]}
    assert "Read" in declared and not declared & {"ListAgents", "SendMessage"}, declared
    shown = json.dumps([request.body["messages"][-1] for request in mock_model.message_requests(include_side=True)])
    assert "cross-session-message" not in shown and '"success":true' not in shown.replace("\\", ""), shown

    for tools in (["Read", "SendMessage"], ["ListAgents"]):
        refused = gw.client.post("/api/sessions", json={"builtin_tools": tools})
        assert refused.status_code == 400 and "unknown built-in tool" in refused.text, refused.text
