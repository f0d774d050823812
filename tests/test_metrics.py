"""``GET /metrics`` on the real stack: the figures dashboards and alerts rely on move as turns,
compat requests and streams happen (on the shared default gateway). That the page is as private as the sessions
it counts is checked on test_auth_routes' keyed gateway."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ccapi.daemon.console import render_status
from ccapi.daemon.launcher import GatewayState, GatewayStatus
from ccapi.observability.headline import headline
from ccapi.observability.metrics import COMPAT_FORMATS, COMPAT_ROUTES, Metrics, RecentTurns
from ccapi.paths import StatePaths
from ccapi.testing import MockError, MockModel, Reply
from tests.gateway import Gateway, eventually
from tests.metrics_support import moved, scrape, value


def test_turns_and_compat_requests_move_the_counters_histograms_and_gauges(
    gateway: Gateway, mock_model: MockModel
) -> None:
    gw = gateway
    before = scrape(gw)

    session = gw.create_session()["id"]
    replies = [gw.turn(session, text) for text in ("first", "second")]
    assert [reply["status"] for reply in replies] == ["completed", "completed"]
    history = [{"role": "user", "content": "compat hello"}]
    first = gw.client.post("/v1/chat/completions", json={"model": "claude-sonnet-4-5", "messages": history})
    assert first.status_code == 200, first.text
    history += [first.json()["choices"][0]["message"], {"role": "user", "content": "compat again"}]
    second = gw.client.post("/v1/chat/completions", json={"model": "claude-sonnet-4-5", "messages": history})
    assert second.status_code == 200, second.text
    compat_session = first.headers["x-cc-session-id"]
    assert second.headers["x-cc-session-id"] == compat_session

    with gw.client.stream("GET", f"/api/sessions/{session}/events/stream") as stream:
        chunks = stream.iter_bytes()  # held: a dropped iterator would close the stream
        assert b"turn.completed" in next(chunks) + next(chunks)  # the replay: the stream is subscribed
        during = scrape(gw)
    after = scrape(gw)

    assert moved(before, after, "cc_api_turns_total", kind="input", status="completed") == 4
    assert moved(before, after, "cc_api_turns_total", kind="input", status="failed") == 0
    assert moved(before, after, "cc_api_turns_last_hour", status="completed") == 4
    assert moved(before, after, "cc_api_turn_duration_seconds_count") == 4
    assert moved(before, after, "cc_api_turn_duration_seconds_bucket", le="+Inf") == 4
    assert moved(before, after, "cc_api_turn_duration_seconds_bucket", le="30.0") == 4, "mock turns take seconds"
    assert moved(before, after, "cc_api_turn_duration_seconds_sum") > 0
    assert moved(before, after, "cc_api_time_to_first_token_seconds_count") == 4
    assert moved(before, after, "cc_api_sessions_total") == 2
    assert moved(before, after, "cc_api_engine_starts_total", reason="new") == 2
    assert moved(before, after, "cc_api_compat_requests_total", format="openai.chat", route="new") == 1
    assert moved(before, after, "cc_api_compat_requests_total", format="openai.chat", route="warm") == 1
    assert moved(before, after, "cc_api_compat_flattened_total", format="openai.chat") == 0
    assert moved(before, after, "cc_api_live_sessions") == 2
    assert value(during, "cc_api_sse_subscribers") == value(before, "cc_api_sse_subscribers") + 1
    assert eventually(lambda: value(scrape(gw), "cc_api_sse_subscribers") == value(before, "cc_api_sse_subscribers"))

    usage = [gw.client.get(f"/api/sessions/{sid}").json()["usage"] for sid in (session, compat_session)]
    for label, key in (("input", "input_tokens"), ("output", "output_tokens")):
        spent = sum(u[key] for u in usage)
        assert spent > 0
        assert moved(before, after, "cc_api_model_tokens_total", type=label) == spent
    assert moved(before, after, "cc_api_cost_usd_total") == pytest.approx(sum(u["cost_usd"] for u in usage))


def test_a_turns_duration_is_the_gateways_and_turns_that_never_ran_count_too(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """The duration histogram times a turn as its client waits for it, Claude Code's start included (Claude Code's
    own ``duration_ms`` leaves that out, and came out shorter than the time to first token); a queued turn
    withdrawn before it ran is a turn that ended, as its ``turn.interrupted`` says, though it has no duration."""
    gw = gateway
    before = scrape(gw)
    session = gw.create_session()["id"]
    assert gw.turn(session, "a cold start")["status"] == "completed"
    cold = scrape(gw)
    took = moved(before, cold, "cc_api_turn_duration_seconds_sum")
    assert took >= moved(before, cold, "cc_api_time_to_first_token_seconds_sum") > 0

    mock_model.script(Reply(text="slowly", first_byte_delay=1.5))
    url = f"/api/sessions/{session}/turns"
    running = gw.client.post(url, json={"input": "slow", "background": True}).json()
    queued = gw.client.post(url, json={"input": "behind it", "background": True, "queue": True}).json()
    assert queued["status"] == "queued", queued
    withdrawn = gw.client.post(f"/api/sessions/{session}/interrupt", json={"turn_id": queued["turn_id"]})
    assert withdrawn.json()["status"] == "interrupted", withdrawn.text
    assert eventually(lambda: gw.client.get(f"{url}/{running['turn_id']}").json()["status"] == "completed")
    after = scrape(gw)
    assert moved(cold, after, "cc_api_turns_total", kind="input", status="interrupted") == 1
    assert moved(cold, after, "cc_api_turns_last_hour", status="interrupted") == 1
    assert moved(cold, after, "cc_api_turns_total", kind="input", status="completed") == 1
    assert moved(cold, after, "cc_api_turn_duration_seconds_count") == 1, "only the turn that ran has a duration"


def test_every_series_is_served_from_the_start_and_failed_and_interrupted_turns_count_exactly(
    make_gateway: Callable[..., Gateway], mock_model: MockModel
) -> None:
    """A fresh gateway serves each labelled series at 0 (so a warm-share ratio or a failure alert has a series to
    work on before the first compat request or failure); then each kind of ending moves its own counter by one,
    the histograms count the turns that ran, and no label ever takes a session id, turn id or path. Every
    ``scrape`` also checks the page against the text format (``check_exposition``)."""
    gw = make_gateway()
    fresh = scrape(gw)
    for format_ in COMPAT_FORMATS:
        expected = [("cc_api_compat_flattened_total", (("format", format_),))]
        expected += [("cc_api_compat_requests_total", (("format", format_), ("route", r))) for r in COMPAT_ROUTES]
        assert [key for key in expected if fresh.get(key) != 0] == [], "not served before their first request"

    session = gw.create_session()["id"]
    assert gw.turn(session, "completes")["status"] == "completed"
    mock_model.script(Reply(error=MockError(403, "permission_error", "this key may not use that model")))
    assert gw.turn(session, "fails")["status"] == "failed"
    mock_model.script(Reply(text="slowly", first_byte_delay=3.0))
    url = f"/api/sessions/{session}/turns"
    running = gw.client.post(url, json={"input": "interrupted", "background": True}).json()
    time.sleep(1.0)  # running in Claude Code, waiting on the model
    stopped = gw.client.post(f"/api/sessions/{session}/interrupt", json={"turn_id": running["turn_id"]})
    assert stopped.json()["status"] == "interrupted", stopped.text
    assert gw.client.get("/api/sessions/sess_0123456789abcdef0123456789abcdef/events").status_code == 404
    compat = gw.client.post(
        "/v1/messages",
        json={"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert compat.status_code == 200, compat.text
    after = scrape(gw)

    for status, count in (("completed", 2), ("failed", 1), ("interrupted", 1)):
        assert moved(fresh, after, "cc_api_turns_total", kind="input", status=status) == count, status
        assert moved(fresh, after, "cc_api_turns_last_hour", status=status) == count, status
    assert moved(fresh, after, "cc_api_turn_duration_seconds_count") == 4, "each of them ran"
    assert moved(fresh, after, "cc_api_time_to_first_token_seconds_count") == 2, "only those that answered"
    assert moved(fresh, after, "cc_api_compat_requests_total", format="anthropic.messages", route="new") == 1
    assert sum(moved(fresh, after, name, **dict(labels)) for name, labels in after if "compat_req" in name) == 1
    labels = {label for _, pairs in after for label in pairs}
    assert not [pair for pair in labels if re.search(r"sess_|turn_|/|claude", pair[1])], sorted(labels)


def test_turns_of_the_last_hour_age_out_by_the_minute() -> None:
    now = [0.0]
    recent = RecentTurns(clock=lambda: now[0])
    recent.add("completed")
    now[0] = 30 * 60
    recent.add("failed")
    recent.add("completed")
    assert recent.totals() == {"completed": 2, "failed": 1}
    now[0] = 61 * 60  # the first turn is more than an hour old
    assert recent.totals() == {"completed": 1, "failed": 1}
    now[0] = 91 * 60
    assert recent.totals() == {}


def test_status_shows_the_headline_figures_read_back_from_metrics(tmp_path: Path) -> None:
    """What `cc-api status` prints from a gateway's /metrics: turns of the last hour, tokens, compat warm share."""
    metrics = Metrics(process=False)
    metrics.turn_ended("input", "completed", 1.5, {"input_tokens": 1200, "output_tokens": 80}, 0.25)
    metrics.turn_ended("input", "failed", 0.2, {}, None)
    for route in ("warm", "warm", "warm", "seeded"):
        metrics.compat_routed("openai.chat", route)
    figures = headline(metrics.render().decode())
    assert (figures.turns_last_hour, figures.failed_last_hour) == (2, 1)
    assert figures.tokens["input"] == 1200 and figures.cost_usd == 0.25
    assert (figures.compat_requests, figures.compat_warm_share) == (4, 0.75)

    state = GatewayState(1, 1, "1", "http://127.0.0.1:8000", "127.0.0.1", 8000, time.time(), "0.1.0")
    shown = render_status(GatewayStatus(True, state, True, 5.0, 1, 3, figures=figures), StatePaths(tmp_path))
    assert "turns     2 since start, 1 failed" in shown  # a gateway up 5 s: its count is not an hour's
    older = render_status(GatewayStatus(True, state, True, 3600.0, 1, 3, figures=figures), StatePaths(tmp_path))
    assert "turns     2 in the last hour, 1 failed" in older
    assert "tokens    1.2k in, 80 out, 0 cache read, $0.25 since start" in shown
    assert "compat    4 requests, 75% to a warm session" in shown


def test_the_docs_and_the_dashboard_name_only_families_the_gateway_serves(gateway: Gateway) -> None:
    """docs/operations.md and docs/grafana/cc-api.json stay true to what /metrics serves."""
    text = gateway.client.get("/metrics").text
    served = set()
    for name in re.findall(r"^# HELP (\w+)", text, flags=re.M):
        served |= {name, f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    root = Path(__file__).resolve().parent.parent
    dashboard = json.loads((root / "docs" / "grafana" / "cc-api.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = set(re.findall(r"\bcc_api_\w+", " ".join(queries))) | set(
        re.findall(r"\bcc_api_\w+", (root / "docs" / "operations.md").read_text())
    )
    assert len(named) >= 15
    assert named <= served, f"named but not served: {sorted(named - served)}"


def test_every_dashboard_query_follows_the_job_and_instance_selectors() -> None:
    """Picking a job or some instances at the top of the Grafana dashboard narrows every panel, not only some."""
    dashboard = json.loads((Path(__file__).resolve().parent.parent / "docs" / "grafana" / "cc-api.json").read_text())
    selectors = [
        (target["expr"], selector)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for selector in re.findall(r"\b(?:cc_api|process)_\w+(\{[^}]*\})?", target["expr"])
    ]
    assert selectors
    narrowed = ('job=~"$job"', 'instance=~"$instance"')
    assert [expr for expr, selector in selectors if not all(part in selector for part in narrowed)] == []
