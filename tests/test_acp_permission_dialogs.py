"""An editor's permission dialog (``session/request_permission``, sent by ``cc-api acp``) on the wire, against a real
gateway (root: built-in tool calls wait for approval), the SDK, the CLI and the mock model: a dialog the gateway no
longer waits for (decided in the console, its turn ended) is withdrawn with ACP's ``$/cancel_request``, and the
editor's late answer changes nothing and breaks nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway
from tests.test_acp_protocol import Wire, _run, _text


def _withdrawn(wire: Wire, dialog: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        m for m in wire.seen if m.get("method") == "$/cancel_request" and m["params"] == {"requestId": dialog["id"]}
    ]


def _late_reject(wire: Wire, dialog: dict[str, Any]) -> None:
    """The user answers the withdrawn dialog after all: Reject."""
    wire.send(id=dialog["id"], result={"outcome": {"outcome": "selected", "optionId": "reject"}})


def test_a_dialog_decided_in_the_console_is_withdrawn_and_its_late_answer_ignored(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The console approves while the editor's dialog is open: the agent withdraws the dialog (``$/cancel_request``
    of it), which stayed open asking about a call that had already run; a Reject the editor sends anyway is dropped
    (the call stays approved, nothing else is decided) and the turn goes on to its end."""
    target = tmp_path / "out.txt"
    mock_model.script(Reply(tool_uses=(ToolUse("Bash", {"command": f"touch {target}"}),)), Reply(text="done"))

    async def run() -> tuple[str, dict[str, Any], Wire]:
        async with Wire(gateway) as wire:
            session_id = await wire.new_session(tmp_path)
            prompt = wire.request("session/prompt", sessionId=session_id, prompt=_text("go"))
            [dialog] = await wire.until(lambda: wire.requests("session/request_permission"))
            [asked] = [e for e in gateway.events(session_id) if e["type"] == "permission.requested"]
            decision = {"request_id": asked["data"]["request_id"], "behavior": "allow"}
            approved = gateway.client.post(f"/api/sessions/{session_id}/permissions", json={"decisions": [decision]})
            assert approved.status_code == 200, approved.text
            await wire.until(lambda: _withdrawn(wire, dialog))
            _late_reject(wire, dialog)
            answered = await asyncio.wait_for(prompt, 30)
        return session_id, answered, wire

    session_id, answered, wire = _run(run())

    assert answered["result"]["stopReason"] == "end_turn" and wire.text() == "done", answered
    assert target.exists()
    resolved = [e["data"] for e in gateway.events(session_id) if e["type"] == "permission.resolved"]
    assert [r["behavior"] for r in resolved] == ["allow"]
    [dialog] = wire.requests("session/request_permission")
    call = dialog["params"]["toolCall"]["toolCallId"]
    statuses = [u["status"] for u in wire.updates("tool_call_update") if u["toolCallId"] == call]
    assert statuses == ["in_progress", "completed"]


@pytest.mark.parametrize("stop", ["console", "editor"])
def test_a_dialog_open_when_its_turn_ends_is_withdrawn_before_the_prompt_answers(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path, stop: str
) -> None:
    """The turn ends while the editor still asks (the console interrupts it; or the editor cancels the prompt and,
    against ACP, leaves its dialog open): the agent withdraws the dialog before it answers the prompt, the call
    ends ``failed``, a late answer is dropped, and the session takes the next prompt."""
    target = tmp_path / "out.txt"
    mock_model.script(Reply(tool_uses=(ToolUse("Bash", {"command": f"touch {target}"}),)), Reply(text="next"))

    async def run() -> tuple[str, dict[str, Any], dict[str, Any], Wire]:
        async with Wire(gateway) as wire:
            session_id = await wire.new_session(tmp_path)
            prompt = wire.request("session/prompt", sessionId=session_id, prompt=_text("go"))
            [dialog] = await wire.until(lambda: wire.requests("session/request_permission"))
            if stop == "console":
                stopped = gateway.client.post(f"/api/sessions/{session_id}/interrupt")
                assert stopped.status_code == 200, stopped.text
            else:
                wire.send(method="session/cancel", params={"sessionId": session_id})
            answered = await asyncio.wait_for(prompt, 30)
            assert _withdrawn(wire, dialog), "the prompt answered with the dialog still open"
            _late_reject(wire, dialog)
            after = await wire.call("session/prompt", sessionId=session_id, prompt=_text("again"))
        return session_id, answered, after, wire

    session_id, answered, after, wire = _run(run())

    if stop == "console":
        assert "interrupted" in str(answered["error"]), answered
    else:
        assert answered["result"]["stopReason"] == "cancelled", answered
    assert after["stopReason"] == "end_turn" and not target.exists()
    [dialog] = wire.requests("session/request_permission")
    call = dialog["params"]["toolCall"]["toolCallId"]
    assert [u["status"] for u in wire.updates("tool_call_update") if u["toolCallId"] == call] == ["failed"]
    resolved = [e["data"]["behavior"] for e in gateway.events(session_id) if e["type"] == "permission.resolved"]
    assert "allow" not in resolved
