"""Shared bench plumbing: offline gateways and SDK options, statistics, tables and result files.

Every benchmark runs the real gateway, the real SDK and its bundled Claude Code CLI against the bundled mock model,
on loopback, exactly as the integration tests do (it imports ``tests.gateway`` rather than copying it), so the
numbers are reproducible on any machine with no network and no Claude account.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import claude_agent_sdk
import orjson
from claude_agent_sdk import ClaudeAgentOptions
from claude_agent_sdk._cli_version import __cli_version__

import ccapi
from ccapi.engine.bridge import ToolResolver
from ccapi.engine.sandbox import SandboxPolicy
from ccapi.engine.spec import EngineSpec, build_options, engine_environment
from ccapi.toolpolicy import PermissionPolicy
from tests.gateway import SANDBOX_OFF, Gateway, test_environment

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
MODEL = "claude-sonnet-4-5"
TOOL_TIMEOUT = 300.0


# -- processes -------------------------------------------------------------------
@contextlib.contextmanager
def scratch_home() -> Iterator[Path]:
    """A throw-away state directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="ccapi-bench-") as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def running_gateway(mock_url: str, **env: str | None) -> Iterator[Gateway]:
    """The real gateway subprocess on the mock, as shipped (the test gateways' Bash sandbox is off, a benchmark's
    is at its default); fails loudly if a Claude CLI outlives it."""
    with scratch_home() as home:
        gateway = Gateway(home, mock_url, **{"CC_API_SANDBOX": None, **env}).start()
        try:
            yield gateway
        finally:
            gateway.stop()
            gateway.client.close()
            leftovers = gateway.leftover_processes()
            if leftovers:
                raise RuntimeError(f"Claude CLI processes outlived the gateway: {leftovers}")


@contextlib.contextmanager
def offline_environ(home: Path, mock_url: str | None = None) -> Iterator[None]:
    """This process's environment as the test gateways get it, for the SDK or the gateway run in-process:
    the SDK merges ``os.environ`` into every CLI child, so nothing of the caller's Claude login may leak."""
    saved = dict(os.environ)
    (home / "user").mkdir(parents=True, exist_ok=True)
    # from the caller's environment, clear it only afterwards; as shipped: the Bash sandbox at its default
    environment = {k: v for k, v in test_environment(home, mock_url).items() if k not in SANDBOX_OFF}
    os.environ.clear()
    os.environ.update(environment)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def sdk_options(
    mock_url: str,
    cwd: Path,
    *,
    system_prompt: str | None = None,
    tools: Sequence[dict[str, Any]] = (),
    resolve_tool: ToolResolver | None = None,
    max_turns: int = 8,
    sandbox: SandboxPolicy | None = None,
) -> ClaudeAgentOptions:
    """Options built by the gateway's own builder, so a direct-SDK run differs from CC API only in what the
    gateway adds around the SDK (HTTP, events, store), not in how Claude Code is configured. ``sandbox``: the
    Bash sandbox and deny rules a gateway on this machine gives Claude Code (``SandboxPolicy.detect``)."""
    spec = EngineSpec(
        session_id="bench",
        model=MODEL,
        system_prompt=system_prompt,
        cwd=str(cwd),
        permission_mode=PermissionPolicy.detect().mode_for("bypassPermissions", "all"),
        max_turns=max_turns,
        env=engine_environment(mock_url, TOOL_TIMEOUT),
        tools=tuple(tools),
        resolve_tool=resolve_tool,
        sandbox=sandbox.settings if sandbox else None,
        denied_tools=sandbox.denied_tools if sandbox else (),
    )
    return build_options(spec, lambda _line: None)


# -- measuring -------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: with few samples p99 is an observed value, never an interpolation."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def created_at_epoch(created_at: str) -> float:
    """An event's ``created_at`` (ISO 8601, UTC, ``Z``) as epoch seconds, to compare with ``time.time()``."""
    return datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp()


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p99 / mean in milliseconds."""
    return {
        "n": len(seconds),
        "p50_ms": percentile(seconds, 50) * 1000,
        "p99_ms": percentile(seconds, 99) * 1000,
        "mean_ms": sum(seconds) / len(seconds) * 1000 if seconds else math.nan,
    }


# -- progress --------------------------------------------------------------------
STARTED = time.monotonic()


def say(message: str) -> None:
    """One progress line on stderr, flushed at once, stamped with the seconds since this benchmark started: the
    tables go to stdout, so ``python -m bench.x > table.md`` still captures only them."""
    print(f"[{time.monotonic() - STARTED:7.1f} s] {message}", file=sys.stderr, flush=True)


@dataclass
class Progress:
    """Counts the steps of one phase and says so every ``every`` steps (a tenth by default), at least every
    ``interval`` seconds, and at the end, with the rate and the estimated time left."""

    label: str
    total: int
    every: int = 0
    interval: float = 15.0
    done: int = 0
    began: float = field(default_factory=time.monotonic)
    last_said: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.every = self.every or max(1, self.total // 10)
        say(f"{self.label}: 0/{self.total}")

    def step(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.done % self.every and self.done != self.total and now - self.last_said < self.interval:
            return
        self.last_said = now
        elapsed = now - self.began
        rate = self.done / elapsed if elapsed > 0 else math.inf
        eta = (self.total - self.done) / rate if self.done < self.total else 0.0
        say(
            f"{self.label}: {self.done}/{self.total} ({self.done * 100 // max(1, self.total)}%), "
            f"{rate:.2f}/s, {elapsed:.1f} s elapsed" + (f", ~{eta:.0f} s left" if self.done < self.total else "")
        )


# -- machine ---------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """What every table states, so a number is never quoted without the machine that produced it."""
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemTotal:")))
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 2**20, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "claude_agent_sdk": claude_agent_sdk.__version__,
        "claude_code_cli": __cli_version__,
        "cc_api": ccapi.__version__,
        "git_commit": _git_commit(),
    }


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def machine_line(info: dict[str, Any]) -> str:
    return (
        f"Machine: {info['cores']} cores, {info['ram_gib']} GiB RAM, {info['cpu']}; Python {info['python']}; "
        f"claude-agent-sdk {info['claude_agent_sdk']}, bundled Claude Code {info['claude_code_cli']}; "
        f"cc-api {info['cc_api']} ({info['git_commit']}); mock model, loopback only."
    )


# -- reporting -------------------------------------------------------------------
Cell = str | int | float | None


@dataclass
class Table:
    title: str
    headers: Sequence[str]
    rows: list[Sequence[Cell]] = field(default_factory=list)

    def render(self) -> str:
        """A Markdown table, padded so it also reads well in a terminal."""
        cells = [list(self.headers)] + [[_cell(value) for value in row] for row in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.headers))]
        lines = [
            "| " + " | ".join(_pad(c, w, i) for i, (c, w) in enumerate(zip(row, widths, strict=True))) + " |"
            for row in cells
        ]
        lines.insert(
            1, "|" + "|".join("-" * (w + 1) + ":" if i else ":" + "-" * (w + 1) for i, w in enumerate(widths)) + "|"
        )
        return f"**{self.title}**\n\n" + "\n".join(lines)


def _pad(text: str, width: int, column: int) -> str:
    """The first column (labels) is left-aligned, numbers right-aligned."""
    return text.rjust(width) if column else text.ljust(width)


def _cell(value: Cell) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return value


def report(name: str, tables: Sequence[Table], data: dict[str, Any], notes: Sequence[str] = ()) -> None:
    """Print the tables and write ``bench/results/<name>.json`` (everything measured) and ``<name>.md``
    (the printed text, which docs/benchmarks.md quotes)."""
    info = machine_info()
    text = "\n\n".join([f"### {name}", machine_line(info), *(t.render() for t in tables), *notes]) + "\n"
    print(text, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text)
    payload = {
        "benchmark": name,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        **data,
    }
    (RESULTS / f"{name}.json").write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n")
