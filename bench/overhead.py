"""Gateway overhead: one warm turn through CC API (HTTP, events, store) vs the same turn on a direct ClaudeSDKClient,
and the time to the first token of a streamed turn on both.

Three sides each hold a warm Claude Code process with the same options (the gateway's own builder, the Bash sandbox
included), or ``--processes`` of them taking the rounds in turn (see ``measure``), and talk to one mock model: CC API (a
session each); direct ``ClaudeSDKClient``s; and direct clients that also mirror their transcript to a ``SessionStore``
(the SDK's in-memory one) as the gateway's options do, which shows what the SDK itself spends on the mirror that makes
a session resumable. CC API is timed through a lean HTTP/1.1 client (``bench.http1``), so the ratio is the gateway's
cost and not a client library's; the same default turn sent with httpx, in sessions of its own, shows what such a
library adds. Turns rotate between them (which side goes first rotates too), so all see the same machine load and
the same growing conversations. Each round is a default (JSON reply) turn
on each side, then a streamed turn on each side: ``"stream": true`` through CC API, timed to its first
``message.delta``, against the first text ``StreamEvent`` on the SDK. The mock echoes the input, which is long
enough to stream in several deltas. A few warm-up rounds are not counted.

Five runs back to back by default, each on fresh processes; each run's ratios and their median are reported, with
the gateway's ``/metrics`` scraped after each run.

    python -m bench.overhead [--turns N] [--runs N] [--processes N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from claude_agent_sdk import ClaudeSDKClient, InMemorySessionStore, ResultMessage
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
from bench.http1 import Http1
from ccapi.engine.sandbox import SandboxPolicy, launch_files
from ccapi.engine.spec import find_cli
from ccapi.testing import MockModel
from tests.metrics_support import Samples, scrape

WARMUP_TURNS = 3
#: Warm Claude Code processes per side (see ``measure``).
PROCESSES = 1
TARGET = 1.25
#: The median of the runs' p50 ratios must stay under this too: one run's luck is not a result.
MEDIAN_TARGET = 1.15
#: ``httpx``: CC API's default turn sent with httpx (its streamed turns are not: the library's cost shows once).
SIDES = ["direct", "mirrored", "gateway", "httpx"]
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
    mirrored: list[float]
    """Turns on a direct client that also mirrors its transcript to a ``SessionStore`` (the SDK's in-memory one), as
    the gateway's options do: what the SDK itself spends on the mirror that makes a session resumable."""
    mirrored_first_token: list[float]
    through_httpx: list[float]
    """Default turns through CC API sent with httpx instead of the lean client: the gateway plus a client library."""


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


async def gateway_turn(http: Http1, session_id: str, text: str) -> GatewayTurn:
    """One turn through CC API in its default mode: the reply arrives once the turn has completed."""
    sent_at, began = time.time(), time.perf_counter()
    reply = await http.post(f"/api/sessions/{session_id}/turns", {"input": text})
    elapsed, received_at = time.perf_counter() - began, time.time()
    if reply.status != 200 or reply.json()["status"] != "completed":
        raise RuntimeError(f"CC API turn failed: {reply.body!r}")
    return GatewayTurn(elapsed, reply.json()["turn_id"], sent_at, received_at)


async def httpx_turn(http: httpx.AsyncClient, session_id: str, text: str) -> float:
    """The same turn sent with httpx: what a typical client library adds to a turn, beside the gateway's cost."""
    began = time.perf_counter()
    response = await http.post(f"/api/sessions/{session_id}/turns", json={"input": text})
    elapsed = time.perf_counter() - began
    if response.status_code != 200 or response.json()["status"] != "completed":
        raise RuntimeError(f"CC API turn failed: {response.text}")
    return elapsed


async def gateway_first_token(http: Http1, session_id: str, text: str) -> float:
    """One streamed turn through CC API (``"stream": true``), read to its end; returns the time from the
    request to its first ``message.delta`` event."""
    began, first_token, ended = time.perf_counter(), None, None
    async for line in http.stream_lines(f"/api/sessions/{session_id}/turns", {"input": text, "stream": True}):
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


async def measure(base_url: str, mock: MockModel, cwd: Path, turns: int, processes: int) -> Measurement:
    """Alternating timed turns on both sides: a default turn each, then a streamed turn each.

    Each side holds ``processes`` warm Claude Code processes (direct clients, gateway sessions) and round ``n`` runs
    on the ``n % processes``-th of each: one Claude Code process runs a few per cent faster or slower than another
    for its whole life (identical direct clients differ by up to ~3 % here), which one process per side counts as
    the gateway's cost, or takes off it. More processes also mean more idle Claude Codes in the background, which
    moved the turn's ratio down and the first token's up by ~0.03 each here (docs/benchmarks.md): one stays the
    default, the guard's configuration.

    This process runs the mock and the clients of every side, so a full collection of its heap stalls whichever
    side's turn is in flight: the heap it has when the rounds begin (the imports of the SDK, httpx, ...) is frozen out
    of the collector, and the mock forgets its recorded requests after each round (kept, their parsed bodies, ~58 KB
    of JSON a request, grew the heap until each full collection took 0.1-0.5 s, at the same rounds in every run:
    the p99 columns were those stalls, on all sides)."""
    direct: list[float] = []
    mirrored: list[float] = []
    gateway: list[GatewayTurn] = []
    direct_first: list[float] = []
    mirrored_first: list[float] = []
    gateway_first: list[float] = []
    through_httpx: list[float] = []
    # the sandbox and deny rules a gateway here gives Claude Code (its default CC_API_SANDBOX=auto), on every side
    sandbox = SandboxPolicy.detect("auto", [cwd / "cc-api"], launch=launch_files(find_cli()))
    options = sdk_options(mock.url, cwd, sandbox=sandbox)
    warmup = WARMUP_TURNS * processes
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            "direct": [await stack.enter_async_context(ClaudeSDKClient(options)) for _ in range(processes)],
            "mirrored": [
                await stack.enter_async_context(
                    ClaudeSDKClient(dataclasses.replace(options, session_store=InMemorySessionStore()))
                )
                for _ in range(processes)
            ],
        }
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=60))
        lean = await stack.enter_async_context(Http1(http.base_url.host, http.base_url.port or 80))
        # the httpx turns run in sessions of their own, so each conversation grows by two turns a round
        ids = [(await http.post("/api/sessions", json={})).json()["id"] for _ in range(2 * processes)]
        sessions, httpx_sessions = ids[:processes], ids[processes:]
        gc.collect()
        gc.freeze()
        progress = Progress(f"overhead: rounds ({warmup} warm-up, then {turns} timed)", warmup + turns)
        for n in range(warmup + turns):
            text = PROMPT.format(n=n)
            at = n % processes
            session, httpx_session = sessions[at], httpx_sessions[at]
            # which side goes first rotates, and the streamed turns run in reverse order: each round one side's
            # streamed turn directly follows its own default turn, each side as often as the others
            sides = SIDES[n % len(SIDES) :] + SIDES[: n % len(SIDES)]
            whole: dict[str, float] = {}
            first: dict[str, float | None] = {}
            for side in sides:
                if side == "gateway":
                    turn = await gateway_turn(lean, session, text)
                    whole[side] = turn.seconds
                elif side == "httpx":
                    whole[side] = await httpx_turn(http, httpx_session, text)
                else:
                    whole[side], _ = await direct_turn(clients[side][at], text)
            for side in reversed(sides):
                if side == "httpx":
                    continue
                if side == "gateway":
                    first[side] = await gateway_first_token(lean, session, text)
                else:
                    _, first[side] = await direct_turn(clients[side][at], text)
            direct_first_token, mirrored_first_token = first["direct"], first["mirrored"]
            if direct_first_token is None or mirrored_first_token is None:
                raise RuntimeError("the direct SDK turn streamed no text delta")
            if n >= warmup:
                direct.append(whole["direct"])
                mirrored.append(whole["mirrored"])
                gateway.append(turn)
                direct_first.append(direct_first_token)
                mirrored_first.append(mirrored_first_token)
                gateway_first.append(first["gateway"] or 0.0)
                through_httpx.append(whole["httpx"])
            mock.clear()
            progress.step()
        gc.unfreeze()  # the next run freezes its own
        say("overhead: reading the sessions' events to split each turn's time")
        times: dict[tuple[str, str], float] = {}
        for session in sessions:
            times.update(await turn_event_times(http, session))
    return Measurement(
        direct,
        [t.seconds for t in gateway],
        segments(gateway, times),
        direct_first,
        gateway_first,
        mirrored,
        mirrored_first,
        through_httpx,
    )


def latency_table(turns: int, m: Measurement, summary: dict[str, Any]) -> Table:
    table = _side_table(
        f"Warm turn latency, {turns} turns per side",
        ["direct ClaudeSDKClient", "direct ClaudeSDKClient + transcript mirror", "CC API (HTTP + events + store)"],
        (m.direct, m.mirrored, m.gateway),
        summary["whole_turn"],
    )
    stats, r = latency_summary(m.through_httpx), summary["whole_turn"]["httpx_vs_direct"]
    table.rows.append(["CC API, sent with httpx (a client library's cost too)", *_ms(stats)])
    table.rows.append(["CC API with httpx / direct", f"{r['p50']:.2f}x", f"{r['p99']:.2f}x", f"{r['mean']:.2f}x"])
    return table


def _ms(stats: dict[str, float]) -> list[float]:
    return [stats["p50_ms"], stats["p99_ms"], stats["mean_ms"]]


def first_token_table(turns: int, m: Measurement, summary: dict[str, Any]) -> Table:
    return _side_table(
        f"Time to first token, {turns} streamed turns per side (request → first text delta)",
        [
            "direct ClaudeSDKClient (first text StreamEvent)",
            "direct ClaudeSDKClient + transcript mirror",
            "CC API, stream: true (first message.delta)",
        ],
        (m.direct_first_token, m.mirrored_first_token, m.gateway_first_token),
        summary["first_token"],
    )


def _side_table(title: str, names: list[str], samples: tuple[list[float], ...], ratios: dict[str, Any]) -> Table:
    table = Table(title, ["path", "p50 ms", "p99 ms", "mean ms"])
    for name, seconds in zip(names, samples, strict=True):
        table.rows.append([name, *_ms(latency_summary(seconds))])
    for against in ("direct", "mirrored"):
        r = ratios[f"vs_{against}"]
        label = "CC API / direct" + (" + mirror" if against == "mirrored" else "")
        table.rows.append([label, f"{r['p50']:.2f}x", f"{r['p99']:.2f}x", f"{r['mean']:.2f}x"])
    return table


def ratios(gateway: list[float], against: list[float]) -> dict[str, float]:
    g, d = latency_summary(gateway), latency_summary(against)
    return {
        "p50": ratio(g["p50_ms"], d["p50_ms"]),
        "p99": ratio(g["p99_ms"], d["p99_ms"]),
        "mean": ratio(g["mean_ms"], d["mean_ms"]),
        "p50_overhead_ms": g["p50_ms"] - d["p50_ms"],
    }


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


def one_run(turns: int, processes: int) -> tuple[Measurement, dict[str, float]]:
    """One run on fresh processes: a gateway, the direct clients, one mock. Returns what it measured and the
    gateway's own ``/metrics`` figures after it (scraped as Prometheus would), which show they counted every turn."""
    with MockModel() as mock, scratch_home() as home, offline_environ(home), running_gateway(mock.url) as gw:
        m = asyncio.run(measure(gw.base_url, mock, home, turns, processes))
        return m, counted_turns(scrape(gw))


def counted_turns(samples: Samples) -> dict[str, float]:
    """The turn and first-token counts of a ``/metrics`` page, over every label: the metrics were on, and on the
    turn path."""
    wanted = ("cc_api_turns_total", "cc_api_time_to_first_token_seconds_count")
    return {name: sum(v for (sample, _labels), v in samples.items() if sample == name) for name in wanted}


def pooled(runs: list[Measurement]) -> Measurement:
    """Every run's samples together, for the detail tables and the charts."""
    fields = [f.name for f in dataclasses.fields(Measurement) if f.name != "segments"]
    joined: dict[str, Any] = {name: [x for m in runs for x in getattr(m, name)] for name in fields}
    joined["segments"] = {name: [x for m in runs for x in m.segments[name]] for name in SEGMENTS}
    return Measurement(**joined)


def summarise(m: Measurement) -> dict[str, Any]:
    return {
        "whole_turn": {
            "vs_direct": ratios(m.gateway, m.direct),
            "vs_mirrored": ratios(m.gateway, m.mirrored),
            "httpx_vs_direct": ratios(m.through_httpx, m.direct),
        },
        "first_token": {
            "vs_direct": ratios(m.gateway_first_token, m.direct_first_token),
            "vs_mirrored": ratios(m.gateway_first_token, m.mirrored_first_token),
        },
        "segments_p50_ms": {name: latency_summary(v)["p50_ms"] for name, v in m.segments.items()},
    }


def runs_table(runs: list[dict[str, Any]]) -> Table:
    """Each run's p50 ratios, then their median: the guard against one lucky (or unlucky) run."""
    table = Table(
        f"Each run's p50 ratio, CC API over the direct SDK ({len(runs)} runs back to back, fresh processes each)",
        [
            "run",
            "turn p50",
            "first token p50",
            "turn p50, vs + mirror",
            "first token p50, vs + mirror",
            "turns counted",
        ],
    )
    keys = [
        ("whole_turn", "vs_direct"),
        ("first_token", "vs_direct"),
        ("whole_turn", "vs_mirrored"),
        ("first_token", "vs_mirrored"),
    ]
    for n, run in enumerate(runs, 1):
        table.rows.append(
            [str(n), *(f"{run[a][b]['p50']:.2f}x" for a, b in keys), f"{run['metrics']['cc_api_turns_total']:.0f}"]
        )
    table.rows.append(["median", *(f"{median_ratio(runs, a, b):.2f}x" for a, b in keys), ""])
    return table


def median_ratio(runs: list[dict[str, Any]], measure_: str, against: str) -> float:
    return statistics.median(run[measure_][against]["p50"] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--turns",
        type=int,
        default=150,
        help="timed rounds per run (default 150): a default and a streamed turn per side",
    )
    parser.add_argument("--runs", type=int, default=5, help="runs back to back, each on fresh processes (default 5)")
    parser.add_argument(
        "--processes",
        type=int,
        default=PROCESSES,
        help=f"warm Claude Code processes per side, taking the rounds in turn (default {PROCESSES})",
    )
    args = parser.parse_args()
    measured: list[Measurement] = []
    per_run: list[dict[str, Any]] = []
    for n in range(1, args.runs + 1):
        say(f"overhead: run {n} of {args.runs}: starting the gateway and the direct ClaudeSDKClients")
        m, metrics = one_run(args.turns, args.processes)
        measured.append(m)
        per_run.append({**summarise(m), "metrics": metrics})
        turn, first = (per_run[-1][measure_]["vs_direct"]["p50"] for measure_ in ("whole_turn", "first_token"))
        say(f"overhead: run {n}: turn p50 {turn:.2f}x, first token {first:.2f}x")
    m = pooled(measured)
    summary: dict[str, Any] = {
        "target_p50_ratio": TARGET,
        "target_median_p50_ratio": MEDIAN_TARGET,
        **summarise(m),
        "median_p50": {
            measure_: {against: median_ratio(per_run, measure_, against) for against in ("vs_direct", "vs_mirrored")}
            for measure_ in ("whole_turn", "first_token")
        },
    }

    def verdict(measure_: str) -> str:
        each = [run[measure_]["vs_direct"]["p50"] for run in per_run]
        middle = summary["median_p50"][measure_]["vs_direct"]
        ok = max(each) <= TARGET and middle <= MEDIAN_TARGET
        return (
            f"{min(each):.2f}–{max(each):.2f}x, median {middle:.2f}x: "
            f"{'within' if ok else 'NOT within'} {TARGET}x every run and {MEDIAN_TARGET}x the median"
        )

    notes = [
        f"CC API p50 against the direct SDK over {args.runs} runs: whole turn {verdict('whole_turn')}; first token "
        f"{verdict('first_token')}. Every side: "
        + ("one warm Claude Code process" if args.processes == 1 else f"{args.processes} warm Claude Code processes")
        + f" with the same options (the Bash sandbox included), same mock, rotating turns; {WARMUP_TURNS} warm-up "
        "rounds per process and run not counted; the gateway's /metrics scraped after each run (turns counted: its "
        "cc_api_turns_total). The detail tables pool every run's turns."
    ]
    turns = args.turns * args.runs
    report(
        "overhead",
        [
            runs_table(per_run),
            latency_table(turns, m, summary),
            first_token_table(turns, m, summary),
            segment_table(m),
        ],
        {
            "params": {
                "turns": turns,
                "runs": args.runs,
                "turns_per_run": args.turns,
                "processes_per_side": args.processes,
                "warmup_turns": WARMUP_TURNS * args.processes,
            },
            "summary": summary,
            "runs": per_run,
            "direct": latency_summary(m.direct),
            "mirrored": latency_summary(m.mirrored),
            "ccapi": latency_summary(m.gateway),
            "ccapi_with_httpx": latency_summary(m.through_httpx),
            "first_token": {
                "direct": latency_summary(m.direct_first_token),
                "mirrored": latency_summary(m.mirrored_first_token),
                "ccapi": latency_summary(m.gateway_first_token),
            },
            "samples_ms": {
                "direct": [s * 1000 for s in m.direct],
                "mirrored": [s * 1000 for s in m.mirrored],
                "ccapi": [s * 1000 for s in m.gateway],
                "ccapi_with_httpx": [s * 1000 for s in m.through_httpx],
                "direct_first_token": [s * 1000 for s in m.direct_first_token],
                "mirrored_first_token": [s * 1000 for s in m.mirrored_first_token],
                "ccapi_first_token": [s * 1000 for s in m.gateway_first_token],
            },
        },
        notes,
    )


if __name__ == "__main__":
    main()
