"""Turns queued behind a running turn (``"queue": true``, and compat by default), on the real stack.

A turn paused on a client tool call is still running, so it holds the session as long as a
test needs without any timing: what queues behind it starts once it has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from ccapi.compat.errors import failure
from ccapi.events import EventType
from ccapi.observability.metrics import Metrics
from ccapi.sessions.queue import MAX_QUEUED, START_FAILED, QueuedTurn, TurnQueues
from ccapi.testing import MockModel, Reply, ToolUse
from tests.compat_support import user_texts
from tests.gateway import Gateway, sse_events
from tests.test_tools import WEATHER


def _paused_session(gateway: Gateway, mock_model: MockModel) -> tuple[str, dict[str, Any]]:
    """A session whose first turn waits for a get_weather result."""
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Nice"}),)), Reply(text="Sunny in Nice."))
    session = gateway.create_session(tools=[WEATHER])
    paused = gateway.turn(session["id"], "Weather in Nice?")
    assert paused["status"] == "requires_action"
    return session["id"], paused


def _queue(gateway: Gateway, session_id: str, text: str, **body: Any) -> httpx.Response:
    return gateway.client.post(f"/api/sessions/{session_id}/turns", json={"input": text, "queue": True, **body})


def _in_thread(call: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[httpx.Response]]:
    got: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: got.append(call()))
    thread.start()
    return thread, got


def _wait_for(gateway: Gateway, session_id: str, what: Callable[[list[dict[str, Any]]], bool]) -> list[dict]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = gateway.events(session_id)
        if what(events):
            return events
        time.sleep(0.05)
    raise AssertionError(f"the log never got there: {[e['type'] for e in gateway.events(session_id)]}")


def _seq(events: list[dict], type_: str, turn_id: str) -> int:
    return next(e["seq"] for e in events if e["type"] == type_ and e.get("turn_id") == turn_id)


def test_turns_sent_while_one_runs_queue_and_run_in_order(gateway: Gateway, mock_model: MockModel) -> None:
    """Two turns sent with queue while the first waits on a tool call both complete, in order,
    each starting only after the one before has ended; a retried Idempotency-Key names the same
    queued turn; without queue the native answer stays 409."""
    session_id, paused = _paused_session(gateway, mock_model)
    url = f"/api/sessions/{session_id}/turns"

    refused = gateway.client.post(url, json={"input": "no queue"})
    assert refused.status_code == 409 and "queue" in refused.json()["error"]["message"]

    key = {"Idempotency-Key": "queued-second"}
    second = gateway.client.post(url, json={"input": "second", "queue": True, "background": True}, headers=key)
    assert second.status_code == 202, second.text
    assert second.json()["status"] == "queued"
    again = gateway.client.post(url, json={"input": "second", "queue": True, "background": True}, headers=key)
    assert again.json()["turn_id"] == second.json()["turn_id"]
    second_id = second.json()["turn_id"]
    waiting = gateway.client.get(f"{url}/{second_id}").json()
    assert waiting["status"] == "queued"

    thread, third = _in_thread(lambda: gateway.client.post(url, json={"input": "third", "queue": True}))
    _wait_for(gateway, session_id, lambda ev: sum(e["type"] == "turn.queued" for e in ev) == 2)
    frames: list[dict[str, Any]] = []

    def stream_fourth() -> httpx.Response:
        body = {"input": "fourth", "queue": True, "stream": True}
        with gateway.client.stream("POST", url, json=body) as response:
            frames.extend(f for f in sse_events(response.iter_lines()) if "event" in f)
            return response

    streamer, _ = _in_thread(stream_fourth)
    _wait_for(gateway, session_id, lambda ev: sum(e["type"] == "turn.queued" for e in ev) == 3)

    done = gateway.client.post(
        f"/api/sessions/{session_id}/tool-results",
        json={"results": [{"tool_call_id": paused["tool_calls"][0]["tool_call_id"], "content": "sunny"}]},
    )
    assert done.json()["status"] == "completed"
    thread.join(60)
    streamer.join(60)
    assert third and third[0].status_code == 200, third
    third_turn = third[0].json()
    assert third_turn["status"] == "completed" and third_turn["output"][-1]["text"] == "mock reply: third"
    second_turn = gateway.client.get(f"{url}/{second_id}").json()
    assert second_turn["output"][-1]["text"] == "mock reply: second"
    assert second_turn["created_at"] == waiting["created_at"]  # when it was sent, not when it got to start

    events = gateway.events(session_id)
    queued = [e for e in events if e["type"] == "turn.queued"]
    assert [(e["turn_id"], e["data"]["position"], e["data"]["behind"]) for e in queued] == [
        (second_id, 1, paused["turn_id"]),
        (third_turn["turn_id"], 2, paused["turn_id"]),
        (frames[0]["data"]["turn_id"], 3, paused["turn_id"]),
    ]
    first_end = _seq(events, "turn.completed", paused["turn_id"])
    assert queued[-1]["seq"] < first_end < _seq(events, "turn.started", second_id)
    assert _seq(events, "turn.completed", second_id) < _seq(events, "turn.started", third_turn["turn_id"])
    last_inputs = [str(r.body["messages"][-1]) for r in mock_model.message_requests(include_side=False)[-3:]]
    assert "second" in last_inputs[0] and "third" in last_inputs[1] and "fourth" in last_inputs[2]
    # a streamed queued turn streams its own events only, from turn.queued to its end
    assert [f["event"] for f in frames][:2] == ["turn.queued", "turn.started"]
    assert frames[-1]["event"] == "turn.completed" and len({f["data"]["turn_id"] for f in frames}) == 1


def test_full_queue_is_409_and_queued_turns_can_be_withdrawn(gateway: Gateway, mock_model: MockModel) -> None:
    """Beyond the queue limit a turn is a 409 saying so; a queued turn is withdrawn by naming it
    in POST /interrupt, or by its client going away from a waiting reply: either way it ends as
    turn.interrupted without ever starting, and nothing of it reaches the model."""
    session_id, paused = _paused_session(gateway, mock_model)
    queued = []
    for n in range(MAX_QUEUED - 1):
        response = _queue(gateway, session_id, f"qz-waiting {n}", background=True)
        assert response.status_code == 202, response.text
        queued.append(response.json()["turn_id"])

    with httpx.Client(base_url=gateway.base_url, timeout=1.5) as impatient:  # gives up while its turn waits
        try:
            impatient.post(f"/api/sessions/{session_id}/turns", json={"input": "gone", "queue": True})
        except httpx.ReadTimeout:
            pass
    events = _wait_for(gateway, session_id, lambda ev: sum(e["type"] == "turn.interrupted" for e in ev) == 1)
    gone = next(e for e in events if e["type"] == "turn.queued" and "gone" in str(e["data"]["input"]))["turn_id"]
    assert [e["data"]["queued"] for e in events if e["type"] == "turn.interrupted" and e["turn_id"] == gone] == [True]

    queued.append(_queue(gateway, session_id, "fills it", background=True).json()["turn_id"])
    full = _queue(gateway, session_id, "one too many", background=True)
    assert full.status_code == 409 and "queue is full" in full.json()["error"]["message"]
    assert full.json()["error"]["details"]["limit"] == MAX_QUEUED
    assert f"cc_api_waiting_turns {float(MAX_QUEUED)}" in gateway.client.get("/metrics").text
    compact = gateway.client.post(f"/api/sessions/{session_id}/compact", json={})
    assert compact.status_code == 409 and "queued" in compact.json()["error"]["message"]  # it does not jump them

    withdrawn = gateway.client.post(f"/api/sessions/{session_id}/interrupt", json={"turn_id": queued[0]})
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "interrupted" and withdrawn.json()["turn_id"] == queued[0]
    again = gateway.client.post(f"/api/sessions/{session_id}/interrupt", json={"turn_id": queued[0]})
    assert again.status_code == 409

    for turn_id in queued[1:]:
        gateway.client.post(f"/api/sessions/{session_id}/interrupt", json={"turn_id": turn_id})
    stopped = gateway.client.post(f"/api/sessions/{session_id}/interrupt").json()
    assert stopped["turn_id"] == paused["turn_id"] and stopped["status"] == "interrupted"
    events = gateway.events(session_id)
    assert not [e for e in events if e["type"] == "turn.started" and e["turn_id"] != paused["turn_id"]]
    assert {e["turn_id"] for e in events if e["type"] == "turn.interrupted"} == {*queued, gone, paused["turn_id"]}
    assert not any("qz-waiting" in str(r.body["messages"]) for r in mock_model.message_requests(include_side=False))


def test_a_keyed_queued_turn_outlives_its_impatient_client_and_its_retry_gets_it(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """A client whose read timeout is shorter than the queue's wait gave up, which withdrew its turn: its retry with
    the same ``Idempotency-Key`` was a 409 ("send it again with a new key"), and sent again it went to the back of
    the queue, for ever. A keyed turn now stays queued, and the retry gets it once it ran, run once."""
    session_id, paused = _paused_session(gateway, mock_model)
    url, key = f"/api/sessions/{session_id}/turns", {"Idempotency-Key": "patient-turn-1"}
    body = {"input": "kq-waiting for its turn", "queue": True}
    with httpx.Client(base_url=gateway.base_url, timeout=1.0) as impatient:  # gives up while its turn waits
        for accept in ("application/json", "text/event-stream"):  # a default reply, then a streamed retry
            with contextlib.suppress(httpx.ReadTimeout):
                impatient.post(url, json=body, headers={**key, "Accept": accept})
    time.sleep(0.5)  # a withdrawal would be recorded by now
    assert not [e for e in gateway.events(session_id) if e["type"] == "turn.interrupted"]

    thread, got = _in_thread(lambda: gateway.client.post(url, json=body, headers=key))
    mock_model.script(Reply(text="kq-answered"))  # after the paused turn's own "Sunny in Nice."
    result = [{"tool_call_id": paused["tool_calls"][0]["tool_call_id"], "content": "sunny"}]
    assert gateway.client.post(f"/api/sessions/{session_id}/tool-results", json={"results": result}).status_code == 200
    thread.join(30)
    assert got and got[0].status_code == 200, got and got[0].text
    assert got[0].json()["status"] == "completed" and got[0].json()["output"] == [
        {"type": "text", "text": "kq-answered"}
    ]
    sent = [r for r in mock_model.message_requests(include_side=False) if "kq-waiting" in str(r.body["messages"][-1])]
    assert len(sent) == 1


@pytest.mark.slow
def test_shutdown_withdraws_queued_turns_and_answers_their_waiting_clients(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """On SIGTERM queued turns end as turn.interrupted (queued, never started) and a client
    waiting for one gets that answer before the gateway exits."""
    session_id, paused = _paused_session(gateway, mock_model)
    background = _queue(gateway, session_id, "behind, in the background", background=True).json()["turn_id"]
    thread, waiting = _in_thread(lambda: _queue(gateway, session_id, "behind, waiting"))
    _wait_for(gateway, session_id, lambda ev: sum(e["type"] == "turn.queued" for e in ev) == 2)
    gateway.restart()
    thread.join(30)
    assert waiting and waiting[0].status_code == 200, waiting
    answered = waiting[0].json()
    assert answered["status"] == "interrupted" and answered["error"]["type"] == "cancelled"
    events = gateway.events(session_id)
    ended = {e["turn_id"]: e["data"] for e in events if e["type"] == "turn.interrupted"}
    assert ended[background]["queued"] is True and ended[answered["turn_id"]]["queued"] is True
    assert paused["turn_id"] in ended
    assert [e["turn_id"] for e in events if e["type"] == "turn.started"] == [paused["turn_id"]]


@pytest.mark.slow
def test_a_crash_leaves_no_queued_turn_looking_like_it_will_run(gateway: Gateway, mock_model: MockModel) -> None:
    """After a crash the turn that ran and the turn queued behind it both end as
    turn.failed (gateway_restarted), and the session takes new turns. So does a turn queued
    behind one whose end was recorded just before the crash, before the queued one started."""
    between, ended = _paused_session(gateway, mock_model)
    stranded = _queue(gateway, between, "stranded between turns", background=True).json()["turn_id"]
    mock_model.clear_script()  # its reply to the tool result will never be asked for
    session_id, paused = _paused_session(gateway, mock_model)
    queued = _queue(gateway, session_id, "behind", background=True).json()["turn_id"]
    assert gateway.process is not None
    gateway.process.send_signal(signal.SIGKILL)
    gateway.stop()
    with sqlite3.connect(gateway.home / "cc-api" / "sessions.db") as db:  # as if the crash came after its end
        db.execute("UPDATE turns SET status = 'completed' WHERE id = ?", (ended["turn_id"],))
        db.execute("UPDATE sessions SET status = 'idle' WHERE id = ?", (between,))
    gateway.start()
    marks = {e["turn_id"]: e["data"] for e in gateway.events(between) if e["type"] == "turn.failed"}
    assert list(marks) == [stranded] and marks[stranded]["queued"] is True
    assert marks[stranded]["error"]["type"] == "gateway_restarted"
    assert gateway.turn(between, "the session goes on")["status"] == "completed"
    events = gateway.events(session_id)
    failed = {e["turn_id"]: e["data"] for e in events if e["type"] == "turn.failed"}
    assert failed[paused["turn_id"]]["error"]["type"] == "gateway_restarted"
    assert failed[queued]["error"]["type"] == "gateway_restarted" and failed[queued]["queued"] is True
    assert not [e for e in events if e["type"] == "turn.started" and e["turn_id"] == queued]
    assert gateway.turn(session_id, "after the crash")["status"] == "completed"


@pytest.mark.slow
def test_two_chat_completions_on_one_conversation_at_once_both_answer(gateway: Gateway, mock_model: MockModel) -> None:
    """A compat request that arrives while its conversation's turn runs (a heartbeat during a
    user turn) queues behind it on the same warm session: no 409, no new session, and the
    conversation goes on warm with both exchanges. One whose client gives up while it waits
    is withdrawn and never reaches the model."""
    url = "/v1/chat/completions"
    history: list[dict[str, Any]] = [{"role": "user", "content": "hello"}]
    first = gateway.client.post(url, json={"model": "sonnet", "messages": history})
    session_id = first.headers["x-cc-session-id"]
    history.append({"role": "assistant", "content": first.json()["choices"][0]["message"]["content"]})
    before = gateway.events(session_id)[-1]["seq"]

    mock_model.script(Reply(text="slow answer", first_byte_delay=3.0))
    user_turn = [*history, {"role": "user", "content": "user turn"}]
    thread, slow = _in_thread(lambda: gateway.client.post(url, json={"model": "sonnet", "messages": user_turn}))
    _wait_for(gateway, session_id, lambda ev: any(e["type"] == "turn.started" and e["seq"] > before for e in ev))
    poll = [*history, {"role": "user", "content": "heartbeat poll"}]
    beat, beats = _in_thread(lambda: gateway.client.post(url, json={"model": "sonnet", "messages": poll}))
    _wait_for(gateway, session_id, lambda ev: any(e["type"] == "turn.queued" for e in ev))
    with httpx.Client(base_url=gateway.base_url, timeout=0.5) as impatient:
        try:
            impatient.post(url, json={"model": "sonnet", "messages": [*history, {"role": "user", "content": "gone"}]})
        except httpx.ReadTimeout:
            pass
    _wait_for(gateway, session_id, lambda ev: any(e["type"] == "turn.interrupted" for e in ev))
    thread.join(60)
    beat.join(60)
    heartbeat = beats[0]

    assert heartbeat.status_code == 200 and slow[0].status_code == 200, (heartbeat.text, slow[0].text)
    assert slow[0].json()["choices"][0]["message"]["content"] == "slow answer"
    assert heartbeat.json()["choices"][0]["message"]["content"] == "mock reply: heartbeat poll"
    assert heartbeat.headers["x-cc-session-id"] == slow[0].headers["x-cc-session-id"] == session_id
    kinds = ("turn.queued", "turn.started", "turn.completed", "turn.interrupted")
    assert [e["type"] for e in gateway.events(session_id, after=before) if e["type"] in kinds] == [
        "turn.started",
        "turn.queued",
        "turn.queued",
        "turn.interrupted",
        "turn.completed",
        "turn.started",
        "turn.completed",
    ]
    assert not any("gone" in user_texts(r.body["messages"][-1]) for r in mock_model.message_requests())

    grown = [
        *user_turn,
        {"role": "assistant", "content": "slow answer"},
        {"role": "user", "content": "heartbeat poll"},
        {"role": "assistant", "content": "mock reply: heartbeat poll"},
        {"role": "user", "content": "next"},
    ]
    after = gateway.client.post(url, json={"model": "sonnet", "messages": grown})
    assert after.headers["x-cc-session-id"] == session_id
    sent = mock_model.message_requests(include_side=False)[-1].body["messages"]
    assert "<conversation_history>" not in str(sent) and len(sent) == 7  # warm: three exchanges, then "next"


def test_a_retry_while_the_first_request_runs_gets_its_answer_and_runs_nothing_twice(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """A client that gives up waiting and sends the same request again (as clients do on a read
    timeout) gets the first request's answer; its input reaches the model once, in one turn."""
    url = "/v1/chat/completions"
    body = {"model": "sonnet", "messages": [{"role": "user", "content": "a slow question, asked twice"}]}
    mock_model.script(Reply(text="the one answer", first_byte_delay=3.0))
    with httpx.Client(base_url=gateway.base_url, timeout=1.0) as impatient:
        try:
            impatient.post(url, json=body)
            raise AssertionError("the first request was expected to time out")
        except httpx.ReadTimeout:
            pass
    retried = gateway.client.post(url, json=body)
    assert retried.status_code == 200, retried.text
    assert retried.json()["choices"][0]["message"]["content"] == "the one answer"
    session_id = retried.headers["x-cc-session-id"]
    started = [e for e in gateway.events(session_id) if e["type"] in ("turn.started", "turn.queued")]
    assert [e["type"] for e in started] == ["turn.started"]
    asked = [r for r in mock_model.message_requests(include_side=False) if "asked twice" in str(r.body["messages"])]
    assert len(asked) == 1


class _Log:
    """The event log as the queue sees it; ``broken`` makes every write fail."""

    def __init__(self) -> None:
        self.events: list[tuple[str | None, str]] = []
        self.broken = False

    async def emit(self, session_id: str, turn_id: str | None, type_: EventType, data: dict) -> SimpleNamespace:
        if self.broken:
            raise OSError("disk full")
        self.events.append((turn_id, type_.value))
        return SimpleNamespace(seq=len(self.events))

    async def flush(self) -> None:
        pass


def _text(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}]


def test_a_turn_waiting_for_its_slot_stays_visible_withdrawable_and_starts_in_its_own_context() -> None:
    """While the next queued turn waits for a live slot, GET and POST /interrupt still find it and
    withdrawing it lets the one behind start; each starts in the context it was queued in (its
    request's trace), not the draining task's (the previous turn's request)."""
    request = contextvars.ContextVar[str]("request")

    async def scenario() -> None:
        log = _Log()
        queues = TurnQueues(log, Metrics(process=False))  # type: ignore[arg-type]
        request.set("first request")
        first = await queues.enqueue("sess_q", _text("first"), "turn_running")
        request.set("second request")
        second = await queues.enqueue("sess_q", _text("second"), "turn_running")
        request.set("the previous turn's request")
        slot = asyncio.Event()
        seen: list[str] = []

        async def start(turn: QueuedTurn) -> Any:
            await turn.withdrawable(slot.wait())
            seen.append(request.get())
            return f"run of {turn.turn_id}"

        drain = asyncio.create_task(queues.drain("sess_q", start))
        await asyncio.sleep(0.01)
        assert queues.find("sess_q", first.turn_id) is first and queues.waiting_count == 1
        withdrawn = await queues.withdraw(first, "not needed any more")
        assert withdrawn is not None and withdrawn.status == "interrupted"
        assert queues.find("sess_q", first.turn_id) is None
        slot.set()
        assert await drain is True
        assert await second.started() == f"run of {second.turn_id}" and seen == ["second request"]
        assert log.events[-1] == (first.turn_id, "turn.interrupted")
        assert await queues.withdraw(second, "too late") is None  # it runs: interrupt it as a running turn

    asyncio.run(scenario())


def test_when_turns_cannot_start_and_the_log_fails_too_every_waiter_still_hears() -> None:
    """A start that fails with an internal error tells its waiter fixed words (not the internal
    text); a log write that fails then is no reason to hang the turns behind it; and a drain cut
    short fails those it did not get to."""

    async def scenario() -> None:
        log = _Log()
        queues = TurnQueues(log, Metrics(process=False))  # type: ignore[arg-type]
        turns = [await queues.enqueue("sess_f", _text(f"t{n}"), "turn_running") for n in range(3)]

        async def start(turn: QueuedTurn) -> Any:
            if turn is turns[0]:
                raise RuntimeError("internal detail /srv/secret")
            log.broken = True
            raise asyncio.CancelledError  # the drain itself is stopped

        try:
            await queues.drain("sess_f", start)
        except asyncio.CancelledError:
            pass
        outcomes = [await asyncio.wait_for(turn.started(), 1) for turn in turns]
        assert [o.status for o in outcomes] == ["failed", "failed", "failed"]
        assert outcomes[0].error == {"type": "unavailable", "message": START_FAILED}
        assert queues.find("sess_f", turns[2].turn_id) is None and queues.waiting_count == 0

    asyncio.run(scenario())


def test_a_compat_turn_that_lost_its_session_to_another_host_is_a_409_to_retry() -> None:
    conflict = failure({"type": "conflict", "message": "gateway host 'b' is running a turn in this session"})
    assert conflict.status == 409 and conflict.headers["Retry-After"]
