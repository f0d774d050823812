"""``GET /api/sessions/{id}/webhooks`` says when each delivery can go: the first a session owes its URL at its own
``next_attempt_at``, the later ones after it (``waiting_for``), with no time of their own."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ccapi.ids import parse_time
from ccapi.testing import MockModel
from tests import test_webhooks
from tests.conftest import BACKENDS
from tests.gateway import Gateway, eventually
from tests.webhook_receiver import Receiver

EVENTS = ["turn.started", "message.completed", "turn.completed"]
hooked = test_webhooks.hooked  # the same signing gateway fixture, one per module


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def test_deliveries_waiting_behind_an_earlier_one_say_so_instead_of_a_past_time(
    hooked: Gateway, mock_model: MockModel, receiver: Receiver
) -> None:
    """A session's later deliveries wait while its first is retried (in order), and were listed with the time
    they were created as ``next_attempt_at``: in the past, as if overdue. The first shows when it is retried (the
    receiver's ``Retry-After``), the others ``next_attempt_at: null`` and ``waiting_for`` naming it."""
    receiver.answers = [(503, {"Retry-After": "3"})]
    session = hooked.create_session(webhook={"url": receiver.url, "events": EVENTS})
    hooked.turn(session["id"], "one")
    receiver.wait_for(lambda seen: len(seen) == 1)

    def listed() -> list[dict[str, object]]:
        response = hooked.client.get(f"/api/sessions/{session['id']}/webhooks")
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    seen: list[dict[str, object]] = []

    def listed_when(done: Callable[[list[dict[str, object]]], bool]) -> bool:
        seen[:] = listed()
        return done(seen)

    assert eventually(lambda: listed_when(lambda d: d[0]["attempts"] == 1)), seen
    first, *later = seen
    assert len(later) == 2 and first["state"] == "pending" and first["waiting_for"] is None
    retried_at = parse_time(str(first["next_attempt_at"]))  # the Retry-After, not a past time
    assert retried_at >= parse_time(str(first["last_attempt_at"])) + 2.5
    for delivery in later:
        assert (delivery["state"], delivery["next_attempt_at"]) == ("pending", None)
        assert delivery["waiting_for"] == first["id"]
    newest = hooked.client.get(f"/api/sessions/{session['id']}/webhooks?order=desc&limit=1").json()["data"]
    assert newest[0]["waiting_for"] == first["id"]  # whatever the page holds
    receiver.wait_for(lambda seen: len(seen) >= 4)
    assert eventually(lambda: listed_when(lambda d: all(x["state"] == "delivered" for x in d))), seen
    assert all(d["next_attempt_at"] is None and d["waiting_for"] is None for d in seen)
