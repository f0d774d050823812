"""Every error answers the SPEC envelope with the right status, and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ccapi.testing import MockModel, Reply
from tests.gateway import Gateway


def _assert_error(response: Any, status: int, type_: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["type"] == type_
    assert body["error"]["message"] and "Traceback" not in response.text
    return body["error"]


def _snapshot(gw: Gateway) -> Any:
    sessions = gw.client.get("/api/sessions", params={"limit": 100}).json()["data"]
    return sessions, {s["id"]: gw.events(s["id"]) for s in sessions}


@pytest.fixture(scope="module")
def seeded(gateway: Gateway) -> tuple[Gateway, str]:
    """One session with one turn behind it, for the module: a refused request changes nothing, so every test can
    use the same one (a session per test cost ~30 Claude Code starts)."""
    session = gateway.create_session()
    gateway.turn(session["id"], "seed")
    return gateway, session["id"]


NOT_FOUND = [
    ("GET", "/api/sessions/sess_missing"),
    ("DELETE", "/api/sessions/sess_missing"),
    ("POST", "/api/sessions/sess_missing/turns"),
    ("GET", "/api/sessions/sess_missing/events"),
    ("GET", "/api/sessions/sess_missing/events/stream"),
    ("GET", "/api/sessions/../../etc/passwd"),
    ("GET", "/api/no-such-route"),
]


@pytest.mark.parametrize(("method", "path"), NOT_FOUND)
def test_unknown_things_are_404(seeded: tuple[Gateway, str], method: str, path: str) -> None:
    gw, _ = seeded
    before = _snapshot(gw)
    _assert_error(gw.client.request(method, path, json={"input": "x"}), 404, "not_found")
    assert _snapshot(gw) == before


def test_unknown_turn_is_404(seeded: tuple[Gateway, str]) -> None:
    gw, session_id = seeded
    _assert_error(gw.client.get(f"/api/sessions/{session_id}/turns/turn_nope"), 404, "not_found")


BAD_REQUESTS = [
    ("/api/sessions", b"{not json", "not valid JSON"),
    ("/api/sessions", b"\xff\xfe\x00garbage", "not valid JSON"),
    ("/api/sessions", b"[1, 2]", "JSON object"),
    ("/api/sessions", b"null", "JSON object"),  # not an empty body: that makes a default session
    ("/api/sessions", b'{"model": "gpt-4o"}', "unknown model"),
    ("/api/sessions", b'{"colour": "blue"}', "unknown field"),
    ("/api/sessions", b'{"tools": [{"name": "bad name!", "input_schema": {"type": "object"}}]}', "tools[0].name"),
    ("/api/sessions", b'{"tools": [{"name": "t"}]}', "input_schema"),
    ("/api/sessions", b'{"max_turns": 0}', "max_turns"),
    ("/api/sessions", b'{"cwd": "relative/dir"}', "cwd"),
    ("/api/sessions", b'{"permission_mode": "yolo"}', "permission_mode"),
    ("TURNS", b"{not json", "not valid JSON"),
    ("TURNS", b"{}", "input is required"),
    ("TURNS", b'{"input": ""}', "must not be empty"),
    ("TURNS", b'{"input": []}', "non-empty"),
    ("TURNS", b'{"input": [{"type": "video"}]}', "input[0].type"),
    (
        "TURNS",
        b'{"input": [{"type": "document", "title": 5,'
        b' "source": {"type": "base64", "media_type": "application/pdf", "data": "QUJD"}}]}',
        "input[0].title",
    ),
    ("TURNS", b'{"input": "x", "stream": "yes"}', "booleans"),
    ("TURNS", b'{"input": "x", "stream": true, "background": true}', "choose one"),
]


@pytest.mark.parametrize(("path", "body", "needle"), BAD_REQUESTS)
def test_bad_bodies_are_400_and_change_nothing(
    seeded: tuple[Gateway, str], mock_model: MockModel, path: str, body: bytes, needle: str
) -> None:
    gw, session_id = seeded
    before = _snapshot(gw)
    requests_before = len(mock_model.requests)
    url = f"/api/sessions/{session_id}/turns" if path == "TURNS" else path
    error = _assert_error(
        gw.client.post(url, content=body, headers={"content-type": "application/json"}), 400, "invalid_request"
    )
    assert needle in error["message"]
    assert _snapshot(gw) == before
    assert len(mock_model.requests) == requests_before, "a rejected request must never reach the model"


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=abc",
        "after=-1",
        "limit=100000",
        # what Python's int() reads but nobody writes: each was taken for another number
        "after=1_0",
        "limit=%2B2",
        "after=%201%20",
        "after=%D9%A1",  # an Arabic-Indic 1
        "limit=%EF%BC%93",  # a fullwidth 3
    ],
)
def test_bad_query_parameters_are_400(seeded: tuple[Gateway, str], query: str) -> None:
    gw, session_id = seeded
    _assert_error(gw.client.get(f"/api/sessions/{session_id}/events?{query}"), 400, "invalid_request")
    _assert_error(gw.client.get(f"/api/sessions?{query.replace('after', 'limit')}"), 400, "invalid_request")


@pytest.mark.parametrize("types", ["junk", "turn.completed,turn.complete", "%00", "a%00b"])
def test_an_events_filter_naming_no_event_type_is_400(seeded: tuple[Gateway, str], types: str) -> None:
    """A typo in ``types`` is not "no such events yet"; a NUL in it was a 500 on PostgreSQL."""
    gw, session_id = seeded
    error = _assert_error(gw.client.get(f"/api/sessions/{session_id}/events?types={types}"), 400, "invalid_request")
    assert "turn.completed" in error["details"]["known"]
    page = gw.client.get(f"/api/sessions/{session_id}/events?types=turn.started,turn.completed").json()
    assert [e["type"] for e in page["data"]] == ["turn.started", "turn.completed"]


@pytest.mark.parametrize("last_event_id", ["abc", "1_0", "+1", "1.5"])
def test_bad_last_event_id_is_400(seeded: tuple[Gateway, str], last_event_id: str) -> None:
    gw, session_id = seeded
    response = gw.client.get(f"/api/sessions/{session_id}/events/stream", headers={"Last-Event-ID": last_event_id})
    _assert_error(response, 400, "invalid_request")


def test_a_position_past_the_logs_last_event_is_400_not_a_silent_skip(seeded: tuple[Gateway, str]) -> None:
    """A ``Last-Event-ID`` (or ``after``) this log never sent (another gateway's database, one restored from a
    backup): the stream waited for that seq and skipped every event before it, silently; a poll returned nothing
    from there on. The log's own last seq is fine, and says there is nothing new."""
    gw, session_id = seeded
    last = gw.client.get(f"/api/sessions/{session_id}").json()["last_event_seq"]
    path = f"/api/sessions/{session_id}/events"
    for response in (
        gw.client.get(f"{path}/stream", headers={"Last-Event-ID": str(last + 40)}),
        gw.client.get(f"{path}/stream", params={"after": last + 1}),
        gw.client.get(path, params={"after": last + 1}),
    ):
        error = _assert_error(response, 400, "invalid_request")
        assert error["details"] == {"last_event_seq": last} and "read it again from 0" in error["message"], error
    assert gw.client.get(path, params={"after": last}).json()["data"] == []


def test_wrong_method_is_405_envelope(gateway: Gateway) -> None:
    _assert_error(gateway.client.put("/api/sessions"), 405, "invalid_request")


def test_second_turn_while_one_runs_is_409(gateway: Gateway, mock_model: MockModel) -> None:
    mock_model.script(Reply(text="slow answer", first_byte_delay=1.5))
    session = gateway.create_session()
    first = gateway.client.post(f"/api/sessions/{session['id']}/turns", json={"input": "slow", "background": True})
    assert first.status_code == 202
    error = _assert_error(
        gateway.client.post(f"/api/sessions/{session['id']}/turns", json={"input": "eager"}), 409, "conflict"
    )
    assert error["details"]["turn_id"] == first.json()["turn_id"]
    # the rejected input never ran: one turn, and the model never saw "eager"
    with gateway.client.stream("GET", first.json()["events_url"]) as response:
        for line in response.iter_lines():
            if line == "event: turn.completed":
                break
    fetched = gateway.client.get(f"/api/sessions/{session['id']}").json()
    assert fetched["turn_count"] == 1
    assert all("eager" not in str(r.body) for r in mock_model.message_requests())


@pytest.fixture(scope="module")
def bare(mock_model: MockModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway without Claude credentials and with a 4 KiB body limit: the two tests below need one setting each
    and neither minds the other's (no turn of the 413 test runs; the other sends a few bytes a request)."""
    gw = Gateway(tmp_path_factory.mktemp("bare"), mock_model.url, ANTHROPIC_API_KEY=None, CC_API_MAX_BODY_BYTES="4096")
    yield gw.start()
    gw.stop()
    assert gw.lingering_processes() == [], "a Claude CLI process outlived the gateway"


def test_oversized_body_is_413(bare: Gateway) -> None:
    gw = bare
    before = _snapshot(gw)
    response = gw.client.post(
        "/api/sessions",
        content=b'{"metadata": {"x": "' + b"a" * 8000 + b'"}}',
        headers={"content-type": "application/json"},
    )
    _assert_error(response, 413, "payload_too_large")
    assert _snapshot(gw) == before


def test_missing_credentials_are_reported_plainly(bare: Gateway) -> None:
    gw = bare
    health = gw.client.get("/healthz").json()
    assert health["claude_credentials"]["found"] is False
    assert "ANTHROPIC_API_KEY" in health["claude_credentials"]["message"]
    assert "no_claude_credentials" in gw.log_path.read_text()
    session = gw.create_session()
    reply = gw.turn(session["id"], "hello?")
    assert reply["status"] == "failed"
    assert reply["error"]["type"] == "upstream_error"
    assert "ANTHROPIC_API_KEY" in reply["error"]["message"] and "claude login" in reply["error"]["message"]
