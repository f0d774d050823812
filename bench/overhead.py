"""Gateway overhead: one warm turn through CC API (HTTP, events, store) vs the same turn on a direct ClaudeSDKClient,
and the time to the first token of a streamed turn on both.

Both sides hold one warm Claude Code process with the same options (the gateway's own builder) and talk to one mock
model; turns alternate between them (which side goes first alternates too), so both see the same machine load and
the same growing conversation. Each round is a default (JSON reply) turn on each side, then a streamed turn on each
side: ``"stream": true`` through CC API, timed to its first ``message.delta``, against the first text
``StreamEvent`` on the SDK. The mock echoes the input, which is long enough to stream in several deltas. A few
warm-up rounds are not counted.

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
from claude_agent_sdk.types import StreamEvent

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
#: What each turn says (the mock echoes it): long enough that the reply streams in several deltas.
PROMPT = "turn {n}: answer with these words so that the reply streams in a handful of text deltas"


@dataclass(frozen=True)
class Measurement:
    direct: list[float]
    gateway: list[float]
    segments: dict[str, list[float]]
    direct_first_token: list[float]
    gateway_first_token: list[float]


async def direct_turn(client: ClaudeSDKClient, text: str) -> tuple[float, float | None]:
    """One turn on the SDK: send, read to the result. Returns the turn's time and the time to its first text
    ``StreamEvent`` (``include_partial_messages`` is on, as the gateway runs it)."""
    began = time.perf_counter()
    await client.query(text)
    result, first_token = None, None
    async for message in client.receive_response():
        if first_token is None and _is_text_delta(message):
            first_token = time.perf_counter() - began
        if isinstance(message, ResultMessage):
            result = message
    if result is None or result.is_error:
        raise RuntimeError(f"direct SDK turn failed: {result}")
    return time.perf_counter() - began, first_token


def _is_text_delta(message: object) -> bool:
    if not isinstance(message, StreamEvent) or message.parent_tool_use_id is not None:
        return False
    event = message.event
    return event.get("type") == "content_block_delta" and event.get("delta", {}).get("type") == "text_delta"


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


async def gateway_first_token(http: httpx.AsyncClient, session_id: str, text: str) -> float:
    """One streamed turn through CC API (``"stream": true``), read to its end; returns the time from the
    request to its first ``message.delta`` event."""
    began, first_token, ended = time.perf_counter(), None, None
    body = {"input": text, "stream": True}
    async with http.stream("POST", f"/api/sessions/{session_id}/turns", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"CC API streamed turn failed: {(await response.aread()).decode()}")
        async for line in response.aiter_lines():
            if line == "event: message.delta" and first_token is None:
                first_token = time.perf_counter() - began
            elif line.startswith("event: turn."):
                ended = line.removeprefix("event: ")
    if first_token is None or ended != "turn.completed":
        raise RuntimeError(f"CC API streamed turn ended {ended} with no text delta: {first_token}")
    return first_token


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
    """Alternating timed turns on both sides: a default turn each, then a streamed turn each."""
    direct: list[float] = []
    gateway: list[GatewayTurn] = []
    direct_first: list[float] = []
    gateway_first: list[float] = []
    async with (
        ClaudeSDKClient(sdk_options(mock_url, cwd)) as sdk,
        httpx.AsyncClient(base_url=base_url, timeout=60) as http,
    ):
        session = (await http.post("/api/sessions", json={})).json()["id"]
        progress = Progress(f"overhead: rounds ({WARMUP_TURNS} warm-up, then {turns} timed)", WARMUP_TURNS + turns)
        for n in range(WARMUP_TURNS + turns):
            text = PROMPT.format(n=n)
            if n % 2:  # which side goes first alternates; a streamed CC API turn is never right before another
                seconds, _ = await direct_turn(sdk, text)
                turn = await gateway_turn(http, session, text)
                gateway_first_seconds = await gateway_first_token(http, session, text)
                _, sdk_first = await direct_turn(sdk, text)
            else:
                turn = await gateway_turn(http, session, text)
                seconds, _ = await direct_turn(sdk, text)
                _, sdk_first = await direct_turn(sdk, text)
                gateway_first_seconds = await gateway_first_token(http, session, text)
            if sdk_first is None:
                raise RuntimeError("the direct SDK turn streamed no text delta")
            if n >= WARMUP_TURNS:
                direct.append(seconds)
                gateway.append(turn)
                direct_first.append(sdk_first)
                gateway_first.append(gateway_first_seconds)
            progress.step()
        say("overhead: reading the session's events to split each turn's time")
        times = await turn_event_times(http, session)
    return Measurement(direct, [t.seconds for t in gateway], segments(gateway, times), direct_first, gateway_first)


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


def first_token_table(turns: int, m: Measurement, summary: dict[str, Any]) -> Table:
    d, g = latency_summary(m.direct_first_token), latency_summary(m.gateway_first_token)
    table = Table(
        f"Time to first token, {turns} streamed turns per side (request → first text delta)",
        ["path", "p50 ms", "p99 ms", "mean ms"],
    )
    table.rows += [
        ["direct ClaudeSDKClient (first text StreamEvent)", d["p50_ms"], d["p99_ms"], d["mean_ms"]],
        ["CC API, stream: true (first message.delta)", g["p50_ms"], g["p99_ms"], g["mean_ms"]],
        [
            "CC API / direct",
            f"{summary['first_token_p50_ratio']:.2f}x",
            f"{summary['first_token_p99_ratio']:.2f}x",
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
    parser.add_argument(
        "--turns", type=int, default=200, help="timed rounds (default 200): each a default and a streamed turn per side"
    )
    args = parser.parse_args()
    say("overhead: starting the gateway and a direct ClaudeSDKClient")
    with MockModel() as mock, scratch_home() as home, offline_environ(home), running_gateway(mock.url) as gw:
        m = asyncio.run(measure(gw.base_url, mock.url, home, args.turns))
    d, g = latency_summary(m.direct), latency_summary(m.gateway)
    df, gf = latency_summary(m.direct_first_token), latency_summary(m.gateway_first_token)
    summary: dict[str, Any] = {
        "p50_ratio": ratio(g["p50_ms"], d["p50_ms"]),
        "p99_ratio": ratio(g["p99_ms"], d["p99_ms"]),
        "p50_overhead_ms": g["p50_ms"] - d["p50_ms"],
        "first_token_p50_ratio": ratio(gf["p50_ms"], df["p50_ms"]),
        "first_token_p99_ratio": ratio(gf["p99_ms"], df["p99_ms"]),
        "first_token_p50_overhead_ms": gf["p50_ms"] - df["p50_ms"],
        "target_p50_ratio": TARGET,
        "within_target": ratio(g["p50_ms"], d["p50_ms"]) <= TARGET,
        "first_token_within_target": ratio(gf["p50_ms"], df["p50_ms"]) <= TARGET,
        "segments_p50_ms": {name: latency_summary(v)["p50_ms"] for name, v in m.segments.items()},
    }

    def verdict(within: bool) -> str:
        return "within" if within else "NOT within"

    notes = [
        f"CC API p50 is {summary['p50_overhead_ms']:.1f} ms above the direct SDK for a whole turn "
        f"({verdict(summary['within_target'])} the {TARGET}x target) and "
        f"{summary['first_token_p50_overhead_ms']:.1f} ms to the first token "
        f"({verdict(summary['first_token_within_target'])} it). Both sides: one warm Claude Code process, same "
        f"options, same mock, alternating turns; {WARMUP_TURNS} warm-up rounds not counted."
    ]
    report(
        "overhead",
        [latency_table(args.turns, m, summary), first_token_table(args.turns, m, summary), segment_table(m)],
        {
            "params": {"turns": args.turns, "warmup_turns": WARMUP_TURNS},
            "summary": summary,
            "direct": d,
            "ccapi": g,
            "first_token": {"direct": df, "ccapi": gf},
            "samples_ms": {
                "direct": [s * 1000 for s in m.direct],
                "ccapi": [s * 1000 for s in m.gateway],
                "direct_first_token": [s * 1000 for s in m.direct_first_token],
                "ccapi_first_token": [s * 1000 for s in m.gateway_first_token],
            },
        },
        notes,
    )


if __name__ == "__main__":
    main()
