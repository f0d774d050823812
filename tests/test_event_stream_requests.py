"""The event stream's requests at their edges: ``HEAD``, ``Last-Event-ID`` beside ``after``, and a client
refused a stream by the stream limits."""

from __future__ import annotations

import httpx
import orjson

from ccapi.testing import MockModel
from tests.gateway import Gateway, eventually, sse_events


def _first_event(gateway: Gateway, path: str, **kwargs: object) -> dict:
    with gateway.client.stream("GET", path, **kwargs) as response:  # type: ignore[arg-type]
        assert response.status_code == 200, response.read()
        return next(frame for frame in sse_events(response.iter_lines()) if "event" in frame)


def test_a_head_of_the_event_stream_answers_its_headers_and_logs_no_error(gateway: Gateway) -> None:
    """A monitor or proxy that checks the stream with ``HEAD`` gets the ``GET``'s status and headers and no body;
    it used to put a ``TypeError`` traceback in the gateway's log (Sanic cannot stream a ``HEAD``)."""
    session_id = gateway.create_session()["id"]
    path = f"/api/sessions/{session_id}/events/stream"
    head = gateway.client.head(path)
    assert head.status_code == 200
    assert head.headers["content-type"].startswith("text/event-stream")
    assert (head.headers["cache-control"], head.headers["x-accel-buffering"]) == ("no-cache", "no")
    assert head.content == b""
    assert gateway.client.head("/api/sessions/sess_nope/events/stream").status_code == 404
    assert gateway.client.head(path, params={"after": "x"}).status_code == 400
    # the connection serves on, and a GET still streams
    assert _first_event(gateway, path)["event"] == "session.created"
    log = gateway.log_text()
    assert "Traceback" not in log and "sanic.error" not in log, log[-2000:]


def test_last_event_id_wins_over_after_and_an_unreadable_after_is_a_400(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """An ``EventSource`` given ``?after=N`` reconnects to that same URL with the ``Last-Event-ID`` it saw: the
    header wins. A malformed ``after`` beside it is a ``400``, as it is alone, not silently ignored."""
    session_id = gateway.create_session()["id"]
    gateway.turn(session_id, "hello")
    last = gateway.events(session_id)[-1]["seq"]
    path = f"/api/sessions/{session_id}/events/stream"

    resumed = _first_event(gateway, path, params={"after": last - 1}, headers={"Last-Event-ID": "2"})
    assert int(resumed["id"]) == resumed["data"]["seq"] == 3

    for bad in ("x", "-1", "1.5"):
        with gateway.client.stream("GET", path, params={"after": bad}, headers={"Last-Event-ID": "2"}) as refused:
            assert refused.status_code == 400, (bad, refused.headers.get("content-type"))  # not a stream
            assert refused.headers["content-type"] == "application/json"
            error = orjson.loads(refused.read())["error"]
        assert error["type"] == "invalid_request" and "after" in error["message"]


def test_a_client_refused_an_event_stream_is_told_when_to_retry(make_gateway) -> None:
    """The per-session and gateway-wide stream limits answer ``503`` with ``Retry-After`` (as every other ``503`` of
    the gateway does) and the limit in ``details``; the place frees up when a stream's client leaves."""
    gw = make_gateway(CC_API_SSE_MAX_STREAMS_PER_SESSION="1", CC_API_SSE_MAX_STREAMS="2")
    first, second, third = (gw.create_session()["id"] for _ in range(3))

    def path(session_id: str) -> str:
        return f"/api/sessions/{session_id}/events/stream"

    def opens(client: httpx.Client, session_id: str) -> bool:
        with client.stream("GET", path(session_id)) as response:
            return response.status_code == 200

    with httpx.Client(base_url=gw.base_url, timeout=10) as client, client.stream("GET", path(first)) as held:
        assert held.status_code == 200
        per_session = gw.client.get(path(first))
        assert per_session.status_code == 503, per_session.text
        assert per_session.headers["retry-after"].isdigit()
        error = per_session.json()["error"]
        assert error["type"] == "unavailable" and error["details"] == {"limit": 1}
        assert "CC_API_SSE_MAX_STREAMS_PER_SESSION" in error["message"]

        with client.stream("GET", path(second)) as other:
            assert other.status_code == 200
            gateway_wide = gw.client.get(path(third))
            assert gateway_wide.status_code == 503, gateway_wide.text
            assert gateway_wide.headers["retry-after"].isdigit()
            error = gateway_wide.json()["error"]
            assert error["details"] == {"limit": 2} and "CC_API_SSE_MAX_STREAMS)" in error["message"]
        # the second stream's client left: its place is free for the third
        assert eventually(lambda: opens(client, third))
