"""Security round two, the smaller probes: each test performs the attack or the fault on the
real gateway — trickled heads, hostile headers, schemas and ids, inputs too large for Claude
Code's plumbing, leaks and loose ends — and checks the answer is a clear 4xx (or that it
simply works) and that the gateway serves everyone else meanwhile."""

from __future__ import annotations

import asyncio
import gc
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from ccapi.config import Settings
from ccapi.engine import EnginePool
from ccapi.errors import NotFound
from ccapi.sessions import EventLog, SessionService
from ccapi.sessions.params import TurnRequest
from ccapi.store import JsonDirStore, open_store
from ccapi.testing import MockModel
from tests.daemon import Cli
from tests.gateway import Gateway, gateway_processes, sse_events
from tests.test_errors import _assert_error, _snapshot

API_KEY = "hardening-test-key-0c4e"
BROKEN_TOOL = {
    "name": "broken",
    "description": "a schema Claude Code cannot load",
    "input_schema": {"type": "object", "properties": "bogus"},
}
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"$ref": "#/$defs/city"}},
        "$defs": {"city": {"type": "string"}},
    },
}
LONG_ID = "sess_" + "a" * 70


@pytest.fixture(scope="module")
def gw(mock_model: MockModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A keyed gateway with a short request deadline, so trickling clients are cut off quickly."""
    gateway = Gateway(
        tmp_path_factory.mktemp("hardening"), mock_model.url, CC_API_KEY=API_KEY, CC_API_REQUEST_TIMEOUT="2"
    ).start()
    gateway.client.headers["Authorization"] = f"Bearer {API_KEY}"
    yield gateway
    gateway.stop()
    assert gateway.lingering_processes() == []


# -- 5. request heads trickled one byte at a time ------------------------------------------


def _trickle(port: int, data: bytes, delay: float, give_up: float) -> tuple[float, bytes]:
    """Send ``data`` one byte every ``delay`` s; returns how long until the server closed the
    connection, and what it answered."""
    received = b""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(delay)
        started = time.monotonic()
        for byte in data:
            if time.monotonic() - started > give_up:
                break
            try:
                sock.sendall(bytes([byte]))
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            received += chunk
        return time.monotonic() - started, received


def test_a_head_trickled_byte_by_byte_is_cut_off_at_the_deadline(gw: Gateway) -> None:
    """Each byte comes well within the packet gap Sanic allows; the head as a whole does not."""
    head = (
        f"GET /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"X-Padding: {'p' * 100}\r\n\r\n"
    ).encode()  # ~190 bytes at 10/s: 19 s if never cut off
    results: list[tuple[float, bytes]] = []
    tricklers = [
        threading.Thread(target=lambda: results.append(_trickle(gw.port, head, 0.1, give_up=15))) for _ in range(5)
    ]
    for thread in tricklers:
        thread.start()
    time.sleep(0.5)
    assert gw.client.get("/api/sessions").status_code == 200  # others are served meanwhile
    for thread in tricklers:
        thread.join()

    for elapsed, answer in results:
        assert elapsed < 4.5, f"the connection stayed open {elapsed:.1f} s"
        assert answer.startswith(b"HTTP/1.1 408 ") or answer == b"", answer[:200]
    assert gw.client.get("/healthz").json()["status"] == "ok"


# -- 7, 10. headers: keys and ids ------------------------------------------------------------


def _raw_get_status(port: int, header: bytes) -> int:
    """``GET /api/sessions`` with one header sent byte for byte (httpx refuses padded values)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + header + b"\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def test_an_undecodable_api_key_is_401_and_a_padded_one_is_accepted(gw: Gateway) -> None:
    for headers in (
        {"x-api-key": b"\xff\xfe" + API_KEY.encode()},
        {"Authorization": b"Bearer \xc3\x28"},
        {"x-api-key": API_KEY.encode() + b"\x80"},
    ):
        error = _assert_error(httpx.get(f"{gw.base_url}/api/sessions", headers=headers), 401, "unauthorized")
        assert API_KEY not in error["message"]
    key = API_KEY.encode()
    for header in (b"x-api-key: " + key + b" ", b"x-api-key: " + key + b"\t", b"Authorization: Bearer " + key + b" "):
        assert _raw_get_status(gw.port, header) == 200, header
    assert _raw_get_status(gw.port, b"x-api-key: " + key[:-1]) == 401


def test_an_undecodable_request_id_is_still_logged(gw: Gateway) -> None:
    response = gw.client.get("/api/sessions", headers={"x-request-id": b"evade-\xff\xfe"})
    assert response.status_code == 200
    replaced = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)
    deadline = time.monotonic() + 10  # the request's log line is written once the response is out
    while not (logged := [orjson.loads(line) for line in gw.log_path.read_text().splitlines() if replaced in line]):
        assert time.monotonic() < deadline, "the request was never logged"
        time.sleep(0.05)
    assert [(line["event"], line["path"], line["status"]) for line in logged] == [("request", "/api/sessions", 200)]
    assert gw.client.get("/api/sessions", headers={"x-request-id": "mine-1"}).headers["x-request-id"] == "mine-1"


def test_a_huge_last_event_id_is_400(gw: Gateway) -> None:
    session_id = gw.create_session()["id"]
    for value in ("9" * 20, "-1", "1" * 5000):
        response = gw.client.get(f"/api/sessions/{session_id}/events/stream", headers={"Last-Event-ID": value})
        assert "Last-Event-ID" in _assert_error(response, 400, "invalid_request")["message"]
    assert gw.client.get("/healthz").json()["status"] == "ok"


def test_ids_no_store_could_hold_are_404(gw: Gateway, mock_model: MockModel) -> None:
    before, requests_before = _snapshot(gw), len(mock_model.requests)
    for session_id in (LONG_ID, "bad.id", "sess_x%0A"):
        for headers in ({}, {"Idempotency-Key": "retry-1"}):
            response = gw.client.post(f"/api/sessions/{session_id}/turns", json={"input": "hi"}, headers=headers)
            _assert_error(response, 404, "not_found")
    assert _snapshot(gw) == before and len(mock_model.requests) == requests_before


# -- 6, 7, 9. session parameters that could never run --------------------------------------


def test_a_malformed_tool_schema_is_400_naming_the_tool(gw: Gateway, mock_model: MockModel) -> None:
    before = _snapshot(gw)
    response = gw.client.post("/api/sessions", json={"tools": [WEATHER, BROKEN_TOOL]})
    error = _assert_error(response, 400, "invalid_request")
    assert "tools[1].input_schema.properties" in error["message"] and "'broken'" in error["message"]
    assert error["details"] == {"tool": "broken"}
    compat = gw.client.post(
        "/v1/chat/completions",
        json={
            "model": "claude-sonnet-4-5",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "broken", "parameters": {"required": "city"}}}],
        },
    )
    assert compat.status_code == 400 and "'broken'" in compat.text
    assert _snapshot(gw) == before
    assert len(mock_model.requests) == 0

    # a valid schema (with $defs and $ref) still reaches the model as a tool
    session_id = gw.create_session(tools=[WEATHER])["id"]
    assert gw.turn(session_id, "hello")["status"] == "completed"
    offered = [tool["name"] for tool in mock_model.message_requests(include_side=False)[-1].body["tools"]]
    assert any(name.endswith("get_weather") for name in offered)


def test_a_system_prompt_with_nul_is_400(gw: Gateway) -> None:
    before = _snapshot(gw)
    response = gw.client.post("/api/sessions", json={"system_prompt": "be brief\u0000then verbose"})
    assert "NUL" in _assert_error(response, 400, "invalid_request")["message"]
    assert _snapshot(gw) == before


def test_a_system_prompt_over_128_kib_runs_and_stays_off_the_command_line(gw: Gateway, mock_model: MockModel) -> None:
    """Linux caps one argument at 128 KiB; the prompt travels in a private file, removed once read."""
    marker = "PROMPT-MARKER-7f3a"
    prompt = marker + " " + "Always answer in French. " * 9000  # ~220 KiB
    session_id = gw.create_session(system_prompt=prompt)["id"]
    assert gw.turn(session_id, "first")["status"] == "completed"
    for pid in gateway_processes(gw.env["CC_API_HOME"], set()):
        assert marker.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert gw.turn(session_id, "second")["output"][-1]["text"] == "mock reply: second"
    sent = mock_model.message_requests(include_side=False)
    assert len(sent) == 2 and all(prompt in orjson.dumps(r.body["system"]).decode() for r in sent)
    assert _prompt_files_holding(Path(gw.env["TMPDIR"]), marker) == []


def _prompt_files_holding(tmp: Path, marker: str) -> list[Path]:
    """System prompt files in the gateway's temp directory ``tmp`` that hold ``marker``."""
    held = []
    for path in tmp.glob("ccapi-private-system-prompt-*"):
        try:
            if marker in path.read_text():
                held.append(path)
        except OSError:  # removed meanwhile, as it should be
            pass
    return held


def test_a_megabyte_input_and_reply_fit_through_claude_code(gw: Gateway, mock_model: MockModel) -> None:
    """The SDK's 1 MiB message buffer used to fail turns the 10 MiB body limit let in."""
    text = "x" * (3 * 1024 * 1024 // 2)
    session_id = gw.create_session()["id"]
    reply = gw.turn(session_id, text)
    assert reply["status"] == "completed", reply.get("error")
    assert reply["output"][-1]["text"] == f"mock reply: {text}"  # the mock echoes it: a 1.5 MiB reply
    assert text in orjson.dumps(mock_model.message_requests(include_side=False)[-1].body["messages"]).decode()


# -- 10. streams -----------------------------------------------------------------------------


def test_an_idle_stream_answers_at_once_and_ends_when_its_session_is_deleted(gw: Gateway) -> None:
    session_id = gw.create_session()["id"]
    ended = threading.Event()
    with (
        httpx.Client(base_url=gw.base_url, headers=gw.client.headers, timeout=3) as client,
        client.stream("GET", f"/api/sessions/{session_id}/events/stream", params={"after": 1}) as response,
    ):
        assert response.status_code == 200  # within 3 s, not at the first 15 s keep-alive
        lines = response.iter_lines()
        assert next(sse_events(lines)) == {"comment": "keep-alive"}
        threading.Timer(0.3, lambda: gw.client.delete(f"/api/sessions/{session_id}")).start()
        started = time.monotonic()
        assert [frame for frame in sse_events(lines) if "event" in frame] == []
        ended.set()
    assert ended.is_set() and time.monotonic() - started < 3
    _assert_error(gw.client.get(f"/api/sessions/{session_id}"), 404, "not_found")


# -- 10. no state kept for ids that name no session ------------------------------------------


def test_bogus_session_ids_leave_no_state_behind(tmp_path: Path) -> None:
    """30,000 bogus ids used to leave 30,000 locks behind (+6 MiB) in the session layer."""

    async def probe() -> int:
        settings = Settings(home=tmp_path / "home", mock_model=True)
        store = await open_store(settings)
        events = EventLog(store)
        events.start()
        service = SessionService(settings, store, events, EnginePool(1, 60, 1, 1))
        gc.collect()  # exact types: isinstance asks each of the worker's ~500,000 objects for its class (~2 s a scan)
        before = sum(type(o) is asyncio.Lock for o in gc.get_objects())
        for n in range(500):
            with pytest.raises(NotFound):
                await service.start_turn(f"sess_bogus{n}", TurnRequest(({"type": "text", "text": "x"},), False, False))
        gc.collect()
        after = sum(type(o) is asyncio.Lock for o in gc.get_objects())
        await events.stop()
        await store.close()
        return after - before

    assert asyncio.run(probe()) == 0


# -- 7, 10. the JSON-directory backend -------------------------------------------------------


@pytest.mark.slow
def test_json_directory_bad_ids_and_half_deleted_sessions(mock_model: MockModel, tmp_path: Path) -> None:
    gateway = Gateway(tmp_path, mock_model.url, backend="jsondir").start()
    try:
        for session_id in ("bad.id", LONG_ID):
            response = gateway.client.post(
                f"/api/sessions/{session_id}/turns", json={"input": "hi"}, headers={"Idempotency-Key": "retry-1"}
            )
            _assert_error(response, 404, "not_found")
        kept, doomed = gateway.create_session()["id"], gateway.create_session()["id"]
        gateway.stop()
        # a crash between the rename and the removal of a delete
        root = Path(gateway.env["CC_API_SESSION_DIR"]) / "sessions"
        (root / doomed).rename(root / f".deleted-{doomed}-4242")
        gateway.start()
        listed = gateway.client.get("/api/sessions").json()["data"]
        assert [s["id"] for s in listed] == [kept]
        _assert_error(gateway.client.get(f"/api/sessions/{doomed}"), 404, "not_found")
        assert sorted(p.name for p in root.iterdir()) == [kept]
    finally:
        gateway.stop()


def test_a_second_gateway_on_a_json_directory_in_use_is_refused_in_one_line(
    mock_model: MockModel, tmp_path: Path
) -> None:
    """Two gateways on one ``CC_API_SESSION_DIR`` would each number events and hold leases on their own: while one
    process has it open, ``cc-api run`` on it stops with one ``cannot_open_store`` line naming the directory and
    the process (exit code 2: a setting to fix); once that one has closed it, another process opens it."""
    root = tmp_path / "shared-json"
    holder = JsonDirStore(root)
    asyncio.run(holder.open())
    try:
        cli = Cli(tmp_path, mock_model.url, CC_API_SESSION_DIR=str(root))
        done = cli("run")
        assert done.returncode == 2, done.stderr
        (line,) = [line for line in done.stderr.splitlines() if "cannot_open_store" in line]
        assert str(root) in line and f"another gateway (pid {os.getpid()})" in line, line
        assert "Traceback" not in done.stderr + done.stdout
        assert cli.leftovers() == []
    finally:
        asyncio.run(holder.close())
    opens = (
        "import asyncio, sys, pathlib; from ccapi.store import JsonDirStore; "
        "s = JsonDirStore(pathlib.Path(sys.argv[1])); asyncio.run(s.open()); asyncio.run(s.close())"
    )
    subprocess.run([sys.executable, "-c", opens, str(root)], check=True, timeout=60)


# -- 7, 10. PostgreSQL -------------------------------------------------------------------------


@pytest.mark.slow
def test_postgres_refuses_what_it_cannot_store_and_ends_streams_of_sessions_deleted_elsewhere(
    make_gateway, postgres_server
) -> None:
    url = postgres_server.create_database()
    a, b = (
        make_gateway(CC_API_DATABASE_URL=url, CC_API_HOST_ID=name, CC_API_KEEPALIVE_SECONDS="0.5")
        for name in ("host-a", "host-b")
    )
    for headers in ({}, {"Idempotency-Key": "retry-1"}):
        response = a.client.post(f"/api/sessions/{LONG_ID}/turns", json={"input": "hi"}, headers=headers)
        _assert_error(response, 404, "not_found")
    response = a.client.post("/api/sessions", json={"system_prompt": "a\u0000b"})
    assert "NUL" in _assert_error(response, 400, "invalid_request")["message"]

    session_id = a.create_session()["id"]
    with (
        httpx.Client(base_url=a.base_url, timeout=10) as client,
        client.stream("GET", f"/api/sessions/{session_id}/events/stream", params={"after": 1}) as stream,
    ):
        assert stream.status_code == 200
        assert b.client.delete(f"/api/sessions/{session_id}").status_code == 200
        started = time.monotonic()
        assert [frame for frame in sse_events(stream.iter_lines()) if "event" in frame] == []
    assert time.monotonic() - started < 5
    assert a.client.get("/healthz").json()["status"] == "ok"


# -- issue 23: heads, logs, timeouts and loose ends ------------------------------------------


def _raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_control_bytes_in_the_request_line_get_a_400_a_compact_log_and_an_escaped_cc_api_logs(gw: Gateway) -> None:
    """Issue 23: a URL with control bytes got no answer and a 2.4 KB traceback; a method with an
    escape sequence reached the operator's terminal raw through ``cc-api logs``."""
    logged_before = gw.log_path.stat().st_size
    for url in (b"/\x1b[2J", b"/api/sessions/\x00"):
        answer = _raw(gw.port, b"GET " + url + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
        assert orjson.loads(answer.partition(b"\r\n\r\n")[2])["error"]["type"] == "invalid_request"
    answer = _raw(gw.port, b"G\x1b[2JET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
    time.sleep(0.5)  # the request log line is written soon after the answer
    with gw.log_path.open("rb") as log:
        log.seek(logged_before)
        written = log.read()
    assert b"Traceback" not in written and len(written) < 3 * 1024, written[:3000]

    shown = subprocess.run(
        [sys.executable, "-m", "ccapi", "logs", "-n", "20"],
        env={**gw.env, "CC_API_KEY": API_KEY},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "\\u001b[2J" in shown and "\x1b" not in shown and "\x00" not in shown, shown[-2000:]


def test_an_idle_connection_is_closed_at_the_request_timeout(gw: Gateway) -> None:
    """Issue 23: a connection that sends nothing lived 120 s (Sanic's keep-alive), not the documented deadline."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as sock:
        started = time.monotonic()
        assert sock.recv(1024) == b""
        assert time.monotonic() - started < 2 + 1.5


def test_json_answers_say_nosniff_and_healthz_keeps_details_for_the_key(gw: Gateway) -> None:
    open_health = httpx.get(f"{gw.base_url}/healthz")
    assert open_health.headers["x-content-type-options"] == "nosniff"
    assert open_health.json()["status"] == "ok" and "claude_credentials" not in open_health.json()
    assert "claude_credentials" in gw.client.get("/healthz").json(), "the key shows everything"
    assert gw.client.get("/api/sessions").headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("model", ["", [], {}, "   "])
def test_an_empty_or_non_string_model_is_a_400(gw: Gateway, model: object) -> None:
    """Issue 23: these silently became the default model."""
    _assert_error(gw.client.post("/api/sessions", json={"model": model}), 400, "invalid_request")
    chat = gw.client.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "x"}]})
    assert chat.status_code == 400, chat.text


def test_messages_max_tokens_must_be_a_positive_integer(gw: Gateway) -> None:
    for max_tokens in ("x", 0, True, 1.5):
        body = {"model": "claude-sonnet-4-5", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "x"}]}
        response = gw.client.post("/v1/messages", json=body)
        assert response.status_code == 400 and "max_tokens" in response.text, response.text


def _nested(depth: int) -> str:
    """JSON text of objects nested ``depth`` deep (orjson cannot even write it)."""
    return '{"a": ' * (depth - 1) + "{}" + "}" * (depth - 1)


def test_deep_json_long_cwds_and_huge_integers_are_400s_and_change_nothing(gw: Gateway) -> None:
    """Issue 23: each of these was a 500 (orjson writes 255 levels at most; "File name too long";
    an integer beyond 64 bits was read as a float and came back as one)."""
    before = _snapshot(gw)
    tool_use = f'{{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {_nested(300)}}}'
    schema = f'{{"type": "object", "properties": {{"x": {_nested(300)}}}}}'
    messages = f'[{{"role": "user", "content": "x"}}, {{"role": "assistant", "content": [{tool_use}]}}]'
    for path, body in (
        ("/api/sessions", f'{{"metadata": {_nested(300)}}}'),
        (
            "/api/sessions",
            f'{{"tools": [{{"name": "t", "input_schema": {schema}}}]}}',
        ),
        ("/api/sessions", orjson.dumps({"cwd": "/" + "a" * 300}).decode()),
        ("/api/sessions", orjson.dumps({"cwd": "/a" * 3000}).decode()),
        ("/api/sessions", f'{{"metadata": {{"n": {2**70}}}}}'),
        ("/v1/messages", f'{{"model": "claude-sonnet-4-5", "max_tokens": 9, "messages": {messages}}}'),
    ):
        response = gw.client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (body[:80], response.text)
    assert _snapshot(gw) == before
    biggest = gw.create_session(metadata={"n": 2**63 - 1, "u": 2**64 - 1})
    assert gw.client.get(f"/api/sessions/{biggest['id']}").json()["metadata"] == {"n": 2**63 - 1, "u": 2**64 - 1}
