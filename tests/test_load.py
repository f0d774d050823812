"""Load: 6 concurrent sessions × 3 turns each through a pool of 2 live Claude Code processes.

Sessions run concurrently, each session's turns one after another, as real clients do. With three
sessions per slot nearly every turn waits in the queue, evicts an idle engine and resumes another
session, so this drives the queue, eviction and resume paths hard and at once, not just the happy
path. That makes it CPU-bound on starting Claude Code (~2 CPU-seconds each, about 18 starts); it was
50 × 10 on 8 slots (five minutes), then 24 × 5 on 4 (three minutes alone at the end of CI), then 9 × 3 on 3
(~90 s) until the suite outgrew CI's time budget: the property (never more live processes than slots, every turn
answered in order, every session's log whole) bites the same with fewer. ``bench/scale.py`` runs the
large version (``--sessions 1000``) as a benchmark.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.gateway import Gateway
from tests.test_pool import ProcessSampler

pytestmark = pytest.mark.slow

SESSIONS, TURNS, MAX_LIVE = 6, 3, 2


def _drive(gw: Gateway, session_id: str, index: int) -> list[dict[str, Any]]:
    """One client: its session's turns in order, each waiting for the reply."""
    replies = []
    with httpx.Client(base_url=gw.base_url, timeout=300) as client:
        for turn in range(TURNS):
            response = client.post(f"/api/sessions/{session_id}/turns", json={"input": f"s{index}-t{turn}"})
            assert response.status_code == 200, response.text
            replies.append(response.json())
    return replies


def _assert_session_log(gw: Gateway, session_id: str, index: int) -> None:
    """Gap-free seq, and every turn's events complete and in order with the whole reply."""
    events = gw.events(session_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), session_id
    turn_ids = list(dict.fromkeys(e["turn_id"] for e in events if e.get("turn_id")))
    assert len(turn_ids) == TURNS
    for turn, turn_id in enumerate(turn_ids):
        own = [e for e in events if e.get("turn_id") == turn_id]
        assert own[0]["type"] == "turn.started" and own[-1]["type"] == "turn.completed", [e["type"] for e in own]
        assert own[0]["data"]["input"][0]["text"] == f"s{index}-t{turn}"
        text = "".join(e["data"]["text"] for e in own if e["type"] == "message.delta")
        assert text == f"mock reply: s{index}-t{turn}"


def _wait_for_no_claude_processes(gw: Gateway, timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in gw.leftover_processes() if pid != gw.process.pid]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@pytest.mark.timeout(900)
def test_many_sessions_share_few_live_processes_under_concurrent_load(make_gateway) -> None:
    gw = make_gateway(CC_API_MAX_LIVE=str(MAX_LIVE), CC_API_QUEUE_TIMEOUT="120")
    session_ids = [gw.create_session()["id"] for _ in range(SESSIONS)]

    started = time.monotonic()
    with ProcessSampler(gw) as sampler, ThreadPoolExecutor(SESSIONS) as pool:
        futures = [pool.submit(_drive, gw, session_id, index) for index, session_id in enumerate(session_ids)]
        results = [future.result() for future in futures]
    elapsed = time.monotonic() - started
    cold_starts = gw.log_path.read_text().count('"event":"engine_started"')
    print(
        f"\n{SESSIONS}x{TURNS} turns on {MAX_LIVE} live engines: {elapsed:.1f} s, {cold_starts} engine starts, "
        f"peak {sampler.peak} Claude CLI processes"
    )

    for index, replies in enumerate(results):
        assert [r["status"] for r in replies] == ["completed"] * TURNS, replies
        assert [r["output"][-1]["text"] for r in replies] == [f"mock reply: s{index}-t{t}" for t in range(TURNS)]
    assert 1 <= sampler.peak <= MAX_LIVE, f"{sampler.peak} Claude CLI processes were alive at once"
    for index, session_id in enumerate(session_ids):
        _assert_session_log(gw, session_id, index)
        assert gw.client.get(f"/api/sessions/{session_id}").json()["turn_count"] == TURNS
    health = gw.client.get("/healthz").json()
    assert health["status"] == "ok" and health["live_engines"] <= MAX_LIVE and health["queued_turns"] == 0

    for session_id in session_ids:
        assert gw.client.delete(f"/api/sessions/{session_id}").status_code == 200
    assert gw.client.get("/healthz").json()["live_engines"] == 0
    assert _wait_for_no_claude_processes(gw) == [], "a Claude CLI outlived its deleted session"
