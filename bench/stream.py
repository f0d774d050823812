"""SSE fan-out: one session streams 10,000 deltas to 1, 10 and 100 subscribers of ``/events/stream``.

The gateway runs in this process (``ccapi.app.create_app``, served by Sanic exactly as ``cc-api run`` does) with one
measurement hook: its store is a :class:`CountingStore`, a ``SqlStore`` subclass that notes every
``append_events`` transaction and its commit time. The subscribers run in a child process
(``bench.sse_subscribers``). For each subscriber count, a fresh session gets a background turn whose mock reply is
one long text that the mock streams 3 words per delta, as fast as Claude Code reads it.

Reported: events delivered per second (all subscribers together), delivery lag from commit to receipt (both
``time.monotonic()``, CLOCK_MONOTONIC, so comparable across the two processes) and from the event's ``created_at``
stamp (taken at emit, before batching), events persisted per database transaction, and whether every subscriber got
every event exactly once and in order.

    python -m bench.stream [--deltas N] [--subscribers 1 10 100] [--stalled-with 100]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from unittest import mock as patching

import httpx
import orjson
import peewee
from sanic import Sanic

import ccapi.app
from bench.common import (
    Table,
    created_at_epoch,
    latency_summary,
    offline_environ,
    percentile,
    ratio,
    report,
    say,
    scratch_home,
)
from ccapi.config import Settings
from ccapi.events import Event
from ccapi.observability.logs import configure_logging
from ccapi.store import SqlStore
from ccapi.store.databases import sqlite_database
from ccapi.testing import MockModel, Reply
from ccapi.testing.mock_model import WORDS_PER_DELTA
from tests.gateway import free_port, pids_with_env

RUN_TIMEOUT = 300.0


@dataclass(frozen=True)
class Batch:
    events: tuple[tuple[str, int, str], ...]  # session id, seq, created_at
    committed: float


class CountingStore(SqlStore):
    """The gateway's own store, noting each event transaction: which events, committed when."""

    def __init__(self, database: peewee.Database) -> None:
        super().__init__(database)
        self.batches: list[Batch] = []

    async def append_events(self, events: list[Event], *writes: Any) -> None:
        await super().append_events(events, *writes)
        if events:  # not a commit of transcript lines alone
            self.batches.append(Batch(tuple((e.session_id, e.seq, e.created_at) for e in events), time.monotonic()))


async def open_counting_store(settings: Settings) -> CountingStore:
    """Stands in for ``ccapi.store.open_store``: the default SQLite backend, at the configured path."""
    store = CountingStore(sqlite_database(settings.database_path))
    await store.open()
    return store


@dataclass
class FanOut:
    subscribers: int
    events_per_subscriber: list[int]
    exactly_once_in_order: bool
    transactions: int
    events_per_transaction: float
    largest_transaction: int
    produce_seconds: float
    deliver_seconds: float
    delivered_per_second: float
    drain_after_turn_ms: float
    commit_lag: dict[str, float]
    created_lag: dict[str, float]
    gateway_cpu_seconds: float
    subscribers_cpu_seconds: float
    subscribers_verify_cpu_seconds: float
    stalled: Stalled | None = None


@dataclass
class Stalled:
    """The subscriber that stopped reading: cut off, then resumed with ``Last-Event-ID``."""

    cut_off: bool
    before_cut_off: int
    after_resume: int
    exactly_once_in_order: bool


@dataclass
class Bench:
    """What the in-process run needs and what it produces."""

    mock: MockModel
    text: str
    stalled_text: str
    counts: Sequence[int]
    stalled_with: int | None
    runs: list[FanOut] = field(default_factory=list)
    stalled: FanOut | None = None
    error: BaseException | None = None


async def fan_out(
    http: httpx.AsyncClient, store: CountingStore, bench: Bench, subscribers: int, stalled: bool = False
) -> FanOut:
    """One fresh session, ``subscribers`` SSE clients (and one that stops reading), one long streamed turn."""
    session = (await http.post("/api/sessions", json={})).json()["id"]
    after = (await http.get(f"/api/sessions/{session}/events")).json()["last_seq"]
    bench.mock.script(Reply(text=bench.stalled_text if stalled else bench.text))
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.sse_subscribers",
        str(http.base_url),
        session,
        str(after),
        str(subscribers),
        *(["--stalled"] if stalled else []),
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        if (await asyncio.wait_for(child.stdout.readline(), RUN_TIMEOUT)).strip() != b"ready":
            raise RuntimeError("the subscribers did not connect")
        first_batch = len(store.batches)
        cpu = time.process_time()
        started = await http.post(f"/api/sessions/{session}/turns", json={"input": "stream", "background": True})
        if started.status_code != 202:
            raise RuntimeError(f"turn not started: {started.text}")
        received = orjson.loads(await asyncio.wait_for(child.stdout.read(), RUN_TIMEOUT))
        cpu = time.process_time() - cpu
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()
    batches = [b for b in store.batches[first_batch:] if any(sid == session for sid, _, _ in b.events)]
    return measure(subscribers, after, batches, received, cpu)


def expand(runs: list[list[float]]) -> tuple[list[int], list[float]]:
    """The seqs a subscriber received and when, from its ``[first seq, count, time]`` runs."""
    seqs = [seq for first, count, _ in runs for seq in range(int(first), int(first + count))]
    return seqs, [t for _, count, t in runs for _ in range(int(count))]


def measure(subscribers: int, after: int, batches: list[Batch], received: dict[str, Any], gateway_cpu: float) -> FanOut:
    committed = {seq: batch.committed for batch in batches for _, seq, _ in batch.events}
    wall_offset = time.time() - time.monotonic()  # both clocks are system-wide: the subscribers' too
    created = {seq: created_at_epoch(stamp) - wall_offset for batch in batches for _, seq, stamp in batch.events}
    first_commit, last_seq = min(committed.values()), max(committed)
    subs = [expand(runs) for runs in received["subscribers"]]
    commit_lags = [t - committed[seq] for seqs, times in subs for seq, t in zip(seqs, times, strict=True)]
    created_lags = [t - created[seq] for seqs, times in subs for seq, t in zip(seqs, times, strict=True)]
    last_receipt = max(times[-1] for _, times in subs)
    total = sum(len(seqs) for seqs, _ in subs)
    expected = list(range(after + 1, last_seq + 1))
    stalled = received.get("stalled")
    return FanOut(
        subscribers=subscribers,
        events_per_subscriber=sorted({len(seqs) for seqs, _ in subs}),
        exactly_once_in_order=all(seqs == expected for seqs, _ in subs),
        transactions=len(batches),
        events_per_transaction=ratio(len(committed), len(batches)),
        largest_transaction=max(len(b.events) for b in batches),
        produce_seconds=committed[last_seq] - first_commit,
        deliver_seconds=last_receipt - first_commit,
        delivered_per_second=ratio(total, last_receipt - first_commit),
        drain_after_turn_ms=(last_receipt - committed[last_seq]) * 1000,
        commit_lag=latency_summary(commit_lags) | {"max_ms": max(commit_lags) * 1000},
        created_lag={"p50_ms": percentile(created_lags, 50) * 1000, "p99_ms": percentile(created_lags, 99) * 1000},
        gateway_cpu_seconds=gateway_cpu,
        subscribers_cpu_seconds=received["cpu_seconds"],
        subscribers_verify_cpu_seconds=received["verify_cpu_seconds"],
        stalled=None if stalled is None else measure_stalled(stalled, expected),
    )


def measure_stalled(stalled: dict[str, Any], expected: list[int]) -> Stalled:
    before, _ = expand(stalled["before_cut_off"])
    after, _ = expand(stalled["after_resume"])
    return Stalled(
        cut_off=stalled["cut_off"],
        before_cut_off=len(before),
        after_resume=len(after),
        exactly_once_in_order=before + after == expected,
    )


async def drive(app: Sanic, bench: Bench) -> None:
    """Every fan-out in turn, then stop the server (which stops the engines)."""
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.ctx.settings.port}", timeout=RUN_TIMEOUT) as http:
            for count in bench.counts:
                say(f"stream: one long reply to {count} subscriber(s)")
                run = await fan_out(http, app.ctx.store, bench, count)
                bench.runs.append(run)
                say(
                    f"stream: {count} subscriber(s) got {run.events_per_subscriber[0]:,} events each in "
                    f"{run.deliver_seconds:.1f} s ({run.delivered_per_second:,.0f} events/s in all)"
                )
            if bench.stalled_with is not None:
                say(f"stream: one long reply to {bench.stalled_with} subscriber(s) and one that stops reading")
                bench.stalled = await fan_out(http, app.ctx.store, bench, bench.stalled_with, stalled=True)
    except BaseException as exc:  # noqa: BLE001 - re-raised by main once the server is down
        bench.error = exc
    finally:
        app.stop()


def serve(bench: Bench) -> None:
    """Run the gateway in this process, as ``cc-api run`` does, with the counting store swapped in."""
    os.environ["CC_API_PORT"] = str(free_port())
    settings = Settings.from_env()
    configure_logging(settings.log_dir, console=False)
    app = ccapi.app.create_app(settings)

    async def start_bench(app: Sanic) -> None:
        app.add_task(drive(app, bench))

    app.after_server_start(start_bench)
    with patching.patch.object(ccapi.app, "open_store", open_counting_store):
        app.run(host=settings.host, port=settings.port, single_process=True, motd=False, access_log=False)
    leftovers = pids_with_env("CC_API_HOME", os.environ["CC_API_HOME"])
    if leftovers:
        raise RuntimeError(f"Claude CLI processes outlived the gateway: {leftovers}")
    if bench.error is not None:
        raise bench.error


def results_table(runs: list[FanOut], stalled: FanOut | None, deltas: int) -> Table:
    table = Table(
        f"One turn of {deltas:,} deltas, fanned out over /events/stream",
        [
            "subscribers",
            "events each",
            "exactly once, in order",
            "delivered events/s",
            "all delivered in s",
            "commit→receipt p50 ms",
            "commit→receipt p99 ms",
            "created_at→receipt p99 ms",
            "turn streamed in s",
            "per event, × 1 subscriber's",
            "transactions",
            "events / transaction",
            "gateway CPU s",
            "subscribers' CPU s",
        ],
    )
    alone = next((run for run in runs if run.subscribers == 1), None)
    for run in [*runs, *([stalled] if stalled else [])]:
        table.rows.append(
            [
                f"{run.subscribers} + 1 stalled" if run.stalled else run.subscribers,
                ", ".join(f"{n:,}" for n in run.events_per_subscriber),
                "yes" if run.exactly_once_in_order else "NO",
                run.delivered_per_second,
                run.deliver_seconds,
                run.commit_lag["p50_ms"],
                run.commit_lag["p99_ms"],
                run.created_lag["p99_ms"],
                run.produce_seconds,
                ratio(seconds_per_event(run), seconds_per_event(alone)) if alone else math.nan,
                run.transactions,
                run.events_per_transaction,
                run.gateway_cpu_seconds,
                run.subscribers_cpu_seconds,
            ]
        )
    return table


def seconds_per_event(run: FanOut) -> float:
    return run.produce_seconds / run.events_per_subscriber[0]


def stalled_table(run: FanOut) -> Table:
    assert run.stalled is not None
    table = Table(
        f"The stalled subscriber (beside {run.subscribers} that read)",
        ["cut off", "events before the cut-off", "events after resuming with Last-Event-ID", "exactly once, in order"],
    )
    table.rows.append(
        [
            "yes" if run.stalled.cut_off else "no",
            run.stalled.before_cut_off,
            run.stalled.after_resume,
            "yes" if run.stalled.exactly_once_in_order else "NO",
        ]
    )
    return table


NOTES = (
    "*delivered events/s*: events received by all subscribers together, divided by the time from the turn's first "
    "commit to the last receipt. *commit→receipt*: from the end of the transaction that stored an event to its "
    "arrival at a subscriber (an event is published only after its commit). *created_at→receipt*: from the event's "
    "own timestamp, taken when it is emitted, before batching (millisecond resolution). *transactions*: "
    "`append_events` calls for the turn, counted by a `SqlStore` subclass; every one is one SQLite transaction. "
    "*turn streamed in s*: first to last commit of the turn's events, i.e. how fast the gateway took the reply in "
    "from Claude Code while fanning it out; *per event, × 1 subscriber's*: that time per event over the "
    "one-subscriber run's. *gateway CPU s*: CPU time of the process running the gateway (and the mock model's "
    "thread) during the turn; *subscribers' CPU s*: of the subscribers' process while the turn streams (it "
    "shares the cores; checking every frame's id afterwards is not counted: `subscribers_verify_cpu_seconds` in the "
    "JSON).",
    "*+ 1 stalled*: a longer turn (`--stalled-deltas`), and one more subscriber that connects with a 2 KiB receive "
    "window, reads its first event and then nothing until the others are done. The gateway cuts it off once more "
    "than `CC_API_SSE_BUFFER_EVENTS` events wait for it beyond what the socket buffers hold; it then reads what it "
    "had been sent and resumes with `Last-Event-ID`.",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deltas", type=int, default=10_000, help="text deltas in the streamed reply")
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument(
        "--stalled-with", type=int, default=100, help="readers beside the stalled subscriber (0: no stalled run)"
    )
    parser.add_argument(
        "--stalled-deltas",
        type=int,
        default=30_000,
        help="deltas in the stalled run's reply: enough to outgrow the socket buffers and CC_API_SSE_BUFFER_EVENTS",
    )
    args = parser.parse_args()
    text, stalled_text = (
        " ".join(f"w{i % 997}" for i in range(n * WORDS_PER_DELTA)) for n in (args.deltas, args.stalled_deltas)
    )
    say(f"stream: starting the gateway in this process; fan-out to {args.subscribers} subscribers")
    with MockModel() as mock, scratch_home() as home, offline_environ(home, mock.url):
        bench = Bench(mock, text, stalled_text, args.subscribers, args.stalled_with or None)
        serve(bench)
    report(
        "stream",
        [
            results_table(bench.runs, bench.stalled, args.deltas),
            *([stalled_table(bench.stalled)] if bench.stalled else []),
        ],
        {
            "params": {
                "deltas": args.deltas,
                "subscribers": args.subscribers,
                "stalled_with": args.stalled_with,
                "stalled_deltas": args.stalled_deltas,
                "words_per_delta": WORDS_PER_DELTA,
            },
            "runs": [asdict(run) for run in bench.runs],
            "stalled": asdict(bench.stalled) if bench.stalled else None,
        },
        NOTES,
    )


if __name__ == "__main__":
    main()
