"""Where a session can be forked, on the real stack: every point a turn can end at is one, and what the fork's
first model request then carries."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from ccapi.testing import MockModel, Reply, ToolUse
from tests.compat_support import user_texts
from tests.gateway import Gateway
from tests.test_tools import WEATHER


def _first_request_of_a_fork(
    gateway: Gateway, mock_model: MockModel, session: str, point: dict[str, Any]
) -> list[dict[str, Any]]:
    """Fork ``session`` at ``point``, run a turn there: the messages of the one model request it made."""
    forked = gateway.client.post(f"/api/sessions/{session}/fork", json=point)
    assert forked.status_code == 201, forked.text
    mock_model.clear()
    assert gateway.turn(forked.json()["id"], "fp-in the fork")["status"] == "completed"
    [sent] = [request.body["messages"] for request in mock_model.message_requests(include_side=False)]
    return sent


def _blocks(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    content = message["content"]
    return [] if isinstance(content, str) else [block for block in content if block.get("type") == kind]


def test_a_turn_interrupted_while_it_waited_for_a_tool_result_is_a_fork_point(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """Interrupting a turn paused on a client tool call ends it: the session (all of it, or that turn) forks, and
    the fork's first request holds the turn's input and its call, answered, then the new input. While the turn
    still waited, the same point was a 409 (nothing is lost: the call may yet get its result)."""
    session = gateway.create_session(tools=[WEATHER])["id"]
    gateway.turn(session, "fp-hello")
    mock_model.script(Reply(text="checking", tool_uses=(ToolUse("get_weather", {"city": "Nice"}),)))
    paused = gateway.turn(session, "fp-weather?")
    assert paused["status"] == "requires_action"
    waiting = gateway.client.post(f"/api/sessions/{session}/fork")
    assert waiting.status_code == 409 and "waits for tool results" in waiting.json()["error"]["message"]
    stopped = gateway.client.post(f"/api/sessions/{session}/interrupt", json={})
    assert stopped.json()["status"] == "interrupted"

    for point in ({"turn_id": paused["turn_id"]}, {}):
        sent = _first_request_of_a_fork(gateway, mock_model, session, point)
        texts = [text for message in sent if message["role"] == "user" for text in user_texts(message)]
        assert texts[0] == "fp-hello" and "fp-weather?" in texts and texts[-1] == "fp-in the fork"
        [call] = [block for message in sent for block in _blocks(message, "tool_use")]
        assert call["input"] == {"city": "Nice"}
        answered = [block for message in sent for block in _blocks(message, "tool_result")]
        assert [block["tool_use_id"] for block in answered] == [call["id"]]  # a valid conversation for the model


@pytest.mark.slow  # kills the gateway mid-turn and starts it again
def test_a_session_whose_turn_a_crash_cut_short_forks_where_it_goes_on_from(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """After a crash mid-turn the session goes on from the turn before (the cut turn's words were lost with the
    gateway): it forks there, all of it or at the cut turn, instead of a 409 naming a message it no longer holds."""
    session = gateway.create_session(tools=[WEATHER])["id"]
    gateway.turn(session, "fp-kept")
    mock_model.script(Reply(text="checking", tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)))
    cut = gateway.turn(session, "fp-cut short")
    assert gateway.process is not None
    gateway.process.send_signal(signal.SIGKILL)
    gateway.stop()
    gateway.start()
    assert gateway.client.get(f"/api/sessions/{session}/turns/{cut['turn_id']}").json()["status"] == "failed"

    for point in ({}, {"turn_id": cut["turn_id"]}):
        sent = _first_request_of_a_fork(gateway, mock_model, session, point)
        texts = [text for message in sent if message["role"] == "user" for text in user_texts(message)]
        assert texts == ["fp-kept", "fp-in the fork"]
    mock_model.clear()
    gateway.turn(session, "fp-the session goes on")  # from the same point as its forks
    [sent] = [request.body["messages"] for request in mock_model.message_requests(include_side=False)]
    assert [text for message in sent if message["role"] == "user" for text in user_texts(message)] == [
        "fp-kept",
        "fp-the session goes on",
    ]
