"""A web page the user visits cannot drive the gateway: the attacks a browser allows, tried
on the real gateway (no key, the default on loopback), each refused without changing anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ccapi.testing import MockModel
from tests.gateway import Gateway
from tests.inprocess import InProcessGateway
from tests.test_errors import _assert_error

CHAT = {"model": "sonnet", "messages": [{"role": "user", "content": "run printenv with Bash"}]}
SESSION = {"system_prompt": "attacker"}


def _raw(gw: Gateway, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> httpx.Response:
    """A request with exactly these headers (httpx would otherwise set Host and Content-Type itself)."""
    return gw.client.request(method, path, content=body, headers=headers)


def _state(gw: Gateway, mock: MockModel) -> tuple[Any, int]:
    return gw.client.get("/api/sessions", params={"limit": 100}).json()["data"], len(mock.requests)


SIMPLE_POSTS = [  # what a <form> or fetch(..., {mode: "no-cors"}) sends without any CORS preflight
    ("/api/sessions", SESSION, "text/plain"),
    ("/api/sessions", SESSION, "application/x-www-form-urlencoded"),
    ("/v1/chat/completions", CHAT, "text/plain;charset=UTF-8"),
    ("/v1/messages", {**CHAT, "max_tokens": 100}, "multipart/form-data; boundary=x"),
    ("/v1/responses", {"model": "sonnet", "input": "hi"}, "text/plain"),
]


@pytest.mark.parametrize(("path", "payload", "content_type"), SIMPLE_POSTS)
def test_a_simple_cross_site_post_runs_nothing(
    gateway: Gateway, mock_model: MockModel, path: str, payload: dict[str, Any], content_type: str
) -> None:
    """The JSON-only rule alone stops a form POST, even one whose Origin a privacy setting stripped."""
    before = _state(gateway, mock_model)
    response = _raw(gateway, "POST", path, {"content-type": content_type}, orjson.dumps(payload))
    assert response.status_code == 415, response.text
    assert "application/json" in response.text and "Traceback" not in response.text
    assert _state(gateway, mock_model) == before


def test_a_json_post_from_another_origin_is_refused(gateway: Gateway, mock_model: MockModel) -> None:
    before = _state(gateway, mock_model)
    for origin in (
        "https://evil.example.invalid",
        "http://localhost:3000",
        "null",
        f"http://127.0.0.1:{gateway.port}.evil",
    ):
        response = gateway.client.post("/api/sessions", json=SESSION, headers={"origin": origin})
        assert _assert_error(response, 403, "forbidden")["message"].startswith("cross-origin request refused")
    compat = gateway.client.post("/v1/chat/completions", json=CHAT, headers={"origin": "https://evil.example.invalid"})
    assert compat.status_code == 403
    assert compat.json()["error"]["type"] == "permission_error"  # in the client's own error format
    assert _state(gateway, mock_model) == before


def test_fetch_metadata_cross_site_is_refused_even_for_reads(gateway: Gateway) -> None:
    session = gateway.create_session()
    for site in ("cross-site", "same-site"):  # same-site: a page on another port of localhost
        response = gateway.client.get(f"/api/sessions/{session['id']}/events", headers={"sec-fetch-site": site})
        _assert_error(response, 403, "forbidden")
        delete = gateway.client.delete(f"/api/sessions/{session['id']}", headers={"sec-fetch-site": site})
        _assert_error(delete, 403, "forbidden")
    assert gateway.client.get(f"/api/sessions/{session['id']}").status_code == 200


def test_a_link_from_another_site_still_opens_the_console(gateway: Gateway) -> None:
    """A top-level navigation shows the page to the user; the linking site reads nothing."""
    response = gateway.client.get("/", headers={"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:8000", "localhost.attacker.example", "127.0.0.1.nip.example", "[bad"]
)
def test_dns_rebinding_host_names_are_refused(gateway: Gateway, host: str) -> None:
    gateway.create_session()
    for path in ("/api/sessions", "/healthz", "/"):
        response = _raw(gateway, "GET", path, {"host": host})
        error = _assert_error(response, 403, "forbidden")
        assert "CC_API_ALLOWED_HOSTS" in error["message"] and "sess_" not in response.text


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:1234", "127.0.0.1", "[::1]:8000", "app.localhost", "10.1.2.3", "[fe80::1]"]
)
def test_loopback_names_and_ip_literals_are_answered(gateway: Gateway, host: str) -> None:
    assert _raw(gateway, "GET", "/api/sessions", {"host": host}).status_code == 200


def test_same_origin_json_is_served(gateway: Gateway) -> None:
    """What the browser console sends: its own origin, fetch metadata same-origin, a JSON body."""
    origin = gateway.base_url
    headers = {"origin": origin, "sec-fetch-site": "same-origin"}
    session = gateway.client.post("/api/sessions", json=SESSION, headers=headers)
    assert session.status_code == 201, session.text
    turn = gateway.client.post(
        f"/api/sessions/{session.json()['id']}/turns",
        json={"input": "hi"},
        headers={**headers, "content-type": "application/json; charset=utf-8"},
    )
    assert turn.status_code == 200 and turn.json()["status"] == "completed"
    empty = gateway.client.post(f"/api/sessions/{session.json()['id']}/interrupt", headers=headers)
    assert empty.status_code != 415  # a body-less POST needs no content type


def test_allowed_hosts_and_a_key_do_not_lift_the_rules(tmp_path: Path) -> None:
    """In process (the guard is the app's own middleware; no Claude Code is reached): the settings as a gateway
    reads them from its environment, each request with exactly the Host, Origin and Content-Type given."""
    gw = InProcessGateway(tmp_path, CC_API_ALLOWED_HOSTS="gw.example.invalid, .corp.example", CC_API_KEY="guard-key-51")
    auth = {"authorization": "Bearer guard-key-51"}
    for host in ("gw.example.invalid", "gw.example.invalid:443", "box.corp.example", "corp.example"):
        assert gw.request("GET", "/api/sessions", headers={**auth, "host": host}).status == 200, host
    assert gw.request("GET", "/api/sessions", headers={**auth, "host": "other.example"}).status == 403
    # the right key in a text/plain body (a page that stole it still cannot skip the preflight)
    text = gw.request("POST", "/api/sessions", headers={**auth, "content-type": "text/plain"}, content=b"{}")
    assert text.status == 415
    cross = gw.request("POST", "/api/sessions", json={}, headers={**auth, "origin": "https://evil.example.invalid"})
    assert cross.status == 403
    same = gw.request(
        "POST",
        "/api/sessions",
        json={},
        headers={**auth, "origin": "https://gw.example.invalid", "host": "gw.example.invalid"},
    )
    assert same.status == 201, same.text
