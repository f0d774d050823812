"""Scale: many sessions with one turn each, then a subset resumed, on a pool of ``CC_API_MAX_LIVE=8`` engines.

Every new session costs a Claude Code spawn, and with more sessions than live slots every turn also evicts the least
recently used engine; a resumed session was evicted long before, so its turn starts Claude Code again with
``resume``. Clients run ``--concurrency`` turns at a time. A sampler adds up the resident memory (VmRSS) of every
process in the gateway's process group (the gateway and its Claude Code children) every 0.2 s.

    python -m bench.scale [--sessions N] [--resume N] [--concurrency N]

The defaults are sized for ``make bench`` on 2 cores; docs/benchmarks.md extrapolates to 1,000 sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import Progress, Table, latency_summary, ratio, report, running_gateway, say
from ccapi.testing import MockModel
from ccapi.testing.mock_model import last_user_text
from tests.gateway import Gateway

MAX_LIVE = 8
SAMPLE_INTERVAL = 0.2
PHASES = (
    "new sessions 1st quarter",
    "new sessions 2nd quarter",
    "new sessions 3rd quarter",
    "new sessions 4th quarter",
    "resumed sessions",
)


# -- memory ------------------------------------------------------------------------
def group_members(pgid: int) -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
                yield int(entry.name)


def rss_bytes(pid: int) -> int:
    try:
        status = (Path("/proc") / str(pid) / "status").read_text()
    except OSError:
        return 0
    line = next((line for line in status.splitlines() if line.startswith("VmRSS:")), None)
    return int(line.split()[1]) * 1024 if line else 0


@dataclass
class MemorySampler:
    """Peak group RSS and process count, per phase, on a background thread."""

    pgid: int
    phase: str = PHASES[0]
    peak_rss: dict[str, int] = field(default_factory=dict)
    peak_processes: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            pids = list(group_members(self.pgid))
            total = sum(rss_bytes(pid) for pid in pids)
            self.peak_rss[self.phase] = max(self.peak_rss.get(self.phase, 0), total)
            self.peak_processes[self.phase] = max(self.peak_processes.get(self.phase, 0), len(pids))


# -- load --------------------------------------------------------------------------
async def turn(http: httpx.AsyncClient, session_id: str, text: str) -> float:
    began = time.perf_counter()
    response = await http.post(f"/api/sessions/{session_id}/turns", json={"input": text})
    elapsed = time.perf_counter() - began
    if response.status_code != 200 or response.json()["status"] != "completed":
        raise RuntimeError(f"turn failed in {session_id}: {response.status_code} {response.text}")
    return elapsed


async def new_sessions(
    http: httpx.AsyncClient, count: int, concurrency: int, sampler: MemorySampler
) -> tuple[list[str], list[float], float]:
    """Create ``count`` sessions with one turn each; the sampler's phase follows the quarters."""
    ids: list[str] = [""] * count
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    progress = Progress("new sessions", count)

    async def one(n: int) -> None:
        async with gate:
            ids[n] = (await http.post("/api/sessions", json={"metadata": {"n": n}})).json()["id"]
            latencies.append(await turn(http, ids[n], f"first turn of session {n}"))
            sampler.phase = PHASES[min(3, len(latencies) * 4 // count)]
            progress.step()

    began = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    return ids, latencies, time.perf_counter() - began


async def resume_sessions(http: httpx.AsyncClient, ids: list[str], concurrency: int) -> tuple[list[float], float]:
    """One more turn in each of ``ids``: sessions evicted long ago, so each resumes its Claude Code session."""
    gate = asyncio.Semaphore(concurrency)
    progress = Progress("resumed sessions", len(ids))

    async def one(n: int, session_id: str) -> float:
        async with gate:
            seconds = await turn(http, session_id, f"second turn of session {n}")
            progress.step()
            return seconds

    began = time.perf_counter()
    latencies = await asyncio.gather(*(one(n, sid) for n, sid in enumerate(ids)))
    return list(latencies), time.perf_counter() - began


def resumed_with_context(mock: MockModel, resumed: int) -> int:
    """How many resumed turns reached the model with their session's first turn in the conversation."""
    found = 0
    for request in mock.message_requests(include_side=False):
        text = last_user_text(request.body)
        if text.startswith("second turn of session "):
            first = text.replace("second", "first", 1)
            found += any(first in str(message.get("content")) for message in request.body["messages"])
    return min(found, resumed)


def disk_usage(gateway: Gateway) -> dict[str, int]:
    """The gateway's database files and Claude Code's own local session files."""
    database = gateway.home / "cc-api"
    claude = gateway.home / "user" / ".claude"
    return {
        "database_bytes": sum(p.stat().st_size for p in database.glob("sessions.db*")),
        "claude_local_bytes": sum(p.stat().st_size for p in claude.rglob("*") if p.is_file()),
    }


async def run(gateway: Gateway, mock: MockModel, args: argparse.Namespace) -> dict[str, Any]:
    assert gateway.process is not None
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=120, limits=limits) as http:
        with MemorySampler(gateway.process.pid) as sampler:
            ids, first, first_seconds = await new_sessions(http, args.sessions, args.concurrency, sampler)
            sampler.phase = PHASES[4]
            resumed, resume_seconds = await resume_sessions(http, ids[: args.resume], args.concurrency)
        health = (await http.get("/healthz")).json()
    return {
        "first": first,
        "first_seconds": first_seconds,
        "resumed": resumed,
        "resume_seconds": resume_seconds,
        "peak_rss": sampler.peak_rss,
        "peak_processes": sampler.peak_processes,
        "health_after": health,
        "resumed_with_context": resumed_with_context(mock, args.resume),
        **disk_usage(gateway),
    }


# -- report -------------------------------------------------------------------------
def tables(args: argparse.Namespace, r: dict[str, Any]) -> list[Table]:
    first, resumed = latency_summary(r["first"]), latency_summary(r["resumed"])
    load = Table(
        f"{args.sessions} sessions × 1 turn, then {args.resume} resumed; CC_API_MAX_LIVE={MAX_LIVE}, "
        f"{args.concurrency} concurrent clients",
        ["phase", "turns", "turns/s", "p50 ms", "p99 ms"],
    )
    load.rows += [
        [
            "new session, first turn",
            len(r["first"]),
            ratio(len(r["first"]), r["first_seconds"]),
            first["p50_ms"],
            first["p99_ms"],
        ],
        [
            "evicted session, resumed turn",
            len(r["resumed"]),
            ratio(len(r["resumed"]), r["resume_seconds"]),
            resumed["p50_ms"],
            resumed["p99_ms"],
        ],
    ]
    memory = Table(
        "Peak resident memory of the gateway's process group (gateway + Claude Code children)",
        ["phase", "sessions so far", "peak RSS MiB", "peak processes"],
    )
    for n, phase in enumerate(PHASES):
        so_far = args.sessions if n == 4 else args.sessions * (n + 1) // 4
        memory.rows.append([phase, so_far, r["peak_rss"].get(phase, 0) / 2**20, r["peak_processes"].get(phase, 0)])
    disk = Table("Disk", ["store", "total MiB", "per session KiB"])
    disk.rows += [
        [
            "CC API database (sessions.db, -wal, -shm)",
            r["database_bytes"] / 2**20,
            r["database_bytes"] / args.sessions / 1024,
        ],
        [
            "Claude Code's local files (CLAUDE_CONFIG_DIR)",
            r["claude_local_bytes"] / 2**20,
            r["claude_local_bytes"] / args.sessions / 1024,
        ],
    ]
    return [load, memory, disk]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--resume", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=MAX_LIVE)
    args = parser.parse_args()
    say(
        f"scale: {args.sessions} sessions, then {args.resume} resumed, {args.concurrency} at a time; "
        f"starting the gateway"
    )
    with MockModel() as mock, running_gateway(mock.url, CC_API_MAX_LIVE=str(MAX_LIVE)) as gateway:
        results = asyncio.run(run(gateway, mock, args))
        say("scale: load done; stopping the gateway")
    per_session = ratio(results["first_seconds"], args.sessions)
    per_resume = ratio(results["resume_seconds"], args.resume)
    notes = [
        f"{results['resumed_with_context']} of {args.resume} resumed turns reached the model with their "
        f"session's first turn in the conversation. Live engines after the run: "
        f"{results['health_after'].get('live_engines', results['health_after'])}.",
        f"Extrapolated at the measured rates: 1,000 sessions ≈ {1000 * per_session / 60:.1f} min, "
        f"200 resumed ≈ {200 * per_resume / 60:.1f} min.",
    ]
    report(
        "scale",
        tables(args, results),
        {
            "params": vars(args) | {"max_live": MAX_LIVE, "sample_interval_s": SAMPLE_INTERVAL},
            "new_sessions": latency_summary(results["first"]) | {"seconds": results["first_seconds"]},
            "resumed": latency_summary(results["resumed"]) | {"seconds": results["resume_seconds"]},
            "peak_rss_bytes": results["peak_rss"],
            "peak_processes": results["peak_processes"],
            "resumed_with_context": results["resumed_with_context"],
            "database_bytes": results["database_bytes"],
            "claude_local_bytes": results["claude_local_bytes"],
            "health_after": results["health_after"],
        },
        notes,
    )


if __name__ == "__main__":
    main()
