"""A store that refuses writes (a full disk, a lost database): replies waiting on the refused events answer 503
within ``CC_API_STORE_WRITE_TIMEOUT`` instead of hanging, new turns are refused, and nothing is lost: once the store
takes writes again, the held events go in, gap-free, and the turn settles."""

from __future__ import annotations

import sqlite3
import time

import pytest

from ccapi.testing import MockModel
from tests.gateway import Gateway

ANTHROPIC = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
REFUSE = "CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END"


def _turn(gw: Gateway, session_id: str, text: str):  # type: ignore[no-untyped-def]
    return gw.client.post(f"/api/sessions/{session_id}/turns", json={"input": text})


@pytest.mark.slow  # a gateway of its own, a write timeout waited out
def test_a_store_refusing_writes_answers_503_not_a_hang_and_loses_nothing(make_gateway, mock_model: MockModel) -> None:
    gw = make_gateway(CC_API_STORE_WRITE_TIMEOUT="1")
    session_id = gw.client.post("/api/sessions", json={}).json()["id"]
    assert _turn(gw, session_id, "first").json()["status"] == "completed"

    database = sqlite3.connect(gw.home / "cc-api" / "sessions.db")  # the gateway's own, as a disk could fail it
    database.execute(REFUSE)
    database.commit()
    began = time.monotonic()
    held_input = f"second, held: {session_id}"
    refused = _turn(gw, session_id, held_input)
    assert refused.status_code == 503, refused.text
    error = refused.json()["error"]
    assert error["type"] == "unavailable"
    assert "refused writes" in error["message"] and "disk full (test)" in error["message"], error
    assert error["details"]["session_id"] == session_id
    turn_id = error["details"]["turn_id"]
    assert time.monotonic() - began < 20, "answered within the write timeout (and a retry or two), not hung"
    assert any(held_input in str(request.body) for request in mock_model.message_requests()), "the turn itself ran"

    assert _turn(gw, session_id, "third").status_code == 409, "the held turn still runs"
    for refused in (gw.client.post("/api/sessions", json={}), gw.client.post("/v1/messages", json=ANTHROPIC)):
        assert refused.status_code == 503 and "refused writes" in refused.text, refused.text  # nothing new starts
    assert len(gw.client.get("/api/sessions").json()["data"]) == 1
    health = gw.client.get("/healthz")
    assert health.status_code == 503 and health.json()["database"] == "refusing_writes", health.text

    database.execute("DROP TRIGGER refuse")
    database.commit()
    database.close()
    deadline = time.monotonic() + 30
    while (turn := gw.client.get(f"/api/sessions/{session_id}/turns/{turn_id}").json())["status"] != "completed":
        assert time.monotonic() < deadline, turn
        time.sleep(0.2)
    events = gw.client.get(f"/api/sessions/{session_id}/events").json()["data"]
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1)), "gap-free"
    held = [event["type"] for event in events if event.get("turn_id") == turn_id]
    assert held[0] == "turn.started" and held[-1] == "turn.completed", held
    assert held_input in str(turn["output"]), turn  # the mock echoes the input

    assert gw.client.get("/healthz").json()["database"] == "ok"
    after = _turn(gw, session_id, "fourth")
    assert after.json()["status"] == "completed", after.text
    latest = mock_model.message_requests(include_side=False)[-1]
    assert held_input in str(latest.body["messages"]), "the held turn is part of the conversation"
