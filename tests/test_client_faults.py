"""Client faults: clients that vanish mid-stream, trickle their bytes, or send hostile JSON.

A misbehaving client must never cost another client anything: the turn it started runs to its
end, its bad request changes nothing, and the gateway stays healthy for everyone else.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway, sse_events
from tests.test_errors import _assert_error, _snapshot

SLOW_TEXT = " ".join(f"word{n}" for n in range(90))  # 30 deltas of 3 words
API_KEY = "faults-test-key-123"


def _log_problems(gw: Gateway) -> list[str]:
    """Error-level lines and asyncio's own leak warnings in the gateway's output."""
    return [
        line
        for line in gw.log_text().splitlines()
        if '"level":"error"' in line or "Task was destroyed" in line or "never retrieved" in line
    ]


def _wait_idle(gw: Gateway, session_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session = gw.client.get(f"/api/sessions/{session_id}").json()
        if session["status"] == "idle":
            return session
        time.sleep(0.1)
    raise AssertionError(f"session {session_id} still {session['status']} after {timeout} s")


def _assert_turn_ran_to_completion(gw: Gateway, session_id: str, turn_id: str, text: str) -> None:
    """The turn finished, its reply is whole, and its events are complete and gap-free."""
    _wait_idle(gw, session_id)
    turn = gw.client.get(f"/api/sessions/{session_id}/turns/{turn_id}").json()
    assert turn["status"] == "completed", turn
    assert turn["output"][-1]["text"] == text
    events = gw.events(session_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    own = [e for e in events if e.get("turn_id") == turn_id]
    assert own[0]["type"] == "turn.started" and own[-1]["type"] == "turn.completed"
    assert "".join(e["data"]["text"] for e in own if e["type"] == "message.delta") == text


def _assert_streams_still_work(gw: Gateway, session_id: str) -> None:
    """A fresh streamed turn on the same session runs start to finish."""
    _wait_idle(gw, session_id)
    with gw.client.stream(
        "POST", f"/api/sessions/{session_id}/turns", json={"input": "again", "stream": True}
    ) as response:
        assert response.status_code == 200
        frames = [f["data"] for f in sse_events(response.iter_lines()) if "event" in f]
    assert frames[0]["type"] == "turn.started" and frames[-1]["type"] == "turn.completed"
    assert "".join(f["data"]["text"] for f in frames if f["type"] == "message.delta") == "mock reply: again"
    assert gw.client.get("/healthz").json()["status"] == "ok"


def _read_until_deltas(response: httpx.Response, count: int) -> str:
    """Read SSE frames until ``count`` text deltas arrived; returns the turn id."""
    turn_id, deltas = "", 0
    for frame in sse_events(response.iter_lines()):
        if frame.get("event") == "turn.started":
            turn_id = frame["data"]["turn_id"]
        deltas += frame.get("event") == "message.delta"
        if deltas == count:
            return turn_id
    raise AssertionError("the stream ended before the client meant to leave")


# -- clients that go away mid-stream ---------------------------------------------------


def test_client_leaving_a_streamed_turn_does_not_stop_it(gateway: Gateway, mock_model: MockModel) -> None:
    session_id = gateway.create_session()["id"]
    mock_model.script(Reply(text=SLOW_TEXT, chunk_delay=0.03))
    with (
        httpx.Client(base_url=gateway.base_url, timeout=30) as client,
        client.stream(
            "POST", f"/api/sessions/{session_id}/turns", json={"input": "talk slowly", "stream": True}
        ) as response,
    ):
        turn_id = _read_until_deltas(response, 3)
    # the socket is closed now, with most of the turn still to come
    assert gateway.client.get(f"/api/sessions/{session_id}").json()["running_turn_id"] == turn_id

    _assert_turn_ran_to_completion(gateway, session_id, turn_id, SLOW_TEXT)
    _assert_streams_still_work(gateway, session_id)
    assert _log_problems(gateway) == []


def test_client_leaving_the_event_stream_does_not_stop_the_turn(gateway: Gateway, mock_model: MockModel) -> None:
    session_id = gateway.create_session()["id"]
    mock_model.script(Reply(text=SLOW_TEXT, chunk_delay=0.03))
    with (
        httpx.Client(base_url=gateway.base_url, timeout=30) as client,
        client.stream("GET", f"/api/sessions/{session_id}/events/stream") as response,
    ):
        started = gateway.client.post(
            f"/api/sessions/{session_id}/turns", json={"input": "in the background", "background": True}
        )
        assert started.status_code == 202
        assert _read_until_deltas(response, 3) == started.json()["turn_id"]

    _assert_turn_ran_to_completion(gateway, session_id, started.json()["turn_id"], SLOW_TEXT)
    # a new follower gets the whole log, then the next turn live
    with gateway.client.stream("GET", f"/api/sessions/{session_id}/events/stream") as response:
        gateway.client.post(f"/api/sessions/{session_id}/turns", json={"input": "next", "background": True})
        types = []
        for frame in sse_events(response.iter_lines()):
            if "event" in frame:  # not the keep-alive comment a stream opens with
                types.append(frame["event"])
            if types.count("turn.completed") == 2:
                break
    assert types[0] == "session.created"
    _assert_streams_still_work(gateway, session_id)
    assert _log_problems(gateway) == []


def test_client_giving_up_on_a_json_reply_is_not_a_server_error(gateway: Gateway, mock_model: MockModel) -> None:
    """Clients time out; the log must not cry "500" with a traceback each time one does."""
    session_id = gateway.create_session()["id"]
    mock_model.script(Reply(text="worth the wait", first_byte_delay=1.5))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gateway.base_url}/api/sessions/{session_id}/turns", json={"input": "hurry"}, timeout=0.5)
    _wait_idle(gateway, session_id)
    last = gateway.events(session_id)[-1]
    assert last["type"] == "turn.completed"
    turn = gateway.client.get(f"/api/sessions/{session_id}/turns/{last['turn_id']}").json()
    assert turn["status"] == "completed" and turn["output"][-1]["text"] == "worth the wait"
    requests = [
        orjson.loads(line)
        for line in gateway.log_text().splitlines()
        if '"event":"request"' in line and f"/{session_id}/turns" in line
    ]
    assert [r["status"] for r in requests if r["method"] == "POST"] == [499]
    assert _log_problems(gateway) == []


# -- slow clients ----------------------------------------------------------------------


def _raw_exchange(port: int, head: bytes, body: bytes, step: int, delay: float, give_up: float) -> tuple[float, bytes]:
    """Send ``head``, then ``body`` ``step`` bytes every ``delay`` s, reading whatever the server
    answers meanwhile; returns when the server closes the connection (or after ``give_up`` s)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        started = time.monotonic()
        sock.settimeout(delay)
        offset = 0
        while time.monotonic() - started < give_up:
            if offset < len(body):
                try:
                    sock.sendall(body[offset : offset + step])
                except OSError:
                    pass  # the server already closed its side; read what it answered
                offset += step
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            received += chunk
        return time.monotonic() - started, received


def _parse_response(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, orjson.loads(body)


def _post_head(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {API_KEY}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


@pytest.fixture(scope="module")
def keyed(mock_model: MockModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A keyed gateway with a 2 s request deadline, for the tests of cut-off requests."""
    gw = Gateway(tmp_path_factory.mktemp("keyed"), mock_model.url, CC_API_REQUEST_TIMEOUT="2", CC_API_KEY=API_KEY)
    gw.client.headers["Authorization"] = f"Bearer {API_KEY}"
    yield gw.start()
    gw.stop()
    assert gw.lingering_processes() == [], "a Claude CLI process outlived the gateway"


def test_a_trickled_body_is_cut_off_with_a_408_envelope(keyed: Gateway) -> None:
    gw = keyed
    before = _snapshot(gw)
    body = orjson.dumps({"metadata": {"note": "x" * 200}})  # 16 bytes/s: would take ~14 s

    elapsed, raw = _raw_exchange(gw.port, _post_head("/api/sessions", len(body)), body, 4, 0.25, give_up=10)
    status, headers, error = _parse_response(raw)
    assert status == 408 and headers["content-type"].startswith("application/json")
    assert headers["connection"] == "close"
    assert error["error"]["type"] == "invalid_request" and "2 s" in error["error"]["message"]
    assert 1.9 < elapsed < 5, f"answered after {elapsed:.1f} s"
    assert _snapshot(gw) == before
    assert gw.client.get("/healthz").json()["status"] == "ok"

    # a slow but punctual body is still served
    elapsed, raw = _raw_exchange(
        gw.port, _post_head("/api/sessions", len(body)), body, len(body) // 2 + 1, 0.5, give_up=1.5
    )
    assert _parse_response(raw)[0] == 201


def test_a_stalled_request_head_is_a_408_not_a_401(keyed: Gateway) -> None:
    """The head never finished, so the key was never seen: "wrong key" would mislead the client."""
    gw = keyed
    head = _post_head("/api/sessions", 10)
    elapsed, raw = _raw_exchange(gw.port, head[:40], b"", 1, 0.25, give_up=10)
    status, _, error = _parse_response(raw)
    assert status == 408, raw
    assert error["error"]["type"] == "invalid_request"
    assert elapsed < 5
    assert gw.client.get("/healthz").json()["status"] == "ok"


# -- hostile bodies --------------------------------------------------------------------

DEEP_LISTS = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECTS = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
HOSTILE = [
    pytest.param("/api/sessions", b'{"metadata": {"note": "caf\xc3\x28"}}', "UTF-8", id="utf8-session"),
    pytest.param("TURNS", b'{"input": "\xff\xfe hello"}', "UTF-8", id="utf8-turn"),
    pytest.param("TURNS", b'{"input": "\xed\xa0\x80"}', "UTF-8", id="utf8-surrogate-turn"),
    pytest.param(
        "TOOL_RESULTS",
        b'{"results": [{"tool_call_id": "x", "content": "\xc0\xaf"}]}',
        "UTF-8",
        id="utf8-overlong-tool-results",
    ),
    pytest.param("TURNS", b'{"input": ' + DEEP_LISTS + b"}", "depth", id="100k-lists-turn"),
    pytest.param("/api/sessions", b'{"metadata": ' + DEEP_OBJECTS + b"}", "depth", id="100k-objects-session"),
    pytest.param("TOOL_RESULTS", b'{"results": ' + DEEP_LISTS + b"}", "depth", id="100k-lists-tool-results"),
]


def _url(path: str, session_id: str) -> str:
    return {
        "TURNS": f"/api/sessions/{session_id}/turns",
        "TOOL_RESULTS": f"/api/sessions/{session_id}/tool-results",
    }.get(path, path)


@pytest.mark.parametrize(("path", "body", "needle"), HOSTILE)
def test_invalid_utf8_and_deep_nesting_are_400_and_change_nothing(
    gateway: Gateway, mock_model: MockModel, path: str, body: bytes, needle: str
) -> None:
    session_id = gateway.create_session()["id"]
    before, requests_before = _snapshot(gateway), len(mock_model.requests)
    response = gateway.client.post(_url(path, session_id), content=body, headers={"content-type": "application/json"})
    assert needle in _assert_error(response, 400, "invalid_request")["message"]
    assert _snapshot(gateway) == before
    assert len(mock_model.requests) == requests_before
    assert gateway.client.get("/healthz").json()["status"] == "ok"


def test_undecodable_idempotency_key_is_400_and_runs_nothing(gateway: Gateway, mock_model: MockModel) -> None:
    session_id = gateway.create_session()["id"]
    before, requests_before = _snapshot(gateway), len(mock_model.requests)
    for path in ("TURNS", "TOOL_RESULTS"):
        body = {"input": "hi"} if path == "TURNS" else {"results": [{"tool_call_id": "x", "content": "y"}]}
        response = gateway.client.post(_url(path, session_id), json=body, headers={"Idempotency-Key": b"key-\xff\xfe"})
        assert "Idempotency-Key" in _assert_error(response, 400, "invalid_request")["message"]
    assert _snapshot(gateway) == before
    assert len(mock_model.requests) == requests_before
    assert gateway.client.get("/healthz").json()["status"] == "ok"


WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def test_a_thousand_tool_results_are_400_and_the_paused_turn_still_waits(
    gateway: Gateway, mock_model: MockModel
) -> None:
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)), Reply(text="Oslo is cold."))
    session_id = gateway.create_session(tools=[WEATHER])["id"]
    paused = gateway.turn(session_id, "weather in Oslo?")
    assert paused["status"] == "requires_action"
    call_id = paused["tool_calls"][0]["tool_call_id"]
    before = _snapshot(gateway)

    flood = [{"tool_call_id": f"{call_id}-{n}", "content": "spam"} for n in range(999)]
    flood.append({"tool_call_id": call_id, "content": "Oslo is -3C."})
    response = gateway.client.post(f"/api/sessions/{session_id}/tool-results", json={"results": flood})
    assert _assert_error(response, 400, "invalid_request")["details"] == {"got": 1000}
    assert _snapshot(gateway) == before
    assert gateway.client.get(f"/api/sessions/{session_id}").json()["status"] == "requires_action"
    assert gateway.client.get("/healthz").json()["status"] == "ok"

    # nothing of the flood was applied: the real answer still continues the turn
    done = gateway.client.post(
        f"/api/sessions/{session_id}/tool-results",
        json={"results": [{"tool_call_id": call_id, "content": "Oslo is -3C."}]},
    )
    assert done.status_code == 200 and done.json()["status"] == "completed"
    assert done.json()["output"][-1]["text"] == "Oslo is cold."
