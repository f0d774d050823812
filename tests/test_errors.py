"""Every error answers the SPEC envelope with the right status, and changes nothing; and what a client means the
same way is read the same way (a list query parameter repeated, a body respelled on a retry, a status filter)."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from ccapi.client import Client
from ccapi.sessions.idempotency import Idempotency
from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway, sse_events
from tests.test_tools import WEATHER


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


def _invalid(response: Any, status: int = 400) -> dict[str, Any]:
    return _assert_error(response, status, "invalid_request")


def test_a_native_session_may_not_take_the_compat_mark(seeded: tuple[Gateway, str]) -> None:
    """``metadata.compat`` marks the compat endpoints' sessions, which are deleted once unused for
    ``CC_API_COMPAT_RETENTION`` (30 days): a native session created with that key was deleted with them, silently,
    where a native session is kept. Now the key is refused, and nothing is created."""
    gw, _ = seeded
    before = _snapshot(gw)
    error = _invalid(gw.client.post("/api/sessions", json={"metadata": {"compat": "v2", "app": "notes"}}))
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
        error = _invalid(gw.client.get(url, params=[("types", "turn.completed"), ("types", "turn.complete")]))
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
    _invalid(gw.client.get(path, headers={"Last-Event-ID": "garbage"}))


def test_an_empty_fork_turn_id_is_400_like_interrupts(seeded: tuple[Gateway, str]) -> None:
    """``"turn_id": ""`` is a malformed body (as on ``/interrupt``), not a turn the session lacks."""
    gw, session_id = seeded
    before = _snapshot(gw)
    for route in ("fork", "interrupt"):
        error = _invalid(gw.client.post(f"/api/sessions/{session_id}/{route}", json={"turn_id": ""}))
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
    error = _invalid(gateway.client.post(url, content=b'{"input":"twice","queue":false}', headers=headers))
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
    error = _invalid(gateway.client.post(url, json={"input": "x", "stream": True, "background": True}, headers=sse))
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
    error = _invalid(response, 415)
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
    error = _invalid(gateway.client.get("/api/sessions", params={"status": "waiting"}))
    assert error["message"] == "status names no session status: waiting"
    assert error["details"]["known"] == sorted(["idle", "running", "requires_action", "requires_approval"])


def test_metadata_past_its_bound_is_a_400_that_changes_nothing(seeded: tuple[Gateway, str]) -> None:
    """Every listing of sessions carries their metadata (the console polls it): a client that stored 10 MB in each
    session's made each page of the list a gigabyte. Metadata takes 16 KB at most, as JSON."""
    gw, _ = seeded
    before = _snapshot(gw)
    error = _invalid(gw.client.post("/api/sessions", json={"metadata": {"notes": "x" * (16 * 1024)}}))
    assert error["message"].startswith("metadata must take at most 16384 bytes as JSON")
    assert error["details"]["limit"] == 16384 and _snapshot(gw) == before
    kept = gw.client.post("/api/sessions", json={"metadata": {"notes": "x" * (15 * 1024)}})
    assert kept.status_code == 201
    gw.client.delete(f"/api/sessions/{kept.json()['id']}")
