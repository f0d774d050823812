"""``PATCH /api/sessions/{id}`` sets, replaces or removes a session's webhook: checked as at creation, recorded
as ``session.updated`` the way a ``410 Gone`` records its end, and heard from the next committed event on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from ccapi.client import verify_webhook
from tests import test_webhooks
from tests.gateway import Gateway, eventually
from tests.test_webhooks import BAD_WEBHOOKS, SECRET
from tests.webhook_receiver import Receiver

ENDS = ["turn.completed"]
hooked = test_webhooks.hooked  # the same signing gateway fixture, one per module


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started = [Receiver().start(), Receiver().start()]
    yield started
    for receiver in started:
        receiver.stop()


def _patch(gw: Gateway, session_id: str, webhook: Any) -> dict[str, Any]:
    response = gw.client.patch(f"/api/sessions/{session_id}", json={"webhook": webhook})
    assert response.status_code == 200, response.text
    return response.json()


def _updates(gw: Gateway, session_id: str) -> list[dict[str, Any]]:
    return [e["data"] for e in gw.events(session_id) if e["type"] == "session.updated"]


def _owed(gw: Gateway, session_id: str) -> list[tuple[int, str]]:
    """The deliveries the session owes or owed: (event seq, state)."""
    response = gw.client.get(f"/api/sessions/{session_id}/webhooks")
    assert response.status_code == 200, response.text
    return [(d["event_seq"], d["state"]) for d in response.json()["data"]]


def test_a_patch_subscribes_a_session_its_turns_call_back_signed_and_null_unsubscribes(
    hooked: Gateway, receivers: list[Receiver]
) -> None:
    """A session created without a webhook subscribes by ``PATCH``: its next background turn calls back, signed;
    the same webhook again records nothing; ``null`` ends it, and the next turn owes nothing. The URL's token
    stays out of the gateway's log."""
    receiver = receivers[0]
    session = hooked.create_session(webhook=None)
    hooked.mark_log()
    subscription = {"url": f"{receiver.url}?token=sekrit", "events": ENDS}
    subscribed = _patch(hooked, session["id"], subscription)
    assert subscribed["webhook"] == subscription
    assert _patch(hooked, session["id"], subscription)["updated_at"] == subscribed["updated_at"]
    assert _updates(hooked, session["id"]) == [
        {"changed": ["webhook"], "webhook": subscription, "previous": {"webhook": None}, "by": "request"}
    ]

    started = hooked.client.post(f"/api/sessions/{session['id']}/turns", json={"input": "hi", "background": True})
    assert started.status_code == 202, started.text
    [done] = receiver.wait_for(lambda seen: len(seen) >= 1)
    event = verify_webhook(SECRET, done.headers, done.body)
    assert (event["type"], event["turn_id"]) == ("turn.completed", started.json()["turn_id"])

    assert eventually(lambda: [state for _, state in _owed(hooked, session["id"])] == ["delivered"])
    assert _patch(hooked, session["id"], None)["webhook"] is None
    assert _updates(hooked, session["id"])[-1] == {
        "changed": ["webhook"],
        "webhook": None,
        "previous": {"webhook": subscription},
        "by": "request",
    }
    hooked.turn(session["id"], "anyone there?")  # its events would owe deliveries in the commit that wrote them
    assert len(_owed(hooked, session["id"])) == 1 and len(receiver.deliveries) == 1
    assert "sekrit" not in hooked.log_text()


def test_a_replaced_webhook_hears_what_comes_after_and_the_old_one_keeps_what_it_was_owed(
    hooked: Gateway, receivers: list[Receiver]
) -> None:
    """The old receiver holds its answer to the first turn's delivery; the ``PATCH`` to a new one leaves that
    delivery owed to the old URL (it arrives when answered), and the next turn's goes to the new one at once."""
    old, new = receivers
    hold = threading.Event()
    old.answers = [(200, {}, b"ok", 0.0, hold)]
    session = hooked.create_session(webhook={"url": old.url, "events": ENDS})
    hooked.turn(session["id"], "one")
    old.wait_for(lambda seen: len(seen) == 1)

    changed = _patch(hooked, session["id"], {"url": new.url, "events": ENDS})
    assert changed["webhook"]["url"] == new.url
    [update] = _updates(hooked, session["id"])
    assert (update["webhook"]["url"], update["previous"]["webhook"]["url"]) == (new.url, old.url)
    second = hooked.turn(session["id"], "two")
    [heard] = new.wait_for(lambda seen: len(seen) == 1)
    assert heard.event["seq"] == second["last_event_seq"]
    assert eventually(lambda: [state for _, state in _owed(hooked, session["id"])] == ["pending", "delivered"])

    hold.set()
    assert eventually(lambda: [state for _, state in _owed(hooked, session["id"])] == ["delivered", "delivered"])
    assert len(old.deliveries) == 1 and len(new.deliveries) == 1


def test_after_a_410_ended_it_a_patch_subscribes_again_and_deliveries_resume(
    hooked: Gateway, receivers: list[Receiver]
) -> None:
    """The receiver that answered ``410 Gone`` comes back: the client subscribes it again with ``PATCH``. Both
    changes read alike in the log (``webhook``, ``previous.webhook``), ``by`` apart."""
    receiver = receivers[0]
    receiver.answers = [(410, {}, b"gone")]
    subscription = {"url": receiver.url, "events": ENDS}
    session = hooked.create_session(webhook=subscription)
    hooked.turn(session["id"], "one")
    assert eventually(lambda: len(_updates(hooked, session["id"])) == 1)
    assert hooked.client.get(f"/api/sessions/{session['id']}").json()["webhook"] is None

    assert _patch(hooked, session["id"], subscription)["webhook"] == subscription
    gone, again = _updates(hooked, session["id"])
    assert gone == {
        "changed": ["webhook"],
        "webhook": None,
        "previous": {"webhook": subscription},
        "by": "webhook_gone",
    }
    assert again == {"changed": ["webhook"], "webhook": subscription, "previous": {"webhook": None}, "by": "request"}
    second = hooked.turn(session["id"], "two")
    heard = receiver.wait_for(lambda seen: len(seen) == 2)[1]
    assert verify_webhook(SECRET, heard.headers, heard.body)["seq"] == second["last_event_seq"]


@pytest.mark.parametrize("webhook", BAD_WEBHOOKS)
def test_a_webhook_creation_refuses_is_refused_by_a_patch_in_the_same_words(hooked: Gateway, webhook: Any) -> None:
    session = hooked.create_session(webhook=None)
    created = hooked.client.post("/api/sessions", json={"webhook": webhook})
    patched = hooked.client.patch(f"/api/sessions/{session['id']}", json={"webhook": webhook})
    assert (created.status_code, patched.status_code) == (400, 400), patched.text
    assert patched.json() == created.json()
    after = hooked.client.get(f"/api/sessions/{session['id']}").json()
    assert (after["webhook"], after["updated_at"]) == (None, session["updated_at"])
    assert _updates(hooked, session["id"]) == []


def test_a_gateway_without_a_secret_refuses_a_patch_subscription_as_it_refuses_one_at_creation(
    gateway: Gateway,
) -> None:
    session = gateway.create_session()
    webhook = {"url": "http://127.0.0.1:9/hooks"}
    created = gateway.client.post("/api/sessions", json={"webhook": webhook})
    patched = gateway.client.patch(f"/api/sessions/{session['id']}", json={"webhook": webhook})
    assert (created.status_code, patched.status_code) == (400, 400), patched.text
    assert patched.json() == created.json() and "CC_API_WEBHOOK_SECRET" in patched.json()["error"]["message"]
    assert _patch(gateway, session["id"], None)["updated_at"] == session["updated_at"]  # none to remove: a no-op
    assert _updates(gateway, session["id"]) == []
