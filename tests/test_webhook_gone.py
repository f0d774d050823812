"""A receiver's 410 Gone on hosts that share PostgreSQL: the host that hears it is not the one running the turn."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from ccapi.testing import MockModel, Reply, ToolUse
from ccapi.webhook_rules import new_secret
from tests.gateway import eventually
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.slow  # two gateways on one PostgreSQL database

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def test_a_410_heard_by_another_host_mid_turn_leaves_the_running_turns_log_whole(
    make_gateway, postgres_server, mock_model: MockModel, receiver: Receiver
) -> None:
    """Host A runs the turn and sends no webhooks (it has no secret); host B, which does, hears the 410 to the
    turn's ``turn.requires_action`` while A's turn waits for its tool result. A's turn goes on and its log stays
    gap-free: B records ``session.updated`` once A has let the session go, never a seq A numbers too."""
    url = postgres_server.create_database()
    common = {"CC_API_DATABASE_URL": url, "CC_API_LEASE_TTL": "3"}
    a = make_gateway(CC_API_HOST_ID="host-a", **common)
    b = make_gateway(CC_API_HOST_ID="host-b", CC_API_WEBHOOK_SECRET=new_secret(), **common)
    answered = threading.Event()
    receiver.answers = [(410, {}, b"gone", 0.0, answered)]
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)), Reply(text="Oslo is cold."))
    session = b.create_session(tools=[WEATHER], webhook={"url": receiver.url})

    paused = a.turn(session["id"], "weather in Oslo?")
    assert paused["status"] == "requires_action"
    answered.set()
    assert eventually(lambda: b.client.get(f"/api/sessions/{session['id']}").json()["webhook"] is None)

    [call] = paused["tool_calls"]
    results = {"results": [{"tool_call_id": call["tool_call_id"], "content": "-3C"}]}
    done = a.client.post(f"/api/sessions/{session['id']}/tool-results", json=results, timeout=30)
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text
    assert eventually(lambda: any(e["type"] == "session.updated" for e in a.events(session["id"])))
    events = a.events(session["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    [updated] = [e for e in events if e["type"] == "session.updated"]
    assert updated["data"]["by"] == "webhook_gone" and updated["seq"] > done.json()["last_event_seq"]
    assert len(receiver.deliveries) == 1  # the turn.completed is not sent
