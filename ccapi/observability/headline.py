"""The few figures ``cc-api status`` shows, read back from a gateway's ``/metrics`` text."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Headline:
    turns_last_hour: int = 0
    failed_last_hour: int = 0
    live_sessions: int | None = None
    max_live: int | None = None
    #: Model tokens since the gateway started, by type (input, output, cache_read, cache_creation).
    tokens: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    compat_requests: int = 0
    #: Share of compat requests that reached a warm session (``None`` before the first one).
    compat_warm_share: float | None = None


def headline(text: str) -> Headline:
    turns: dict[str, int] = {}
    tokens: dict[str, int] = {}
    compat: dict[str, float] = {}
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "cc_api_turns_last_hour":
                turns[sample.labels["status"]] = int(sample.value)
            elif sample.name == "cc_api_model_tokens_total":
                tokens[sample.labels["type"]] = int(sample.value)
            elif sample.name == "cc_api_compat_requests_total":
                route = sample.labels["route"]
                compat[route] = compat.get(route, 0.0) + sample.value
            elif sample.name in ("cc_api_live_sessions", "cc_api_live_sessions_max", "cc_api_cost_usd_total"):
                values[sample.name] = sample.value
    requests = int(sum(compat.values()))
    live, most = values.get("cc_api_live_sessions"), values.get("cc_api_live_sessions_max")
    return Headline(
        turns_last_hour=sum(turns.values()),
        failed_last_hour=turns.get("failed", 0),
        live_sessions=None if live is None else int(live),
        max_live=None if most is None else int(most),
        tokens=tokens,
        cost_usd=values.get("cc_api_cost_usd_total", 0.0),
        compat_requests=requests,
        compat_warm_share=compat.get("warm", 0.0) / requests if requests else None,
    )
