"""Graceful shutdown: SIGTERM while turns stream records them as interrupted, keeps every
event a client saw, ends every SSE stream cleanly, and leaves no process behind — promptly."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import httpx
import pytest

from ccapi.testing import MockModel, Reply
from tests.gateway import Gateway, sse_events

pytestmark = pytest.mark.slow  # streams, signals and waits out each gateway's exit

SLOW_TEXT = " ".join(f"tok{n}" for n in range(300))  # 100 deltas, 5 s at 0.05 s each
EXIT_WITHIN = 10.0


class StreamClient(threading.Thread):
    """Reads one SSE response on its own connection, keeping every event it was sent."""

    def __init__(self, gw: Gateway, method: str, path: str, **kwargs: Any) -> None:
        super().__init__(daemon=True)
        self.gw, self.method, self.path, self.kwargs = gw, method, path, kwargs
        self.events: list[dict[str, Any]] = []
        self.error: Exception | None = None
        self.ended = threading.Event()

    def run(self) -> None:
        try:
            with (
                httpx.Client(base_url=self.gw.base_url, timeout=60) as client,
                client.stream(self.method, self.path, **self.kwargs) as response,
            ):
                for frame in sse_events(response.iter_lines()):
                    if "event" in frame:
                        self.events.append(frame["data"])
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.ended.set()

    def deltas(self) -> int:
        return sum(e["type"] == "message.delta" for e in self.events)


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigterm_interrupts_streaming_turns_and_exits_within_ten_seconds(make_gateway, mock_model: MockModel) -> None:
    gw = make_gateway()
    sessions = [gw.create_session()["id"] for _ in range(3)]
    mock_model.script(*[Reply(text=SLOW_TEXT, chunk_delay=0.05) for _ in sessions])
    turn_streams = [
        StreamClient(gw, "POST", f"/api/sessions/{sid}/turns", json={"input": "recite", "stream": True})
        for sid in sessions
    ]
    follower = StreamClient(gw, "GET", f"/api/sessions/{sessions[0]}/events/stream")
    for client in (*turn_streams, follower):
        client.start()
    _wait(lambda: all(c.deltas() >= 3 for c in turn_streams) and follower.deltas() >= 3, 60, "three streams")

    signalled = time.monotonic()
    gw.process.send_signal(signal.SIGTERM)
    exit_code = gw.process.wait(EXIT_WITHIN)
    _wait(lambda: not gw.leftover_processes(), EXIT_WITHIN - (time.monotonic() - signalled), "Claude CLIs to exit")
    took = time.monotonic() - signalled
    assert exit_code == 0 and took < EXIT_WITHIN, f"exit code {exit_code} after {took:.1f} s"
    assert "Task was destroyed" not in gw.log_path.read_text()

    for client in (*turn_streams, follower):
        assert client.ended.wait(5) and client.error is None, client.error  # ended cleanly, not cut off
        assert client.events[-1]["type"] == "turn.interrupted"

    gw.stop()
    gw.start()  # same home: what did the shutdown leave on disk?
    for session_id, client in zip(sessions, turn_streams, strict=True):
        _assert_recorded_as_interrupted(gw, session_id, client.events)
    assert gw.turn(sessions[0], "still there?")["status"] == "completed"


def _assert_recorded_as_interrupted(gw: Gateway, session_id: str, streamed: list[dict[str, Any]]) -> None:
    events = gw.events(session_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "turn.interrupted"
    assert events[-1]["data"]["error"]["message"] == "gateway shutting down"
    stored = {e["seq"]: e for e in events}
    assert all(stored[e["seq"]] == e for e in streamed), "an event a client saw was not saved"
    turn = gw.client.get(f"/api/sessions/{session_id}/turns/{events[-1]['turn_id']}").json()
    assert turn["status"] == "interrupted"
    session = gw.client.get(f"/api/sessions/{session_id}").json()
    assert session["status"] == "idle" and session["running_turn_id"] is None


def test_sigterm_answers_a_turn_queued_for_a_slot_with_503_and_starts_nothing(
    make_gateway, mock_model: MockModel
) -> None:
    """A queued turn must not grab the slot that shutdown's interrupt frees, nor hold the exit up."""
    gw = make_gateway(CC_API_MAX_LIVE="1", CC_API_QUEUE_TIMEOUT="60")
    busy, queued = gw.create_session()["id"], gw.create_session()["id"]
    mock_model.script(Reply(text=SLOW_TEXT, chunk_delay=0.05))
    stream = StreamClient(gw, "POST", f"/api/sessions/{busy}/turns", json={"input": "recite", "stream": True})
    stream.start()
    _wait(lambda: stream.deltas() >= 3, 60, "the busy turn to stream")
    answer: dict[str, httpx.Response] = {}
    waiter = threading.Thread(
        target=lambda: answer.update(
            r=httpx.post(f"{gw.base_url}/api/sessions/{queued}/turns", json={"input": "me next"}, timeout=60)
        )
    )
    waiter.start()
    _wait(lambda: gw.client.get("/healthz").json()["queued_turns"] == 1, 10, "the second turn to queue")

    signalled = time.monotonic()
    gw.process.send_signal(signal.SIGTERM)
    gw.process.wait(EXIT_WITHIN)
    waiter.join(5)
    assert time.monotonic() - signalled < EXIT_WITHIN
    assert "r" in answer, "the queued client got no answer before the gateway exited"
    refused = answer["r"]
    assert refused.status_code == 503 and refused.json()["error"]["type"] == "unavailable"
    assert int(refused.headers["retry-after"]) > 0

    gw.stop()
    gw.start()
    assert [e["type"] for e in gw.events(queued)] == ["session.created"]  # it never started
    assert gw.client.get(f"/api/sessions/{queued}").json()["turn_count"] == 0
    _assert_recorded_as_interrupted(gw, busy, stream.events)
