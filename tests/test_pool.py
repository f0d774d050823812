"""The bounded pool of live Claude Code processes, measured on the real stack."""

from __future__ import annotations

import threading
import time

import orjson
import pytest

from ccapi.testing import MockModel, Reply
from tests.gateway import Gateway
from tests.metrics_support import scrape, value

pytestmark = pytest.mark.slow  # dozens of Claude Code starts and a full queue


class ProcessSampler:
    """Counts the gateway's live Claude CLI children every few milliseconds."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, len(self.gw.claude_processes()))
            time.sleep(0.02)

    def __enter__(self) -> ProcessSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


SESSIONS = 4
"""Sessions taking turns on a pool of two: enough that every turn evicts (ten cost 30 Claude Code starts)."""


def _user_texts(body: dict) -> str:
    return orjson.dumps([m for m in body["messages"] if m["role"] == "user"]).decode()


def test_sessions_outnumbering_the_pool_share_two_live_processes_and_keep_their_own_context(
    make_gateway, mock_model: MockModel
) -> None:
    """Twice as many sessions as live slots, taking turns round-robin: every turn after the first two evicts
    the least recently used engine, so each is a resume from the store, and no context crosses sessions."""
    gw = make_gateway(CC_API_MAX_LIVE="2")
    sessions = [gw.create_session()["id"] for _ in range(SESSIONS)]
    with ProcessSampler(gw) as sampler:
        for turn in range(3):
            for index, session_id in enumerate(sessions):
                reply = gw.turn(session_id, f"session-{index}-turn-{turn}")
                assert reply["status"] == "completed", reply
                assert reply["output"][-1]["text"] == f"mock reply: session-{index}-turn-{turn}"
                assert gw.client.get("/healthz").json()["live_engines"] <= 2
    assert 1 <= sampler.peak <= 2, f"{sampler.peak} Claude CLI processes were alive at once"

    for index in range(SESSIONS):
        third = [
            r
            for r in mock_model.message_requests(include_side=False)
            if f"session-{index}-turn-2" in _user_texts(r.body)
        ]
        assert len(third) == 1
        sent = _user_texts(third[0].body)
        assert f"session-{index}-turn-0" in sent and f"session-{index}-turn-1" in sent
        others = [i for i in range(SESSIONS) if i != index and f"session-{i}-turn" in sent]
        assert others == [], f"session {index}'s request carried sessions {others}"

    # /metrics tells why each process started: 4 first turns, then 8 resumes after the pool evicted the session
    samples = scrape(gw)
    assert value(samples, "cc_api_engine_starts_total", reason="new") == SESSIONS
    assert value(samples, "cc_api_engine_starts_total", reason="eviction") == 2 * SESSIONS
    assert value(samples, "cc_api_engine_starts_total", reason="resume") == 0
    assert value(samples, "cc_api_evictions_total") == 3 * SESSIONS - 2
    assert value(samples, "cc_api_live_sessions") == 2


def test_a_full_pool_queues_fairly_then_answers_503_with_retry_after(make_gateway, mock_model: MockModel) -> None:
    gw = make_gateway(CC_API_MAX_LIVE="1", CC_API_QUEUE_TIMEOUT="1")
    busy, waiting = gw.create_session()["id"], gw.create_session()["id"]
    mock_model.script(Reply(text="slow", first_byte_delay=3))
    started = gw.client.post(f"/api/sessions/{busy}/turns", json={"input": "hold the slot", "background": True})
    assert started.status_code == 202

    refused = gw.client.post(f"/api/sessions/{waiting}/turns", json={"input": "no room"})
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["type"] == "unavailable"
    assert int(refused.headers["retry-after"]) > 0
    assert gw.client.get(f"/api/sessions/{waiting}").json()["turn_count"] == 0  # nothing was recorded

    # a turn that arrives while the slot is busy but frees in time is queued, not refused
    gw2 = make_gateway(CC_API_MAX_LIVE="1", CC_API_QUEUE_TIMEOUT="20")
    first, second = gw2.create_session()["id"], gw2.create_session()["id"]
    mock_model.script(Reply(text="slow", first_byte_delay=1.5))
    assert gw2.client.post(f"/api/sessions/{first}/turns", json={"input": "a", "background": True}).status_code == 202
    queued = gw2.client.post(f"/api/sessions/{second}/turns", json={"input": "b"})
    assert queued.status_code == 200 and queued.json()["status"] == "completed"
    assert gw2.client.get("/healthz").json()["live_engines"] == 1
