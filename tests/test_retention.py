"""Retention: a gateway that runs for months forgets the sessions nobody uses, as ``DELETE`` would, and only those
its settings say: compat sessions after ``CC_API_COMPAT_RETENTION``, others only with ``CC_API_SESSION_RETENTION``."""

from __future__ import annotations

import time
from collections.abc import Callable

from ccapi.testing import MockModel, Reply, ToolUse
from tests.compat_support import main_requests, user_texts
from tests.gateway import Gateway, eventually
from tests.test_tools import WEATHER


def _exists(gateway: Gateway, session_id: str) -> bool:
    return gateway.client.get(f"/api/sessions/{session_id}").status_code == 200


def test_an_unused_compat_session_is_deleted_and_its_conversation_goes_on_as_messages(
    make_gateway: Callable[..., Gateway], mock_model: MockModel
) -> None:
    gateway = make_gateway(CC_API_COMPAT_RETENTION="2")
    native = gateway.create_session()
    gateway.turn(native["id"], "keep me")
    messages = [{"role": "user", "content": "first question"}]
    reply = gateway.client.post("/v1/chat/completions", json={"model": "claude-sonnet-4-5", "messages": messages})
    assert reply.status_code == 200, reply.text
    compat_id = reply.headers["x-cc-session-id"]
    assert _exists(gateway, compat_id)
    fork = gateway.client.post(f"/api/sessions/{compat_id}/fork", json={})  # a user's own branch of it
    assert fork.status_code == 201, fork.text
    assert "compat" not in fork.json()["metadata"]
    forked_at = time.monotonic()

    assert eventually(lambda: not _exists(gateway, compat_id), 20), "the compat session outlived its retention"
    assert _exists(gateway, native["id"]), "a native session is kept unless CC_API_SESSION_RETENTION says otherwise"
    time.sleep(max(0.0, forked_at + 4 - time.monotonic()))  # past the compat retention and two sweeps
    assert _exists(gateway, fork.json()["id"]), "a native fork of a compat session is its user's own: kept"
    assert f'"session_id":"{compat_id}"' in gateway.log_text() and "session_expired" in gateway.log_text()

    messages += [
        {"role": "assistant", "content": reply.json()["choices"][0]["message"]["content"]},
        {"role": "user", "content": "second question"},
    ]
    again = gateway.client.post("/v1/chat/completions", json={"model": "claude-sonnet-4-5", "messages": messages})
    assert again.status_code == 200, again.text
    assert again.headers["x-cc-session-id"] != compat_id
    last = main_requests(mock_model)[-1]["messages"]  # the history as messages, not flattened into one
    assert len(last) == 3 and user_texts(last[0]) == ["first question"] and user_texts(last[-1]) == ["second question"]


def test_session_retention_spares_a_turn_waiting_for_its_client(
    make_gateway: Callable[..., Gateway], mock_model: MockModel
) -> None:
    gateway = make_gateway(CC_API_SESSION_RETENTION="1", CC_API_COMPAT_RETENTION="0")
    idle = gateway.create_session()
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)), Reply(text="Mild."))
    paused = gateway.create_session(tools=[WEATHER])
    call = gateway.turn(paused["id"], "weather in Oslo?")["tool_calls"][0]

    assert eventually(lambda: not _exists(gateway, idle["id"]), 20), "an unused session outlived its retention"
    time.sleep(1.5)  # past its retention too, but its turn waits for the client
    assert gateway.client.get(f"/api/sessions/{paused['id']}").json()["status"] == "requires_action"

    results = {"results": [{"tool_call_id": call["tool_call_id"], "content": "mild"}]}
    done = gateway.client.post(f"/api/sessions/{paused['id']}/tool-results", json=results).json()
    assert done["status"] == "completed"
    assert eventually(lambda: not _exists(gateway, paused["id"]), 20), "once its turn ended, it goes like any other"
