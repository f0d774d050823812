"""The gateway's Prometheus instruments, one set per app on a registry of its own.

Layers record through the small methods of ``Metrics`` (a turn ended, an engine started, a
compat request was routed); what is a level rather than an event (live sessions, SSE
subscribers, usage windows) is read from its owner at scrape time, so nothing on the turn path
keeps it up to date. Recording is a few counter increments on pre-bound children: no label
tuple is built per call, nothing blocks. Figures are per process; several hosts each report
their own (docs/operations.md says how to sum them).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

# ``*_created`` samples double every series and no dashboard reads them.
prometheus_client.disable_created_metrics()

#: The text format every Prometheus version reads (1.0.0 only adds escaping our names never need).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
TURN_SECONDS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
FIRST_TOKEN_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: Usage keys of a turn (``ccapi.engine.translate.USAGE_KEYS``) → the ``type`` label of the token counter.
TOKEN_TYPES = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_input_tokens": "cache_read",
    "cache_creation_input_tokens": "cache_creation",
}
TURN_STATUSES = ("completed", "failed", "interrupted")
ENGINE_START_REASONS = ("new", "resume", "eviction", "restart")
COMPAT_ROUTES = ("warm", "fork", "new", "seeded")
#: The ``FORMAT`` of each ``ccapi.compat`` module: with the routes, every compat series exists (at 0) from the start.
COMPAT_FORMATS = ("openai.chat", "openai.responses", "anthropic.messages")
WEBHOOK_OUTCOMES = ("delivered", "retry", "failed")
#: What set off a compaction, as Claude Code reports it: asked for (``POST /compact``, a ``/compact`` turn) or its own.
COMPACTION_TRIGGERS = ("manual", "auto")


class PoolView(Protocol):
    @property
    def live_count(self) -> int: ...
    @property
    def queued(self) -> int: ...
    @property
    def max_live(self) -> int: ...


class FollowerView(Protocol):
    @property
    def follower_count(self) -> int: ...


class QueueView(Protocol):
    @property
    def waiting_count(self) -> int: ...


class WindowView(Protocol):
    @property
    def window(self) -> str: ...
    @property
    def utilization(self) -> float | None: ...


class LimitsView(Protocol):
    def windows(self) -> Iterable[WindowView]: ...


class RecentTurns:
    """Turns per status over the last hour, in minute buckets: what ``cc-api status`` shows
    (Prometheus itself would use ``increase(cc_api_turns_total[1h])``)."""

    def __init__(self, minutes: int = 60, clock: Callable[[], float] = time.monotonic) -> None:
        self._minutes = minutes
        self._clock = clock
        self._buckets: deque[tuple[int, dict[str, int]]] = deque()

    def add(self, status: str) -> None:
        minute = int(self._clock() // 60)
        if not self._buckets or self._buckets[-1][0] != minute:
            self._buckets.append((minute, {}))
            while self._buckets[0][0] <= minute - self._minutes:
                self._buckets.popleft()
        counts = self._buckets[-1][1]
        counts[status] = counts.get(status, 0) + 1

    def totals(self) -> dict[str, int]:
        since = int(self._clock() // 60) - self._minutes
        summed: dict[str, int] = {}
        for minute, counts in self._buckets:
            if minute > since:
                for status, count in counts.items():
                    summed[status] = summed.get(status, 0) + count
        return summed


class _Levels(Collector):
    """Gauges read from their owners at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        if m.pool is not None:
            yield _gauge("cc_api_live_sessions", "Sessions with a live Claude Code process", m.pool.live_count)
            yield _gauge("cc_api_live_sessions_max", "The live process bound (CC_API_MAX_LIVE)", m.pool.max_live)
            yield _gauge("cc_api_queued_turns", "Turns waiting for a live slot", m.pool.queued)
        if m.queues is not None:
            yield _gauge(
                "cc_api_waiting_turns",
                "Turns queued behind a running turn of their session (queue: true, compat)",
                m.queues.waiting_count,
            )
        if m.events is not None:
            yield _gauge(
                "cc_api_sse_subscribers",
                "Live followers of the event log: SSE streams and compat replies in flight",
                m.events.follower_count,
            )
        if m.limits is not None:
            windows = GaugeMetricFamily(
                "cc_api_rate_limit_utilization",
                "Share (0-1) of each subscription usage window used, as Claude Code last reported it",
                labels=["window"],
            )
            for window in m.limits.windows():
                if window.utilization is not None:
                    windows.add_metric([window.window], window.utilization)
            yield windows
        recent = GaugeMetricFamily(
            "cc_api_turns_last_hour",
            "Turns that ended in the last hour, by status (for cc-api status)",
            labels=["status"],
        )
        for status, count in sorted(m.recent.totals().items()):
            recent.add_metric([status], count)
        yield recent


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class _Children:
    """A labelled counter's children by label values, bound once each (``labels()`` costs a lock
    and a tuple per call)."""

    def __init__(self, counter: Counter, known: Iterable[tuple[str, ...]] = ()) -> None:
        self._counter = counter
        self._bound: dict[tuple[str, ...], Any] = {values: counter.labels(*values) for values in known}

    def inc(self, *values: str, amount: float = 1.0) -> None:
        child = self._bound.get(values)
        if child is None:
            child = self._bound[values] = self._counter.labels(*values)
        child.inc(amount)


class Metrics:
    """The instruments of one app. ``watch`` hands it the owners of the gauges once they exist."""

    def __init__(self, process: bool = True) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        if process:
            prometheus_client.ProcessCollector(registry=registry)
            prometheus_client.PlatformCollector(registry=registry)
            prometheus_client.GCCollector(registry=registry)
        self.pool: PoolView | None = None
        self.events: FollowerView | None = None
        self.limits: LimitsView | None = None
        self.queues: QueueView | None = None
        self.recent = RecentTurns()
        turns = Counter("cc_api_turns", "Turns that ended, by kind and status", ["kind", "status"], registry=registry)
        self._turns = _Children(turns, [(kind, s) for kind in ("input", "compact") for s in TURN_STATUSES])
        self._duration = Histogram(
            "cc_api_turn_duration_seconds", "How long turns took, start to end", buckets=TURN_SECONDS, registry=registry
        )
        self._first_token = Histogram(
            "cc_api_time_to_first_token_seconds",
            "From a turn's start to its first streamed text or thinking",
            buckets=FIRST_TOKEN_SECONDS,
            registry=registry,
        )
        self._sessions = Counter("cc_api_sessions", "Sessions created", registry=registry)
        starts = Counter("cc_api_engine_starts", "Claude Code processes started, by why", ["reason"], registry=registry)
        self._starts = _Children(starts, [(r,) for r in ENGINE_START_REASONS])
        self._evictions = Counter(
            "cc_api_evictions",
            "Idle live processes stopped to free a slot or after CC_API_IDLE_TIMEOUT",
            registry=registry,
        )
        tokens = Counter("cc_api_model_tokens", "Model tokens of ended turns, by type", ["type"], registry=registry)
        self._tokens = {key: tokens.labels(label) for key, label in TOKEN_TYPES.items()}
        self._cost = Counter(
            "cc_api_cost_usd", "Cost of ended turns in USD, as Claude Code reports it", registry=registry
        )
        compat = Counter(
            "cc_api_compat_requests",
            "Compat requests by format and by how they reached a session (warm, fork, new, seeded)",
            ["format", "route"],
            registry=registry,
        )
        self._compat = _Children(compat, [(f, r) for f in COMPAT_FORMATS for r in COMPAT_ROUTES])
        flattened = Counter(
            "cc_api_compat_flattened",
            "Compat requests whose earlier history was sent as one text block",
            ["format"],
            registry=registry,
        )
        self._flattened = _Children(flattened, [(f,) for f in COMPAT_FORMATS])
        webhooks = Counter(
            "cc_api_webhook_deliveries", "Webhook delivery attempts by outcome", ["outcome"], registry=registry
        )
        self._webhooks = _Children(webhooks, [(o,) for o in WEBHOOK_OUTCOMES])
        compactions = Counter(
            "cc_api_compactions",
            "Conversations compacted, by trigger: manual (asked for) or auto (Claude Code's own, the context full)",
            ["trigger"],
            registry=registry,
        )
        self._compactions = _Children(compactions, [(t,) for t in COMPACTION_TRIGGERS])
        registry.register(_Levels(self))

    def watch(self, pool: PoolView, events: FollowerView, limits: LimitsView, queues: QueueView | None = None) -> None:
        self.pool, self.events, self.limits, self.queues = pool, events, limits, queues

    # -- recording ---------------------------------------------------------------
    def turn_ended(
        self,
        kind: str,
        status: str,
        seconds: float | None,
        usage: Mapping[str, int] | None = None,
        cost_usd: float | None = None,
    ) -> None:
        """A turn ended; ``seconds`` ``None`` for one that never ran (withdrawn from its queue, closed after a
        crash): counted, but kept out of the duration histogram."""
        self._turns.inc(kind, status)
        if seconds is not None:
            self._duration.observe(seconds)
        usage = usage or {}
        for key, child in self._tokens.items():
            count = usage.get(key)
            if count:
                child.inc(count)
        if cost_usd:
            self._cost.inc(cost_usd)
        self.recent.add(status)

    def first_token(self, seconds: float) -> None:
        self._first_token.observe(seconds)

    def session_created(self) -> None:
        self._sessions.inc()

    def engine_started(self, reason: str) -> None:
        self._starts.inc(reason)

    def evicted(self) -> None:
        self._evictions.inc()

    def compat_routed(self, format_: str, route: str) -> None:
        self._compat.inc(format_, route)

    def compat_flattened(self, format_: str) -> None:
        self._flattened.inc(format_)

    def webhook_delivery(self, outcome: str) -> None:
        self._webhooks.inc(outcome)

    def compacted(self, trigger: str) -> None:
        self._compactions.inc(trigger if trigger in COMPACTION_TRIGGERS else "auto")

    # -- exposition --------------------------------------------------------------
    def render(self) -> bytes:
        return generate_latest(self.registry)
