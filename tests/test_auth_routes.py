"""API-key auth over the app's WHOLE route table, and the refusal to expose an open gateway.

The route list is read from the app itself (``create_app`` plus the sanic-ext routes it gets
at start-up), never typed in here: a route added later without auth fails this test.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from ccapi.api.middleware import OPEN_PATHS
from ccapi.app import create_app
from ccapi.config import Settings
from ccapi.paths import StatePaths
from ccapi.testing import MockModel
from tests.gateway import Gateway
from tests.gateway import test_environment as offline_environment
from tests.metrics_support import scrape, value
from tests.test_errors import _assert_error

API_KEY = "route-walk-key-8c41f2"
WRONG_CREDENTIALS = [
    {},
    {"Authorization": "Bearer wrong-key"},
    {"x-api-key": "wrong-key"},
    {"Authorization": API_KEY},  # no scheme
    {"Authorization": f"Bearer {API_KEY}x"},  # near misses that contain the key
    {"x-api-key": API_KEY[:-1]},
]
_PARAM = re.compile(r"<(\w+)(?::[^>]*)?>")


@pytest.fixture(scope="module")
def route_table(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    """Every (method, path) the gateway serves, path parameters filled with dummies; GET
    routes also answer HEAD. Built in this process only to read ``app.router.routes``."""
    home = tmp_path_factory.mktemp("route-walk")
    app = create_app(Settings(home=home, api_key=API_KEY), name="ccapi_route_walk")
    table = set()
    for route in app.router.routes:
        path = "/" + _PARAM.sub(lambda m: f"{m.group(1)}-dummy", route.path)
        for method in route.methods | ({"HEAD"} if "GET" in route.methods else set()):
            table.add((method, path))
    return sorted(table)


def test_the_route_walk_sees_every_kind_of_route(route_table: list[tuple[str, str]]) -> None:
    """Guards the walk itself: if it found nothing, the auth test below would prove nothing."""
    paths = {path for _, path in route_table}
    assert {
        "/",
        "/healthz",
        "/docs",
        "/docs/openapi.json",
        "/api/models",
        "/api/sessions",
        "/api/sessions/session_id-dummy/turns",
        "/api/sessions/session_id-dummy/events/stream",
        "/api/sessions/session_id-dummy/turns/turn_id-dummy",
    } <= paths
    assert len(paths) >= 15


@pytest.fixture(scope="module")
def keyed(mock_model: MockModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The module's gateway with a key, on a public bind (a key makes it legal): every test here needs both."""
    gw = Gateway(tmp_path_factory.mktemp("keyed"), mock_model.url, CC_API_KEY=API_KEY, CC_API_HOST="0.0.0.0").start()
    yield gw
    gw.stop()
    assert gw.lingering_processes() == [], "a Claude CLI process outlived the gateway"


def test_every_route_but_health_and_info_needs_the_key(keyed: Gateway, route_table: list[tuple[str, str]]) -> None:
    gw = keyed
    guarded = [(m, p) for m, p in route_table if p not in OPEN_PATHS]
    assert len(guarded) >= 15
    for method, path in guarded:
        body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
        for headers in WRONG_CREDENTIALS:
            response = gw.client.request(method, path, headers=headers, **body)
            if method == "HEAD":
                assert response.status_code == 401, (method, path, headers)
                continue
            error = _compat_error(response) if path.startswith("/v1/") else _assert_error(response, 401, "unauthorized")
            assert API_KEY not in response.text, (method, path)
            assert "Bearer" in error["message"]
        allowed = gw.client.request(method, path, headers={"Authorization": f"Bearer {API_KEY}"}, **body)
        assert allowed.status_code != 401, (method, path)  # the key, and only the key, was missing

    for path in OPEN_PATHS:
        assert gw.client.get(path).status_code == 200
    logs = gw.log_path.read_text() + StatePaths(Path(gw.env["CC_API_HOME"])).log_file.read_text()
    assert API_KEY not in logs and API_KEY[:-1] not in logs


def test_the_key_is_taken_as_a_bearer_token_or_x_api_key_and_kept_out_of_answers_and_logs(keyed: Gateway) -> None:
    gw = keyed
    assert gw.client.get("/healthz").status_code == 200
    assert gw.client.get("/").status_code == 200
    count = len(gw.client.get("/api/sessions", headers={"x-api-key": API_KEY}, params={"limit": 100}).json()["data"])
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"x-api-key": "wrong"}, {"Authorization": API_KEY}):
        error = _assert_error(gw.client.get("/api/sessions", headers=headers), 401, "unauthorized")
        assert API_KEY not in error["message"]
        _assert_error(gw.client.post("/api/sessions", json={}, headers=headers), 401, "unauthorized")
    assert gw.client.get("/api/sessions").json().get("error")
    listed = gw.client.get("/api/sessions", headers={"Authorization": f"Bearer {API_KEY}"}, params={"limit": 100})
    assert listed.status_code == 200 and len(listed.json()["data"]) == count  # the refused POSTs created nothing
    _assert_error(gw.client.get("/api/limits"), 401, "unauthorized")
    limits = gw.client.get("/api/limits", headers={"x-api-key": API_KEY}).json()
    assert limits["auth"] == "api_key" and limits["windows"] == []  # an API key has no subscription windows
    created = gw.client.post("/api/sessions", json={}, headers={"x-api-key": API_KEY})
    assert created.status_code == 201
    assert API_KEY not in gw.log_path.read_text()


def test_openai_clients_are_refused_a_wrong_key_in_the_openai_envelope(keyed: Gateway) -> None:
    with (
        openai.OpenAI(base_url=f"{keyed.base_url}/v1", api_key="wrong", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError) as denied,
    ):
        wrong.models.list()
    assert denied.value.body["type"] == "authentication_error"
    with openai.OpenAI(base_url=f"{keyed.base_url}/v1", api_key=API_KEY, max_retries=0) as right:
        ids = [model.id for model in right.models.list()]
    assert "claude-sonnet-4-5" in ids and "claude-opus-4-6" in ids


def test_metrics_need_the_key(keyed: Gateway) -> None:
    _assert_error(keyed.client.get("/metrics"), 401, "unauthorized")
    _assert_error(keyed.client.get("/metrics", headers={"x-api-key": "wrong"}), 401, "unauthorized")
    samples = scrape(keyed, headers={"Authorization": f"Bearer {API_KEY}"})
    assert value(samples, "cc_api_live_sessions_max") == 8
    assert value(samples, "process_resident_memory_bytes") > 0, "the usual process metrics are there"


def _compat_error(response: Any) -> dict:
    """Compat routes (``/v1/...``) answer in their provider's envelope: Anthropic's for
    ``/v1/messages``, OpenAI's for the others."""
    assert response.status_code == 401, response.text
    body = response.json()
    if response.request.url.path.startswith("/v1/messages"):
        assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    else:
        assert body["error"]["type"] == "authentication_error" and body["error"]["code"] == "unauthorized"
    return body["error"]


@pytest.mark.parametrize(
    "host",
    [
        "0.0.0.0",  # the fast loop's one: each host costs a gateway's imports (~2 CPU-seconds) to see it refused
        pytest.param("::", marks=pytest.mark.slow),
        pytest.param("192.0.2.10", marks=pytest.mark.slow),
    ],
)
def test_a_public_bind_without_a_key_is_refused_at_start_up(tmp_path: Path, host: str) -> None:
    env = {**offline_environment(tmp_path, None), "CC_API_HOST": host}
    result = subprocess.run(
        [sys.executable, "-m", "ccapi", "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert f"refusing to listen on non-loopback host {host!r} without CC_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
