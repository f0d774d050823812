"""Human and JSON renderings of launcher results, service plans and log lines, for ``cc-api``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import orjson

from ccapi.daemon.launcher import GatewayStatus
from ccapi.daemon.service import ServicePlan
from ccapi.paths import StatePaths

_LOG_HEAD = ("timestamp", "level", "event", "logger", "exception")


def to_json(value: Any) -> str:
    """Dataclasses (nested too) and paths as indented JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return orjson.dumps(value, default=str, option=orjson.OPT_INDENT_2).decode()


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s"


def status_json(status: GatewayStatus, paths: StatePaths) -> str:
    return to_json({**dataclasses.asdict(status), "home": paths.home, "log_file": paths.log_file})


def render_status(status: GatewayStatus, paths: StatePaths) -> str:
    state = status.state
    if status.starting_pid is not None and not status.running:
        return f"cc-api is starting (pid {status.starting_pid}; not serving yet; home {paths.home})"
    if not status.running or state is None:
        return f"cc-api is not running (home {paths.home})"
    started = datetime.fromtimestamp(state.started_at, UTC).astimezone()
    rows = [
        ("url", state.url),
        ("pid", str(state.pid)),
        ("version", state.version),
        ("uptime", f"{duration(status.uptime_seconds or 0)} (since {started:%Y-%m-%d %H:%M:%S %Z})"),
        ("sessions", _sessions(status)),
        *_figures(status),
        ("home", str(paths.home)),
        ("log", str(paths.log_file)),
    ]
    if status.limits:
        rows.append(("limits", status.limits))
    if status.problem:
        rows.append(("problem", status.problem))
    if status.mock_model:
        rows.insert(0, ("model", "the bundled MOCK MODEL (--mock-model): replies are scripted, not from Claude"))
    health = "healthy" if status.healthy else "NOT healthy"
    return "\n".join([f"cc-api is running ({health})", *(f"  {name:<9} {value}" for name, value in rows)])


def _sessions(status: GatewayStatus) -> str:
    live = "?" if status.live_sessions is None else str(status.live_sessions)
    if status.figures is not None and status.figures.max_live is not None:
        live += f" live (max {status.figures.max_live})"
    else:
        live += " live"
    stored = "?" if status.persisted_sessions is None else str(status.persisted_sessions)
    return f"{live}, {stored}{'+' if status.persisted_sessions_more else ''} stored"


def _figures(status: GatewayStatus) -> list[tuple[str, str]]:
    """Turns in the last hour (since start, for a gateway younger than that: the count lives in its memory); tokens,
    cost and the compat warm share since the gateway started."""
    figures = status.figures
    if figures is None:
        return []
    tokens = figures.tokens
    window = "in the last hour" if (status.uptime_seconds or 0) >= 3600 else "since start"
    rows = [
        ("turns", f"{figures.turns_last_hour} {window}, {figures.failed_last_hour} failed"),
        (
            "tokens",
            f"{_count(tokens.get('input', 0))} in, {_count(tokens.get('output', 0))} out, "
            f"{_count(tokens.get('cache_read', 0))} cache read, ${figures.cost_usd:.2f} since start",
        ),
    ]
    if figures.compat_warm_share is not None:
        rows.append(
            ("compat", f"{figures.compat_requests} requests, {figures.compat_warm_share:.0%} to a warm session")
        )
    return rows


def _count(n: int) -> str:
    """``950``, ``12.3k``, ``4.1M``."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def render_service_plan(plan: ServicePlan, install: bool) -> str:
    """What ``--dry-run`` would do, as comments around the file and the commands."""
    if install:
        steps = plan.install_steps
        head = [
            f"# would write {plan.destination}:",
            plan.content.rstrip(),
            f"# would create {plan.env_file} (mode 0600) if missing",
        ]
    else:
        steps = (*plan.stop_steps, *plan.reload_steps)
        head = [f"# would remove {plan.destination} (and keep {plan.env_file})"]
    return "\n".join([*head, "# would run:", *(str(step) for step in steps)])


def render_log_line(line: str) -> str:
    """``time LEVEL event key=value ...`` for a JSON log line; anything else unchanged."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    if not isinstance(event, dict):
        return line
    timestamp = str(event.get("timestamp", "")).replace("T", " ")[:19]
    level = str(event.get("level", "")).upper()
    name = event.get("event", "")
    if event.get("logger") and not str(event["logger"]).startswith("ccapi"):
        name = f"[{event['logger']}] {name}"
    fields = " ".join(
        f"{key}={_field(value)}" for key, value in event.items() if key not in _LOG_HEAD and value is not None
    )
    text = " ".join(part for part in (timestamp, f"{level:<7}", str(name), fields) if part)
    return f"{text}\n{event['exception']}" if event.get("exception") else text


def _field(value: Any) -> str:
    if isinstance(value, str):
        return value if value and " " not in value else orjson.dumps(value).decode()
    return orjson.dumps(value).decode()
