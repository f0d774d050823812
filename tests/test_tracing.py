"""OpenTelemetry traces (the ``otel`` extra): a turn is a span inside its HTTP request's span,
continuing the client's W3C ``traceparent``, and Claude Code is started inside that trace.

The gateway runs in this process (Sanic's own server on loopback, the real SDK and CLI on the
mock model), so an in-memory exporter sees its spans.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from ccapi.app import create_app
from ccapi.config import Settings
from ccapi.observability import tracing as tracing_module
from ccapi.observability.tracing import from_environment
from ccapi.testing import MockModel, Reply
from tests.gateway import CHILD_MARK, free_port, pids_with_env, program_name
from tests.gateway import test_environment as offline_environment
from tests.inprocess import serving

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
#: The traces of a slow turn and of a turn queued behind it: each turn belongs to its own request's.
SLOW_TRACE, QUEUED_TRACE = "5bf92f3577b34da6a3ce929d0e0e4736", "6bf92f3577b34da6a3ce929d0e0e4736"
#: Claude Code's own tracing, as a user would turn it on: it then sends the trace on its model requests too.
#: Its exporter points at a closed loopback port (nothing listens; the test reads the mock instead).
CLAUDE_CODE_TRACING = {
    "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
    "CLAUDE_CODE_ENHANCED_TELEMETRY_BETA": "1",
    "CLAUDE_CODE_PROPAGATE_TRACEPARENT": "1",
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
}


def _child_environments() -> list[dict[str, str]]:
    """The environments of the Claude Code processes this process (as a gateway) started (their
    helpers, such as the sandbox's network bridges, inherit the marker and are left out)."""
    found = []
    for pid in pids_with_env(CHILD_MARK, os.environ.get(CHILD_MARK, "-")):  # set by offline_environment
        if program_name(pid) != "claude":
            continue  # a helper of Claude Code's (its sandbox's socat bridges, say)
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        found.append(dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item))
    return found


def test_without_an_exporter_tracing_is_off_and_nothing_of_it_is_imported(tmp_path: Path) -> None:
    """No ``OTEL_*`` exporter (or no extra): no request middleware, no span, no SDK import."""
    script = (
        "import sys, pathlib\n"
        "from ccapi.app import create_app\n"
        "from ccapi.config import Settings\n"
        f"app = create_app(Settings(home=pathlib.Path({str(tmp_path)!r})))\n"
        "assert app.ctx.tracing is None\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'ccapi.observability.otel'))))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_standard_otel_variables_turn_tracing_on_and_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert from_environment({}) is None
    assert from_environment({"OTEL_TRACES_EXPORTER": "none"}) is None
    assert from_environment({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}) is None
    with monkeypatch.context() as without_the_extra:
        without_the_extra.setattr(tracing_module, "_installed", lambda module: False)
        assert from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) is None
    pytest.importorskip("opentelemetry.sdk")
    tracing = from_environment({"OTEL_TRACES_EXPORTER": "console"})
    assert tracing is not None
    tracing.shutdown()


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({}, "cc-api"),
        ({"OTEL_SERVICE_NAME": "gw-a"}, "gw-a"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod, service.name=gw-b"}, "gw-b"),
    ],
)
def test_the_service_is_named_as_the_otel_variables_say(
    monkeypatch: pytest.MonkeyPatch, given: dict[str, str], named: str
) -> None:
    pytest.importorskip("opentelemetry.sdk")
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    for name, setting in given.items():
        monkeypatch.setenv(name, setting)  # where OpenTelemetry's SDK reads them
    tracing = from_environment({"OTEL_TRACES_EXPORTER": "console", **given})
    assert tracing is not None
    resource = tracing._provider.resource.attributes  # type: ignore[attr-defined]
    tracing.shutdown()
    assert resource["service.name"] == named


async def _serve_and_run_a_turn(
    settings: Settings, exporter: InMemorySpanExporter, mock_model: MockModel
) -> tuple[str, dict, list[dict[str, str]], str, int]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from ccapi.observability.otel import OtelTracing

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(settings, name="ccapi_tracing", tracing=OtelTracing(provider))
    async with (
        serving(app, settings.port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=60) as client,
    ):
        session = (await client.post("/api/sessions", json={})).json()
        reply = await client.post(
            f"/api/sessions/{session['id']}/turns",
            json={"input": "traced"},
            headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"},
        )
        children = _child_environments()  # the session's Claude Code is live until the gateway stops
        first_calls = len(mock_model.message_requests(include_side=False))
        turns = f"/api/sessions/{session['id']}/turns"
        mock_model.script(Reply(text="slow", first_byte_delay=1.0))
        await client.post(
            turns,
            json={"input": "slow", "background": True},
            headers={"traceparent": f"00-{SLOW_TRACE}-{CLIENT_SPAN}-01"},
        )
        queued = await client.post(
            turns,
            json={"input": "queued", "queue": True, "background": True},
            headers={"traceparent": f"00-{QUEUED_TRACE}-{CLIENT_SPAN}-01"},
        )
        queued_id = queued.json()["turn_id"]
        for _ in range(300):
            if (await client.get(f"{turns}/{queued_id}")).json()["status"] not in ("queued", "running"):
                break
            await asyncio.sleep(0.1)
    return session["id"], reply.json(), children, queued_id, first_calls


def test_a_turn_is_nested_spans_under_the_clients_traceparent_and_claude_code_joins_the_trace(
    mock_model: MockModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = offline_environment(tmp_path, mock_model.url)
    for name in list(os.environ):
        if name not in environment:
            monkeypatch.delenv(name)  # Claude Code inherits this process's environment, as it would the gateway's
    for name, value in {**environment, **CLAUDE_CODE_TRACING}.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "user").mkdir()
    settings = Settings.from_env().with_overrides(port=free_port())
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    try:
        session_id, reply, children, queued_id, first_calls = asyncio.run(
            _serve_and_run_a_turn(settings, exporter, mock_model)
        )
    finally:
        gc.unfreeze()  # the app froze the heap at start-up, as a gateway process does
    assert reply["status"] == "completed", reply

    spans: dict[str, ReadableSpan] = {}
    for span in exporter.get_finished_spans():
        spans.setdefault(span.name, span)
    request = spans["POST /api/sessions/<session_id:str>/turns"]
    turn, acquire = spans["cc_api.turn"], spans["cc_api.engine.acquire"]
    assert {format(s.context.trace_id, "032x") for s in (request, turn, acquire)} == {TRACE_ID}
    assert format(request.parent.span_id, "016x") == CLIENT_SPAN and request.parent.is_remote
    assert turn.parent.span_id == request.context.span_id
    assert acquire.parent.span_id == turn.context.span_id
    assert request.attributes["http.response.status_code"] == 200
    assert turn.attributes["session.id"] == session_id
    assert turn.attributes["cc_api.turn.id"] == reply["turn_id"]
    assert turn.attributes["cc_api.turn.status"] == "completed"
    assert turn.attributes["gen_ai.request.model"] == "claude-sonnet-4-5"
    assert turn.attributes["gen_ai.usage.output_tokens"] == reply["usage"]["output_tokens"] > 0
    assert turn.start_time >= request.start_time and turn.end_time <= request.end_time
    # what a trace tells its backend: ids, routes, figures; never the prompt, nor a key
    for span in exporter.get_finished_spans():
        told = [str(v) for v in span.attributes.values()] + [span.status.description or "", span.name]
        assert not [t for t in told if "traced" in t or os.environ["ANTHROPIC_API_KEY"] in t], span.name

    # Claude Code was started inside the turn's span, so its own spans and its model request join the trace
    assert [child.get("TRACEPARENT") for child in children] == [f"00-{TRACE_ID}-{turn.context.span_id:016x}-01"]
    model_calls = mock_model.message_requests(include_side=False)[:first_calls]

    # a turn queued behind another is in its own request's trace, not the one of the turn it waited behind
    queued = next(s for s in exporter.get_finished_spans() if s.attributes.get("cc_api.turn.id") == queued_id)
    queuing = next(
        s
        for s in exporter.get_finished_spans()
        if s.name == request.name and s.context.trace_id == queued.context.trace_id
    )
    assert format(queued.context.trace_id, "032x") == QUEUED_TRACE and queued.parent.span_id == queuing.context.span_id
    assert queued.attributes["cc_api.turn.status"] == "completed"
    assert model_calls and all(
        call.headers.get("traceparent", "").startswith(f"00-{TRACE_ID}-") for call in model_calls
    ), [call.headers.get("traceparent") for call in model_calls]
    deadline = time.monotonic() + 10
    while _child_environments() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _child_environments() == [], "a Claude CLI process outlived the in-process gateway"
