"""A session changed (its options, or deleted) on one host while another host runs its turn (hosts sharing
PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest

from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import eventually
from tests.test_webhook_gone import WEATHER

pytestmark = pytest.mark.slow  # two gateways on one PostgreSQL database


def _paused_on_host_a(make_gateway, postgres_server, mock_model: MockModel) -> tuple[Any, Any, dict, dict]:
    """Two hosts on one database, and a session whose turn host A runs, paused on a client tool call."""
    url = postgres_server.create_database()
    common = {"CC_API_DATABASE_URL": url, "CC_API_LEASE_TTL": "10"}  # no expiry under load: the turn holds it
    a = make_gateway(CC_API_HOST_ID="host-a", **common)
    b = make_gateway(CC_API_HOST_ID="host-b", **common)
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)), Reply(text="Oslo is cold."))
    session = a.create_session(tools=[WEATHER])
    paused = a.turn(session["id"], "weather in Oslo?")
    assert paused["status"] == "requires_action"
    return a, b, session, paused


def test_a_change_on_one_host_while_another_runs_the_turn_waits_for_its_end(
    make_gateway, postgres_server, mock_model: MockModel
) -> None:
    """The host that runs a turn numbers its session's log. A ``PATCH`` on another host numbered its
    ``session.updated`` too, with a ``seq`` the turn's host then gave one of its own events: each host's commit
    failed on the other's, for ever, and the turn was never answered. Now it is a 409 naming the turn's host until
    that turn ends, then it goes in after it."""
    a, b, session, paused = _paused_on_host_a(make_gateway, postgres_server, mock_model)

    refused = b.client.patch(f"/api/sessions/{session['id']}", json={"system_prompt": "Be brief."})
    assert refused.status_code == 409 and refused.json()["error"]["details"] == {"owner": "host-a"}, refused.text
    assert refused.headers["retry-after"]

    [call] = paused["tool_calls"]
    results = {"results": [{"tool_call_id": call["tool_call_id"], "content": "-3C"}]}
    done = a.client.post(f"/api/sessions/{session['id']}/tool-results", json=results, timeout=30)
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text

    # host a lets the session's lease go just after the turn's reply (a queued turn would start first): a refused
    # PATCH changes nothing, and from then on it goes in
    answers: list[Any] = []
    assert eventually(
        lambda: (
            answers.append(b.client.patch(f"/api/sessions/{session['id']}", json={"system_prompt": "Be brief."}))
            or answers[-1].status_code == 200
        ),
        timeout=10,
    ), answers[-1].text
    assert answers[-1].json()["system_prompt"] == "Be brief."
    assert a.turn(session["id"], "and in Bergen?")["status"] == "completed"
    events = a.events(session["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    [updated] = [e for e in events if e["type"] == "session.updated"]
    assert done.json()["last_event_seq"] < updated["seq"]
    assert "Be brief." in str(mock_model.message_requests(include_side=False)[-1].body["system"])


def test_a_delete_on_one_host_while_another_runs_the_turn_is_a_409_naming_it(
    make_gateway, postgres_server, mock_model: MockModel
) -> None:
    """A ``DELETE`` on another host answered 200 while the session's turn ran on: that turn went on calling the
    model, its events were written for a session that was gone, and its client's tool results found no session.
    It is a 409 naming the turn's host until the turn ends; then the delete goes through. So are its tool results, an
    interrupt and a compaction sent to that host."""
    a, b, session, paused = _paused_on_host_a(make_gateway, postgres_server, mock_model)

    refused = b.client.delete(f"/api/sessions/{session['id']}")
    assert refused.status_code == 409 and refused.json()["error"]["details"] == {"owner": "host-a"}, refused.text
    [call] = paused["tool_calls"]
    results = {"results": [{"tool_call_id": call["tool_call_id"], "content": "-3C"}]}
    # the turn's continuation, interrupt or compaction sent to the wrong host says which host runs it (it said "not
    # waiting for tool results", "no turn is running", "nothing to compact yet")
    for path, body in (("tool-results", results), ("interrupt", {}), ("compact", {})):
        wrong = b.client.post(f"/api/sessions/{session['id']}/{path}", json=body)
        assert wrong.status_code == 409 and wrong.json()["error"]["details"] == {"owner": "host-a"}, (path, wrong.text)
    done = a.client.post(f"/api/sessions/{session['id']}/tool-results", json=results, timeout=30)
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text

    # host a lets the session's lease go just after the turn's reply (a queued turn would start first): the delete
    # goes through from then on
    assert eventually(lambda: b.client.delete(f"/api/sessions/{session['id']}").status_code == 200, timeout=10)
    assert a.client.get(f"/api/sessions/{session['id']}").status_code == 404
