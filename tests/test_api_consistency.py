"""A reply, the event log and a later GET of the same object say the same thing, on the real stack."""

from __future__ import annotations

from pathlib import Path

from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway
from tests.test_tools import WEATHER


def _turn(gateway: Gateway, session_id: str, turn_id: str) -> dict:
    response = gateway.client.get(f"/api/sessions/{session_id}/turns/{turn_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_a_turn_paused_on_tool_calls_reads_back_as_its_reply_said(gateway: Gateway, mock_model: MockModel) -> None:
    """``GET /turns/{id}`` of a paused turn gave ``last_event_seq: null`` where its reply (and a client resuming
    the log from it) had the seq of its ``turn.requires_action``."""
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Nice"}),)))
    session = gateway.create_session(tools=[WEATHER])
    paused = gateway.turn(session["id"], "Weather in Nice?")
    assert paused["status"] == "requires_action"
    pause = [e for e in gateway.events(session["id"]) if e["type"] == "turn.requires_action"][-1]
    assert paused["last_event_seq"] == pause["seq"]
    assert _turn(gateway, session["id"], paused["turn_id"]) == paused

    call = paused["tool_calls"][0]["tool_call_id"]
    done = gateway.client.post(
        f"/api/sessions/{session['id']}/tool-results", json={"results": [{"tool_call_id": call, "content": "12C"}]}
    ).json()
    assert done["status"] == "completed"
    assert _turn(gateway, session["id"], paused["turn_id"]) == done
    assert done["last_event_seq"] == gateway.events(session["id"])[-1]["seq"]


def test_a_turn_waiting_for_approval_reads_back_as_its_reply_said_and_is_no_fork_point(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The same for a turn paused on a permission request; and a fork at it is still a 409 while it waits."""
    mock_model.script(
        Reply(
            tool_uses=(ToolUse("Bash", {"command": f"echo hi > {tmp_path / 'hi.txt'}", "description": "write a file"}),)
        )
    )
    session = gateway.create_session(builtin_tools=["Bash"], permission_mode="default", cwd=str(tmp_path))
    paused = gateway.turn(session["id"], "Write hi.txt with Bash")
    assert paused["status"] == "requires_approval", paused
    pause = [e for e in gateway.events(session["id"]) if e["type"] == "turn.requires_approval"][-1]
    assert paused["last_event_seq"] == pause["seq"]
    assert _turn(gateway, session["id"], paused["turn_id"]) == paused

    fork = gateway.client.post(f"/api/sessions/{session['id']}/fork", json={"turn_id": paused["turn_id"]})
    assert fork.status_code == 409, fork.text
    assert gateway.client.post(f"/api/sessions/{session['id']}/interrupt").json()["status"] == "interrupted"


def test_a_patch_that_changes_nothing_records_nothing(gateway: Gateway) -> None:
    """A ``PATCH`` to the values the session has already (an alias of its model, its own prompt) logged a
    ``session.updated`` saying they changed from themselves to themselves; one that changes one of two named
    fields names that one only."""
    session = gateway.create_session(model="claude-sonnet-4-5", system_prompt="Be brief.")
    same = gateway.client.patch(
        f"/api/sessions/{session['id']}", json={"model": "sonnet", "system_prompt": "Be brief."}
    )
    assert same.status_code == 200, same.text
    assert same.json()["updated_at"] == session["updated_at"]
    assert [e["type"] for e in gateway.events(session["id"])] == ["session.created"]

    one = gateway.client.patch(f"/api/sessions/{session['id']}", json={"model": "sonnet", "max_budget_usd": 2})
    assert one.status_code == 200 and one.json()["max_budget_usd"] == 2
    updated = [e for e in gateway.events(session["id"]) if e["type"] == "session.updated"]
    assert len(updated) == 1 and updated[0]["data"]["changed"] == ["max_budget_usd"], updated
    assert "model" not in updated[0]["data"]["previous"]


def test_a_fork_past_the_end_of_the_log_is_refused(gateway: Gateway) -> None:
    """``after_seq`` past the session's last event (a seq of another session's log) forked the whole
    conversation with a 201, where ``/events`` and the stream answer such a position with a 400."""
    session = gateway.create_session()
    gateway.turn(session["id"], "a")
    last = gateway.events(session["id"])[-1]["seq"]
    before = set(gateway.session_ids())
    refused = gateway.client.post(f"/api/sessions/{session['id']}/fork", json={"after_seq": last + 50})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["details"] == {"last_event_seq": last}
    assert set(gateway.session_ids()) == before
    assert gateway.client.post(f"/api/sessions/{session['id']}/fork", json={"after_seq": last}).status_code == 201


def test_a_fork_of_a_fork_that_has_not_answered_yet_holds_the_same_conversation(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """A fork of a fresh fork was a 409 ("no reply to fork at"): the fork holds a conversation, but no reply of
    its own in its log. It branches where its source did."""
    source = gateway.create_session()
    gateway.turn(source["id"], "remember the word heron")
    first = gateway.client.post(f"/api/sessions/{source['id']}/fork", json={})
    assert first.status_code == 201, first.text
    second = gateway.client.post(f"/api/sessions/{first.json()['id']}/fork", json={})
    assert second.status_code == 201, second.text
    created = gateway.events(second.json()["id"])[0]
    assert created["data"]["forked_from"] == {"session_id": first.json()["id"], "seq": 1}

    mock_model.clear()
    assert gateway.turn(second.json()["id"], "which word?")["status"] == "completed"
    sent = str(mock_model.message_requests(include_side=False)[-1].body["messages"])
    assert "remember the word heron" in sent and "which word?" in sent


def test_a_turn_of_a_missing_session_is_a_404_naming_the_session(gateway: Gateway) -> None:
    """``GET /turns/{id}`` under a session id that does not exist said "no turn ... in session ...", sending a
    client that mistyped the session to look for a missing turn."""
    session = gateway.create_session()
    turn = gateway.turn(session["id"], "a")
    missing = gateway.client.get(f"/api/sessions/sess_0000000000000000/turns/{turn['turn_id']}")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no session 'sess_0000000000000000'"
    absent = gateway.client.get(f"/api/sessions/{session['id']}/turns/turn_0000")
    assert absent.status_code == 404 and "no turn 'turn_0000'" in absent.json()["error"]["message"]
