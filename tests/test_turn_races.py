"""Races in a turn's life that an HTTP test cannot time: the sessions layer on a real store and event log, with a
fake engine (the SDK's messages, scripted), and each step placed where the race needs it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from claude_agent_sdk.types import AssistantMessage, ResultMessage, StreamEvent, TextBlock, ToolUseBlock

from ccapi.config import Settings
from ccapi.engine.pool import EnginePool
from ccapi.engine.spec import EngineSpec
from ccapi.sessions.eventlog import EventLog
from ccapi.sessions.params import NewSession, TurnRequest
from ccapi.sessions.service import SessionService
from ccapi.sessions.toolcalls import ToolResult
from ccapi.store import open_store

TOOL = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}
Script = Callable[[EngineSpec], AsyncIterator[Any]]


def _result() -> ResultMessage:
    return ResultMessage("success", 1, 1, False, 1, "sdk-session", result="done")


async def _deltas(spec: EngineSpec) -> AsyncIterator[Any]:
    for n in range(20):
        await asyncio.sleep(0.005)
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"{n} "}}
        yield StreamEvent(uuid=f"u{n}", session_id="sdk-session", event=delta)
    yield _result()


async def _one_tool_call(spec: EngineSpec) -> AsyncIterator[Any]:
    call = ToolUseBlock(id="toolu_1", name="mcp__client__get_weather", input={"city": "Oslo"})
    yield AssistantMessage(content=[call], model="claude-sonnet-4-5")
    yield StreamEvent(uuid="stop", session_id="sdk-session", event={"type": "message_stop"})
    assert spec.resolve_tool is not None
    outcome = await spec.resolve_tool("get_weather", {"city": "Oslo"})  # what the MCP bridge does
    yield AssistantMessage(content=[TextBlock(f"Oslo: {outcome.content}")], model="claude-sonnet-4-5")
    yield _result()


class _Engine:
    def __init__(self, spec: EngineSpec, script: Script) -> None:
        self.spec, self._script = spec, script
        self.busy, self.held, self.sent_ahead = True, False, False
        self.generation, self.reported_cost, self.last_used = spec.generation, 0.0, time.monotonic()

    def run(self, content: list[dict[str, Any]]) -> AsyncIterator[Any]:
        return self._script(self.spec)

    async def interrupt(self) -> None:
        pass

    async def close(self) -> None:
        pass


class _Pool(EnginePool):
    def __init__(self, script: Script, max_live: int = 4) -> None:
        super().__init__(max_live, 600)
        self._script = script

    async def acquire(self, spec: EngineSpec) -> Any:
        engine = self._engines[spec.session_id] = _Engine(spec, self._script)
        return engine


async def _service(home: Path, script: Script, pool: EnginePool | None = None) -> tuple[SessionService, EventLog]:
    settings = Settings.from_env({"CC_API_HOME": str(home)})
    store = await open_store(settings)
    events = EventLog(store)
    events.start()
    return SessionService(settings, store, events, pool or _Pool(script)), events


def _new(tools: tuple[dict[str, Any], ...] = ()) -> NewSession:
    return NewSession("claude-sonnet-4-5", None, tools, {}, None, None, None)


def _hi() -> TurnRequest:
    return TurnRequest(({"type": "text", "text": "hi"},), False, False)


async def _close(service: SessionService, events: EventLog) -> None:
    await service.shutdown()
    await service.pool.close()
    await events.stop()
    await service.store.close()


async def _turn_events(service: SessionService, events: EventLog, session_id: str) -> list[Any]:
    await events.flush()
    return await service.store.list_events(session_id, after=0, limit=1000)


def test_the_orphan_sweep_leaves_a_turn_that_starts_while_it_looks(tmp_path: Path) -> None:
    """The lease caretaker lists the open turns of sessions whose lease is this host's. A turn that is starting
    (recorded, lease taken, not yet running) is on that list; the sweep must look again under the session's lock
    instead of closing it as a crash's leftover (it wrote `turn.failed: gateway_restarted` into a live turn, and
    could reuse a seq the live turn held, jamming the event log)."""

    async def main() -> None:
        service, events = await _service(tmp_path, _deltas)
        session, other = await service.create(_new()), await service.create(_new())
        await events.emit(other.id, None, "session.note", {})  # a pending event: the turn's start waits on a flush
        lease_and_start = service.store.lease_and_start
        leased = asyncio.Event()

        async def spy(*args: Any, **kwargs: Any) -> Any:
            leased.set()  # the sweep's store call goes right after this one
            return await lease_and_start(*args, **kwargs)

        service.store.lease_and_start = spy  # type: ignore[method-assign]
        starting = asyncio.create_task(service.start_turn(session.id, _hi()))
        await leased.wait()  # the turn is being recorded under this host's lease; it is not running yet
        sweep = asyncio.create_task(service.sweep_orphans())
        run = await starting
        await sweep
        record = await run.wait()
        assert record.status == "completed"
        logged = await _turn_events(service, events, session.id)
        assert [e.type for e in logged if e.type.startswith("turn.")] == ["turn.started", "turn.completed"]
        assert [e.seq for e in logged] == list(range(1, len(logged) + 1))
        assert events.stalled is None
        await _close(service, events)

    asyncio.run(main())


def test_an_answer_posted_while_the_pause_is_recorded_gets_the_turn_after_it(tmp_path: Path) -> None:
    """A client following the stream answers the moment it sees `turn.requires_action`, while the gateway is still
    recording the pause: the answer's reply is what the turn did with it, not the pause it has just answered."""

    async def main() -> None:
        service, events = await _service(tmp_path, _one_tool_call)
        session = await service.create(_new((TOOL,)))
        update_turn = service.store.update_turn
        answered: asyncio.Future[Awaitable[Any]] = asyncio.get_running_loop().create_future()

        async def answer_first(turn_id: str, **fields: Any) -> None:
            if fields.get("status") == "requires_action" and not answered.done():  # the pause being recorded
                run, _ = await service.submit_tool_results(session.id, [ToolResult("toolu_1", "-3C")])
                answered.set_result(run.wait())
            await update_turn(turn_id, **fields)

        service.store.update_turn = answer_first  # type: ignore[method-assign]
        run = await service.start_turn(session.id, _hi())
        reply = await asyncio.wait_for(await asyncio.wait_for(answered, 10), 10)
        assert reply.status == "completed" and reply.tool_calls == []
        assert (await asyncio.wait_for(run.task, 10)).status == "completed"
        assert (await service.get(session.id)).status == "idle"
        await _close(service, events)

    asyncio.run(main())


def test_a_turn_cancelled_while_claude_code_starts_gives_its_live_slot_back(tmp_path: Path) -> None:
    """An interrupt (or a delete) that outlasts its grace cancels a turn still waiting for Claude Code to start; the
    turn's live slot must come back, or each such turn lowers CC_API_MAX_LIVE for good (503s in the end)."""

    class SlowStart(_Pool):
        slow: str | None = None

        async def acquire(self, spec: EngineSpec) -> Any:
            if spec.session_id == self.slow:
                await asyncio.sleep(60)  # Claude Code takes its time to start
            return await super().acquire(spec)

    async def main() -> None:
        pool = SlowStart(_deltas, max_live=1)
        service, events = await _service(tmp_path, _deltas, pool)
        slow, other = await service.create(_new()), await service.create(_new())
        pool.slow = slow.id
        stuck = await service.start_turn(slow.id, _hi())
        await asyncio.sleep(0.1)
        assert stuck.task is not None
        stuck.task.cancel()
        assert (await asyncio.wait_for(stuck.wait(), 5)).status == "interrupted"
        run = await asyncio.wait_for(service.start_turn(other.id, _hi()), 5)
        assert (await asyncio.wait_for(run.wait(), 5)).status == "completed"
        await _close(service, events)

    asyncio.run(main())


def test_a_turn_that_fails_inside_the_gateway_still_ends_for_everyone_waiting(tmp_path: Path) -> None:
    """Not an engine error but a bug, or the store failing mid-turn: the turn ends `failed` (no hung reply, no
    session stuck `running`), with its slot back."""

    async def broken(spec: EngineSpec) -> AsyncIterator[Any]:
        yield StreamEvent(uuid="u", session_id="sdk-session", event={"type": "message_start"})
        raise RuntimeError("not an SDK error")

    async def main() -> None:
        service, events = await _service(tmp_path, broken, _Pool(broken, max_live=1))
        session = await service.create(_new())
        run = await service.start_turn(session.id, _hi())
        record = await asyncio.wait_for(run.wait(), 5)
        assert record.status == "failed" and record.error is not None and record.error["type"] == "internal"
        assert (await service.get(session.id)).status == "idle"
        assert [e.type for e in await _turn_events(service, events, session.id)][-1] == "turn.failed"
        run = await service.start_turn(session.id, _hi())  # the session goes on, in the one live slot
        assert (await asyncio.wait_for(run.wait(), 5)).status == "failed"
        await _close(service, events)

    asyncio.run(main())
