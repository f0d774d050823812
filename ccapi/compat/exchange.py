"""A compat request as the router takes it, and its answer as the formats render it.

Each format module (``openai_chat``, ``openai_responses``, ``anthropic_messages``) parses its
wire request into a ``CompatRequest``; the router answers it with an ``Exchange``, whose
deltas and settled reply the format renders in its own shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ccapi.catalog import ModelCatalog
from ccapi.compat.conversation import Conversation
from ccapi.compat.errors import ModelNotFound
from ccapi.compat.reply import Delta, Reply
from ccapi.errors import ApiError, InvalidRequest
from ccapi.sessions.params import known_model
from ccapi.toolpolicy import BuiltinTools


@dataclass(frozen=True)
class ResponseRef:
    """Where a previous response began: its session and its first seq (its turn's
    ``turn.started`` or ``turn.queued``, or the first ``tool_result`` it continued with)."""

    session_id: str
    seq: int
    id: str = ""


@dataclass(frozen=True)
class CompatRequest:
    conversation: Conversation
    format: str
    pinned_session: str | None = None
    previous: ResponseRef | None = None
    builtin_tools: BuiltinTools | None = None
    """For a fresh session: Claude Code's built-in tools (default ``CC_API_COMPAT_BUILTIN_TOOLS``)."""
    affinity_key: str | None = None
    stop: tuple[str, ...] = ()
    """Stop sequences: the reply's text ends before the first of them (``stops``)."""


@dataclass
class _Waiters:
    """How many requests still wait for one exchange (a client's retry joins the first)."""

    count: int = 1


@dataclass
class Exchange:
    """One compat request being answered: its deltas as they come, and the settled reply.

    Collected by a task of its own, so a client that disconnects mid-stream does not stop
    the session from recording the reply as its new head. A client's retry of a request still
    being answered joins it (``join``): a twin that gets every delta from the start and the same reply,
    rather than a second turn with the same input."""

    session_id: str
    model: str
    first_seq: int
    _queue: asyncio.Queue[Delta | None] = field(default_factory=asyncio.Queue)
    _reply: asyncio.Future[Reply] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    _pushed: list[Delta | None] = field(default_factory=list)
    _twins: list[Exchange] = field(default_factory=list)
    _waiters: _Waiters = field(default_factory=_Waiters)
    settled_callback: Callable[[], None] = field(default=lambda: None, repr=False)
    """Called once the reply has settled (the router forgets the request then)."""

    async def deltas(self) -> AsyncIterator[Delta | None]:
        """Text deltas and tool calls, ``None`` for a keep-alive, ending with the ``Reply``."""
        while True:
            delta = await self._queue.get()
            yield delta
            if isinstance(delta, Reply):
                return
            if self._reply.done() and self._queue.empty():
                await self._reply  # raises why the reply will never come
                return

    async def reply(self) -> Reply:
        return await asyncio.shield(self._reply)

    def push(self, delta: Delta | None) -> None:
        self._pushed.append(delta)
        for exchange in (self, *self._twins):
            exchange._put(delta)

    def fail(self, error: ApiError) -> None:
        """The reply will never come: ``reply`` raises ``error``, and ``deltas`` ends with it."""
        for exchange in (self, *self._twins):
            exchange._fail(error)

    def join(self) -> Exchange:
        """A twin for another request that asks exactly what this one asks."""
        twin = Exchange(self.session_id, self.model, self.first_seq, _waiters=self._waiters)
        self._waiters.count += 1
        for delta in self._pushed:
            twin._put(delta)
        if self._reply.done() and self._reply.exception() is not None:
            twin._fail(self._reply.exception())  # type: ignore[arg-type]
        self._twins.append(twin)
        return twin

    def same(self, other: Exchange) -> bool:
        """Whether ``other`` is this exchange or one of its twins."""
        return other._waiters is self._waiters

    def leave(self) -> bool:
        """One request stopped waiting; whether it was the last."""
        self._waiters.count -= 1
        return self._waiters.count <= 0

    def _put(self, delta: Delta | None) -> None:
        if isinstance(delta, Reply):
            self._reply.set_result(delta)
        self._queue.put_nowait(delta)

    def _fail(self, error: BaseException) -> None:
        self._reply.set_exception(error)
        self._queue.put_nowait(None)


def model_of(catalog: ModelCatalog, requested: Any, default: str) -> str:
    """The canonical model id a compat request names (its default when it names none); an unknown one is a 404,
    as the providers answer it."""
    try:
        return known_model(catalog, default if requested is None else requested, ModelNotFound, "/v1/models")
    except InvalidRequest as exc:  # not a name at all (``5``, ``""``): still about ``model``
        raise InvalidRequest(exc.message, exc.details, param="model") from None
