"""Two builds of the gateway side by side: a change measured against what it changes, in one run.

    python -m bench.ab BASE [CHANGED] [--sessions 4] [--rounds 120] [--pairs 2] [--stream]

Each build runs as a gateway of its own, started from a git worktree of its revision (``CHANGED`` omitted: this
working tree, uncommitted edits included), both on one mock model. Each holds ``--sessions`` warm sessions, so each
side's turns spread over as many Claude Code processes: one process runs a few per cent faster or slower than
another for its whole life (two identical direct clients differ by up to ~3 % here), which one process per side
would read as the change's effect. Default turns alternate between the builds, and which goes first alternates
every round, so both see the same machine and the same growing conversations. A pair is two runs with the
gateways started in opposite order (which one was started first moved a run by ~1.4 % in one set). Each run prints
its p50 ratio, changed over base; the median of the runs is the result. ``--stream`` times streamed turns to their
first ``message.delta`` instead (time to first token, as ``bench.overhead`` does). Before-and-after runs, however
careful, differ by more than most changes left to make: the host's speed moves by half between runs an hour apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import REPO, Table, machine_info, machine_line, running_gateway, say
from bench.http1 import Http1
from bench.overhead import PROMPT, WARMUP_TURNS, gateway_first_token, gateway_turn
from ccapi.testing import MockModel
from tests.gateway import Gateway


@dataclass(frozen=True)
class Build:
    name: str
    """``base`` or ``changed``."""
    revision: str
    tree: Path


@dataclass(frozen=True)
class RunResult:
    first_started: str
    p50_ms: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.p50_ms["changed"] / self.p50_ms["base"]


@contextlib.contextmanager
def checked_out(revision: str | None) -> Iterator[Path]:
    """The source tree of ``revision`` (a temporary worktree, removed afterwards), or this one for ``None``."""
    if revision is None:
        yield REPO
        return
    with tempfile.TemporaryDirectory(prefix="ccapi-ab-") as scratch:
        tree = Path(scratch) / "tree"
        git = ["git", "-C", str(REPO)]
        subprocess.run([*git, "worktree", "add", "--detach", "--quiet", str(tree), revision], check=True)
        try:
            yield tree
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=False)


async def timed(http: Http1, session_id: str, text: str, stream: bool) -> float:
    """A default turn's time, or a streamed turn's time to its first delta."""
    if stream:
        return await gateway_first_token(http, session_id, text)
    return (await gateway_turn(http, session_id, text)).seconds


async def alternate(
    gateways: dict[str, Gateway], mock: MockModel, sessions: int, rounds: int, stream: bool
) -> dict[str, float]:
    """Each round, one turn in each session of each build, the builds taking turns within the round and going first
    every other round; returns each build's p50 in milliseconds."""
    seconds: dict[str, list[float]] = {name: [] for name in gateways}
    async with contextlib.AsyncExitStack() as stack:
        lean = {
            name: await stack.enter_async_context(Http1("127.0.0.1", gateway.port))
            for name, gateway in gateways.items()
        }
        ids = {
            name: [gateway.client.post("/api/sessions", json={}).json()["id"] for _ in range(sessions)]
            for name, gateway in gateways.items()
        }
        names = list(gateways)
        gc.collect()
        gc.freeze()  # the mock's and the clients' heap out of the collector, as bench.overhead does
        try:
            for n in range(WARMUP_TURNS + rounds):
                order = names if n % 2 == 0 else names[::-1]
                for index in range(sessions):
                    for name in order:
                        elapsed = await timed(lean[name], ids[name][index], PROMPT.format(n=n), stream)
                        if n >= WARMUP_TURNS:
                            seconds[name].append(elapsed)
                mock.clear()
        finally:
            gc.unfreeze()
    return {name: statistics.median(values) * 1000 for name, values in seconds.items()}


def one_run(builds: list[Build], sessions: int, rounds: int, stream: bool) -> RunResult:
    """Fresh gateways, started in ``builds``' order, on a fresh mock."""
    with MockModel() as mock, contextlib.ExitStack() as stack:
        gateways = {
            build.name: stack.enter_context(running_gateway(mock.url, PYTHONPATH=str(build.tree))) for build in builds
        }
        p50 = asyncio.run(alternate(gateways, mock, sessions, rounds, stream))
    return RunResult(builds[0].name, p50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the revision to compare against (a commit, a branch, HEAD~1, ...)")
    parser.add_argument("changed", nargs="?", help="the revision with the change (default: this working tree)")
    parser.add_argument("--sessions", type=int, default=4, help="warm sessions per build (default 4)")
    parser.add_argument("--rounds", type=int, default=120, help="timed rounds per run (default 120)")
    parser.add_argument("--pairs", type=int, default=2, help="pairs of runs, each build started first once (default 2)")
    parser.add_argument("--stream", action="store_true", help="time streamed turns to their first delta instead")
    args = parser.parse_args()
    results: list[RunResult] = []
    with checked_out(args.base) as base_tree, checked_out(args.changed) as changed_tree:
        base = Build("base", args.base, base_tree)
        changed = Build("changed", args.changed or "working tree", changed_tree)
        for n in range(2 * args.pairs):
            builds = [base, changed] if n % 2 == 0 else [changed, base]
            say(f"ab: run {n + 1} of {2 * args.pairs}, {builds[0].name} started first")
            results.append(one_run(builds, args.sessions, args.rounds, args.stream))
            say(f"ab: run {n + 1}: changed / base p50 {results[-1].ratio:.3f}x")
    table = Table(
        f"{changed.revision} against {base.revision}: "
        + ("streamed turns' first token" if args.stream else "warm default turns")
        + f", p50, {args.sessions} sessions a build, "
        f"{args.rounds} rounds a run ({args.sessions * args.rounds} turns a build)",
        ["run", "started first", "base p50 ms", "changed p50 ms", "changed / base"],
    )
    for n, result in enumerate(results, 1):
        table.rows.append(
            [str(n), result.first_started, result.p50_ms["base"], result.p50_ms["changed"], f"{result.ratio:.3f}x"]
        )
    table.rows.append(["median", "", None, None, f"{statistics.median(r.ratio for r in results):.3f}x"])
    print("\n\n".join([machine_line(machine_info()), table.render()]), flush=True)


if __name__ == "__main__":
    main()
