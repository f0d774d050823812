"""``/metrics`` and traces as an operator reads them: the figures move exactly once per turn however it ends (paused
on client tools first, or a compaction), the pool's figures follow evictions, restarts and deletes, the Grafana
dashboard asks only for labels and values the gateway serves, and tracing stays off when its exporter cannot be made.
test_metrics.py covers the rest (the text format, compat routes, first-token timing, the status headline)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ccapi.observability import otel as otel_module
from ccapi.observability.metrics import Metrics
from ccapi.observability.tracing import from_environment
from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway, eventually
from tests.metrics_support import Samples, check_exposition, moved, scrape, value

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana" / "cc-api.json"
#: Labels Prometheus adds to every series it scrapes.
TARGET_LABELS = {"job", "instance"}


def _turns(before: Samples, after: Samples) -> dict[tuple[str, str], float]:
    """How far each ``cc_api_turns_total`` series moved (only those that did)."""
    return {
        (dict(labels)["kind"], dict(labels)["status"]): after[(name, labels)] - before.get((name, labels), 0.0)
        for name, labels in after
        if name == "cc_api_turns_total" and after[(name, labels)] != before.get((name, labels), 0.0)
    }


def test_a_turn_paused_on_client_tools_counts_once_when_it_ends_with_the_wait_in_its_duration(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """``requires_action`` is no ending: the counters and the duration histogram wait for the turn's end, which
    counts once, its duration including the client's time to answer; a paused turn interrupted counts as such."""
    gw = gateway
    session = gw.create_session(tools=[WEATHER])["id"]
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)), Reply(text="Cold in Oslo."))
    before = scrape(gw)
    paused = gw.turn(session, "weather in Oslo?")
    assert paused["status"] == "requires_action", paused
    during = scrape(gw)
    assert _turns(before, during) == {}, "a paused turn has not ended"
    assert moved(before, during, "cc_api_turn_duration_seconds_count") == 0
    assert moved(before, during, "cc_api_turns_last_hour", status="completed") == 0
    assert moved(before, during, "cc_api_time_to_first_token_seconds_count") == 1, "its tool call was its answer"

    time.sleep(1.0)  # the client takes its time to run the tool
    call = paused["tool_calls"][0]
    done = gw.client.post(
        f"/api/sessions/{session}/tool-results",
        json={"results": [{"tool_call_id": call["tool_call_id"], "content": "-5C"}]},
    )
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text
    after = scrape(gw)
    assert _turns(before, after) == {("input", "completed"): 1}
    assert moved(before, after, "cc_api_turn_duration_seconds_count") == 1
    assert moved(before, after, "cc_api_turn_duration_seconds_sum") >= 1.0, "the client's wait is in its duration"
    assert moved(before, after, "cc_api_time_to_first_token_seconds_count") == 1, "one first token per turn"
    assert moved(before, after, "cc_api_model_tokens_total", type="output") == done.json()["usage"]["output_tokens"]

    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Rome"}),)))
    assert gw.turn(session, "and in Rome?")["status"] == "requires_action"
    stopped = gw.client.post(f"/api/sessions/{session}/interrupt", json={})
    assert stopped.status_code == 200 and stopped.json()["status"] == "interrupted", stopped.text
    assert _turns(after, scrape(gw)) == {("input", "interrupted"): 1}


def test_a_compaction_is_a_compact_turn_and_no_input_turn(gateway: Gateway, mock_model: MockModel) -> None:
    gw = gateway
    session = gw.create_session()["id"]
    assert gw.turn(session, "something to compact")["status"] == "completed"
    before = scrape(gw)
    compacted = gw.client.post(f"/api/sessions/{session}/compact", json={})
    assert compacted.status_code == 200 and compacted.json()["status"] == "completed", compacted.text
    after = scrape(gw)
    assert _turns(before, after) == {("compact", "completed"): 1}
    assert moved(before, after, "cc_api_turn_duration_seconds_count") == 1
    assert moved(before, after, "cc_api_turns_last_hour", status="completed") == 1
    assert moved(before, after, "cc_api_engine_starts_total", reason="new") == 0, "the live process compacted"


@pytest.mark.slow  # a gateway of its own, with one live slot, and seven Claude Code starts
def test_the_pool_figures_follow_evictions_restarts_deletes_and_a_turn_waiting_for_a_slot(
    make_gateway: Callable[..., Gateway], mock_model: MockModel
) -> None:
    gw = make_gateway(CC_API_MAX_LIVE="1")
    start = scrape(gw)
    a, b = gw.create_session()["id"], gw.create_session()["id"]
    assert gw.turn(a, "a1")["status"] == "completed"
    assert gw.turn(b, "b1")["status"] == "completed"  # evicts a's process: one slot
    first = scrape(gw)
    assert moved(start, first, "cc_api_engine_starts_total", reason="new") == 2
    assert moved(start, first, "cc_api_evictions_total") == 1
    assert value(first, "cc_api_live_sessions") == 1 == value(first, "cc_api_live_sessions_max")

    assert gw.turn(a, "a2")["status"] == "completed"  # a back, b evicted
    back = scrape(gw)
    assert moved(first, back, "cc_api_engine_starts_total", reason="eviction") == 1
    assert moved(first, back, "cc_api_evictions_total") == 1
    assert value(back, "cc_api_live_sessions") == 1

    assert gw.client.patch(f"/api/sessions/{a}", json={"model": "opus"}).status_code == 200
    assert gw.turn(a, "a3")["status"] == "completed"  # its live process had the old model: replaced
    restarted = scrape(gw)
    starts = {r: moved(back, restarted, "cc_api_engine_starts_total", reason=r) for r in ("new", "resume", "restart")}
    assert starts == {"new": 0, "resume": 0, "restart": 1}
    assert moved(back, restarted, "cc_api_evictions_total") == 0, "a replaced process is no eviction"

    assert gw.client.delete(f"/api/sessions/{a}").status_code == 200
    deleted = scrape(gw)
    assert value(deleted, "cc_api_live_sessions") == 0, "a deleted session's process is gone"
    assert moved(restarted, deleted, "cc_api_evictions_total") == 0, "nor is a delete an eviction"

    c = gw.create_session()["id"]
    mock_model.script(Reply(text="slowly", first_byte_delay=2.0))
    running = gw.client.post(f"/api/sessions/{b}/turns", json={"input": "holds the slot", "background": True})
    assert running.status_code == 202, running.text
    answered: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: answered.update(gw.turn(c, "waits for the slot")))
    waiter.start()
    assert eventually(lambda: value(scrape(gw), "cc_api_queued_turns") == 1), "the waiting turn is not shown"
    waiter.join(60)
    assert answered.get("status") == "completed", answered
    end = scrape(gw)
    assert value(end, "cc_api_queued_turns") == 0 and value(end, "cc_api_live_sessions") == 1
    assert moved(deleted, end, "cc_api_engine_starts_total", reason="eviction") == 1, "b came back after its eviction"
    assert moved(deleted, end, "cc_api_engine_starts_total", reason="new") == 1, "c's first"
    assert moved(deleted, end, "cc_api_evictions_total") == 1, "b's process made way for c's"
    assert _turns(start, end) == {("input", "completed"): 6}


def test_a_responses_branch_counts_as_a_fork_not_a_warm_request(gateway: Gateway, mock_model: MockModel) -> None:
    """docs/operations.md: ``warm`` is the session that holds the history, ``fork`` a branch of one. A second
    ``previous_response_id`` on the same response branches: a new session and a new Claude Code, not a warm one."""
    gw = gateway
    first = gw.client.post("/v1/responses", json={"model": "claude-sonnet-4-5", "input": "first"})
    assert first.status_code == 200, first.text
    ask = {"model": "claude-sonnet-4-5", "previous_response_id": first.json()["id"]}
    assert gw.client.post("/v1/responses", json={**ask, "input": "goes on"}).status_code == 200
    before = scrape(gw)
    branch = gw.client.post("/v1/responses", json={**ask, "input": "a branch"})
    assert branch.status_code == 200, branch.text
    after = scrape(gw)
    assert moved(before, after, "cc_api_sessions_total") == 1, "the branch is a new session"
    routes = {
        r: moved(before, after, "cc_api_compat_requests_total", format="openai.responses", route=r)
        for r in ("warm", "fork", "new", "seeded")
    }
    assert routes == {"warm": 0, "fork": 1, "new": 0, "seeded": 0}


def test_a_usage_window_named_by_claude_code_is_escaped_in_its_label() -> None:
    """``window`` is the one label whose values come from outside (Claude Code's rate-limit reports): whatever they
    hold, the page stays valid text format and the value reads back as it was."""
    odd = 'five_hour"\\\nx'

    class Window:
        window, utilization = odd, 0.5

    class Limits:
        def windows(self) -> list[Window]:
            return [Window()]

    class Levels:
        live_count = queued = follower_count = 0
        max_live = 8

    metrics = Metrics(process=False)
    metrics.watch(Levels(), Levels(), Limits())
    text = metrics.render().decode()
    check_exposition(text)
    assert 'cc_api_rate_limit_utilization{window="five_hour\\"\\\\\\nx"} 0.5' in text
    read = {s.labels.get("window") for f in text_string_to_metric_families(text) for s in f.samples}
    assert odd in read


def _selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """Each ``metric{label="value", ...}`` of a PromQL expression with its exact matchers (``=~`` ones, the
    dashboard's ``$job`` and ``$instance``, are left out)."""
    found = []
    for name, body in re.findall(r"\b((?:cc_api|process)_\w+)(?:\{([^}]*)\})?", expr):
        exact = dict(re.findall(r'(\w+)="([^"]*)"', body or ""))
        found.append((name, exact))
    return found


def test_the_dashboard_asks_only_for_labels_and_values_the_gateway_serves(gateway: Gateway) -> None:
    """Every exact matcher (``status="failed"``, ``route="warm"``), ``by (...)`` label and ``{{label}}`` legend of
    docs/grafana/cc-api.json names a label, and a value, that the series it queries carry: a typo there is a panel
    that stays empty, silently."""
    served = scrape(gateway)
    labels: dict[str, set[str]] = {}
    values: dict[str, set[tuple[str, str]]] = {}
    for name, pairs in served:
        family = re.sub(r"_(bucket|count|sum)$", "", name) if name.endswith(("_bucket", "_count", "_sum")) else name
        for key in (name, family):
            labels.setdefault(key, set()).update(label for label, _ in pairs)
            values.setdefault(key, set()).update(pairs)
    # reported by Claude Code on subscription credentials only: no series on the mock model, but documented
    labels.setdefault("cc_api_rate_limit_utilization", set()).add("window")

    dashboard = json.loads(DASHBOARD.read_text())
    wrong: list[str] = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr, legend = target["expr"], target.get("legendFormat", "")
            selectors = _selectors(expr)
            carried = set(TARGET_LABELS)
            for name, exact in selectors:
                if name not in labels:
                    wrong.append(f"{panel['title']}: {name} is not served")
                    continue
                carried |= labels[name]
                for label, wanted in exact.items():
                    if (label, wanted) not in values.get(name, set()):
                        wrong.append(f"{panel['title']}: no {name} series has {label}={wanted!r}")
            grouped = {g.strip() for group in re.findall(r"\bby \(([^)]*)\)", expr) for g in group.split(",")}
            wrong += [f"{panel['title']}: by ({g}) is no label of its series" for g in grouped - carried]
            shown = set(re.findall(r"\{\{(\w+)\}\}", legend))
            kept = grouped | (TARGET_LABELS if not re.search(r"\b(sum|max|min|avg)\b", expr) else set())
            wrong += [f"{panel['title']}: legend {{{{{s}}}}} is not kept by its query" for s in shown - kept]
    assert wrong == []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            metric = re.search(r"label_values\((\w+)", variable["query"])
            assert metric is not None and metric.group(1) in labels, variable


def test_tracing_stays_off_when_the_named_exporter_cannot_be_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exporter no installed package provides (the dev extra has the SDK but not the OTLP exporter, and gRPC
    needs a package of its own), or one that fails as it is made: a warning, and tracing is off, as without the
    extra, rather than spans made for nobody on every request, or a gateway that does not start."""
    pytest.importorskip("opentelemetry.sdk")
    assert from_environment({"OTEL_TRACES_EXPORTER": "no_such_exporter"}) is None
    assert from_environment({"OTEL_TRACES_EXPORTER": "none"}) is None
    on = from_environment({"OTEL_TRACES_EXPORTER": "none,console"})  # ``none`` beside a real one: that one
    assert on is not None
    on.shutdown()

    class Broken:
        def load(self) -> Callable[[], Any]:
            def make() -> Any:
                raise ValueError("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'zstd' is not one of gzip, none")

            return make

    monkeypatch.setattr(otel_module, "entry_points", lambda **_: [Broken()])
    assert from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) is None


def test_an_exporter_that_is_not_installed_loads_nothing_of_the_sdk(tmp_path: Path) -> None:
    """As docs/operations.md says: without an exporter, nothing of OpenTelemetry's SDK is loaded."""
    pytest.importorskip("opentelemetry.sdk")
    script = (
        "import sys\n"
        "from ccapi.observability.tracing import from_environment\n"
        "assert from_environment({'OTEL_TRACES_EXPORTER': 'no_such_exporter'}) is None\n"
        "print('loaded:', sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "loaded: []", result.stdout  # after the two warnings
