"""SSE: streamed turns, reconnect with Last-Event-ID, background turns, keep-alives."""

from __future__ import annotations

import socket
import struct
import time

import httpx
import orjson
import pytest

from ccapi.testing import MockModel, Reply
from tests.gateway import Gateway, eventually, sse_events
from tests.metrics_support import scrape, value

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


def test_an_accept_header_that_takes_either_gets_the_json_reply(gateway: Gateway) -> None:
    """``application/json, text/event-stream`` (what MCP clients send) or an event stream rated 0 is no ask for a
    stream: the reply is the turn's JSON; an event stream rated above JSON, or only a wildcard beside it, streams."""
    session = gateway.create_session()
    url = f"/api/sessions/{session['id']}/turns"
    for accept in ("application/json, text/event-stream", "text/event-stream;q=0", "text/event-stream;q=0.5, */*"):
        reply = gateway.client.post(url, json={"input": "either"}, headers={"Accept": accept})
        assert reply.headers["content-type"].startswith("application/json"), accept
        assert reply.json()["status"] == "completed"
    for accept in ("application/json;q=0.9, text/event-stream", "text/event-stream, */*"):
        streamed = gateway.client.post(url, json={"input": "stream"}, headers={"Accept": accept})
        assert streamed.headers["content-type"].startswith("text/event-stream"), accept


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

    got, _ = _read_to_the_end(stalled, head)
    assert 0 < len(got) < len(logged) and got == logged[: len(got)]
    assert got + _resume(gw, path, got[-1]["seq"]) == logged


def _read_to_the_end(sock: socket.socket, head: bytes) -> tuple[list[dict], bytes]:
    """A stalled reader whose stream the gateway ended reads at last, up to the end of its connection (which
    fails the test if it does not come): the events it was sent whole before, and the SSE payload. A stream
    ended while the gateway still waited for the reader to take what it sent is closed there and then,
    without its final empty chunk, its last frame maybe cut short (which an SSE client discards)."""
    sock.settimeout(10)
    body = head
    try:
        while chunk := sock.recv(1 << 20):
            body += chunk
    except ConnectionResetError:
        pass
    sock.close()
    payload, _ = _dechunk(body.partition(b"\r\n\r\n")[2])
    return [f["data"] for f in sse_events(iter(payload.decode(errors="replace").split("\n"))) if "event" in f], payload


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
    logged = _finished_turn(gw, session_id, "y" * (8 * 1024 * 1024))
    first_frame = len(f"id: {logged[0]['seq']}\nevent: turn.started\ndata: ".encode()) + len(orjson.dumps(logged[0]))

    aborted, _ = readers.pop()
    aborted.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    aborted.close()  # leaves without reading: a reset
    for sock, head in readers:
        got, payload = _read_to_the_end(sock, head)  # cut off while the 8 MB turn.started was being written
        assert got == logged[: len(got)] and len(got) < len(logged)
        assert len(payload) <= first_frame + 256 * 1024, "nothing beyond the byte bound was kept for it"
        assert got + _resume(gw, path, got[-1]["seq"] if got else after) == logged

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


def test_the_event_stream_keeps_only_the_types_asked_for_with_their_own_seqs(
    make_gateway, mock_model: MockModel
) -> None:
    """``types=`` on ``/events/stream`` is checked like on ``/events`` (a name no event has is a 400 before the stream
    starts) and keeps only those events, replayed and live, under their own seqs (so ``Last-Event-ID`` resumes
    right), with keep-alives still going out while a busy turn sends none of them."""
    gw = make_gateway(CC_API_KEEPALIVE_SECONDS="0.3")
    session_id = gw.create_session()["id"]
    path = f"/api/sessions/{session_id}/events/stream"
    wanted = {"turn.started", "turn.completed"}
    with gw.client.stream("GET", path, params={"types": "turn.completed,bogus"}) as bad:
        assert bad.status_code == 400, "not a stream of nothing"
        error = orjson.loads(bad.read())["error"]
    assert error["type"] == "invalid_request" and "bogus" in error["message"], error
    assert "turn.completed" in error["details"]["known"]

    gw.turn(session_id, "first")  # in the log before the stream: replayed
    mock_model.script(Reply(text=LONG_TEXT, chunk_delay=0.03))  # ~2 s of deltas the stream leaves out
    frames: list[dict] = []
    with gw.client.stream("GET", path, params={"types": ",".join(sorted(wanted))}) as response:
        assert response.status_code == 200
        lines = sse_events(response.iter_lines())
        for frame in lines:
            frames.append(frame)
            if frame.get("event") == "turn.completed":
                break  # the first turn's, replayed
        started = gw.client.post(f"/api/sessions/{session_id}/turns", json={"input": "second", "background": True})
        assert started.status_code == 202, started.text
        for frame in lines:
            frames.append(frame)
            if frame.get("event") == "turn.completed":
                break
    events = [frame for frame in frames if "event" in frame]
    logged = gw.events(session_id)
    assert [e["data"] for e in events] == [e for e in logged if e["type"] in wanted]
    assert [int(e["id"]) for e in events] == [e["data"]["seq"] for e in events]
    during = frames[frames.index(events[2]) + 1 : frames.index(events[3])]  # the second turn's ~2 s of deltas
    assert {"comment": "keep-alive"} in during, "keep-alives go on while the deltas are left out"

    resumed = []
    last_id = events[1]["id"]  # the first turn's turn.completed
    with gw.client.stream(
        "GET", path, params={"types": "turn.completed"}, headers={"Last-Event-ID": last_id}
    ) as response:
        for frame in sse_events(response.iter_lines()):
            if "event" in frame:
                resumed.append(frame["data"])
                break
    assert resumed == [events[3]["data"]], "the second turn's turn.completed, nothing in between"


TCP_ESTABLISHED = "01"


def _server_side_state(gw: Gateway, client: socket.socket) -> str | None:
    """The TCP state (``/proc/net/tcp``, hex) of the gateway's end of ``client``'s connection; ``None`` once it is
    gone. Read from the kernel, so it shows what the server did without the client reading anything."""
    server_end, client_end = f":{gw.port:04X}", f":{client.getsockname()[1]:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                local, remote, state = row.split()[1:4]
                if local.endswith(server_end) and remote.endswith(client_end):
                    return state
    return None


def _closed_by_server(gw: Gateway, client: socket.socket, within: float) -> bool:
    deadline = time.monotonic() + within
    while _server_side_state(gw, client) == TCP_ESTABLISHED:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _finished_turn(gw: Gateway, session_id: str, text: str) -> list[dict]:
    """Run a background turn whose ``turn.started`` carries ``text`` to its end; the session's events after it."""
    after = gw.events(session_id)[-1]["seq"]
    started = gw.client.post(f"/api/sessions/{session_id}/turns", json={"input": text, "background": True})
    assert started.status_code == 202, started.text
    turn_url = f"/api/sessions/{session_id}/turns/{started.json()['turn_id']}"
    deadline = time.monotonic() + 60
    while gw.client.get(turn_url).json()["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    logged = gw.events(session_id, after)
    assert logged[-1]["type"] == "turn.completed"
    return logged


@pytest.mark.slow
def test_a_stalled_reader_cut_off_gives_up_its_stream_and_its_connection_at_once(
    make_gateway, mock_model: MockModel
) -> None:
    """A reader that stopped reading, with the gateway blocked writing it an 8 MB ``turn.started``, is cut off by the
    turn's next events: its connection is closed by the server then and there, though it still reads nothing, and
    the one stream its session may have (CC_API_SSE_MAX_STREAMS_PER_SESSION=1) is free again for a new one. When it
    reads at last, it resumes from what it got, losing nothing."""
    gw = make_gateway(CC_API_SSE_BUFFER_BYTES=str(256 * 1024), CC_API_SSE_MAX_STREAMS_PER_SESSION="1")
    session_id = gw.create_session()["id"]
    after = gw.events(session_id)[-1]["seq"]
    path = f"/api/sessions/{session_id}/events/stream?after={after}"
    stalled, head = _stalled_reader(gw, path)
    assert head.startswith(b"HTTP/1.1 200"), head
    refused = gw.client.get(path)
    assert refused.status_code == 503, "the session's one stream is taken"

    mock_model.script(Reply(text="short"))
    logged = _finished_turn(gw, session_id, "y" * (8 * 1024 * 1024))
    deadline = time.monotonic() + 5
    while True:
        fresh, fresh_head = _stalled_reader(gw, path)
        fresh.close()
        if fresh_head.startswith(b"HTTP/1.1 200") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert fresh_head.split(b"\r\n")[0] == b"HTTP/1.1 200 OK", "the cut-off reader no longer holds the stream"
    assert _closed_by_server(gw, stalled, within=5), "the cut-off reader's connection is closed, not left waiting"

    got, _ = _read_to_the_end(stalled, head)
    assert got == logged[: len(got)] and len(got) < len(logged)
    assert got + _resume(gw, path, got[-1]["seq"] if got else after) == logged


@pytest.mark.slow
def test_deleting_a_session_or_stopping_the_gateway_closes_a_stalled_readers_connection_at_once(
    make_gateway, mock_model: MockModel
) -> None:
    """A reader that stopped reading, not yet far enough behind to be cut off, with the gateway blocked writing to it:
    deleting its session closes its connection at once, and so does stopping the gateway (which then stops without
    waiting out its graceful-shutdown timeout, 15 s, for it)."""
    gw = make_gateway()
    streams = []
    for _ in range(2):
        session_id = gw.create_session()["id"]
        path = f"/api/sessions/{session_id}/events/stream?after={gw.events(session_id)[-1]['seq']}"
        stalled, head = _stalled_reader(gw, path)
        assert head.startswith(b"HTTP/1.1 200"), head
        mock_model.script(Reply(text="short"))
        logged = _finished_turn(gw, session_id, "y" * (8 * 1024 * 1024))
        streams.append((session_id, stalled, head, logged))
    for _, stalled, _, _ in streams:
        assert _server_side_state(gw, stalled) == TCP_ESTABLISHED, "blocked writing, not cut off"

    (session_id, stalled, head, logged), (_, other, other_head, other_logged) = streams
    assert gw.client.delete(f"/api/sessions/{session_id}").status_code in (200, 204)
    assert _closed_by_server(gw, stalled, within=5), "the deleted session's stream is closed, not left waiting"
    got, _ = _read_to_the_end(stalled, head)
    assert got == logged[: len(got)] and len(got) < len(logged)
    assert _server_side_state(gw, other) == TCP_ESTABLISHED, "another session's reader is left alone"

    began = time.monotonic()
    gw.stop()
    assert time.monotonic() - began < 10, "the gateway stops without waiting for a reader that never reads"
    got, _ = _read_to_the_end(other, other_head)
    assert got == other_logged[: len(got)] and len(got) < len(other_logged)


def test_a_streamed_retry_counts_against_the_stream_limits(make_gateway, mock_model: MockModel) -> None:
    """Each retry of a streamed turn with its ``Idempotency-Key`` opens one more stream of the turn's events: they
    went around ``CC_API_SSE_MAX_STREAMS_PER_SESSION`` (300 retries held 300 streams against a limit of 128, each
    up to ``CC_API_SSE_BUFFER_BYTES``). Past the limit a retry is a 503, as another ``/events/stream`` is."""
    gw = make_gateway(CC_API_SSE_MAX_STREAMS_PER_SESSION="1")
    session_id = gw.create_session()["id"]
    url = f"{gw.base_url}/api/sessions/{session_id}/turns"
    body, key = {"input": "talk", "stream": True}, {"Idempotency-Key": "retry-me"}
    with httpx.Client(timeout=30) as http:
        assert "event: turn.completed" in http.post(url, json=body, headers=key).text
        with http.stream("GET", f"{url[: -len('/turns')]}/events/stream") as follower:  # the session's one stream
            assert follower.status_code == 200
            assert eventually(lambda: value(scrape(gw), "cc_api_sse_subscribers") == 1), "following live"
            refused = http.post(url, json=body, headers=key)
        assert refused.status_code == 503 and refused.json()["error"]["type"] == "unavailable", refused.text
        assert "event: turn.completed" in http.post(url, json=body, headers=key).text, "once the follower left"
