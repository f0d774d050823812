"""A warm turn's input goes to Claude Code while the turn is recorded (issue 29): the rules, in process.

End to end, every warm turn of the suite on SQLite or a JSON directory now starts this way; these tests pin what
may go ahead and what a turn started that way runs on. That options changed with ``PATCH`` apply to the next turn
all the same is end to end in tests/test_mcp_servers.py (test_patch_changes_the_model_and_permission_mode_...).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ccapi.config import Settings
from ccapi.engine import EnginePool, EngineSpec
from ccapi.sessions.specs import EngineSpecs


class StandInEngine:
    """What the pool asks of a live engine when input goes ahead."""

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.generation = spec.generation
        self.busy = False
        self.held = False
        self.exited = False
        self.last_used = 0.0
        self.ahead: list[list[dict[str, Any]]] = []

    @property
    def sent_ahead(self) -> bool:
        return bool(self.ahead)

    def send_ahead(self, content: list[dict[str, Any]]) -> None:
        self.ahead.append(content)

    async def close(self) -> None:
        pass


def _spec(session_id: str, **changes: Any) -> EngineSpec:
    fields: dict[str, Any] = {
        "session_id": session_id,
        "model": "claude-sonnet-4-5",
        "system_prompt": None,
        "cwd": None,
        "permission_mode": "default",
        "max_turns": 8,
        "generation": 1,
    }
    return EngineSpec(**{**fields, **changes})


async def _pool_with(*engines: StandInEngine) -> EnginePool:
    pool = EnginePool(max_live=4, idle_timeout=600)
    for engine in engines:
        pool._engines[engine.spec.session_id] = engine  # type: ignore[assignment]
        await pool.reserve(engine.spec.session_id)
    return pool


def test_a_warm_idle_engine_takes_the_input_ahead_and_runs_that_turn_as_it_is() -> None:
    async def main() -> None:
        engine = StandInEngine(_spec("sess_warm"))
        pool = await _pool_with(engine)
        text = [{"type": "text", "text": "next"}]
        assert pool.send_ahead("sess_warm", text)
        assert engine.ahead == [text] and engine.busy  # not evictable, not given to anyone else

        # the turn's own spec says another generation and prompt (a PATCH raced the turn's start): the engine
        # that has its input runs it, and is not restarted under it
        acquired = await pool.acquire(_spec("sess_warm", generation=2, system_prompt="changed meanwhile"))
        assert acquired is engine

    asyncio.run(main())


def test_no_input_goes_ahead_to_a_missing_busy_changed_or_capped_engine() -> None:
    async def main() -> None:
        busy, held, capped = (StandInEngine(_spec(name)) for name in ("sess_busy", "sess_held", "sess_capped"))
        capped.spec = _spec("sess_capped", max_budget_usd=1.0)
        pool = await _pool_with(busy, held, capped)
        await pool.reserve("sess_cold")
        busy.busy = True
        pool.hold("sess_held")  # what SessionService.change does before it writes the new options
        text = [{"type": "text", "text": "next"}]
        for session_id in ("sess_cold", "sess_busy", "sess_held", "sess_capped"):
            assert not pool.send_ahead(session_id, text), session_id
        assert not (busy.ahead or held.ahead or capped.ahead)
        assert not held.busy and not capped.busy  # left for the turn's own acquire to check and start

    asyncio.run(main())


def test_a_call_back_from_claude_code_while_its_turn_is_recorded_waits_for_the_turn(tmp_path) -> None:
    """Sent ahead, Claude Code may call a client tool or ask a permission before the turn is registered; the
    call is routed to that turn once it is, not refused as if no turn ran."""

    class Desk:
        async def resolve(self, name: str, arguments: dict[str, Any]) -> str:
            return f"{name} ran with {arguments}"

    class Run:
        desk = Desk()

    async def main() -> None:
        running: dict[str, Any] = {}
        specs = EngineSpecs(Settings.from_env({"CC_API_HOME": str(tmp_path)}), None, running)
        with specs.turn_starting("sess_a"):
            call = asyncio.create_task(specs._resolve_tool("sess_a", "lookup", {"q": 1}))
            await asyncio.sleep(0.01)
            assert not call.done()  # waits: the turn is being recorded
            running["sess_a"] = Run()
        assert await call == "lookup ran with {'q': 1}"
        assert (await specs._resolve_tool("sess_b", "lookup", {})).is_error  # no turn at all: refused at once

    asyncio.run(main())
