"""A session recorded with a built-in tool the gateway has since withdrawn (``SendMessage``, ``ListAgents``: valid
names in ``builtin_tools`` until they were found to reach other sessions) goes on without it, on the real stack."""

from __future__ import annotations

import sqlite3

import orjson

from ccapi.testing import MockModel
from tests.gateway import Gateway


def _declared(mock_model: MockModel) -> list[list[str]]:
    return [
        sorted(tool["name"] for tool in request.body.get("tools") or [])
        for request in mock_model.message_requests(include_side=False)
    ]


def test_a_session_recorded_with_a_withdrawn_tool_still_takes_turns_and_forks(
    make_gateway: object, mock_model: MockModel
) -> None:
    """Its every turn was a 500 (the record's tool list was refused as unknown while the turn's engine was set up),
    and so was its fork. The withdrawn name is left out: the turn runs with the session's other tools, the fork
    takes the same ones, and the record still says what the client asked for."""
    gw: Gateway = make_gateway()  # type: ignore[operator]
    session = gw.create_session(builtin_tools=["Read"])["id"]
    assert gw.turn(session, "wd-before")["status"] == "completed"
    gw.stop()
    with sqlite3.connect(gw.home / "cc-api" / "sessions.db") as db:  # as a gateway of last week recorded it
        recorded = orjson.dumps(["Read", "SendMessage", "ListAgents"]).decode()
        db.execute("UPDATE sessions SET builtin_tools = ? WHERE id = ?", (recorded, session))
    gw.start()

    mock_model.clear()
    reply = gw.client.post(f"/api/sessions/{session}/turns", json={"input": "wd-after"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "completed"
    assert _declared(mock_model) == [["Read"]]
    forked = gw.client.post(f"/api/sessions/{session}/fork", json={})
    assert forked.status_code == 201, forked.text
    mock_model.clear()
    assert gw.turn(forked.json()["id"], "wd-in the fork")["status"] == "completed"
    assert _declared(mock_model) == [["Read"]]
    assert gw.client.get(f"/api/sessions/{session}").json()["builtin_tools"] == ["Read", "SendMessage", "ListAgents"]
