"""A turn's end, in process: the reply waiting on it goes out before the turn's log line is written.

The line costs ~0.5 ms to render and write; written first, it sat on every turn's reply (issue 29). The engine
and the store are not involved: the event sink is a stand-in that commits at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from ccapi.engine import EngineSpec, TurnOutcome
from ccapi.events import Event
from ccapi.sessions.turns import TurnContext, TurnRun
from ccapi.store import SessionRecord, TurnRecord
from ccapi.store.records import TurnEnd


class CommittingSink:
    """The ``EventLog`` calls a turn's end makes, committed as they come."""

    def __init__(self) -> None:
        self.seq = 0
        self.ends: list[TurnEnd] = []

    async def emit(self, session_id: str, turn_id: str | None, type_: str, data: dict[str, Any]) -> Event:
        self.seq += 1
        return Event(self.seq, type_, session_id, turn_id, "2026-01-01T00:00:00Z", data)

    def end_turn(self, end: TurnEnd) -> None:
        self.ends.append(end)

    async def flush(self) -> None:
        await asyncio.sleep(0)


def _run(sink: CommittingSink) -> TurnRun:
    session = SessionRecord(
        id="sess_a",
        created_at="t",
        updated_at="t",
        model="claude-sonnet-4-5",
        system_prompt=None,
        tools=[],
        metadata={},
        max_turns=None,
        cwd=None,
        permission_mode=None,
        status="running",
        sdk_session_id=None,
        turn_count=0,
        last_seq=0,
    )
    turn = TurnRecord(id="turn_a", session_id="sess_a", number=1, status="running", input=[], created_at="t")
    spec = EngineSpec(
        session_id="sess_a",
        model="claude-sonnet-4-5",
        system_prompt=None,
        cwd=None,
        permission_mode="default",
        max_turns=8,
    )
    ctx = TurnContext(store=None, events=sink, pool=None, tool_timeout=60.0, approval_timeout=60.0)  # type: ignore[arg-type]
    return TurnRun(ctx, session, turn, spec, [])


def test_a_turns_reply_goes_out_before_its_log_line() -> None:
    asyncio.run(_reply_then_log())


async def _reply_then_log() -> None:
    run = _run(CommittingSink())
    with structlog.testing.capture_logs() as lines:

        async def reply() -> list[str]:  # what POST /turns does: await the settle, then answer
            record = await run.wait()
            assert record.status == "completed"
            return [line["event"] for line in lines]  # the lines written before the answer

        waiting = asyncio.create_task(reply())
        await asyncio.sleep(0)
        await run._finish(TurnOutcome("completed", duration_ms=5), None)
        assert await waiting == []
        for _ in range(5):  # a few turns of the loop later, it is written
            await asyncio.sleep(0)
    assert [(line["event"], line["status"]) for line in lines] == [("turn", "completed")]
