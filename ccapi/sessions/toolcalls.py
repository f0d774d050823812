"""What one turn waits for from its client: the continuation protocol's bookkeeping.

Client tool calls: the translator announces each call (``tool_call`` event); Claude Code's
MCP handler then waits here for the result; the client answers through ``POST /tool-results``.
Permission requests: Claude Code's permission check for a built-in tool waits here for the
client's decision (``POST /permissions``). Each has exactly one outcome: the client's answer,
a timeout, or an interrupt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ccapi.engine.bridge import PermissionDecision, ToolOutcome
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


@dataclass
class PendingPermission:
    request_id: str
    tool_name: str
    input: dict[str, Any]
    tool_use_id: str | None
    future: asyncio.Future[PermissionDecision] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def answered(self) -> bool:
        return self.future.done()

    def view(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "tool_name": self.tool_name,
            "input": self.input,
            "tool_use_id": self.tool_use_id,
        }


@dataclass(frozen=True)
class Decision:
    """One entry of ``POST /permissions``, validated."""

    request_id: str
    allow: bool
    message: str = ""
    updated_input: dict[str, Any] | None = None
    for_session: bool = False


TimeoutReporter = Callable[[PendingCall, ToolOutcome], Awaitable[None]]
ApprovalTimeoutReporter = Callable[[PendingPermission, PermissionDecision], Awaitable[None]]


class ToolDesk:
    def __init__(
        self,
        timeout: float,
        on_timeout: TimeoutReporter,
        approval_timeout: float,
        on_approval_timeout: ApprovalTimeoutReporter,
    ) -> None:
        self._timeout = timeout
        self._on_timeout = on_timeout
        self._approval_timeout = approval_timeout
        self._on_approval_timeout = on_approval_timeout
        self._calls: dict[str, PendingCall] = {}
        self._permissions: dict[str, PendingPermission] = {}
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
                    self._announced.wait_for(lambda: self._match(name, input_)), ANNOUNCE_GRACE
                )
        except TimeoutError:
            return ToolOutcome(f"the gateway could not match this call to {name!r}", is_error=True)
        assert call is not None  # Condition.wait_for returns once the predicate found a call
        call.claimed = True
        try:
            return await asyncio.wait_for(asyncio.shield(call.future), self._timeout)
        except TimeoutError:
            outcome = ToolOutcome(
                f"the client did not return a result for {name!r} within {self._timeout:g} s", is_error=True
            )
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
        return _select(
            self._calls,
            [result.tool_call_id for result in results],
            "tool_call_id",
            "this session is not waiting for tool results",
            "these tool calls already have a result",
        )

    @staticmethod
    def answer(calls: list[PendingCall], results: list[ToolResult]) -> None:
        for call, result in zip(calls, results, strict=True):
            call.future.set_result(ToolOutcome(result.content, result.is_error))

    # -- permission requests ---------------------------------------------------
    def open_permission(
        self, request_id: str, tool_name: str, input_: dict[str, Any], tool_use_id: str | None
    ) -> PendingPermission:
        request = PendingPermission(request_id, tool_name, input_, tool_use_id)
        self._permissions[request_id] = request
        return request

    def pending_permissions(self) -> list[PendingPermission]:
        return [request for request in self._permissions.values() if not request.answered]

    async def decision(self, request: PendingPermission) -> PermissionDecision:
        """Wait for the client's decision; none within the approval timeout is a deny."""
        try:
            return await asyncio.wait_for(asyncio.shield(request.future), self._approval_timeout)
        except TimeoutError:
            decision = PermissionDecision(
                False,
                f"the gateway's client did not approve {request.tool_name!r} "
                f"within {self._approval_timeout:g} s, so it was denied",
            )
            if not request.answered:
                request.future.set_result(decision)
                await self._on_approval_timeout(request, decision)
            return request.future.result()

    def check_decisions(self, decisions: list[Decision]) -> list[PendingPermission]:
        return _select(
            self._permissions,
            [decision.request_id for decision in decisions],
            "request_id",
            "this session is not waiting for permission decisions",
            "these permission requests already have a decision",
        )

    @staticmethod
    def decide(requests: list[PendingPermission], decisions: list[Decision]) -> None:
        for request, decision in zip(requests, decisions, strict=True):
            request.future.set_result(
                PermissionDecision(decision.allow, decision.message, decision.updated_input, decision.for_session)
            )

    def cancel_all(self, reason: str) -> None:
        for call in self.waiting():
            call.future.set_result(ToolOutcome(reason, is_error=True))
        for request in self.pending_permissions():
            request.future.set_result(PermissionDecision(False, reason))


_Pending = TypeVar("_Pending", PendingCall, PendingPermission)


def _select(pending: dict[str, _Pending], ids: list[str], id_name: str, nothing: str, already: str) -> list[_Pending]:
    """The entries a submission answers, after checking all of it: something waits, no id
    twice, every id known, none answered before."""
    waiting = [key for key, item in pending.items() if not item.answered]
    if not waiting:
        raise Conflict(nothing)
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InvalidRequest(f"a {id_name} appears more than once", {f"{id_name}s": duplicates})
    unknown = [i for i in ids if i not in pending]
    if unknown:
        raise InvalidRequest(f"unknown {id_name}", {f"{id_name}s": unknown, "waiting_for": waiting})
    answered = [i for i in ids if pending[i].answered]
    if answered:
        raise Conflict(already, {f"{id_name}s": answered})
    return [pending[i] for i in ids]
