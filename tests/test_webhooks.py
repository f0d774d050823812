"""Signed, durable webhooks: a background turn calls its client back, with retries, across a crash."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ccapi.catalog import ModelCatalog
from ccapi.client import WebhookVerificationError, verify_webhook
from ccapi.config import ConfigError, Settings
from ccapi.errors import InvalidRequest
from ccapi.events import Event
from ccapi.ids import utcnow
from ccapi.sessions import NewSession
from ccapi.store import JsonDirStore, SessionRecord, SqlStore, Store
from ccapi.store.databases import postgres_database, sqlite_database
from ccapi.store.outbox import DELIVERED, FAILED, PENDING, WebhookDelivery, delivery_id, first_owed
from ccapi.testing import MockModel, Reply, ToolUse
from ccapi.webhook_rules import LOOPBACK, AllowList, new_secret
from ccapi.webhooks.sender import WebhookSender
from ccapi.webhooks.signing import sign
from ccapi.webhooks.targets import WebhookPolicy
from tests.gateway import Gateway, eventually
from tests.metrics_support import moved, scrape
from tests.webhook_receiver import Receiver

SECRET = new_secret()
WEBHOOK_ENV = {"CC_API_WEBHOOK_SECRET": SECRET, "CC_API_WEBHOOK_BACKOFF": "0.2", "CC_API_WEBHOOK_TIMEOUT": "2"}
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def hooked(mock_model: MockModel, backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway that signs webhooks with ``SECRET`` and retries quickly."""
    gw = Gateway(tmp_path_factory.mktemp("hooked"), mock_model.url, backend, **WEBHOOK_ENV).start()
    yield gw
    gw.stop()
    assert gw.lingering_processes() == []


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def _deliveries(gw: Gateway, session_id: str) -> list[dict[str, Any]]:
    response = gw.client.get(f"/api/sessions/{session_id}/webhooks")
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _wait_for_state(
    gw: Gateway, session_id: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 30
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = _deliveries(gw, session_id)
        if done(listed):
            return listed
        time.sleep(0.05)
    raise AssertionError(f"deliveries stayed {listed}")


def test_background_tool_turn_calls_back_and_is_answered_through_tool_results(
    hooked: Gateway, mock_model: MockModel, receiver: Receiver
) -> None:
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)), Reply(text="Oslo is cold."))
    session = hooked.create_session(tools=[WEATHER], webhook={"url": receiver.url})
    assert session["webhook"] == {
        "url": receiver.url,
        "events": [
            "turn.completed",
            "turn.requires_action",
            "turn.requires_approval",
            "turn.failed",
            "turn.interrupted",
        ],
    }
    started = hooked.client.post(
        f"/api/sessions/{session['id']}/turns", json={"input": "weather in Oslo?", "background": True}
    )
    assert started.status_code == 202, started.text

    paused = receiver.wait_for(lambda seen: len(seen) >= 1)[0]
    event = verify_webhook(SECRET, paused.headers, paused.body)
    assert event["type"] == "turn.requires_action" and event["session_id"] == session["id"]
    assert event["turn_id"] == started.json()["turn_id"]
    assert paused.headers["webhook-id"] == f"{session['id']}_{event['seq']}"
    assert paused.headers["content-type"] == "application/json"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(new_secret(), paused.headers, paused.body)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, paused.headers, paused.body.replace(b"Oslo", b"Rome"))

    call = event["data"]["tool_calls"][0]
    assert call["name"] == "get_weather" and call["input"] == {"city": "Oslo"}
    answered = hooked.client.post(
        f"/api/sessions/{session['id']}/tool-results",
        json={"results": [{"tool_call_id": call["tool_call_id"], "content": "-3C"}], "background": True},
    )
    assert answered.status_code == 202, answered.text

    done = receiver.wait_for(lambda seen: len(seen) >= 2)[1]
    completed = verify_webhook(SECRET, done.headers, done.body)
    assert completed["type"] == "turn.completed" and completed["turn_id"] == event["turn_id"]
    assert done.headers["webhook-id"] != paused.headers["webhook-id"]
    logged = {e["seq"]: e for e in hooked.events(session["id"])}
    assert logged[completed["seq"]] == completed  # the event exactly as the log has it

    time.sleep(0.3)
    assert len(receiver.deliveries) == 2  # only the subscribed events: no turn.started, no deltas
    listed = _deliveries(hooked, session["id"])
    assert [(d["event_type"], d["state"], d["attempts"], d["last_status"]) for d in listed] == [
        ("turn.requires_action", "delivered", 1, 200),
        ("turn.completed", "delivered", 1, 200),
    ]
    read = hooked.client.get(f"/api/sessions/{session['id']}")
    assert read.json()["webhook"]["url"] == receiver.url
    assert SECRET.removeprefix("whsec_") not in read.text + str(listed)


def test_an_interrupted_background_turn_calls_back_by_default(
    hooked: Gateway, mock_model: MockModel, receiver: Receiver
) -> None:
    """An interrupt (the console's, a delete's, a stopping gateway's) ends a turn too: a client waiting on its
    default webhook hears of it instead of waiting for ever. A forged signature that is not ASCII is refused
    as any other, not a crash in the receiver's check."""
    mock_model.script(Reply(text="too late", first_byte_delay=30))
    session = hooked.create_session(webhook={"url": receiver.url})
    url = f"/api/sessions/{session['id']}"
    started = hooked.client.post(f"{url}/turns", json={"input": "take your time", "background": True})
    assert started.status_code == 202, started.text
    _wait_for_request(mock_model)
    assert hooked.client.post(f"{url}/interrupt").status_code == 200
    [delivery] = receiver.wait_for(lambda seen: len(seen) >= 1)
    event = verify_webhook(SECRET, delivery.headers, delivery.body)
    assert event["type"] == "turn.interrupted" and event["turn_id"] == started.json()["turn_id"]
    assert receiver.url not in hooked.log_text()  # its path may be the receiver's token: only the host is logged
    forged = {**delivery.headers, "webhook-signature": "v1,\u00e9t\u00e9"}
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, forged, delivery.body)


def test_a_deleted_sessions_last_delivery_still_arrives(
    hooked: Gateway, mock_model: MockModel, receiver: Receiver
) -> None:
    """Deleting a running session ends its turn: the client waiting on the webhook still hears so, although
    its receiver failed the first attempt and the session was gone by the retry."""
    receiver.answers = [(503, {}), (200, {})]
    mock_model.script(Reply(text="too late", first_byte_delay=30))
    session = hooked.create_session(webhook={"url": receiver.url})
    started = hooked.client.post(f"/api/sessions/{session['id']}/turns", json={"input": "hi", "background": True})
    assert started.status_code == 202, started.text
    _wait_for_request(mock_model)
    assert hooked.client.delete(f"/api/sessions/{session['id']}").status_code in (200, 204)
    seen = receiver.wait_for(lambda seen: len(seen) >= 2)
    events = [verify_webhook(SECRET, d.headers, d.body) for d in seen]
    assert [(e["type"], e["turn_id"]) for e in events] == [("turn.interrupted", started.json()["turn_id"])] * 2


def _signed_by_the_standard(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks checked from its text, not with CC API's own code: the three headers, ``v1,`` + base64
    HMAC-SHA256 keyed by the secret's base64 bytes over ``id.timestamp.body``, a timestamp of this attempt."""
    lowered = {name.lower(): value for name, value in headers.items()}
    webhook_id, stamp = lowered["webhook-id"], lowered["webhook-timestamp"]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{webhook_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(mac).decode()
    return stamp.isdigit() and abs(time.time() - int(stamp)) < 30 and expected in lowered["webhook-signature"].split()


def _wait_for_request(mock: MockModel, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not mock.message_requests(include_side=False):
        assert time.monotonic() < deadline, "the turn never reached the model"
        time.sleep(0.05)


def test_retries_until_the_receiver_answers_with_one_webhook_id(
    hooked: Gateway, mock_model: MockModel, receiver: Receiver
) -> None:
    receiver.answers = [(500, {}), (500, {}), (200, {})]
    before = scrape(hooked)
    session = hooked.create_session(webhook={"url": receiver.url, "events": ["turn.completed"]})
    hooked.turn(session["id"], "hello")

    seen = receiver.wait_for(lambda seen: len(seen) >= 3)
    assert len({d.headers["webhook-id"] for d in seen}) == 1
    assert all(_signed_by_the_standard(SECRET, d.headers, d.body) for d in seen)
    assert all(verify_webhook(SECRET, d.headers, d.body)["type"] == "turn.completed" for d in seen)
    assert seen[1].received_at - seen[0].received_at >= 0.1 - 0.02  # backed off (0.2 s base, half jittered)
    listed = _wait_for_state(hooked, session["id"], lambda d: d[0]["state"] == "delivered")
    assert listed[0]["attempts"] == 3 and listed[0]["last_status"] == 200 and listed[0]["next_attempt_at"] is None
    time.sleep(0.5)
    assert len(receiver.deliveries) == 3
    after = scrape(hooked)
    attempts = {o: moved(before, after, "cc_api_webhook_deliveries_total", outcome=o) for o in ("retry", "delivered")}
    assert attempts == {"retry": 2, "delivered": 1}


def test_retry_after_is_honoured_and_a_4xx_or_a_redirect_is_final(
    hooked: Gateway, mock_model: MockModel, receiver: Receiver
) -> None:
    """A 4xx other than 408, 429 and 410 fails that delivery only: the session stays subscribed."""
    receiver.answers = [
        (429, {"Retry-After": "1"}),
        (408, {}),  # the receiver timed out reading it: another attempt
        (200, {}),
        (404, {}),
        (307, {"Location": "https://192.0.2.7/hooks?token=sekrit"}),
    ]
    session = hooked.create_session(webhook={"url": receiver.url, "events": ["turn.completed"]})
    hooked.turn(session["id"], "hello")
    first, second, third = receiver.wait_for(lambda seen: len(seen) >= 3)
    assert second.received_at - first.received_at >= 0.95
    assert third.headers["webhook-id"] == first.headers["webhook-id"]

    hooked.turn(session["id"], "hello again")
    listed = _wait_for_state(hooked, session["id"], lambda d: len(d) == 2 and d[1]["state"] == "failed")
    assert listed[1]["attempts"] == 1 and listed[1]["last_status"] == 404 and "404" in listed[1]["last_error"]
    assert listed[1]["completed_at"] is not None and listed[1]["next_attempt_at"] is None

    hooked.turn(session["id"], "and again")  # a redirect is never followed (it could lead anywhere)
    listed = _wait_for_state(hooked, session["id"], lambda d: len(d) == 3 and d[2]["state"] == "failed")
    assert listed[2]["attempts"] == 1 and "redirects are not followed" in listed[2]["last_error"]
    assert "https://192.0.2.7/…" in listed[2]["last_error"]  # where to, as the log shows a URL: not its token
    assert "sekrit" not in listed[2]["last_error"] + hooked.log_text()
    assert len(receiver.deliveries) == 5
    assert hooked.client.get(f"/api/sessions/{session['id']}").json()["webhook"]["url"] == receiver.url


def test_a_410_gone_ends_the_sessions_webhook_and_drops_what_it_still_owes(
    hooked: Gateway, mock_model: MockModel, receiver: Receiver
) -> None:
    """The receiver's 410 to turn.started, answered once the turn.completed behind it is owed: that one is never
    sent, the session shows no webhook, its log says why, one warning names the host, and later turns owe none."""
    answer = threading.Event()
    receiver.answers = [(410, {}, b"gone", 0.0, answer)]
    url = f"{receiver.url}?token=sekrit"
    subscription = {"url": url, "events": ["turn.started", "turn.completed"]}
    session = hooked.create_session(webhook=subscription)
    hooked.turn(session["id"], "hello")
    assert [d["state"] for d in _deliveries(hooked, session["id"])] == ["pending", "pending"]

    answer.set()
    listed = _wait_for_state(hooked, session["id"], lambda d: [x["state"] for x in d] == ["failed", "failed"])
    assert (listed[0]["attempts"], listed[0]["last_status"]) == (1, 410)
    assert (listed[1]["attempts"], listed[1]["last_status"]) == (0, None) and "410" in listed[1]["last_error"]
    assert hooked.client.get(f"/api/sessions/{session['id']}").json()["webhook"] is None
    assert eventually(lambda: any(e["type"] == "session.updated" for e in hooked.events(session["id"])))
    [updated] = [e for e in hooked.events(session["id"]) if e["type"] == "session.updated"]
    assert updated["data"] == {
        "changed": ["webhook"],
        "webhook": None,
        "previous": {"webhook": subscription},
        "by": "webhook_gone",
    }
    [warning] = [line for line in hooked.log_text().splitlines() if "webhook_subscription_ended" in line]
    logged = orjson.loads(warning)
    assert logged["level"] == "warning" and logged["session_id"] == session["id"]
    assert logged["url"] == f"http://127.0.0.1:{receiver.port}/…" and "sekrit" not in hooked.log_text()

    hooked.turn(session["id"], "still there?")  # its events would owe deliveries in the commit that wrote them
    assert len(_deliveries(hooked, session["id"])) == 2 and len(receiver.deliveries) == 1


def test_a_sessions_deliveries_arrive_one_at_a_time_in_event_order(
    hooked: Gateway, mock_model: MockModel, receiver: Receiver
) -> None:
    """The receiver hears a session in seq order: the events after a refused delivery wait for its retry instead
    of overtaking it, and each waits for the answer to the one before (two in flight could land either way)."""
    receiver.answers = [(503, {"Retry-After": "2"}), *[(200, {}, b"ok", 0.2)] * 6]
    events = ["turn.started", "message.completed", "turn.completed"]
    session = hooked.create_session(webhook={"url": receiver.url, "events": events})
    hooked.turn(session["id"], "one")
    hooked.turn(session["id"], "two")
    owed = [event["seq"] for event in hooked.events(session["id"]) if event["type"] in events]
    seen = receiver.wait_for(lambda seen: len(seen) > len(owed))
    assert [d.event["seq"] for d in seen] == [owed[0], *owed]  # the first refused, then retried; then the rest
    assert receiver.most_at_once == 1
    _wait_for_state(hooked, session["id"], lambda listed: all(d["state"] == "delivered" for d in listed))


def test_deliveries_are_listed_newest_first_with_order_desc_and_paged_back_with_before(
    hooked: Gateway, mock_model: MockModel, receiver: Receiver
) -> None:
    """What the console's webhook panel shows a person watching: the latest deliveries first; ``order`` and the
    cursors are checked as any list route's parameters are."""
    events = ["turn.started", "turn.completed"]
    session = hooked.create_session(webhook={"url": receiver.url, "events": events})
    hooked.turn(session["id"], "one")
    hooked.turn(session["id"], "two")
    owed = [event["seq"] for event in hooked.events(session["id"]) if event["type"] in events]
    assert len(owed) == 4
    url = f"/api/sessions/{session['id']}/webhooks"

    def seqs(**params: Any) -> tuple[list[int], bool, int]:
        response = hooked.client.get(url, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        return [d["event_seq"] for d in page["data"]], page["has_more"], page["last_seq"]

    newest, more, last = seqs(order="desc", limit=3)
    assert (newest, more, last) == (owed[:0:-1], True, owed[1])
    assert seqs(order="desc", limit=3, before=last) == ([owed[0]], False, owed[0])
    assert seqs()[0] == owed  # event order by default, as before
    assert seqs(order="asc", after=owed[0], before=owed[3])[0] == owed[1:3]
    bad = [{"order": "newest"}, {"order": "DESC"}, {"before": "0"}, {"before": "x"}, {"before": "1_0"}, {"after": "-1"}]
    for params in bad:
        response = hooked.client.get(url, params=params)
        assert response.status_code == 400, (params, response.text)
        error = response.json()["error"]
        assert error["type"] == "invalid_request" and next(iter(params)) in error["message"]


BAD_WEBHOOKS = [
    {"url": "http://example.invalid/hook"},  # not on the allow-list (loopback only by default)
    {"url": "http://192.0.2.7/hook"},
    {"url": "ftp://127.0.0.1/hook"},
    {"url": "http://user:pw@127.0.0.1/hook"},
    {"url": "/relative"},
    {"url": "http://127.0.0.1/hook\u0000"},
    {"url": "http://127.0.0.1/hook", "events": ["message.delta"]},
    {"url": "http://127.0.0.1/hook", "events": []},
    {"url": "http://127.0.0.1/hook", "secret": "mine"},
    "http://127.0.0.1/hook",
]


@pytest.mark.parametrize("webhook", BAD_WEBHOOKS)
def test_a_webhook_outside_the_rules_is_a_400_and_creates_nothing(hooked: Gateway, webhook: Any) -> None:
    before = hooked.client.get("/api/sessions", params={"limit": 100}).json()["data"]
    response = hooked.client.post("/api/sessions", json={"webhook": webhook})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request" and "webhook" in response.json()["error"]["message"]
    assert hooked.client.get("/api/sessions", params={"limit": 100}).json()["data"] == before


@pytest.mark.slow
def test_a_delivery_survives_kill_9_while_the_receiver_is_down(make_gateway, mock_model: MockModel) -> None:
    down = Receiver()  # its port is chosen; nothing listens there yet
    gw = make_gateway(**{**WEBHOOK_ENV, "CC_API_WEBHOOK_BACKOFF": "0.5"})
    session = gw.create_session(webhook={"url": down.url})
    reply = gw.turn(session["id"], "remember me")
    assert reply["status"] == "completed"
    listed = _wait_for_state(gw, session["id"], lambda d: bool(d) and d[0]["attempts"] >= 1)
    assert listed[0]["state"] == "pending" and "Connect" in listed[0]["last_error"]

    gw.process.send_signal(signal.SIGKILL)
    gw.process.wait(10)
    down.start()
    try:
        gw.start()
        seen = down.wait_for(lambda seen: len(seen) >= 1)
        event = verify_webhook(SECRET, seen[0].headers, seen[0].body)
        assert event["type"] == "turn.completed" and event["turn_id"] == reply["turn_id"]
        listed = _wait_for_state(gw, session["id"], lambda d: d[0]["state"] == "delivered")
        assert listed[0]["attempts"] >= 2
    finally:
        down.stop()


# -- units: the signature scheme, the allow-list, the settings ------------------------------
def test_a_secret_being_rotated_signs_with_both_and_either_verifies(
    make_gateway, mock_model: MockModel, receiver: Receiver
) -> None:
    """``CC_API_WEBHOOK_SECRET`` holds the new secret and the old one while receivers move over: each delivery
    carries both signatures, so a receiver that knows either accepts it, and one that knows neither refuses it."""
    new = new_secret()
    gw = make_gateway(**{**WEBHOOK_ENV, "CC_API_WEBHOOK_SECRET": f"{new} {SECRET}"})
    session = gw.create_session(webhook={"url": receiver.url, "events": ["turn.completed"]})
    gw.turn(session["id"], "hello")

    [delivery] = receiver.wait_for(lambda seen: len(seen) >= 1)
    assert len(delivery.headers["webhook-signature"].split()) == 2
    assert _signed_by_the_standard(new, delivery.headers, delivery.body)
    assert _signed_by_the_standard(SECRET, delivery.headers, delivery.body)
    for known in (SECRET, new, [new, SECRET], f"{new} {SECRET}"):
        assert verify_webhook(known, delivery.headers, delivery.body)["type"] == "turn.completed"
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify_webhook(new_secret(), delivery.headers, delivery.body)
    assert new not in gw.log_text() and SECRET not in gw.log_text()


def test_signatures_match_the_standard_webhooks_test_vector() -> None:
    """The specification's published vector: any Standard Webhooks library verifies CC API's deliveries."""
    secret, body = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", b'{"test": 2432232314}'
    assert (
        sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )
    headers = {
        "Webhook-Id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "Webhook-Timestamp": "1614265330",
        "Webhook-Signature": "v1,bm90IGl0 v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    assert verify_webhook(secret, headers, body, now=1614265330 + 60) == {"test": 2432232314}
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_webhook(secret, headers, body, now=1614265330 + 301)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_webhook(secret, {**headers, "Webhook-Signature": ""}, body, now=1614265330)


@pytest.mark.parametrize(
    "secret",
    [
        "secret",
        "whsec_" + "A" * 8,
        "whsec_not base64!",
        "whsec_" + "A" * 100,
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw secret",
    ],
)
def test_a_weak_or_malformed_secret_is_refused_at_start_up(secret: str) -> None:
    with pytest.raises(ConfigError, match="CC_API_WEBHOOK_SECRET"):
        Settings.from_env({"CC_API_WEBHOOK_SECRET": secret})


def test_gateway_default_subscription_is_checked_at_start_up() -> None:
    with pytest.raises(ConfigError, match="needs CC_API_WEBHOOK_SECRET"):
        Settings.from_env({"CC_API_WEBHOOK_URL": "http://127.0.0.1:9/h"})
    with pytest.raises(ConfigError, match="not allowed"):
        Settings.from_env({"CC_API_WEBHOOK_URL": "https://hooks.example.invalid/h", "CC_API_WEBHOOK_SECRET": SECRET})
    settings = Settings.from_env(
        {
            "CC_API_WEBHOOK_URL": "https://hooks.example.invalid/h",
            "CC_API_WEBHOOK_SECRET": SECRET,
            "CC_API_WEBHOOK_ALLOW": ".example.invalid",
            "CC_API_WEBHOOK_EVENTS": "turn.failed",
        }
    )
    assert settings.default_webhook == {"url": "https://hooks.example.invalid/h", "events": ["turn.failed"]}
    assert SECRET not in repr(settings)


def test_allow_list_admits_names_suffixes_and_networks_only() -> None:
    default = AllowList.parse(LOOPBACK)
    assert all(map(default.allows, ["127.0.0.1", "127.8.9.10", "localhost", "LOCALHOST", "::1"]))
    assert not any(map(default.allows, ["10.0.0.1", "example.invalid", "localhost.example.invalid", "0.0.0.0", "::"]))
    custom = AllowList.parse(["hooks.example.invalid", ".corp.internal", "10.1.0.0/16"])
    assert all(map(custom.allows, ["hooks.example.invalid", "ci.corp.internal", "10.1.200.3"]))
    assert not any(map(custom.allows, ["example.invalid", "corp.internal.evil.com", "10.2.0.1", "127.0.0.1"]))
    assert AllowList.parse(["*"]).allows("anything.example")


def test_without_a_secret_a_session_cannot_subscribe_and_compat_sessions_never_do() -> None:
    catalog, policy = ModelCatalog.from_setting(None), WebhookPolicy.from_settings(Settings())
    with pytest.raises(InvalidRequest, match="CC_API_WEBHOOK_SECRET"):
        NewSession.from_json({"webhook": {"url": "http://127.0.0.1:9/h"}}, catalog, "sonnet", webhooks=policy)
    assert NewSession.from_json({"webhook": None}, catalog, "sonnet", webhooks=policy).webhook is None
    defaulted = WebhookPolicy.from_settings(Settings(webhook_url="http://127.0.0.1:9/h", webhook_secret=SECRET))
    assert NewSession.from_json({}, catalog, "sonnet", webhooks=defaulted).webhook["url"] == "http://127.0.0.1:9/h"
    assert NewSession.from_json({"webhook": None}, catalog, "sonnet", webhooks=defaulted).webhook is None
    assert NewSession.from_json({}, catalog, "sonnet").webhook is None  # compat: no policy, no default
    with pytest.raises(InvalidRequest, match="unknown field"):
        NewSession.from_json({"webhook": {"url": "http://127.0.0.1:9/h"}}, catalog, "sonnet")


def _hooked(session_id: str, url: str) -> SessionRecord:
    """A session record subscribed to ``turn.failed`` at ``url``, for a store used in-process."""
    return SessionRecord(
        session_id, "t", "t", "m", None, [], {}, None, None, None, "idle", None, 0, 0,
        webhook={"url": url, "events": ["turn.failed"]},
    )  # fmt: skip


def _failed(session_id: str, seq: int) -> Event:
    return Event(seq, "turn.failed", session_id, f"turn_{seq}", utcnow(), {})


def test_only_the_first_delivery_a_session_owes_a_url_may_go() -> None:
    """The ordering rule: of each session's pending deliveries to one URL, the lowest seq; delivered and failed
    ones hold nothing back, and another session or URL has a first of its own."""

    def delivery(session_id: str, seq: int, url: str = "http://127.0.0.1:9/a", state: str = PENDING) -> WebhookDelivery:
        return WebhookDelivery(delivery_id(session_id, seq), session_id, seq, None, "turn.failed", url, {}, "t", state)

    owed = [
        delivery("sess_s", 3),
        delivery("sess_s", 2),
        delivery("sess_s", 1, state=FAILED),
        delivery("sess_s", 4, url="http://127.0.0.1:9/b"),
        delivery("sess_t", 7),
        delivery("sess_t", 5, state=DELIVERED),
    ]
    assert sorted(d.id for d in first_owed(owed)) == ["sess_s_2", "sess_s_4", "sess_t_7"]
    assert first_owed([]) == []


@pytest.fixture(params=["sqlite", "jsondir", pytest.param("postgres", marks=pytest.mark.slow)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """Each backend the outbox lives in, opened afresh on the same data by every call (a restart)."""
    if request.param == "sqlite":
        return lambda: SqlStore(sqlite_database(tmp_path / "sessions.db"))
    if request.param == "jsondir":
        return lambda: JsonDirStore(tmp_path / "store")
    url = request.getfixturevalue("postgres_server").create_database()
    return lambda: SqlStore(postgres_database(url))


def test_the_outbox_hands_out_a_sessions_deliveries_in_order_on_every_backend(make_store: Callable[[], Store]) -> None:
    """A later delivery is not claimed while an earlier one of its session is in flight or waits for its retry,
    across a reopen too; it goes once that one is failed for good (or delivered). Another session never waits."""

    async def claim(store: Store) -> list[str]:
        return sorted(d.id for d in await store.claim_webhooks("host", 10, lease=60))

    async def main() -> None:
        store = make_store()
        await store.open()
        await store.create_session(_hooked("sess_a", "http://127.0.0.1:9/h"))
        await store.create_session(_hooked("sess_b", "http://127.0.0.1:9/h"))
        await store.append_events([_failed("sess_a", 1), _failed("sess_a", 2), _failed("sess_a", 3)])
        await store.append_events([_failed("sess_b", 1)])
        assert await claim(store) == ["sess_a_1", "sess_b_1"]
        assert await claim(store) == []  # sess_a_2 waits while sess_a_1 is in flight
        retry_at = time.time() + 1.0
        await store.finish_webhook_attempt("sess_a_1", "host", {"attempts": 1, "next_attempt_at": retry_at})
        await store.finish_webhook_attempt("sess_b_1", "host", {"state": DELIVERED})
        await store.close()

        store = make_store()
        await store.open()
        assert await claim(store) == []  # ... and while sess_a_1 waits for its retry
        await asyncio.sleep(retry_at - time.time() + 0.05)
        assert await claim(store) == ["sess_a_1"]
        await store.finish_webhook_attempt("sess_a_1", "host", {"state": FAILED})
        assert await claim(store) == ["sess_a_2"]
        await store.finish_webhook_attempt("sess_a_2", "host", {"state": DELIVERED})
        assert await claim(store) == ["sess_a_3"]
        await store.close()

    asyncio.run(main())


def test_the_outbox_lists_newest_first_between_two_seqs_on_every_backend(make_store: Callable[[], Store]) -> None:
    async def main() -> None:
        store = make_store()
        await store.open()
        await store.create_session(_hooked("sess_a", "http://127.0.0.1:9/h"))
        await store.append_events([_failed("sess_a", n) for n in range(1, 6)])

        async def seqs(after: int, limit: int, before: int | None = None, newest_first: bool = False) -> list[int]:
            return [d.seq for d in await store.list_webhooks("sess_a", after, limit, before, newest_first)]

        assert await seqs(0, 10) == [1, 2, 3, 4, 5]
        assert await seqs(0, 2, newest_first=True) == [5, 4]
        assert await seqs(0, 2, before=4, newest_first=True) == [3, 2]
        assert await seqs(1, 10, before=4) == [2, 3]
        await store.close()

    asyncio.run(main())


def test_a_410_ends_the_subscription_and_fails_what_it_owes_there_on_every_backend(
    make_store: Callable[[], Store],
) -> None:
    """A 410 (``end_webhook``) ends one session's subscription to one URL: what it still owes there is never
    claimed, its later events owe nothing, across a reopen too; another session on the same URL is untouched, a
    second 410 ends nothing, and a deleted session's owed deliveries go."""
    url = "http://127.0.0.1:9/h"
    gone = {"state": FAILED, "attempts": 1, "last_status": 410}

    async def claim(store: Store) -> list[str]:
        return sorted(d.id for d in await store.claim_webhooks("host", 10, lease=60))

    async def main() -> None:
        store = make_store()
        await store.open()
        for session_id in ("sess_a", "sess_b", "sess_c"):
            await store.create_session(_hooked(session_id, url))
        await store.append_events([_failed("sess_a", 1), _failed("sess_a", 2), _failed("sess_a", 3)])
        await store.append_events([_failed("sess_b", 1), _failed("sess_c", 1), _failed("sess_c", 2)])
        assert await claim(store) == ["sess_a_1", "sess_b_1", "sess_c_1"]
        assert await store.end_webhook("sess_a_1", "host", gone, "not sent") == {"url": url, "events": ["turn.failed"]}
        await store.finish_webhook_attempt("sess_b_1", "host", {"state": DELIVERED})
        await store.append_events([_failed("sess_a", 4), _failed("sess_b", 2)])
        await store.delete_session("sess_c")  # its deliveries still owed stay until they are done ...
        assert await store.end_webhook("sess_c_1", "host", gone, "not sent") is None
        await store.close()

        store = make_store()
        await store.open()
        assert await claim(store) == ["sess_b_2"]  # ... and a 410 ends them: sess_c_2 is never sent
        assert await store.end_webhook("sess_a_1", "host", gone, "again") is None  # a second 410 ends nothing
        assert await store.list_webhooks("sess_c", 0, 10) == []
        listed = await store.list_webhooks("sess_a", 0, 10)
        assert [(d.seq, d.state, d.attempts, d.last_status, d.last_error) for d in listed] == [
            (1, FAILED, 1, 410, None),
            (2, FAILED, 0, None, "not sent"),
            (3, FAILED, 0, None, "not sent"),
        ]
        assert all(d.completed_at for d in listed[1:])
        ended, kept = await store.get_session("sess_a"), await store.get_session("sess_b")
        assert ended is not None and ended.webhook is None and ended.updated_at != "t"  # as a change would
        assert kept is not None and kept.webhook == {"url": url, "events": ["turn.failed"]}
        await store.close()

    asyncio.run(main())


def test_a_hanging_receiver_times_out_and_a_large_answer_leaves_a_short_error(tmp_path: Path) -> None:
    """The sender in-process, on a JSON-directory store: attempt one hangs past the timeout and is
    retried; attempt two gets a 400 with a megabyte of body, of which ``last_error`` keeps a line."""
    receiver = Receiver().start()
    receiver.answers = [(200, {}, b"late", 1.5), (400, {}, b"x" * 1_000_000)]
    settings = Settings(home=tmp_path, webhook_secret=SECRET, webhook_timeout=0.3, webhook_backoff=0.05)

    async def main() -> list[WebhookDelivery]:
        store = JsonDirStore(tmp_path / "store")
        await store.open()
        await store.create_session(_hooked("sess_s", receiver.url))
        await store.append_events([_failed("sess_s", 1)])
        sender = WebhookSender(settings, store)
        sender.start()
        deadline = time.monotonic() + 20
        while (listed := await store.list_webhooks("sess_s", 0, 10))[0].state == "pending":
            assert time.monotonic() < deadline, listed
            await asyncio.sleep(0.05)
        await sender.stop()
        await store.close()
        return listed

    try:
        (delivery,) = asyncio.run(main())
    finally:
        receiver.stop()
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("failed", 2, 400)
    assert len(delivery.last_error) < 300 and delivery.last_error.startswith("HTTP 400: xxx")
    assert len(receiver.deliveries) == 2
    assert len({d.headers["webhook-id"] for d in receiver.deliveries}) == 1


def test_a_receiver_that_never_answers_in_time_does_not_delay_another(tmp_path: Path) -> None:
    """Issue 23: ten deliveries to a hanging receiver held every delivery slot for the whole
    timeout; with a limit per target another session's delivery goes at once."""
    slow, fast = Receiver().start(), Receiver().start()
    slow.answers = [(200, {}, b"late", 3.0)] * 20
    settings = Settings(home=tmp_path, webhook_secret=SECRET, webhook_timeout=2.0, webhook_backoff=30)

    async def main() -> tuple[float, int]:
        store = JsonDirStore(tmp_path / "store")
        await store.open()
        await store.create_session(_hooked("sess_slow", slow.url))
        await store.create_session(_hooked("sess_fast", fast.url))
        await store.append_events(
            [Event(n, "turn.failed", "sess_slow", f"turn_{n}", utcnow(), {}) for n in range(1, 11)]
        )
        sender = WebhookSender(settings, store)
        sender.start()
        await asyncio.sleep(0.3)  # the slow receiver's deliveries are in flight
        await store.append_events([Event(1, "turn.failed", "sess_fast", "turn_f", utcnow(), {})])
        sender.committed([Event(1, "turn.failed", "sess_fast", "turn_f", utcnow(), {})])
        started = time.monotonic()
        while (await store.list_webhooks("sess_fast", 0, 1))[0].state != "delivered":
            assert time.monotonic() - started < 10
            await asyncio.sleep(0.02)
        took = time.monotonic() - started
        await sender.stop()
        await store.close()
        return took, len(slow.deliveries)

    try:
        took, slow_attempts = asyncio.run(main())
    finally:
        slow.stop()
        fast.stop()
    assert took < 1.0, f"the fast receiver's delivery waited {took:.1f} s"
    assert slow_attempts <= 2, "at most two deliveries at a time go to one receiver"


def _send_one(
    tmp_path: Path, settings: Settings, url: str, done: Callable[[WebhookDelivery], bool], attempts: int = 0
) -> WebhookDelivery:
    """One ``turn.failed`` delivery to ``url`` (after ``attempts`` earlier ones), sent by a sender in-process on
    a JSON-directory store until ``done`` holds for it."""

    async def main() -> WebhookDelivery:
        store = JsonDirStore(tmp_path / "store")
        await store.open()
        await store.create_session(_hooked("sess_s", url))
        await store.append_events([_failed("sess_s", 1)])
        if attempts:
            await store.claim_webhooks("earlier", 1, lease=60)
            await store.finish_webhook_attempt("sess_s_1", "earlier", {"attempts": attempts, "next_attempt_at": 0})
        sender = WebhookSender(settings, store)
        sender.start()
        deadline = time.monotonic() + 20
        while not done(delivery := (await store.list_webhooks("sess_s", 0, 1))[0]):
            assert time.monotonic() < deadline, delivery
            await asyncio.sleep(0.05)
        await sender.stop()
        await store.close()
        return delivery

    return asyncio.run(main())


def test_star_admits_public_addresses_only_and_numeric_hosts_never() -> None:
    """``*`` lets clients name receivers on the internet, not the gateway's own network: a loopback, private,
    link-local (cloud metadata) or IPv4-mapped address needs a network listed. A decimal, octal, hex or short
    IPv4 (which the resolver reads as 127.0.0.1 where the check would read a name) is refused everywhere."""
    star, default = AllowList.parse(["*"]), AllowList.parse(LOOPBACK)
    assert all(map(star.allows, ["hooks.example", "8.8.8.8", "2606:4700::1"]))
    private = ["127.0.0.1", "10.0.0.1", "169.254.169.254", "0.0.0.0", "::1", "::ffff:127.0.0.1", "fd00::1"]
    assert not any(map(star.allows, private))
    assert AllowList.parse(["*", "10.0.0.0/8"]).allows("10.1.2.3")
    numeric = ["2130706433", "0177.0.0.1", "127.1", "0x7f000001", "0x7f.0.0.1"]
    assert not any(star.allows(host) or default.allows(host) for host in numeric)
    with pytest.raises(ConfigError, match="not allowed"):
        Settings.from_env(
            {"CC_API_WEBHOOK_URL": "http://2130706433/h", "CC_API_WEBHOOK_SECRET": SECRET, "CC_API_WEBHOOK_ALLOW": "*"}
        )


def test_a_name_only_star_admits_is_never_sent_to_a_loopback_address(tmp_path: Path) -> None:
    """A name is no way around ``*``'s public-only rule: it is resolved when sent to and connected to only at an
    address the list admits (``localhost`` resolves to loopback, as a hostile DNS name can). With loopback
    listed too the name is connected to at its address, and the receiver still sees its name as ``Host``."""
    receiver = Receiver().start()
    url = f"http://localhost:{receiver.port}/hooks"
    try:
        star = Settings(home=tmp_path / "a", webhook_secret=SECRET, webhook_allow=("*",))
        refused = _send_one(tmp_path / "a", star, url, lambda d: d.state != PENDING)
        assert refused.state == FAILED and refused.attempts == 1 and receiver.deliveries == []
        assert "resolves to no address CC_API_WEBHOOK_ALLOW admits" in (refused.last_error or "")

        listed = Settings(home=tmp_path / "b", webhook_secret=SECRET, webhook_allow=("*", "127.0.0.0/8"))
        assert _send_one(tmp_path / "b", listed, url, lambda d: d.state != PENDING).state == DELIVERED
        [delivery] = receiver.deliveries
        assert {k.lower(): v for k, v in delivery.headers.items()}["host"] == f"localhost:{receiver.port}"
    finally:
        receiver.stop()


def test_a_delivery_retried_for_weeks_keeps_backing_off(tmp_path: Path) -> None:
    """Past a thousand attempts (a ``CC_API_WEBHOOK_RETRY_FOR`` of a week or more, at the 10-minute pause) the
    backoff overflowed a float: the attempt was never recorded and the receiver was hit every lease, for ever."""
    receiver = Receiver().start()
    receiver.answers = [(503, {})]
    settings = Settings(home=tmp_path, webhook_secret=SECRET, webhook_retry_for=30 * 24 * 3600.0)
    try:
        delivery = _send_one(tmp_path, settings, receiver.url, lambda d: d.attempts > 1100, attempts=1100)
    finally:
        receiver.stop()
    assert (delivery.state, delivery.attempts, delivery.last_status) == (PENDING, 1101, 503)
    assert delivery.next_attempt_at - time.time() <= 600
