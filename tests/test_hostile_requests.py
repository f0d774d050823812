"""Local-daemon security audit: what a misbehaving local client or a foreign web page tried on the real
gateway, and the answers each must get."""

from __future__ import annotations

import socket
import time

import orjson
import pytest

from tests.gateway import Gateway

# request targets that are no path at all: a proxy's CONNECT, a scanner's bare word, a lone query
NO_PATH_TARGETS = [
    b"CONNECT evil.example:443",
    b"GET evil.example:443",
    b"GET foo",
    b"GET ?",
    b"OPTIONS http://",
    b"GET \xff",
    b"POST [::1]:80",
]


def _exchange(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("line", NO_PATH_TARGETS)
def test_a_request_target_that_is_no_path_gets_a_400_and_no_traceback(gateway: Gateway, line: bytes) -> None:
    """Each got no answer at all (the connection dropped) and a 3 KB traceback in the log."""
    gateway.mark_log()
    answer = _exchange(gateway.port, line + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]
    assert orjson.loads(answer.partition(b"\r\n\r\n")[2])["error"]["type"] == "invalid_request"
    time.sleep(0.3)  # the request's log line is written soon after the answer
    logged = gateway.log_text()
    assert "Traceback" not in logged and "uncaught" not in logged, logged[-3000:]
    assert gateway.client.get("/healthz").status_code == 200


FRAMED = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "iframe"}


def test_a_foreign_page_cannot_load_an_answer_into_a_frame(gateway: Gateway) -> None:
    """A frame's navigation passed as a link does: a foreign page could load any read (a session, its live
    event stream) into an invisible frame and lead the user to click or drag in it."""
    session = gateway.create_session()
    for path in ("/api/sessions", f"/api/sessions/{session['id']}", "/docs/openapi.json", "/v1/models", "/"):
        response = gateway.client.get(path, headers=FRAMED)
        assert response.status_code == 403, (path, response.status_code)
        assert session["id"] not in response.text
    for dest in ("document", None):  # a link followed by the user (older browsers send no Sec-Fetch-Dest)
        headers = (
            {**FRAMED, "sec-fetch-dest": dest} if dest else {k: v for k, v in FRAMED.items() if k != "sec-fetch-dest"}
        )
        assert gateway.client.get("/", headers={**headers, "accept": "text/html"}).status_code == 200


def test_no_answer_may_be_framed(gateway: Gateway) -> None:
    """The console said so already; ``/docs`` only in its CSP (which older browsers ignore), JSON not at all."""
    session = gateway.create_session()
    for path in ("/docs", "/docs/openapi.json", "/api/sessions", f"/api/sessions/{session['id']}", "/healthz", "/nope"):
        assert gateway.client.get(path).headers.get("x-frame-options") == "DENY", path
    assert gateway.client.get("/", headers={"accept": "text/html"}).headers.get_list("x-frame-options") == ["DENY"]
