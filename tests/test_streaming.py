"""SSE: streamed turns, reconnect with Last-Event-ID, background turns, keep-alives."""

from __future__ import annotations

import socket
import struct
import time

import httpx
import orjson
import pytest

from ccapi.testing import MockModel, Reply
from tests.gateway import Gateway, sse_events

LONG_TEXT = " ".join(f"word{n}" for n in range(60))


def test_stream_delivers_deltas_before_completion(gateway: Gateway, mock_model: MockModel) -> None:
    mock_model.script(Reply(text=LONG_TEXT, chunk_delay=0.01))
    session = gateway.create_session()
    with gateway.client.stream(
        "POST", f"/api/sessions/{session['id']}/turns", json={"input": "stream please", "stream": True}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = [f for f in sse_events(response.iter_lines()) if "event" in f]

    types = [f["event"] for f in frames]
    assert types[0] == "turn.started" and types[-1] == "turn.completed"
    deltas = [f for f in frames if f["event"] == "message.delta"]
    assert len(deltas) > 5
    assert types.index("message.delta") < types.index("turn.completed")
    assert "".join(f["data"]["data"]["text"] for f in deltas) == LONG_TEXT
    assert [int(f["id"]) for f in frames] == [f["data"]["seq"] for f in frames]
    # the stream and the durable log agree
    logged = [e for e in gateway.events(session["id"]) if e.get("turn_id") == frames[0]["data"]["turn_id"]]
    assert [e["seq"] for e in logged] == [f["data"]["seq"] for f in frames]


def test_turn_completed_on_the_stream_means_the_turn_is_recorded_and_the_next_can_start(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """A client that sends its next turn the moment it reads ``turn.completed`` is not answered 409, and the
    turn's record (and its session's usage) already say what the event says."""
    session = gateway.create_session()
    turns = f"/api/sessions/{session['id']}/turns"
    for n in range(3):
        with gateway.client.stream("POST", turns, json={"input": f"streamed {n}", "stream": True}) as response:
            frames = [f for f in sse_events(response.iter_lines()) if "event" in f]
        completed = frames[-1]["data"]
        assert completed["type"] == "turn.completed"
        following = gateway.client.post(turns, json={"input": f"right after {n}"})
        assert following.status_code == 200, following.text
        assert following.json()["status"] == "completed"
        turn = gateway.client.get(f"{turns}/{completed['turn_id']}").json()
        assert (turn["status"], turn["last_event_seq"]) == ("completed", completed["seq"])
    record = gateway.client.get(f"/api/sessions/{session['id']}").json()
    assert record["status"] == "idle" and record["turn_count"] == 6
    assert record["usage"]["output_tokens"] == sum(
        e["data"]["usage"]["output_tokens"] for e in gateway.events(session["id"]) if e["type"] == "turn.completed"
    )


def test_reconnect_with_last_event_id_gets_every_later_event_once(gateway: Gateway, mock_model: MockModel) -> None:
    mock_model.script(Reply(text=LONG_TEXT, chunk_delay=0.03))
    session = gateway.create_session()
    seen: list[dict] = []
    with gateway.client.stream(
        "POST", f"/api/sessions/{session['id']}/turns", json={"input": "stream then drop", "stream": True}
    ) as response:
        for frame in sse_events(response.iter_lines()):
            if "event" in frame:
                seen.append(frame["data"])
            if sum(e["type"] == "message.delta" for e in seen) == 3:
                break  # the client goes away mid-turn
    assert seen[-1]["type"] == "message.delta"
    last_id = seen[-1]["seq"]

    with gateway.client.stream(
        "GET", f"/api/sessions/{session['id']}/events/stream", headers={"Last-Event-ID": str(last_id)}
    ) as response:
        assert response.status_code == 200
        rest = []
        for frame in sse_events(response.iter_lines()):
            if "event" in frame:
                rest.append(frame["data"])
                if frame["event"] == "turn.completed":
                    break

    assert [e["seq"] for e in rest] == list(range(last_id + 1, last_id + 1 + len(rest)))
    whole = gateway.events(session["id"])
    assert seen + rest == [e for e in whole if e["seq"] > seen[0]["seq"] - 1]
    text = "".join(e["data"]["text"] for e in seen + rest if e["type"] == "message.delta")
    assert text == LONG_TEXT


def test_background_turn_answers_202_and_is_followed_on_the_stream(gateway: Gateway, mock_model: MockModel) -> None:
    mock_model.script(Reply(text="done in the background", first_byte_delay=0.5))
    session = gateway.create_session()
    started = gateway.client.post(f"/api/sessions/{session['id']}/turns", json={"input": "go", "background": True})
    assert started.status_code == 202
    body = started.json()
    assert body["status"] == "running" and body["turn_id"].startswith("turn_")
    assert gateway.client.get(f"/api/sessions/{session['id']}").json()["running_turn_id"] == body["turn_id"]
    # what the 202 points to is committed before it goes, while the turn still waits for the model
    logged = gateway.client.get(
        f"/api/sessions/{session['id']}/events", params={"after": body["first_event_seq"] - 1}
    ).json()["data"]
    assert [(e["seq"], e["type"]) for e in logged] == [(body["first_event_seq"], "turn.started")]

    with gateway.client.stream("GET", body["events_url"]) as response:
        frames = []
        for frame in sse_events(response.iter_lines()):
            if "event" in frame:
                frames.append(frame)
                if frame["event"] == "turn.completed":
                    break
    assert frames[0]["event"] == "turn.started" and frames[0]["data"]["turn_id"] == body["turn_id"]
    completed = gateway.client.get(f"/api/sessions/{session['id']}/turns/{body['turn_id']}").json()
    assert completed["status"] == "completed"
    assert completed["output"][-1]["text"] == "done in the background"


def test_accept_header_selects_sse(gateway: Gateway) -> None:
    session = gateway.create_session()
    response = gateway.client.post(
        f"/api/sessions/{session['id']}/turns", json={"input": "sse by header"}, headers={"Accept": "text/event-stream"}
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "event: turn.completed" in response.text


def test_idle_stream_sends_keepalive_comments(make_gateway) -> None:
    gw = make_gateway(CC_API_KEEPALIVE_SECONDS="0.2")
    session = gw.create_session()
    comments = []
    with httpx.stream(
        "GET", f"{gw.base_url}/api/sessions/{session['id']}/events/stream", params={"after": 1}, timeout=10
    ) as response:
        for frame in sse_events(response.iter_lines()):
            assert "event" not in frame, "nothing happened after seq 1, so only comments may arrive"
            comments.append(frame["comment"])
            if comments.count("keep-alive") == 2:
                break
    assert comments.count("keep-alive") == 2


def _dechunk(body: bytes) -> tuple[bytes, bool]:
    """The payload of a chunked HTTP body, and whether it ended with the terminating chunk."""
    payload = b""
    while b"\r\n" in body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return payload, True
        if len(rest) < size + 2:
            break
        payload, body = payload + rest[:size], rest[size + 2 :]
    return payload, False


@pytest.mark.slow
def test_a_subscriber_that_stops_reading_is_cut_off_and_resumes_losing_nothing(
    make_gateway, mock_model: MockModel
) -> None:
    gw = make_gateway(CC_API_SSE_BUFFER_EVENTS="8")
    session = gw.create_session()
    after = gw.events(session["id"])[-1]["seq"]
    path = f"/api/sessions/{session['id']}/events/stream?after={after}"
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connect: a tiny window
    stalled.settimeout(30)
    stalled.connect(("127.0.0.1", gw.port))
    stalled.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = b""
    while b"keep-alive" not in head:
        head += stalled.recv(4096)
    # 120 deltas of 75 kB: more than the socket buffers (loopback's grow to 4 MB) can absorb,
    # paced so that no commit batch alone outgrows the 8-event buffer of a subscriber that reads
    text = " ".join(f"w{n:04d}" + "x" * 25_000 for n in range(360))
    mock_model.script(Reply(text=text, chunk_delay=0.02))
    with gw.client.stream("GET", path) as live:
        started = gw.client.post(f"/api/sessions/{session['id']}/turns", json={"input": "a lot", "background": True})
        assert started.status_code == 202
        everything = []
        for frame in sse_events(live.iter_lines()):
            if "event" in frame:
                everything.append(frame["data"])
                if frame["event"] == "turn.completed":
                    break
    logged = gw.events(session["id"], after)
    while len(page := gw.events(session["id"], logged[-1]["seq"])):
        logged += page
    assert everything == logged  # the reading subscriber got every event, once and in order
    assert "".join(e["data"]["text"] for e in everything if e["type"] == "message.delta") == text

    stalled.settimeout(10)
    got, _ = _read_after_cut_off(stalled, head)
    assert 0 < len(got) < len(logged) and got == logged[: len(got)]
    assert got + _resume(gw, path, got[-1]["seq"]) == logged


def _read_after_cut_off(sock: socket.socket, head: bytes) -> tuple[list[dict], bytes]:
    """A cut-off reader reads at last: the events written before the cut-off, and the SSE payload."""
    body = head
    while chunk := sock.recv(1 << 20):  # what was sent before the cut-off, then the end
        body += chunk
    sock.close()
    payload, ended = _dechunk(body.partition(b"\r\n\r\n")[2])
    assert ended, "the cut-off reader's stream ends cleanly"
    return [f["data"] for f in sse_events(iter(payload.decode().split("\n"))) if "event" in f], payload


def _resume(gw: Gateway, path: str, last_seq: int) -> list[dict]:
    """The events after ``last_seq`` up to the turn's end, read with ``Last-Event-ID``."""
    rest = []
    with gw.client.stream("GET", path, headers={"Last-Event-ID": str(last_seq)}) as resumed:
        for frame in sse_events(resumed.iter_lines()):
            if "event" in frame:
                rest.append(frame["data"])
                if frame["event"] == "turn.completed":
                    break
    return rest


def _stalled_reader(gw: Gateway, path: str) -> tuple[socket.socket, bytes]:
    """An SSE client that sends its request, reads the response head, then stops reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connect: a tiny window
    sock.settimeout(30)
    sock.connect(("127.0.0.1", gw.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = b""
    while b"keep-alive" not in head and not (head.startswith(b"HTTP/1.1 503") and b"}" in head):
        head += sock.recv(4096)
    return sock, head


@pytest.mark.slow
def test_stalled_readers_are_cut_off_by_bytes_capped_and_freed_on_disconnect(
    make_gateway, mock_model: MockModel
) -> None:
    """Issue 23: readers that stop reading during a turn whose ``turn.started`` carries 8 MB are cut
    off once a backlog of CC_API_SSE_BUFFER_BYTES waits (no event beyond the one being written is
    kept for them), resume losing nothing, and count against the per-session cap only while connected."""
    gw = make_gateway(CC_API_SSE_BUFFER_BYTES=str(256 * 1024), CC_API_SSE_MAX_STREAMS_PER_SESSION="3")
    session_id = gw.create_session()["id"]
    after = gw.events(session_id)[-1]["seq"]
    path = f"/api/sessions/{session_id}/events/stream?after={after}"
    readers = [_stalled_reader(gw, path) for _ in range(3)]
    refused = gw.client.get(path)
    assert refused.status_code == 503 and refused.json()["error"]["type"] == "unavailable", refused.text

    mock_model.script(Reply(text="short"))
    started = gw.client.post(
        f"/api/sessions/{session_id}/turns", json={"input": "y" * (8 * 1024 * 1024), "background": True}
    )
    assert started.status_code == 202, started.text
    turn_url = f"/api/sessions/{session_id}/turns/{started.json()['turn_id']}"
    deadline = time.monotonic() + 60
    while gw.client.get(turn_url).json()["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    logged = gw.events(session_id, after)
    assert logged[-1]["type"] == "turn.completed"
    first_frame = len(f"id: {logged[0]['seq']}\nevent: turn.started\ndata: ".encode()) + len(orjson.dumps(logged[0]))

    aborted, _ = readers.pop()
    aborted.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    aborted.close()  # leaves without reading: a reset
    for sock, head in readers:
        got, payload = _read_after_cut_off(sock, head)
        assert got[0]["type"] == "turn.started" and got == logged[: len(got)] and len(got) < len(logged)
        assert len(payload) <= first_frame + 256 * 1024, "nothing beyond the byte bound was kept for it"
        assert got + _resume(gw, path, got[-1]["seq"]) == logged

    deadline = time.monotonic() + 10  # the reset takes the server a moment to notice
    while True:
        fresh = [_stalled_reader(gw, path) for _ in range(3)]
        for sock, _ in fresh:
            sock.close()
        if all(head.startswith(b"HTTP/1.1 200") for _, head in fresh) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [head.split(b"\r\n")[0] for _, head in fresh] == [b"HTTP/1.1 200 OK"] * 3, (
        "readers that left free their place"
    )
