"""Gateway overhead: one warm turn through CC API (HTTP, events, store) vs the same turn on a direct ClaudeSDKClient.

Both sides hold one warm Claude Code process with the same options (the gateway's own builder) and talk to one mock
model; turns alternate between them (which side goes first alternates too), so both see the same machine load and
the same growing conversation. A few warm-up turns per side are not counted.

    python -m bench.overhead [--turns N]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from claude_agent_sdk import ClaudeSDKClient, ResultMessage

from bench.common import (
    Progress,
    Table,
    created_at_epoch,
    latency_summary,
    offline_environ,
    ratio,
    report,
    running_gateway,
    say,
    scratch_home,
    sdk_options,
)
from ccapi.testing import MockModel

WARMUP_TURNS = 3
TARGET = 1.25
SEGMENTS = ("request → turn.started", "turn.started → turn.completed", "turn.completed → reply received")


@dataclass(frozen=True)
class Measurement:
    direct: list[float]
    gateway: list[float]
    segments: dict[str, list[float]]


async def direct_turn(client: ClaudeSDKClient, text: str) -> float:
    """One turn on the SDK: send, read to the result."""
    began = time.perf_counter()
    await client.query(text)
    result = None
    async for message in client.receive_response():
        if isinstance(message, ResultMessage):
            result = message
    if result is None or result.is_error:
        raise RuntimeError(f"direct SDK turn failed: {result}")
    return time.perf_counter() - began


@dataclass(frozen=True)
class GatewayTurn:
    seconds: float
    turn_id: str
    sent_at: float
    received_at: float


async def gateway_turn(http: httpx.AsyncClient, session_id: str, text: str) -> GatewayTurn:
    """One turn through CC API in its default mode: the reply arrives once the turn has completed."""
    sent_at, began = time.time(), time.perf_counter()
    response = await http.post(f"/api/sessions/{session_id}/turns", json={"input": text})
    elapsed, received_at = time.perf_counter() - began, time.time()
    if response.status_code != 200 or response.json()["status"] != "completed":
        raise RuntimeError(f"CC API turn failed: {response.text}")
    return GatewayTurn(elapsed, response.json()["turn_id"], sent_at, received_at)


async def turn_event_times(http: httpx.AsyncClient, session_id: str) -> dict[tuple[str, str], float]:
    """``(turn_id, type) -> created_at`` (epoch seconds) for the whole session log, read after the timed run."""
    times: dict[tuple[str, str], float] = {}
    after, more = 0, True
    while more:
        page = (await http.get(f"/api/sessions/{session_id}/events", params={"after": after, "limit": 1000})).json()
        for event in page["data"]:
            times[(event.get("turn_id"), event["type"])] = created_at_epoch(event["created_at"])
        after, more = page["last_seq"], page["has_more"]
    return times


def segments(turns: list[GatewayTurn], times: dict[tuple[str, str], float]) -> dict[str, list[float]]:
    """Where each CC API turn's time went, split at its ``turn.started`` and ``turn.completed`` events."""
    split: dict[str, list[float]] = {name: [] for name in SEGMENTS}
    for turn in turns:
        started, completed = times[(turn.turn_id, "turn.started")], times[(turn.turn_id, "turn.completed")]
        for name, seconds in zip(
            SEGMENTS, (started - turn.sent_at, completed - started, turn.received_at - completed), strict=True
        ):
            split[name].append(seconds)
    return split


async def measure(base_url: str, mock_url: str, cwd: Path, turns: int) -> Measurement:
    """Alternating timed turns on both sides."""
    direct: list[float] = []
    gateway: list[GatewayTurn] = []
    async with (
        ClaudeSDKClient(sdk_options(mock_url, cwd)) as sdk,
        httpx.AsyncClient(base_url=base_url, timeout=60) as http,
    ):
        session = (await http.post("/api/sessions", json={})).json()["id"]
        progress = Progress(f"overhead: turn pairs ({WARMUP_TURNS} warm-up, then {turns} timed)", WARMUP_TURNS + turns)
        for n in range(WARMUP_TURNS + turns):
            if n % 2:
                seconds = await direct_turn(sdk, f"direct turn {n}")
                turn = await gateway_turn(http, session, f"gateway turn {n}")
            else:
                turn = await gateway_turn(http, session, f"gateway turn {n}")
                seconds = await direct_turn(sdk, f"direct turn {n}")
            if n >= WARMUP_TURNS:
                direct.append(seconds)
                gateway.append(turn)
            progress.step()
        say("overhead: reading the session's events to split each turn's time")
        times = await turn_event_times(http, session)
    return Measurement(direct, [t.seconds for t in gateway], segments(gateway, times))


def latency_table(turns: int, m: Measurement, summary: dict[str, Any]) -> Table:
    d, g = latency_summary(m.direct), latency_summary(m.gateway)
    table = Table(f"Warm turn latency, {turns} turns per side", ["path", "p50 ms", "p99 ms", "mean ms"])
    table.rows += [
        ["direct ClaudeSDKClient", d["p50_ms"], d["p99_ms"], d["mean_ms"]],
        ["CC API (HTTP + events + store)", g["p50_ms"], g["p99_ms"], g["mean_ms"]],
        [
            "CC API / direct",
            f"{summary['p50_ratio']:.2f}x",
            f"{summary['p99_ratio']:.2f}x",
            f"{ratio(g['mean_ms'], d['mean_ms']):.2f}x",
        ],
    ]
    return table


def segment_table(m: Measurement) -> Table:
    table = Table(
        "Where a CC API turn's time goes (split at its own events' created_at, 1 ms resolution)",
        ["segment", "p50 ms", "p99 ms"],
    )
    for name, seconds in m.segments.items():
        stats = latency_summary(seconds)
        table.rows.append([name, stats["p50_ms"], stats["p99_ms"]])
    table.rows.append(
        ["direct SDK turn, for comparison", latency_summary(m.direct)["p50_ms"], latency_summary(m.direct)["p99_ms"]]
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200, help="timed turns per side (default 200)")
    args = parser.parse_args()
    say("overhead: starting the gateway and a direct ClaudeSDKClient")
    with MockModel() as mock, scratch_home() as home, offline_environ(home), running_gateway(mock.url) as gw:
        m = asyncio.run(measure(gw.base_url, mock.url, home, args.turns))
    d, g = latency_summary(m.direct), latency_summary(m.gateway)
    summary = {
        "p50_ratio": ratio(g["p50_ms"], d["p50_ms"]),
        "p99_ratio": ratio(g["p99_ms"], d["p99_ms"]),
        "p50_overhead_ms": g["p50_ms"] - d["p50_ms"],
        "target_p50_ratio": TARGET,
        "within_target": ratio(g["p50_ms"], d["p50_ms"]) <= TARGET,
        "segments_p50_ms": {name: latency_summary(v)["p50_ms"] for name, v in m.segments.items()},
    }
    verdict = "within" if summary["within_target"] else "NOT within"
    notes = [
        f"CC API p50 is {summary['p50_overhead_ms']:.1f} ms above the direct SDK: {verdict} the "
        f"{TARGET}x target. Both sides: one warm Claude Code process, same options, same mock, alternating "
        f"turns; {WARMUP_TURNS} warm-up turns per side not counted."
    ]
    report(
        "overhead",
        [latency_table(args.turns, m, summary), segment_table(m)],
        {
            "params": {"turns": args.turns, "warmup_turns": WARMUP_TURNS},
            "summary": summary,
            "direct": d,
            "ccapi": g,
            "samples_ms": {"direct": [s * 1000 for s in m.direct], "ccapi": [s * 1000 for s in m.gateway]},
        },
        notes,
    )


if __name__ == "__main__":
    main()
