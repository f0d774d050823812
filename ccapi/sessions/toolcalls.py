"""Pending client tool calls of one turn: the continuation protocol's bookkeeping.

The translator announces each call (``tool_call`` event); Claude Code's MCP handler then
waits here for the result; the client answers through ``POST /tool-results``. Each call
has exactly one outcome: the client's result, a timeout, or an interrupt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ccapi.engine.bridge import ToolOutcome
from ccapi.errors import Conflict, InvalidRequest

#: How long an MCP call may wait for the translator to announce its ``tool_use``.
ANNOUNCE_GRACE = 10.0


@dataclass
class PendingCall:
    tool_call_id: str
    name: str
    input: dict[str, Any]
    future: asyncio.Future[ToolOutcome] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    claimed: bool = False

    @property
    def answered(self) -> bool:
        return self.future.done()

    def view(self) -> dict[str, Any]:
        return {"tool_call_id": self.tool_call_id, "name": self.name, "input": self.input}


@dataclass(frozen=True)
class ToolResult:
    """One entry of ``POST /tool-results``, validated."""

    tool_call_id: str
    content: str | list[dict[str, Any]]
    is_error: bool = False


TimeoutReporter = Callable[[PendingCall, ToolOutcome], Awaitable[None]]


class ToolDesk:
    def __init__(self, timeout: float, on_timeout: TimeoutReporter) -> None:
        self._timeout = timeout
        self._on_timeout = on_timeout
        self._calls: dict[str, PendingCall] = {}
        self._announced = asyncio.Condition()

    async def announce(self, tool_call_id: str, name: str, input_: dict[str, Any]) -> None:
        async with self._announced:
            self._calls[tool_call_id] = PendingCall(tool_call_id, name, input_)
            self._announced.notify_all()

    def waiting(self) -> list[PendingCall]:
        return [call for call in self._calls.values() if not call.answered]

    async def resolve(self, name: str, input_: dict[str, Any]) -> ToolOutcome:
        """Called by Claude Code (through the MCP bridge): wait for the client's result."""
        try:
            async with self._announced:
                call = await asyncio.wait_for(
                    self._announced.wait_for(lambda: self._match(name, input_)), ANNOUNCE_GRACE)
        except TimeoutError:
            return ToolOutcome(f"the gateway could not match this call to {name!r}", is_error=True)
        call.claimed = True
        try:
            return await asyncio.wait_for(asyncio.shield(call.future), self._timeout)
        except TimeoutError:
            outcome = ToolOutcome(f"the client did not return a result for {name!r} within {self._timeout:g} s",
                                  is_error=True)
            if not call.answered:
                call.future.set_result(outcome)
                await self._on_timeout(call, outcome)
            return call.future.result()

    def _match(self, name: str, input_: dict[str, Any]) -> PendingCall | None:
        for call in self._calls.values():
            if not call.claimed and call.name == name and call.input == input_:
                return call
        return None

    def check(self, results: list[ToolResult]) -> list[PendingCall]:
        """Validate a whole submission before applying any of it; returns the calls it answers."""
        if not self.waiting():
            raise Conflict("this session is not waiting for tool results")
        ids = [result.tool_call_id for result in results]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise InvalidRequest("a tool_call_id appears more than once", {"tool_call_ids": duplicates})
        unknown = [i for i in ids if i not in self._calls]
        if unknown:
            raise InvalidRequest("unknown tool_call_id", {"tool_call_ids": unknown,
                                                          "waiting_for": [c.tool_call_id for c in self.waiting()]})
        answered = [i for i in ids if self._calls[i].answered]
        if answered:
            raise Conflict("these tool calls already have a result", {"tool_call_ids": answered})
        return [self._calls[i] for i in ids]

    @staticmethod
    def answer(calls: list[PendingCall], results: list[ToolResult]) -> None:
        for call, result in zip(calls, results, strict=True):
            call.future.set_result(ToolOutcome(result.content, result.is_error))

    def cancel_all(self, reason: str) -> None:
        for call in self.waiting():
            call.future.set_result(ToolOutcome(reason, is_error=True))
