"""``Idempotency-Key`` over HTTP: a retry gets the first request's answer, streamed as it was, and never runs its
input twice — even when the first request's client went away while the gateway was acting on it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ccapi.app import create_app
from ccapi.config import Settings
from ccapi.events import PAUSE_EVENTS, TERMINAL_TURN_EVENTS
from ccapi.testing import MockModel, Reply, ToolUse
from tests.conftest import BACKENDS
from tests.gateway import Gateway, sse_events
from tests.inprocess import serving
from tests.test_tools import WEATHER


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """A replay reads the first answer back from the log: every store backend."""
    return request.param


SETTLES = {str(t) for t in TERMINAL_TURN_EVENTS | PAUSE_EVENTS}
SLOW_TEXT = " ".join(f"w{n}" for n in range(60))  # ~20 deltas


def _frames(response: httpx.Response, stop_after: int | None = None) -> list[dict[str, Any]]:
    """The SSE frames of a streamed reply (keep-alive comments left out), up to its settle (or ``stop_after``)."""
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream"), response.headers["content-type"]
    frames: list[dict[str, Any]] = []
    for frame in sse_events(response.iter_lines()):
        if "event" not in frame:
            continue
        frames.append(frame)
        if frame["event"] in SETTLES or len(frames) == stop_after:
            break
    return frames


def _stream(gateway: Gateway, path: str, body: dict[str, Any], key: str, **headers: str) -> list[dict[str, Any]]:
    with gateway.client.stream("POST", path, json=body, headers={"Idempotency-Key": key, **headers}) as response:
        return _frames(response)


def _sent(mock: MockModel, text: str) -> int:
    """How many model requests ended in a user message carrying ``text``."""
    return sum(text in orjson.dumps(r.body["messages"][-1]).decode() for r in mock.message_requests(include_side=False))


# -- a retry streams what the first request streamed ----------------------------------------------------------------


def test_a_streamed_retry_after_the_turn_ended_replays_its_events_as_sse(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """It was JSON (the turn object): a client that asked for a stream gets one, event for event."""
    session = gateway.create_session()
    path = f"/api/sessions/{session['id']}/turns"
    body = {"input": "stream me once", "stream": True}
    first = _stream(gateway, path, body, "sse-ended")
    assert first[0]["event"] == "turn.started" and first[-1]["event"] == "turn.completed"

    again = _stream(gateway, path, body, "sse-ended")
    assert again == first
    # asked for by the Accept header instead of the body: the same
    plain = {"input": "stream me by header"}
    first = _stream(gateway, path, plain, "sse-accept", accept="text/event-stream")
    again = _stream(gateway, path, plain, "sse-accept", accept="text/event-stream")
    assert again == first and first[-1]["event"] == "turn.completed"
    assert _sent(mock_model, "stream me once") == _sent(mock_model, "stream me by header") == 1
    assert gateway.client.get(f"/api/sessions/{session['id']}").json()["turn_count"] == 2


def test_a_streamed_tool_results_retry_streams_its_own_continuation_while_it_runs(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """The first request's stream dropped mid-continuation: the retry streams from its first ``tool_result`` to the
    turn's end, not the turn's first leg again up to the old pause (which told the client to run the tool again)."""
    mock_model.script(
        Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)), Reply(text=SLOW_TEXT, chunk_delay=0.05)
    )
    session = gateway.create_session(tools=[WEATHER])
    paused = gateway.turn(session["id"], "Oslo?")
    assert paused["status"] == "requires_action"
    path = f"/api/sessions/{session['id']}/tool-results"
    body = {"results": [{"tool_call_id": paused["tool_calls"][0]["tool_call_id"], "content": "cold"}], "stream": True}
    with gateway.client.stream("POST", path, json=body, headers={"Idempotency-Key": "tr-drop"}) as response:
        dropped = _frames(response, stop_after=3)  # then the connection goes
    assert dropped[0]["event"] == "tool_result"

    again = _stream(gateway, path, body, "tr-drop")
    types = [frame["event"] for frame in again]
    assert again[0] == dropped[0], types
    assert types[-1] == "turn.completed", types
    assert "turn.started" not in types and "turn.requires_action" not in types
    assert [int(frame["id"]) for frame in again] == list(range(int(again[0]["id"]), int(again[-1]["id"]) + 1))
    assert sum(e["type"] == "tool_result" for e in gateway.events(session["id"])) == 1


def test_streamed_retries_after_a_pause_and_its_continuation_replay_each_leg(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """The turn paused, was continued, and ended: a retried ``/turns`` streams the first leg (``turn.started`` to
    ``turn.requires_action``), a retried ``/tool-results`` the continuation (``tool_result`` to ``turn.completed``),
    each as its first request streamed it."""
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Riga"}),)), Reply(text="Riga is windy."))
    session = gateway.create_session(tools=[WEATHER])
    turns = f"/api/sessions/{session['id']}/turns"
    body = {"input": "Riga weather?", "stream": True}
    leg = _stream(gateway, turns, body, "leg-1")
    assert leg[0]["event"] == "turn.started" and leg[-1]["event"] == "turn.requires_action"
    call = leg[-1]["data"]["data"]["tool_calls"][0]["tool_call_id"]
    results = {"results": [{"tool_call_id": call, "content": "windy"}], "stream": True}
    tail = _stream(gateway, f"/api/sessions/{session['id']}/tool-results", results, "leg-2")
    assert tail[0]["event"] == "tool_result" and tail[-1]["event"] == "turn.completed"

    assert _stream(gateway, turns, body, "leg-1") == leg
    assert _stream(gateway, f"/api/sessions/{session['id']}/tool-results", results, "leg-2") == tail
    assert _sent(mock_model, "Riga weather?") == 1
    assert sum(e["type"] == "tool_result" for e in gateway.events(session["id"])) == 1


def test_a_streamed_retry_of_a_queued_turn_replays_its_own_events_from_turn_queued(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """Queued behind a running turn, its stream began at ``turn.queued`` and carried its own events only: so does
    the retry's, once it ran."""
    mock_model.script(Reply(text=SLOW_TEXT, chunk_delay=0.02))
    session = gateway.create_session()
    turns = f"/api/sessions/{session['id']}/turns"
    ahead = gateway.client.post(turns, json={"input": "go first", "background": True})
    assert ahead.status_code == 202, ahead.text
    body = {"input": "then me", "queue": True, "stream": True}
    first = _stream(gateway, turns, body, "queued-1")
    assert first[0]["event"] == "turn.queued" and first[-1]["event"] == "turn.completed"
    assert {frame["data"]["turn_id"] for frame in first} == {first[0]["data"]["turn_id"]}
    assert _stream(gateway, turns, body, "queued-1") == first
    assert _sent(mock_model, "then me") == 1


def test_a_streamed_permissions_retry_after_the_turn_ended_replays_the_continuation(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    target = tmp_path / "out.txt"
    mock_model.script(
        Reply(tool_uses=(ToolUse("Bash", {"command": f"echo hi > {target}", "description": "write a file"}),)),
        Reply(text="written"),
    )
    session = gateway.create_session(builtin_tools=["Bash"], permission_mode="default", cwd=str(tmp_path))
    paused = gateway.turn(session["id"], "write the file")
    assert paused["status"] == "requires_approval", paused
    path = f"/api/sessions/{session['id']}/permissions"
    [request] = paused["permission_requests"]
    body = {"decisions": [{"request_id": request["request_id"], "behavior": "allow"}], "stream": True}
    first = _stream(gateway, path, body, "perm-1")
    assert first[0]["event"] == "permission.resolved" and first[-1]["event"] == "turn.completed"
    assert _stream(gateway, path, body, "perm-1") == first
    assert sum(e["type"] == "permission.resolved" for e in gateway.events(session["id"])) == 1


# -- a client that goes away while its request starts the turn -------------------------------------------------------


async def _post_and_leave(port: int, path: str, body: dict[str, Any], key: str, once: asyncio.Event) -> None:
    """Send the request, then close the connection once ``once`` is set (or an answer came after all), without
    reading any answer."""
    raw = orjson.dumps(body)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Idempotency-Key: {key}\r\nContent-Length: {len(raw)}\r\n\r\n"
    )
    once.clear()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + raw)
    await writer.drain()
    waits = {asyncio.ensure_future(once.wait()), asyncio.ensure_future(reader.read(1))}
    _, pending = await asyncio.wait(waits, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    for wait in pending:
        wait.cancel()
    writer.close()
    await writer.wait_closed()
    assert once.is_set(), "the gateway answered before it recorded the key"


async def _idle(client: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    for _ in range(600):
        session = (await client.get(f"/api/sessions/{session_id}")).json()
        if session["status"] == "idle" and session["running_turn_id"] is None:
            return session
        await asyncio.sleep(0.05)
    raise AssertionError(f"session {session_id} never went idle: {session}")


async def _leave_while_the_key_is_recorded(settings: Settings, mock_model: MockModel) -> dict[str, Any]:
    app = create_app(settings, name="ccapi_idempotency")
    found: dict[str, Any] = {}
    async with (
        serving(app, settings.port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=60) as client,
    ):
        store = app.ctx.service.store
        record_key = store.save_idempotency_key
        recording = asyncio.Event()
        saved: list[str] = []

        async def slow_record(session_id: str, key: str, *rest: Any) -> None:
            """Slow in this test only: the turn has started; its client goes away before its key is written."""
            recording.set()
            await asyncio.sleep(1.0)
            await record_key(session_id, key, *rest)
            saved.append(key)

        store.save_idempotency_key = slow_record
        # a new turn: the client goes away as its key is being written; the retry comes after the turn's end
        plain = (await client.post("/api/sessions", json={})).json()["id"]
        turns = f"/api/sessions/{plain}/turns"
        body = {"input": "charge the card, once"}
        await _post_and_leave(settings.port, turns, body, "gone-1", recording)
        found["first"] = await _idle(client, plain)
        retried = await client.post(turns, json=body, headers={"Idempotency-Key": "gone-1"})
        found["turn"] = retried.status_code, retried.json()
        found["turn_events"] = (await client.get(f"/api/sessions/{plain}/events")).json()["data"]

        # tool results: the client goes away once they are handed over; the retry comes after the turn's end
        tooled = (await client.post("/api/sessions", json={"tools": [WEATHER]})).json()["id"]
        mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Lima"}),)), Reply(text="Lima: mild"))
        paused = (await client.post(f"/api/sessions/{tooled}/turns", json={"input": "Lima?"})).json()
        call = paused["tool_calls"][0]["tool_call_id"]
        results = {"results": [{"tool_call_id": call, "content": "mild"}]}
        path = f"/api/sessions/{tooled}/tool-results"
        await _post_and_leave(settings.port, path, results, "gone-2", recording)
        await _idle(client, tooled)
        retried = await client.post(path, json=results, headers={"Idempotency-Key": "gone-2"})
        found["paused"] = paused
        found["results"] = retried.status_code, retried.json()
        found["results_events"] = (await client.get(f"/api/sessions/{tooled}/events")).json()["data"]
        found["saved"] = list(saved)
        for session_id in (plain, tooled):
            await client.delete(f"/api/sessions/{session_id}")
    return found


def test_a_client_that_leaves_before_its_key_is_recorded_still_gets_its_turn_on_retry(
    offline_process: Settings, mock_model: MockModel
) -> None:
    """The turn (or the continuation) had started when the client went away, before its ``Idempotency-Key`` was
    written: the key is written all the same, and the retry answers with that turn instead of running it again."""
    found = asyncio.run(_leave_while_the_key_is_recorded(offline_process, mock_model))
    started = [e for e in found["turn_events"] if e["type"] == "turn.started"]
    status, turn = found["turn"]
    assert status == 200, turn
    assert len(started) == 1 and turn["turn_id"] == started[0]["turn_id"], [e["type"] for e in found["turn_events"]]
    assert turn["status"] == "completed" and turn["number"] == 1, turn
    assert _sent(mock_model, "charge the card, once") == 1

    status, continued = found["results"]
    assert status == 200, continued
    assert continued["turn_id"] == found["paused"]["turn_id"] and continued["status"] == "completed", continued
    assert [e["type"] for e in found["results_events"]].count("tool_result") == 1
    assert sorted(found["saved"]) == ["gone-1", "gone-2"]
