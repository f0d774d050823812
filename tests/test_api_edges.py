"""Bad and surprising input on the native API: a client's mistake is a clear 400 that changes nothing, and what a
client means the same way is read the same way (a list query parameter repeated, a body respelled on a retry)."""

from __future__ import annotations

import gzip
import hashlib
from typing import Any

import pytest

from ccapi.client import Client
from ccapi.sessions.idempotency import Idempotency
from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway, sse_events
from tests.test_tools import WEATHER


def _error(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["type"] == "invalid_request", body
    return body["error"]


def _snapshot(gw: Gateway) -> Any:
    sessions = gw.client.get("/api/sessions", params={"limit": 100}).json()["data"]
    return sessions, {s["id"]: gw.events(s["id"]) for s in sessions}


@pytest.fixture(scope="module")
def seeded(gateway: Gateway) -> tuple[Gateway, str]:
    """One session with one turn behind it, which the tests only read or are refused on."""
    session = gateway.create_session()
    gateway.turn(session["id"], "seed")
    return gateway, session["id"]


def test_a_native_session_may_not_take_the_compat_mark(seeded: tuple[Gateway, str]) -> None:
    """``metadata.compat`` marks the compat endpoints' sessions, which are deleted once unused for
    ``CC_API_COMPAT_RETENTION`` (30 days): a native session created with that key was deleted with them, silently,
    where a native session is kept. Now the key is refused, and nothing is created."""
    gw, _ = seeded
    before = _snapshot(gw)
    error = _error(gw.client.post("/api/sessions", json={"metadata": {"compat": "v2", "app": "notes"}}))
    assert "metadata.compat is reserved" in error["message"] and error["details"] == {"reserved": ["compat"]}
    assert _snapshot(gw) == before
    kept = gw.client.post("/api/sessions", json={"metadata": {"compatibility": "v2"}})
    assert kept.status_code == 201 and kept.json()["metadata"] == {"compatibility": "v2"}
    gw.client.delete(f"/api/sessions/{kept.json()['id']}")


def test_a_repeated_types_parameter_filters_on_every_value(seeded: tuple[Gateway, str]) -> None:
    """``types=a&types=b`` (how many HTTP clients write a list) read only ``a``: the events of ``b`` were missing
    from the page, and a typo in ``b`` went unnoticed."""
    gw, session_id = seeded
    path = f"/api/sessions/{session_id}/events"
    joined = gw.client.get(path, params={"types": "turn.started,turn.completed"}).json()["data"]
    repeated = gw.client.get(path, params=[("types", "turn.started"), ("types", "turn.completed")]).json()["data"]
    assert [e["type"] for e in joined] == ["turn.started", "turn.completed"]
    assert repeated == joined
    for url in (path, f"{path}/stream"):
        error = _error(gw.client.get(url, params=[("types", "turn.completed"), ("types", "turn.complete")]))
        assert error["message"] == "types names no event type: turn.complete"


def test_an_empty_last_event_id_is_no_last_event_id(seeded: tuple[Gateway, str]) -> None:
    """In the SSE standard an empty last event id means the client has none (a browser then leaves the header out;
    other clients send it empty): the stream starts from ``after``, as without the header, not a 400."""
    gw, session_id = seeded
    last = gw.client.get(f"/api/sessions/{session_id}").json()["last_event_seq"]
    path = f"/api/sessions/{session_id}/events/stream"
    with gw.client.stream("GET", path, params={"after": last - 1}, headers={"Last-Event-ID": ""}) as response:
        assert response.status_code == 200, response.read()
        first = next(frame for frame in sse_events(response.iter_lines()) if "event" in frame)
    assert int(first["id"]) == last
    _error(gw.client.get(path, headers={"Last-Event-ID": "garbage"}))


def test_an_empty_fork_turn_id_is_400_like_interrupts(seeded: tuple[Gateway, str]) -> None:
    """``"turn_id": ""`` is a malformed body (as on ``/interrupt``), not a turn the session lacks."""
    gw, session_id = seeded
    before = _snapshot(gw)
    for route in ("fork", "interrupt"):
        error = _error(gw.client.post(f"/api/sessions/{session_id}/{route}", json={"turn_id": ""}))
        assert error["message"] == "turn_id must be a non-empty string"
    assert _snapshot(gw) == before


def test_a_retry_that_respells_the_same_body_is_the_same_request(gateway: Gateway, mock_model: MockModel) -> None:
    """The key's fingerprint is the body's content, not its bytes (as Stripe compares a retry's parameters): a retry
    whose JSON has other spacing or key order got a 400 "different request body". A different body still does."""
    session_id = gateway.create_session()["id"]
    url = f"/api/sessions/{session_id}/turns"
    headers = {"content-type": "application/json", "Idempotency-Key": "respelled-1"}
    first = gateway.client.post(url, content=b'{"input":"once","queue":false}', headers=headers)
    assert first.status_code == 200, first.text
    model_calls = len(mock_model.message_requests(include_side=False))
    retry = gateway.client.post(url, content=b'{ "queue": false,\n  "input": "once" }', headers=headers)
    assert retry.status_code == 200, retry.text
    assert retry.json()["turn_id"] == first.json()["turn_id"]
    assert len(mock_model.message_requests(include_side=False)) == model_calls
    assert gateway.client.get(f"/api/sessions/{session_id}").json()["turn_count"] == 1
    error = _error(gateway.client.post(url, content=b'{"input":"twice","queue":false}', headers=headers))
    assert "different request body" in error["message"]


def test_a_key_recorded_with_the_bodys_bytes_still_matches_its_retry() -> None:
    """Keys recorded before the fingerprint was of the content (the hash of the body's bytes) still match a retry of
    the same bytes after an upgrade, and only that."""
    raw = b'{"input": "once"}'
    key = Idempotency.of("k", {"input": "once"}, raw)
    assert key.matches(hashlib.sha256(raw).hexdigest())
    assert key.matches(Idempotency.of("k", {"input": "once"}, b'{"input":"once"}').fingerprint)
    assert not key.matches(hashlib.sha256(b'{"input": "twice"}').hexdigest())


def test_background_wins_over_an_accept_header_that_lists_event_streams(gateway: Gateway) -> None:
    """A body that asks for ``background`` and says nothing of ``stream`` gets its 202, even from a client that
    sends ``Accept: text/event-stream`` on every request: that was a 400 "choose one of stream and background".
    A body that asks for both is still refused."""
    session_id = gateway.create_session()["id"]
    url = f"/api/sessions/{session_id}/turns"
    sse = {"Accept": "text/event-stream"}
    error = _error(gateway.client.post(url, json={"input": "x", "stream": True, "background": True}, headers=sse))
    assert error["message"] == "choose one of stream and background"
    accepted = gateway.client.post(url, json={"input": "in the background", "background": True}, headers=sse)
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["content-type"].startswith("application/json")
    turn_id = accepted.json()["turn_id"]
    with gateway.client.stream("GET", f"/api/sessions/{session_id}/events/stream") as response:
        for frame in sse_events(response.iter_lines()):
            if frame.get("event") == "turn.completed" and frame["data"]["turn_id"] == turn_id:
                break


def test_a_compressed_body_is_415_naming_its_content_encoding(seeded: tuple[Gateway, str]) -> None:
    """A gzipped JSON body was a 400 saying the body "is not valid JSON: str is not valid UTF-8": now a 415 that says
    what to change (RFC 7694: with ``Accept-Encoding``), and nothing is created."""
    gw, _ = seeded
    before = _snapshot(gw)
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    response = gw.client.post("/api/sessions", content=gzip.compress(b'{"metadata": {"a": 1}}'), headers=headers)
    error = _error(response, 415)
    assert error["message"] == "Content-Encoding 'gzip' is not supported: send the request body uncompressed"
    assert response.headers["accept-encoding"] == "identity"
    assert _snapshot(gw) == before
    plain = gw.client.post("/api/sessions", json={}, headers={"content-encoding": "identity"})
    assert plain.status_code == 201, plain.text
    gw.client.delete(f"/api/sessions/{plain.json()['id']}")


def test_the_sessions_waiting_for_someone_are_listed_by_status(gateway: Gateway, mock_model: MockModel) -> None:
    """``status=`` lists only the sessions in those statuses, however many others are newer: a console or a
    supervisor finds the one waiting for a tool result among hundreds without paging through them all."""
    waiting = gateway.create_session(tools=[WEATHER])
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)))
    assert gateway.turn(waiting["id"], "weather?")["status"] == "requires_action"
    newer = [gateway.create_session()["id"] for _ in range(3)]
    listed = gateway.client.get("/api/sessions", params={"status": "requires_approval,requires_action"}).json()
    assert [s["id"] for s in listed["data"]] == [waiting["id"]] and not listed["has_more"]
    idle = gateway.client.get("/api/sessions", params=[("status", "idle"), ("limit", 2)]).json()
    assert [s["id"] for s in idle["data"]] == newer[::-1][:2] and idle["has_more"]
    with Client(gateway.base_url) as cc:
        found, after = cc.list_sessions(status=["requires_action"])
    assert [s.id for s in found] == [waiting["id"]] and after is None
    error = _error(gateway.client.get("/api/sessions", params={"status": "waiting"}))
    assert error["message"] == "status names no session status: waiting"
    assert error["details"]["known"] == sorted(["idle", "running", "requires_action", "requires_approval"])
