"""A session's permission mode changed with ``PATCH`` applies to its running Claude Code at once: a user who switches a
running turn to ``acceptEdits`` (in the console, or an ACP editor's mode picker) is not asked again for the rest of
it, and the next turn goes on in the same process instead of restarting it; one started in ``bypassPermissions``
switched to a mode that asks is asked for its next call (every process has the permission callback). The
gateways run as root without ``IS_SANDBOX`` (how a default gateway runs there): ``bypassPermissions`` is refused,
and the gateway asks instead (``default``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway
from tests.test_acp_protocol import Wire, _run, _text


def _write(path: Path, content: str) -> Reply:
    return Reply(tool_uses=(ToolUse("Write", {"file_path": str(path), "content": content}),))


def _starts(gateway: Gateway, session_id: str) -> int:
    """How many Claude Code processes the gateway started for the session (its ``engine_started`` log lines)."""
    return sum(
        f'"session_id":"{session_id}"' in line and '"event":"engine_started"' in line
        for line in gateway.log_text().splitlines()
    )


def _patch(gateway: Gateway, session_id: str, **fields: Any) -> dict[str, Any]:
    response = gateway.client.patch(f"/api/sessions/{session_id}", json=fields)
    assert response.status_code == 200, response.text
    return response.json()


def _asked(gateway: Gateway, session_id: str) -> list[str]:
    return [e["data"]["tool_name"] for e in gateway.events(session_id) if e["type"] == "permission.requested"]


def test_accept_edits_chosen_mid_turn_stops_the_asking_at_once_and_restarts_nothing(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """In ``default`` mode the turn's first write waits for approval; the user switches to ``acceptEdits`` and
    approves it: the turn's second write runs unasked, and so does the next turn's, in the same Claude Code."""
    first, second, third = tmp_path / "first.txt", tmp_path / "second.txt", tmp_path / "third.txt"
    session = gateway.create_session(builtin_tools=["Write"], permission_mode="default", cwd=str(tmp_path))
    session_id = session["id"]
    mock_model.script(_write(first, "one"), _write(second, "two"), Reply(text="both written"))
    paused = gateway.turn(session_id, "write both")
    assert paused["status"] == "requires_approval", paused

    changed = _patch(gateway, session_id, permission_mode="acceptEdits")
    assert changed["permission_mode"] == "acceptEdits" and changed["status"] == "requires_approval", changed
    done = gateway.allow(session_id, paused)
    assert done["status"] == "completed" and done["output"][-1]["text"] == "both written", done
    assert (first.read_text(), second.read_text()) == ("one", "two")
    assert _asked(gateway, session_id) == ["Write"], "the write after the switch was asked for"

    mock_model.script(_write(third, "three"), Reply(text="still warm"))
    again = gateway.turn(session_id, "one more")
    assert again["status"] == "completed" and third.read_text() == "three", again
    assert _asked(gateway, session_id) == ["Write"]
    assert _starts(gateway, session_id) == 1, "the mode change restarted Claude Code"
    [updated] = [e["data"] for e in gateway.events(session_id) if e["type"] == "session.updated"]
    assert (updated["permission_mode"], updated["previous"]["permission_mode"]) == ("acceptEdits", "default")


def test_an_editor_switching_to_accept_edits_at_a_dialog_gets_no_second_dialog(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The same from an ACP editor: at the first write's dialog the user picks the ``acceptEdits`` mode
    (``session/set_mode``) and allows it; the prompt's second write opens no dialog."""
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    mock_model.script(_write(first, "one"), _write(second, "two"), Reply(text="both written"))

    async def run() -> tuple[str, dict[str, Any], Wire]:
        async with Wire(gateway) as wire:
            session_id = await wire.new_session(tmp_path)
            prompt = wire.request("session/prompt", sessionId=session_id, prompt=_text("write both"))
            [dialog] = await wire.until(lambda: wire.requests("session/request_permission"))
            await wire.call("session/set_mode", sessionId=session_id, modeId="acceptEdits")
            wire.send(id=dialog["id"], result={"outcome": {"outcome": "selected", "optionId": "allow"}})
            answered = await asyncio.wait_for(prompt, 30)
        return session_id, answered, wire

    session_id, answered, wire = _run(run())

    assert answered["result"]["stopReason"] == "end_turn" and wire.text().endswith("both written"), answered
    assert (first.read_text(), second.read_text()) == ("one", "two")
    assert len(wire.requests("session/request_permission")) == 1
    assert _asked(gateway, session_id) == ["Write"]


def test_a_mode_that_asks_chosen_between_turns_asks_in_the_same_process(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """From ``acceptEdits`` to ``bypassPermissions`` on a host where Claude Code refuses it: the session runs under
    ``default``, as one started so would, so its next write waits for approval, and no process restarts for it."""
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    session = gateway.create_session(builtin_tools=["Write"], permission_mode="acceptEdits", cwd=str(tmp_path))
    session_id = session["id"]
    mock_model.script(_write(first, "one"), Reply(text="written"))
    assert gateway.turn(session_id, "write")["status"] == "completed"

    assert _patch(gateway, session_id, permission_mode="bypassPermissions")["permission_mode"] == "bypassPermissions"
    mock_model.script(_write(second, "two"), Reply(text="written too"))
    paused = gateway.turn(session_id, "write again")
    assert paused["status"] == "requires_approval", paused
    assert not second.exists()
    assert gateway.allow(session_id, paused)["status"] == "completed" and second.read_text() == "two"
    assert _starts(gateway, session_id) == 1, "the mode change restarted Claude Code"


def test_a_plan_approved_after_a_mode_switch_keeps_the_chosen_mode(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The user switches a plan-mode turn to ``acceptEdits`` while its plan waits for approval, along with a change
    that needs a new Claude Code (a system prompt): approving the plan then left the session in ``default``,
    silently undoing the switch. It keeps ``acceptEdits``, and its next turn runs so."""
    target = tmp_path / "after.txt"
    session = gateway.create_session(permission_mode="plan", cwd=str(tmp_path))
    session_id = session["id"]
    mock_model.script(Reply(tool_uses=(ToolUse("ExitPlanMode", {"plan": "1. write"}),)), Reply(text="go"))
    paused = gateway.turn(session_id, "plan it")
    assert [r["tool_name"] for r in paused["permission_requests"]] == ["ExitPlanMode"], paused

    _patch(gateway, session_id, permission_mode="acceptEdits", system_prompt="Be brief.")
    assert gateway.allow(session_id, paused)["status"] == "completed"
    assert gateway.client.get(f"/api/sessions/{session_id}").json()["permission_mode"] == "acceptEdits"
    updates = [e["data"] for e in gateway.events(session_id) if e["type"] == "session.updated"]
    assert [u["by"] for u in updates] == ["request"], updates

    mock_model.script(_write(target, "edited"), Reply(text="done"))
    assert gateway.turn(session_id, "write it")["status"] == "completed" and target.read_text() == "edited"
    assert _asked(gateway, session_id) == ["ExitPlanMode"]


def test_a_plan_turn_switched_to_accept_edits_before_approval_stays_there(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The same switch alone reaches the running Claude Code at once: the approved plan does not undo it either,
    and the next turn's write runs unasked in the same process."""
    target = tmp_path / "after.txt"
    session = gateway.create_session(permission_mode="plan", cwd=str(tmp_path))
    session_id = session["id"]
    mock_model.script(Reply(tool_uses=(ToolUse("ExitPlanMode", {"plan": "1. write"}),)), Reply(text="go"))
    paused = gateway.turn(session_id, "plan it")
    _patch(gateway, session_id, permission_mode="acceptEdits")
    assert gateway.allow(session_id, paused)["status"] == "completed"
    assert gateway.client.get(f"/api/sessions/{session_id}").json()["permission_mode"] == "acceptEdits"

    mock_model.script(_write(target, "edited"), Reply(text="done"))
    assert gateway.turn(session_id, "write it")["status"] == "completed" and target.read_text() == "edited"
    assert _asked(gateway, session_id) == ["ExitPlanMode"]
    assert _starts(gateway, session_id) == 1


def test_a_bypass_session_switched_to_default_asks_in_the_same_process(
    make_gateway: Any, mock_model: MockModel, tmp_path: Path
) -> None:
    """With ``IS_SANDBOX=1`` a ``bypassPermissions`` session runs as asked; switched to ``default`` (to take back
    control), its next call is asked for by the same Claude Code. It was started without a permission callback, so
    the switch waited for a restart at the next turn."""
    gateway = make_gateway(IS_SANDBOX="1")
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    session = gateway.create_session(builtin_tools=["Write"], permission_mode="bypassPermissions", cwd=str(tmp_path))
    session_id = session["id"]
    mock_model.script(_write(first, "one"), Reply(text="written"))
    assert gateway.turn(session_id, "write")["status"] == "completed" and first.read_text() == "one"

    _patch(gateway, session_id, permission_mode="default")
    mock_model.script(_write(second, "two"), Reply(text="written too"))
    paused = gateway.turn(session_id, "write again")
    assert paused["status"] == "requires_approval" and not second.exists(), paused
    assert gateway.allow(session_id, paused)["status"] == "completed" and second.read_text() == "two"
    assert _starts(gateway, session_id) == 1
