"""The log and the sessions survive a gateway restart on the same database."""

from __future__ import annotations

import shutil

import orjson
import pytest

from ccapi.testing import MockModel
from tests.conftest import BACKENDS
from tests.metrics_support import scrape, value

pytestmark = pytest.mark.slow  # restarts a gateway


def test_restart_keeps_sessions_events_and_context(make_gateway, mock_model: MockModel) -> None:
    gw = make_gateway()
    session = gw.create_session(system_prompt="Remember the code word.", metadata={"owner": "tests"})
    gw.turn(session["id"], "the code word is pelican")
    gw.turn(session["id"], "and the colour is teal")
    before = gw.client.get(f"/api/sessions/{session['id']}").json()
    events_before = gw.events(session["id"])

    gw.restart()
    after = gw.client.get(f"/api/sessions/{session['id']}").json()
    assert {k: v for k, v in after.items() if k != "live"} == {k: v for k, v in before.items() if k != "live"}
    assert after["live"] is False  # the engine went with the old process
    assert gw.events(session["id"]) == events_before
    listed = gw.client.get("/api/sessions").json()["data"]
    assert [s["id"] for s in listed] == [session["id"]]

    mock_model.clear()
    reply = gw.turn(session["id"], "what was the code word?")
    assert reply["status"] == "completed"
    sent = orjson.dumps(mock_model.message_requests(include_side=False)[-1].body).decode()
    assert "the code word is pelican" in sent and "and the colour is teal" in sent
    assert [e["seq"] for e in gw.events(session["id"])] == list(range(1, reply["last_event_seq"] + 1))
    samples = scrape(gw)  # this gateway process started the session's Claude Code once, resuming it
    assert value(samples, "cc_api_engine_starts_total", reason="resume") == 1
    assert value(samples, "cc_api_engine_starts_total", reason="new") == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_comes_from_the_gateway_database_not_the_cli_files(make_gateway, mock_model: MockModel) -> None:
    """On every store backend: the transcript Claude Code resumes from is the store's (its own files are gone),
    and deleting the session deletes it there. (The other restart scenarios here are the store's contract in
    test_store_backends plus the same HTTP path, so they run on SQLite only; test_crash and test_turns run the
    JSON directory end to end too.)"""
    gw = make_gateway()
    session = gw.create_session()
    gw.turn(session["id"], "my locker number is 7734")
    gw.stop()
    projects = gw.home / "user" / ".claude" / "projects"
    local = list(projects.rglob("*.jsonl"))
    assert local, "Claude Code should have written its local transcript"
    sdk_id = local[0].stem  # Claude Code's id for the conversation
    shutil.rmtree(projects)  # only CC API's database still knows the conversation

    gw.start()
    mock_model.clear()
    reply = gw.turn(session["id"], "what is my locker number?")
    assert reply["status"] == "completed"
    sent = orjson.dumps(mock_model.message_requests(include_side=False)[-1].body["messages"]).decode()
    assert "my locker number is 7734" in sent

    assert gw.transcript_entries(sdk_id) > 0
    assert gw.client.delete(f"/api/sessions/{session['id']}").status_code == 200
    assert gw.transcript_entries(sdk_id) == 0


def test_a_restart_with_another_working_directory_keeps_the_context(
    make_gateway, mock_model: MockModel, tmp_path
) -> None:
    """Claude Code files a transcript under its working directory's project key; a gateway
    restarted with another ``CC_API_CWD`` still resumes (and branches) the conversation from
    its store, and a session with its own ``cwd`` keeps running there."""
    first, second, own = tmp_path / "workdir-one", tmp_path / "workdir-two", tmp_path / "own-workdir"
    for folder in (first, second, own):
        folder.mkdir()
    gw = make_gateway(CC_API_CWD=str(first))
    moved = gw.create_session()
    gw.turn(moved["id"], "the harbour is called Kestrel Cove")
    pinned = gw.create_session(cwd=str(own))
    gw.turn(pinned["id"], "the lighthouse keeper is Ada")
    gw.stop()
    shutil.rmtree(gw.home / "user" / ".claude" / "projects")  # as on a fresh host: only the store has them

    gw.env["CC_API_CWD"] = str(second)
    gw.start()
    for session, question, earlier in (
        (moved, "what is the harbour called?", "the harbour is called Kestrel Cove"),
        (pinned, "who keeps the lighthouse?", "the lighthouse keeper is Ada"),
    ):
        mock_model.clear()
        reply = gw.turn(session["id"], question)
        assert reply["status"] == "completed", reply
        sent = orjson.dumps(mock_model.message_requests(include_side=False)[-1].body["messages"]).decode()
        assert earlier in sent and question in sent

    gw.env["CC_API_CWD"] = str(first)  # and back: the turn run under the second directory is not lost
    gw.restart()
    branch = gw.client.post(f"/api/sessions/{moved['id']}/fork")
    assert branch.status_code == 201, branch.text
    mock_model.clear()
    assert gw.turn(moved["id"], "say it again")["status"] == "completed"
    sent = orjson.dumps(mock_model.message_requests(include_side=False)[-1].body["messages"]).decode()
    assert "the harbour is called Kestrel Cove" in sent and "what is the harbour called?" in sent
    mock_model.clear()
    assert gw.turn(branch.json()["id"], "and on the branch?")["status"] == "completed"
    sent = orjson.dumps(mock_model.message_requests(include_side=False)[-1].body["messages"]).decode()
    assert "what is the harbour called?" in sent and "say it again" not in sent
