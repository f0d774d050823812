"""Subscription limits, end to end: the real CLI on a dummy subscription token reads the mock's
unified rate-limit headers; the gateway shows the windows and, once one is spent, answers 429
without asking Claude again until it resets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from ccapi.compat.errors import failure
from ccapi.compat.errors import rate_limit_headers as compat_rate_limit_headers
from ccapi.limits import UNKNOWN_RESET_SECONDS, LimitBoard, RateLimited, auth_mode
from ccapi.testing import MockError, MockModel, Reply
from ccapi.testing.mock_model import rate_limit_headers
from tests.gateway import Gateway
from tests.metrics_support import scrape, value

HOUR = 3600


@pytest.fixture(scope="module")
def gateway(mock_model: MockModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Children log in as a subscriber would, with a dummy OAuth token (never a real one)."""
    gw = Gateway(
        tmp_path_factory.mktemp("gw"),
        mock_model.url,
        ANTHROPIC_API_KEY=None,
        CLAUDE_CODE_OAUTH_TOKEN="dummy-oauth-token",
    ).start()
    yield gw
    gw.stop()
    assert gw.lingering_processes() == []


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rejected(resets_at: int) -> Reply:
    return Reply(
        error=MockError(429, "rate_limit_error", "usage limit"),
        headers=rate_limit_headers("rejected", resets_at, utilization=1.0),
    )


def _compat_posts(gw: Gateway) -> dict[str, httpx.Response]:
    ask = [{"role": "user", "content": "are we there yet?"}]
    return {
        "chat": gw.client.post("/v1/chat/completions", json={"model": "sonnet", "messages": ask}),
        "responses": gw.client.post("/v1/responses", json={"model": "sonnet", "input": "are we there yet?"}),
        "messages": gw.client.post("/v1/messages", json={"model": "sonnet", "max_tokens": 10, "messages": ask}),
    }


def test_a_warning_is_logged_kept_and_shown(gateway: Gateway, mock_model: MockModel) -> None:
    resets = int(time.time()) + 2 * HOUR
    mock_model.script(
        Reply(
            text="fine for now",
            headers=rate_limit_headers(
                "allowed_warning", resets, utilization=0.91, others={"seven_day": (0.3, resets + 24 * HOUR)}
            ),
        )
    )
    session = gateway.create_session()
    reply = gateway.turn(session["id"], "how much is left?")
    assert reply["status"] == "completed" and reply["output"][0]["text"] == "fine for now"
    assert mock_model.message_requests(include_side=False)[0].headers["authorization"] == "Bearer dummy-oauth-token"

    [event] = [e for e in gateway.events(session["id"]) if e["type"] == "rate_limit"]
    assert event["turn_id"] == reply["turn_id"]
    assert {k: event["data"][k] for k in ("window", "status", "utilization", "resets_at")} == {
        "window": "five_hour",
        "status": "allowed_warning",
        "utilization": 0.91,
        "resets_at": _iso(resets),
    }

    limits = gateway.client.get("/api/limits").json()
    assert limits["auth"] == "subscription" and limits["rate_limited"] is False
    windows = {w["window"]: w for w in limits["windows"]}
    assert windows["five_hour"]["status"] == "allowed_warning" and windows["five_hour"]["utilization"] == 0.91
    assert windows["seven_day"]["utilization"] == 0.3
    assert windows["seven_day"]["resets_at"] == _iso(resets + 24 * HOUR)
    samples = scrape(gateway)
    assert value(samples, "cc_api_rate_limit_utilization", window="five_hour") == 0.91
    assert value(samples, "cc_api_rate_limit_utilization", window="seven_day") == 0.3
    clock = datetime.fromtimestamp(resets, UTC).strftime("%H:%M")
    assert (
        f"5-hour window 91% used (warning), resets {clock} UTC"
        in gateway.client.get("/healthz").json()["limits"]["summary"]
    )

    chat = gateway.client.post(
        "/v1/chat/completions", json={"model": "sonnet", "messages": [{"role": "user", "content": "and now?"}]}
    )
    assert chat.status_code == 200
    assert chat.headers["x-cc-ratelimit-status"] == "allowed_warning"
    assert chat.headers["x-cc-ratelimit-window"] == "five_hour"
    assert chat.headers["x-cc-ratelimit-utilization"] == "0.91"
    assert chat.headers["x-cc-ratelimit-reset"] == _iso(resets)


@pytest.mark.slow
def test_a_rejection_mid_turn_is_a_429_until_the_reset(gateway: Gateway, mock_model: MockModel) -> None:
    resets = int(time.time()) + 10  # room for a Claude Code start and a session under a busy machine's load
    mock_model.script(_rejected(resets))
    refused = gateway.client.post(
        "/v1/chat/completions", json={"model": "sonnet", "messages": [{"role": "user", "content": "one more"}]}
    )
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["type"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(mock_model.message_requests(include_side=False)) == 1  # no retry into the wall

    session = gateway.create_session()
    held = gateway.client.post(f"/api/sessions/{session['id']}/turns", json={"input": "still there?"})
    assert held.status_code == 429 and held.json()["error"]["type"] == "rate_limited"
    assert len(mock_model.message_requests(include_side=False)) == 1

    time.sleep(max(0.0, resets - time.time()) + 0.5)
    assert gateway.turn(session["id"], "after the reset")["status"] == "completed"


def test_a_spent_window_fails_the_turn_then_refuses_every_new_one(gateway: Gateway, mock_model: MockModel) -> None:
    resets = int(time.time()) + 2 * HOUR
    session = gateway.create_session()
    mock_model.script(_rejected(resets))
    failed = gateway.turn(session["id"], "one too many")
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "rate_limited" and "5-hour limit" in failed["error"]["message"]
    assert failed["error"]["window"] == "five_hour" and failed["error"]["resets_at"] == _iso(resets)
    rejected = [e["data"] for e in gateway.events(session["id"]) if e["type"] == "rate_limit"]
    assert rejected[-1]["status"] == "rejected" and rejected[-1]["window"] == "five_hour"

    limits = gateway.client.get("/api/limits").json()
    assert limits["rate_limited"] is True and HOUR < limits["retry_after"] <= 2 * HOUR
    assert "LIMIT REACHED" in gateway.client.get("/healthz").json()["limits"]["summary"]

    mock_model.clear()
    sessions_before = gateway.client.get("/api/sessions", params={"limit": 100}).json()["data"]
    live_before = gateway.client.get("/healthz").json()["live_engines"]

    native = gateway.client.post(f"/api/sessions/{session['id']}/turns", json={"input": "please?"})
    assert native.status_code == 429
    error = native.json()["error"]
    assert error["type"] == "rate_limited"
    assert error["details"]["window"] == "five_hour" and error["details"]["resets_at"] == _iso(resets)
    assert HOUR < int(native.headers["retry-after"]) <= 2 * HOUR

    replies = _compat_posts(gateway)
    for name, reply in replies.items():
        assert reply.status_code == 429, (name, reply.text)
        assert HOUR < int(reply.headers["retry-after"]) <= 2 * HOUR, name
    assert replies["chat"].json()["error"]["code"] == "rate_limited"
    assert replies["responses"].json()["error"]["code"] == "rate_limited"
    responses = replies["responses"].headers
    assert responses["x-ratelimit-reset-requests"] == f"{responses['retry-after']}s"
    anthropic_body = replies["messages"].json()
    assert anthropic_body["type"] == "error" and anthropic_body["error"]["type"] == "rate_limit_error"
    assert replies["messages"].headers["anthropic-ratelimit-unified-status"] == "rejected"
    assert replies["messages"].headers["anthropic-ratelimit-unified-reset"] == str(resets)
    assert replies["messages"].headers["anthropic-ratelimit-unified-representative-claim"] == "five_hour"

    assert mock_model.requests == []  # no model call
    assert gateway.client.get("/healthz").json()["live_engines"] == live_before  # no Claude Code started
    assert gateway.client.get("/api/sessions", params={"limit": 100}).json()["data"] == sessions_before


# -- units: the board's rules, which the stack above cannot reach quickly ------------------------

NOW = 1_800_000_000


def _event(status: str, **fields: object) -> dict[str, object]:
    return {"window": "five_hour", "status": status, "utilization": None, "resets_at": _iso(NOW + HOUR), **fields}


def test_overage_lifts_a_rejection_and_an_unknown_reset_holds_briefly() -> None:
    board = LimitBoard("subscription")
    board.record(_event("rejected", overage_status="allowed"), now=NOW)
    assert board.blocking(NOW) is None
    board.check(NOW)  # overage is paid for: turns go on

    board.record(_event("rejected", resets_at=None), now=NOW)
    with pytest.raises(RateLimited) as held:
        board.check(NOW + 1)
    assert held.value.status == 429 and held.value.headers["Retry-After"] == str(UNKNOWN_RESET_SECONDS - 1)
    assert board.blocking(NOW + UNKNOWN_RESET_SECONDS + 1) is None  # then Claude is asked again

    board.record(_event("allowed", utilization=0.2), now=NOW + 2)
    assert board.blocking(NOW + 2) is None and board.warning_headers(NOW + 2) == {}


def test_api_key_users_get_their_auth_mode_and_no_invented_windows() -> None:
    view = LimitBoard(auth_mode("ANTHROPIC_API_KEY")).view(NOW)
    assert view["auth"] == "api_key" and view["windows"] == [] and view["rate_limited"] is False
    assert "no subscription windows" in view["note"]
    assert auth_mode("CLAUDE_CODE_OAUTH_TOKEN") == auth_mode("claude-login") == "subscription"
    assert auth_mode(None) == "unknown"


def test_a_turn_failure_for_the_limit_becomes_a_429_for_compat_clients() -> None:
    error = {
        "type": "rate_limited",
        "message": "You've hit your 5-hour limit",
        "window": "five_hour",
        "resets_at": _iso(NOW + 90),
    }
    refused = failure(error)
    assert isinstance(refused, RateLimited)
    assert refused.status == 429 and refused.type == "rate_limited" and refused.window == "five_hour"
    assert RateLimited.from_error(error, now=NOW).headers == {"Retry-After": "90"}
    assert compat_rate_limit_headers(RateLimited.from_error(error, now=NOW), anthropic=True) == {
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-representative-claim": "five_hour",
        "anthropic-ratelimit-unified-reset": str(NOW + 90),
    }
