"""A turn's life against a demanding client that acts at the worst moment: interrupts as the turn pauses, several
clients answering one call, a delete while the turn waits with turns queued behind it and a follower on the stream.
The races an HTTP test cannot time run in process, on a real store and event log with a scripted engine (see
test_turn_races)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from claude_agent_sdk.types import AssistantMessage, ResultMessage, StreamEvent, TextBlock, ToolUseBlock

from ccapi.engine.spec import EngineSpec
from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway, eventually, sse_events
from tests.test_tools import WEATHER
from tests.test_turn_races import TOOL, _close, _hi, _new, _service, _turn_events


def _in_thread(call: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[httpx.Response]]:
    out: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    return thread, out


async def _pausing(spec: EngineSpec, kind: str) -> AsyncIterator[Any]:
    """One client tool call (``tool``) or one built-in call that asks for approval (``approval``); an interrupt's
    answer ends the turn as Claude Code ends an aborted one, else it goes on to a reply."""
    if kind == "tool":
        call = ToolUseBlock(id="toolu_1", name="mcp__client__get_weather", input={"city": "Oslo"})
        yield AssistantMessage(content=[call], model="claude-sonnet-4-5")
        yield StreamEvent(uuid="stop", session_id="sdk-session", event={"type": "message_stop"})
        assert spec.resolve_tool is not None
        stopped = (await spec.resolve_tool("get_weather", {"city": "Oslo"})).is_error
    else:
        call = ToolUseBlock(id="toolu_2", name="Bash", input={"command": "touch notes.txt"})
        yield AssistantMessage(content=[call], model="claude-sonnet-4-5")
        assert spec.ask_permission is not None
        stopped = not (await spec.ask_permission("Bash", {"command": "touch notes.txt"}, "toolu_2")).allow
    if stopped:
        yield ResultMessage("error_during_execution", 1, 1, True, 1, "sdk-session")
        return
    yield AssistantMessage(content=[TextBlock("done")], model="claude-sonnet-4-5")
    yield ResultMessage("success", 1, 1, False, 1, "sdk-session", result="done")


@pytest.mark.parametrize("kind", ["tool", "approval"])
def test_an_interrupt_while_the_pause_is_recorded_answers_interrupted_not_running(tmp_path: Path, kind: str) -> None:
    """An interrupt that lands while the gateway records the turn's pause (a client tool call, or an approval)
    answers what the turn waited for: there is no pause left. The turn's reply said `"status": "running"`, a status
    no turn settles at (and none the API documents), while the log ended the turn `turn.interrupted`; it says
    `interrupted`, as the interrupt's own reply and the log do."""

    async def script(spec: EngineSpec) -> AsyncIterator[Any]:
        async for message in _pausing(spec, kind):
            yield message

    async def main() -> None:
        service, events = await _service(tmp_path, script)
        session = await service.create(_new((TOOL,) if kind == "tool" else ()))
        flush = events.flush
        stopping: list[asyncio.Task[Any]] = []

        async def interrupt_as_the_pause_commits(bounded: bool = False) -> None:
            run = service.running(session.id)
            waits = run is not None and (run.desk.waiting() or run.desk.pending_permissions())
            if run is not None and waits and not stopping:  # the pause's own flush: its event is being committed
                stopping.append(asyncio.create_task(service.interrupt(session.id)))
                while run.desk.waiting() or run.desk.pending_permissions():  # noqa: ASYNC110 - until the interrupt
                    await asyncio.sleep(0)  # has answered them
            await flush(bounded)

        events.flush = interrupt_as_the_pause_commits  # type: ignore[method-assign]
        run = await service.start_turn(session.id, _hi())
        reply = await asyncio.wait_for(run.wait(), 10)
        stopped = await asyncio.wait_for(stopping[0], 10)
        assert (reply.status, stopped.status) == ("interrupted", "interrupted")
        assert reply.id == stopped.id and reply.last_event_seq == stopped.last_event_seq
        logged = await _turn_events(service, events, session.id)
        assert [e.seq for e in logged] == list(range(1, len(logged) + 1))
        assert [e.type for e in logged if e.type in ("turn.completed", "turn.interrupted", "turn.failed")] == [
            "turn.interrupted"
        ]
        assert logged[-1].type == "turn.interrupted" and logged[-1].seq == reply.last_event_seq
        assert (await service.get(session.id)).status == "idle"
        await _close(service, events)

    asyncio.run(main())


def test_results_posted_by_several_clients_at_once_continue_the_turn_once(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """Three clients post the result of one call at the same moment: one continues the turn, the others get a 409
    in the envelope; the log has one `tool_result` and one end, and the session goes on."""
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Nice"}),)), Reply(text="sunny"))
    session_id = gateway.create_session(tools=[WEATHER])["id"]
    paused = gateway.turn(session_id, "Nice?")
    body = {"results": [{"tool_call_id": paused["tool_calls"][0]["tool_call_id"], "content": "24C"}]}
    clients = [httpx.Client(base_url=gateway.base_url, timeout=60) for _ in range(3)]
    posts = [_in_thread(lambda c=c: c.post(f"/api/sessions/{session_id}/tool-results", json=body)) for c in clients]
    for thread, _ in posts:
        thread.join(60)
    answers = sorted((out[0] for _, out in posts), key=lambda response: response.status_code)
    assert [a.status_code for a in answers] == [200, 409, 409]
    assert answers[0].json()["status"] == "completed"
    assert all(a.json()["error"]["type"] == "conflict" for a in answers[1:])
    types = [e["type"] for e in gateway.events(session_id)]
    assert types.count("tool_result") == 1 and types.count("turn.completed") == 1 and types[-1] == "turn.completed"
    assert gateway.turn(session_id, "and now?")["status"] == "completed"
    for client in clients:
        client.close()


def test_a_delete_while_the_turn_waits_with_turns_queued_ends_each_once(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """A session deleted while its turn waits for a tool result, two turns queued behind it and a follower on its
    stream: the running turn and each queued one end once (`turn.interrupted`), the waiting queued reply answers,
    the follower's stream ends, and the session is gone."""
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Nice"}),)))
    session_id = gateway.create_session(tools=[WEATHER])["id"]
    url = f"/api/sessions/{session_id}"
    gateway.turn(session_id, "Nice?")
    frames: list[dict[str, Any]] = []

    def follow() -> httpx.Response:
        with (
            httpx.Client(base_url=gateway.base_url, timeout=60) as client,
            client.stream("GET", f"{url}/events/stream") as response,
        ):
            frames.extend(f for f in sse_events(response.iter_lines()) if "event" in f)
            return response

    follower, _ = _in_thread(follow)
    waiter, waited = _in_thread(
        lambda: httpx.post(f"{gateway.base_url}{url}/turns", json={"input": "q1", "queue": True}, timeout=60)
    )
    assert gateway.client.post(f"{url}/turns", json={"input": "q2", "queue": True, "background": True}).is_success
    assert eventually(lambda: sum(e["type"] == "turn.queued" for e in gateway.events(session_id)) == 2)
    assert gateway.client.delete(url).status_code == 200
    waiter.join(30)
    follower.join(30)
    assert not follower.is_alive() and not waiter.is_alive()
    assert waited[0].status_code == 200 and waited[0].json()["status"] == "interrupted", waited[0].text
    ends = [f["data"]["turn_id"] for f in frames if f["event"] == "turn.interrupted"]
    started = {f["data"]["turn_id"] for f in frames if f["event"] in ("turn.started", "turn.queued")}
    assert len(ends) == len(set(ends)) == 3 and set(ends) == started
    assert [int(f["id"]) for f in frames] == list(range(1, len(frames) + 1))
    assert gateway.client.get(url).status_code == 404


def test_a_permission_check_still_pausing_when_the_turn_ends_leaves_the_session_idle(tmp_path: Path) -> None:
    """Claude Code asks its permission checks from a task of its own, and ends an interrupted turn without waiting
    for their answer: a check whose pause was still being recorded when the turn's end was committed wrote its pause
    over that end, and the session, its turn over, read `requires_approval` (and its turn record too)."""
    service_box: list[Any] = []
    asked: list[asyncio.Task[Any]] = []

    async def script(spec: EngineSpec) -> AsyncIterator[Any]:
        yield AssistantMessage(
            content=[ToolUseBlock(id="toolu_2", name="Bash", input={"command": "touch notes.txt"})],
            model="claude-sonnet-4-5",
        )
        assert spec.ask_permission is not None
        asked.append(asyncio.create_task(spec.ask_permission("Bash", {"command": "touch notes.txt"}, "toolu_2")))
        run = service_box[0].running(spec.session_id)
        while run._interrupt_reason is None:  # noqa: ASYNC110 - the fake engine's interrupt sets no flag of its own
            await asyncio.sleep(0.001)
        yield ResultMessage("error_during_execution", 1, 1, True, 1, "sdk-session")  # without waiting for the check

    async def main() -> None:
        service, events = await _service(tmp_path, script)
        service_box.append(service)
        session = await service.create(_new())
        flush = events.flush
        stopping: list[asyncio.Task[Any]] = []

        async def end_the_turn_as_the_pause_commits(bounded: bool = False) -> None:
            run = service.running(session.id)
            if run is not None and run.desk.pending_permissions() and not stopping:
                stopping.append(asyncio.create_task(service.interrupt(session.id)))
                await asyncio.wait_for(stopping[0], 10)  # the turn has ended, its end committed
            await flush(bounded)

        events.flush = end_the_turn_as_the_pause_commits  # type: ignore[method-assign]
        run = await service.start_turn(session.id, _hi())
        record = await asyncio.wait_for(run.task, 10)  # type: ignore[arg-type]
        assert record.status == "interrupted"
        await asyncio.wait_for(asked[0], 10)  # the permission check has had its say
        events.flush = flush  # type: ignore[method-assign]
        assert (await service.get(session.id)).status == "idle"
        assert (await service.get_turn(session.id, record.id)).status == "interrupted"
        logged = await _turn_events(service, events, session.id)
        assert logged[-1].type == "turn.interrupted"
        await _close(service, events)

    asyncio.run(main())
