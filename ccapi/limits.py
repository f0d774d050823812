"""Subscription usage windows as Claude Code last reported them, kept gateway-wide.

On subscription credentials Claude Code reads Anthropic's unified rate-limit headers and
reports each change as a ``RateLimitEvent`` (a ``rate_limit`` event in the session's log).
The gateway keeps the latest state per window so it can show it (``GET /api/limits``,
``/healthz``, ``cc-api status``, compat reply headers) and, while a window is rejected,
refuse new turns at once instead of starting Claude Code only to be refused.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ccapi.errors import ApiError

WINDOW_LABELS = {
    "five_hour": "5-hour",
    "seven_day": "7-day",
    "seven_day_opus": "7-day Opus",
    "seven_day_sonnet": "7-day Sonnet",
    "overage": "overage",
}
#: How long a rejection without a reset time holds new turns back before Claude Code is asked again.
UNKNOWN_RESET_SECONDS = 60
_OVERAGE_OPEN = ("allowed", "allowed_warning")
_AUTH_MODES = {
    "CLAUDE_CODE_OAUTH_TOKEN": "subscription",
    "claude-login": "subscription",
    "ANTHROPIC_API_KEY": "api_key",
    "ANTHROPIC_AUTH_TOKEN": "api_key",
    "mock-model": "mock",
}
_AUTH_NOTES = {
    "subscription": "Claude subscription: usage is metered in windows, reported by Claude Code as it talks to Claude",
    "api_key": "API key: billed per token, no subscription windows (see each turn's cost_usd)",
    "mock": "the bundled mock model: no real usage",
    "unknown": "no Claude credentials found, so no usage to report",
}


def iso(timestamp: int | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def auth_mode(credential_source: str | None) -> str:
    """What kind of account the gateway's children use, from where the credentials were found."""
    return _AUTH_MODES.get(credential_source or "", "unknown")


@dataclass(frozen=True)
class WindowState:
    """The latest report about one usage window; ``resets_at`` in Unix seconds."""

    window: str
    status: str
    utilization: float | None = None
    resets_at: int | None = None
    overage_status: str | None = None
    overage_resets_at: int | None = None
    updated_at: float = 0.0

    def blocks(self, now: float) -> bool:
        """Rejected, not yet reset, and no overage to fall back on."""
        if self.status != "rejected" or self.overage_status in _OVERAGE_OPEN:
            return False
        until = self.resets_at if self.resets_at is not None else self.updated_at + UNKNOWN_RESET_SECONDS
        return until > now

    def retry_after(self, now: float) -> int:
        """Whole seconds until the window resets (at least 1)."""
        until = self.resets_at if self.resets_at is not None else self.updated_at + UNKNOWN_RESET_SECONDS
        return max(1, math.ceil(until - now))

    def summary(self, now: float) -> str:
        """``5-hour window 91% used, resets 09:13 UTC``."""
        label = WINDOW_LABELS.get(self.window, self.window)
        used = "" if self.utilization is None else f" {round(self.utilization * 100)}% used"
        state = {"rejected": " LIMIT REACHED", "allowed_warning": " (warning)"}.get(self.status, "")
        if self.resets_at is None:
            when = ""
        elif self.resets_at <= now:
            when = f", reset at {_clock(self.resets_at, now)} (no report since)"
        else:
            when = f", resets {_clock(self.resets_at, now)}"
        return f"{label} window{used}{state}{when}"

    def to_dict(self, now: float) -> dict[str, Any]:
        body: dict[str, Any] = {
            "window": self.window,
            "status": self.status,
            "utilization": self.utilization,
            "resets_at": iso(self.resets_at),
            "blocking": self.blocks(now),
            "summary": self.summary(now),
            "updated_at": iso(int(self.updated_at)),
        }
        if self.overage_status is not None:
            body["overage_status"] = self.overage_status
            body["overage_resets_at"] = iso(self.overage_resets_at)
        return body


def _clock(timestamp: int, now: float) -> str:
    """``09:13 UTC`` within a day, ``Tue 09:13 UTC`` further out."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return f"{moment:%H:%M} UTC" if abs(timestamp - now) < 86400 else f"{moment:%a %d %b %H:%M} UTC"


def epoch(value: str | None) -> int | None:
    """The inverse of ``iso``."""
    return None if value is None else int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


class RateLimited(ApiError):
    """A subscription window is spent: retry after ``Retry-After`` seconds, not before."""

    status, type = 429, "rate_limited"

    def __init__(self, message: str, window: str | None, resets_at: str | None, retry_after: int) -> None:
        details = {"window": window, "resets_at": resets_at, "retry_after": retry_after}
        super().__init__(message, details, headers={"Retry-After": str(retry_after)})
        self.window = window
        self.resets_at = resets_at
        self.retry_after = retry_after

    @classmethod
    def from_error(cls, error: dict[str, Any], now: float | None = None) -> RateLimited:
        """From a failed turn's ``rate_limited`` error."""
        now = time.time() if now is None else now
        reset = epoch(error.get("resets_at"))
        retry_after = max(1, math.ceil(reset - now)) if reset is not None else UNKNOWN_RESET_SECONDS
        return cls(
            str(error.get("message") or "the Claude usage limit was reached"),
            error.get("window"),
            error.get("resets_at"),
            retry_after,
        )


class LimitBoard:
    """The latest state per window, for the whole gateway process."""

    def __init__(self, auth: str = "unknown") -> None:
        self.auth = auth
        self._windows: dict[str, WindowState] = {}

    def record(self, data: dict[str, Any], now: float | None = None) -> None:
        """Take in one ``rate_limit`` event's data."""
        now = time.time() if now is None else now
        for name, other in (data.get("windows") or {}).items():
            if name == data["window"]:
                continue
            known = self._windows.get(name)
            status = other.get("status") or (known.status if known else "allowed")
            self._windows[name] = WindowState(
                name, status, other.get("utilization"), epoch(other.get("resets_at")), updated_at=now
            )
        self._windows[data["window"]] = WindowState(
            data["window"],
            data["status"],
            data.get("utilization"),
            epoch(data.get("resets_at")),
            data.get("overage_status"),
            epoch(data.get("overage_resets_at")),
            updated_at=now,
        )

    def windows(self) -> list[WindowState]:
        return sorted(
            self._windows.values(),
            key=lambda w: list(WINDOW_LABELS).index(w.window) if w.window in WINDOW_LABELS else len(WINDOW_LABELS),
        )

    def blocking(self, now: float | None = None) -> WindowState | None:
        """The rejected window that holds turns back right now (the one that resets last)."""
        now = time.time() if now is None else now
        blocked = [w for w in self._windows.values() if w.blocks(now)]
        return max(blocked, key=lambda w: w.retry_after(now), default=None)

    def check(self, now: float | None = None) -> None:
        """Raise ``RateLimited`` while a window is rejected, so no Claude Code process is asked."""
        now = time.time() if now is None else now
        window = self.blocking(now)
        if window is not None:
            raise RateLimited(
                f"Claude usage limit reached: {window.summary(now)}; retry after the reset",
                window.window,
                iso(window.resets_at),
                window.retry_after(now),
            )

    def warning(self, now: float | None = None) -> WindowState | None:
        """The most used window that is in warning (or rejected), for reply headers."""
        now = time.time() if now is None else now
        flagged = [
            w
            for w in self._windows.values()
            if w.status in ("allowed_warning", "rejected") and (w.resets_at is None or w.resets_at > now)
        ]
        return max(flagged, key=lambda w: w.utilization or 0.0, default=None)

    def warning_headers(self, now: float | None = None) -> dict[str, str]:
        """``x-cc-ratelimit-*`` for a compat reply while a window is in warning, for clients to log."""
        window = self.warning(now)
        if window is None:
            return {}
        headers = {"x-cc-ratelimit-status": window.status, "x-cc-ratelimit-window": window.window}
        if window.utilization is not None:
            headers["x-cc-ratelimit-utilization"] = f"{window.utilization:g}"
        if window.resets_at is not None:
            headers["x-cc-ratelimit-reset"] = iso(window.resets_at) or ""
        return headers

    def view(self, now: float | None = None) -> dict[str, Any]:
        """``GET /api/limits``: the auth mode and what was reported, nothing invented."""
        now = time.time() if now is None else now
        blocking = self.blocking(now)
        return {
            "auth": self.auth,
            "note": _AUTH_NOTES.get(self.auth, _AUTH_NOTES["unknown"]),
            "windows": [w.to_dict(now) for w in self.windows()],
            "rate_limited": blocking is not None,
            "retry_after": blocking.retry_after(now) if blocking is not None else None,
        }

    def health(self, now: float | None = None) -> dict[str, Any]:
        """The ``/healthz`` line: one summary string per reported window."""
        now = time.time() if now is None else now
        return {
            "auth": self.auth,
            "rate_limited": self.blocking(now) is not None,
            "summary": "; ".join(w.summary(now) for w in self.windows()) or None,
        }
