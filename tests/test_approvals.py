"""Approvals over HTTP: a built-in tool call that needs permission pauses the turn until the
client allows or denies it (``POST /permissions``), as client tool calls wait for results.
No IS_SANDBOX here: this is how a default gateway runs as root."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccapi.client import Client, PermissionRequest
from ccapi.testing import MockModel, Reply, ToolUse
from tests.compat_support import WEATHER_SCHEMA
from tests.gateway import Gateway, sse_events

APPROVAL_TIMEOUT = 3
WEATHER = {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER_SCHEMA}


@pytest.fixture(scope="module")
def gateway(mock_model: MockModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(
        tmp_path_factory.mktemp("gw"),
        mock_model.url,
        IS_SANDBOX=None,
        CC_API_SANDBOX=None,
        CC_API_APPROVAL_TIMEOUT=str(APPROVAL_TIMEOUT),
    ).start()
    yield gw
    gw.stop()
    assert gw.lingering_processes() == [], "a Claude CLI process outlived the gateway"


def _bash_writes(mock: MockModel, target: Path, then: str = "done") -> None:
    mock.script(
        Reply(tool_uses=(ToolUse("Bash", {"command": f"echo approved > {target}", "description": "write a file"}),)),
        Reply(text=then),
    )


def _paused(gateway: Gateway, cwd: Path) -> tuple[dict, dict]:
    session = gateway.create_session(builtin_tools=["Bash"], permission_mode="default", cwd=str(cwd))
    paused = gateway.turn(session["id"], "write the file")
    assert paused["status"] == "requires_approval", paused
    return session, paused


def _tool_results(mock: MockModel) -> list[dict]:
    return [
        block
        for request in mock.message_requests(include_side=False)
        for message in request.body["messages"]
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


def _result_text(block: dict) -> str:
    content = block["content"]
    return content if isinstance(content, str) else " ".join(b.get("text", "") for b in content)


def test_an_allowed_call_runs_and_claude_sees_its_output(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    target = tmp_path / "out.txt"
    _bash_writes(mock_model, target)
    session, paused = _paused(gateway, tmp_path)
    [request] = paused["permission_requests"]
    assert request["tool_name"] == "Bash" and request["input"]["command"] == f"echo approved > {target}"
    assert not target.exists()
    assert gateway.client.get(f"/api/sessions/{session['id']}").json()["status"] == "requires_approval"

    response = gateway.client.post(
        f"/api/sessions/{session['id']}/permissions",
        json={"decisions": [{"request_id": request["request_id"], "behavior": "allow"}]},
    )
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["status"] == "completed" and done["turn_id"] == paused["turn_id"]
    assert done["output"][-1]["text"] == "done" and done["permission_requests"] == []
    assert target.read_text() == "approved\n"
    [result] = _tool_results(mock_model)
    assert not result.get("is_error")
    types = [e["type"] for e in gateway.events(session["id"])]
    assert (
        types.index("permission.requested")
        < types.index("turn.requires_approval")
        < types.index("permission.resolved")
        < types.index("agent_tool.completed")
        < types.index("turn.completed")
    )


def test_a_denied_call_does_not_run_and_claude_reads_why(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    target = tmp_path / "out.txt"
    _bash_writes(mock_model, target, then="understood")
    session, paused = _paused(gateway, tmp_path)
    request_id = paused["permission_requests"][0]["request_id"]
    response = gateway.client.post(
        f"/api/sessions/{session['id']}/permissions",
        json={"decisions": [{"request_id": request_id, "behavior": "deny", "message": "not on this machine, please"}]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    assert not target.exists()
    [result] = _tool_results(mock_model)
    assert result["is_error"] and "not on this machine, please" in _result_text(result)
    resolved = [e for e in gateway.events(session["id"]) if e["type"] == "permission.resolved"]
    decisions = [(e["data"]["behavior"], e["data"]["message"]) for e in resolved]
    assert decisions == [("deny", "not on this machine, please")]


def test_bad_decisions_are_refused_and_change_nothing(gateway: Gateway, mock_model: MockModel, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    _bash_writes(mock_model, target)
    session, paused = _paused(gateway, tmp_path)
    url = f"/api/sessions/{session['id']}/permissions"
    request_id = paused["permission_requests"][0]["request_id"]
    for body in (
        {"decisions": []},
        {"decisions": [{"request_id": request_id, "behavior": "maybe"}]},
        {"decisions": [{"request_id": request_id, "behavior": "deny", "updated_input": {}}]},
        {"decisions": [{"request_id": "perm_nope", "behavior": "allow"}]},
    ):
        response = gateway.client.post(url, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["type"] == "invalid_request"
    unknown = gateway.client.post(url, json={"decisions": [{"request_id": "perm_nope", "behavior": "allow"}]})
    assert unknown.json()["error"]["details"]["waiting_for"] == [request_id]
    assert not target.exists()

    stream = gateway.client.post(
        url,
        json={"decisions": [{"request_id": request_id, "behavior": "allow"}], "stream": True},
        headers={"Idempotency-Key": "approve-1"},
    )
    events = list(sse_events(stream.text.splitlines()))
    assert [e["event"] for e in events if "event" in e][-1] == "turn.completed"
    turn_url = f"/api/sessions/{session['id']}/turns/{paused['turn_id']}"
    deadline = time.monotonic() + 10  # the turn row settles a moment after its last event is published
    while gateway.client.get(turn_url).json()["status"] != "completed" and time.monotonic() < deadline:
        time.sleep(0.05)
    retried = gateway.client.post(
        url,
        json={"decisions": [{"request_id": request_id, "behavior": "allow"}], "stream": True},
        headers={"Idempotency-Key": "approve-1"},
    )
    assert retried.status_code == 200  # the first answer (streamed, as asked: the same events), not a re-run
    replayed = list(sse_events(retried.text.splitlines()))
    assert [e for e in replayed if "event" in e] == [e for e in events if "event" in e]
    late = gateway.client.post(url, json={"decisions": [{"request_id": request_id, "behavior": "allow"}]})
    assert late.status_code == 409 and late.json()["error"]["type"] == "conflict"
    assert target.exists()


@pytest.mark.slow
def test_an_unanswered_request_is_denied_after_the_timeout(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    target = tmp_path / "out.txt"
    _bash_writes(mock_model, target, then="ok, I will not")
    session, paused = _paused(gateway, tmp_path)
    deadline = time.monotonic() + APPROVAL_TIMEOUT + 30
    while (turn := gateway.client.get(f"/api/sessions/{session['id']}/turns/{paused['turn_id']}").json())[
        "status"
    ] not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert turn["status"] == "completed", turn
    assert not target.exists()
    resolved = next(e for e in gateway.events(session["id"]) if e["type"] == "permission.resolved")
    assert resolved["data"]["behavior"] == "deny" and resolved["data"]["timed_out"] is True
    [result] = _tool_results(mock_model)
    assert result["is_error"] and "did not approve" in _result_text(result)


def test_interrupt_while_an_approval_waits(gateway: Gateway, mock_model: MockModel, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    _bash_writes(mock_model, target)
    session, _ = _paused(gateway, tmp_path)
    response = gateway.client.post(f"/api/sessions/{session['id']}/interrupt")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "interrupted"
    assert not target.exists()
    mock_model.clear_script()
    assert gateway.turn(session["id"], "still there?")["status"] == "completed"  # the session stays usable


def test_a_background_turn_reports_the_request_on_its_stream(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    _bash_writes(mock_model, tmp_path / "out.txt")
    session = gateway.create_session(builtin_tools=["Bash"], permission_mode="default", cwd=str(tmp_path))
    started = gateway.client.post(
        f"/api/sessions/{session['id']}/turns", json={"input": "go", "background": True}
    ).json()
    with gateway.client.stream(
        "GET", f"/api/sessions/{session['id']}/events/stream", params={"after": started["first_event_seq"] - 1}
    ) as stream:
        for event in sse_events(stream.iter_lines()):
            if event.get("event") == "turn.requires_approval":
                request = event["data"]["data"]["permission_requests"][0]
                break
    answer = gateway.client.post(
        f"/api/sessions/{session['id']}/permissions",
        json={"decisions": [{"request_id": request["request_id"], "behavior": "allow"}], "background": True},
    )
    assert answer.status_code == 202
    deadline = time.monotonic() + 30
    while (
        gateway.client.get(f"/api/sessions/{session['id']}").json()["status"] != "idle" and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert (tmp_path / "out.txt").exists()


def test_python_client_answers_tools_and_approvals_in_one_loop(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    target = tmp_path / "out.txt"
    mock_model.script(
        Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)),
        Reply(tool_uses=(ToolUse("Bash", {"command": f"echo approved > {target}"}),)),
        Reply(text="written"),
    )
    asked: list[PermissionRequest] = []
    with Client(gateway.base_url) as cc:
        session = cc.create_session(
            tools=[WEATHER], builtin_tools=["Bash"], permission_mode="default", cwd=str(tmp_path)
        )
        turn = cc.run_tools(
            session.id,
            "weather, then write it down",
            {"get_weather": lambda city: f"{city}: 3C"},
            approve=lambda request: asked.append(request) or True,
        )
    assert turn.status == "completed" and turn.text == "written"
    assert [(r.tool_name, r.input["command"]) for r in asked] == [("Bash", f"echo approved > {target}")]
    assert target.exists()


@pytest.mark.slow
def test_a_restart_while_an_approval_waits_closes_the_turn(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """Last in the module: it restarts the module's gateway, gracefully (the turn is interrupted)
    and by a crash (the next start closes it as failed), as for a turn waiting on tool results."""
    for stop, status in ((signal.SIGTERM, "interrupted"), (signal.SIGKILL, "failed")):
        _bash_writes(mock_model, tmp_path / "out.txt")
        session, paused = _paused(gateway, tmp_path)
        gateway.stop(stop)
        gateway.start()
        turn = gateway.client.get(f"/api/sessions/{session['id']}/turns/{paused['turn_id']}").json()
        assert turn["status"] == status and turn["permission_requests"] == [], turn
        if stop == signal.SIGKILL:
            assert turn["error"]["type"] == "gateway_restarted"
        mock_model.clear_script()
        assert gateway.turn(session["id"], "again")["status"] == "completed"
        assert not (tmp_path / "out.txt").exists()


def test_allowed_for_the_session_the_tool_is_not_asked_for_again(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """``"scope": "session"`` on an allow is Claude Code's own "don't ask again this session": the session's next
    Bash call runs without a request (while its Claude Code process lives); it is only for allow."""
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    _bash_writes(mock_model, first)
    session, paused = _paused(gateway, tmp_path)
    [request] = paused["permission_requests"]
    path = f"/api/sessions/{session['id']}/permissions"
    refused = gateway.client.post(
        path, json={"decisions": [{"request_id": request["request_id"], "behavior": "deny", "scope": "session"}]}
    )
    assert refused.status_code == 400 and "scope" in refused.json()["error"]["message"]
    decision = {"request_id": request["request_id"], "behavior": "allow", "scope": "session"}
    done = gateway.client.post(path, json={"decisions": [decision]}).json()
    assert done["status"] == "completed" and first.read_text() == "approved\n"

    _bash_writes(mock_model, second)
    again = gateway.turn(session["id"], "write another")
    assert again["status"] == "completed", again
    assert second.read_text() == "approved\n"
    resolved = [e["data"] for e in gateway.events(session["id"]) if e["type"] == "permission.resolved"]
    assert [(r["behavior"], r.get("scope")) for r in resolved] == [("allow", "session")]


def test_an_approved_plan_leaves_plan_mode_for_good(gateway: Gateway, mock_model: MockModel, tmp_path: Path) -> None:
    """Claude Code leaves plan mode when its plan (``ExitPlanMode``) is approved; the session says so and keeps
    it: a Claude Code started again for it (after idle eviction, a restart) would otherwise be back in plan mode."""
    session = gateway.create_session(permission_mode="plan", cwd=str(tmp_path))
    mock_model.script(Reply(tool_uses=(ToolUse("ExitPlanMode", {"plan": "1. write the file"}),)), Reply(text="go"))
    paused = gateway.turn(session["id"], "plan it")
    [request] = paused["permission_requests"]
    assert request["tool_name"] == "ExitPlanMode"
    done = gateway.allow(session["id"], paused)
    assert done["status"] == "completed", done

    changed = gateway.client.get(f"/api/sessions/{session['id']}").json()
    assert changed["permission_mode"] == "default", changed
    [updated] = [e for e in gateway.events(session["id"]) if e["type"] == "session.updated"]
    assert updated["turn_id"] == paused["turn_id"]
    assert updated["data"]["permission_mode"] == "default" and updated["data"]["previous"]["permission_mode"] == "plan"
    started = f'{{"session_id":"{session["id"]}","live"'  # an engine_started line
    starts = gateway.log_text().count(started)
    mock_model.script(Reply(text="still warm"))
    assert gateway.turn(session["id"], "next")["output"][-1]["text"] == "still warm"
    assert gateway.log_text().count(started) == starts == 1, (
        "the process that left plan mode goes on: no restart for a mode it is in already"
    )

    # a plan that is rejected keeps the mode
    other = gateway.create_session(permission_mode="plan", cwd=str(tmp_path))
    mock_model.script(Reply(tool_uses=(ToolUse("ExitPlanMode", {"plan": "1. nothing"}),)), Reply(text="fine"))
    paused = gateway.turn(other["id"], "plan it")
    [request] = paused["permission_requests"]
    denied = gateway.client.post(
        f"/api/sessions/{other['id']}/permissions",
        json={"decisions": [{"request_id": request["request_id"], "behavior": "deny", "message": "not yet"}]},
    )
    assert denied.json()["status"] == "completed", denied.text
    assert gateway.client.get(f"/api/sessions/{other['id']}").json()["permission_mode"] == "plan"
