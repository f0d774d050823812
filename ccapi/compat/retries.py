"""Requests being answered, by what they ask: a client's retry of one joins it.

Clients retry a request they gave up waiting for (Hermes and the OpenAI SDKs on a read
timeout). Routed afresh, the retry would find the conversation's turn still running and
queue the same input behind it as a second turn; joined, it gets the first request's reply.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable

import orjson
import structlog

from ccapi.compat.exchange import CompatRequest, Exchange

log = structlog.get_logger(__name__)


class Answering:
    def __init__(self) -> None:
        self._exchanges: dict[str, asyncio.Future[Exchange]] = {}  # request fingerprint → its exchange

    async def answer(self, request: CompatRequest, start: Callable[[], Awaitable[Exchange]]) -> Exchange:
        """The exchange of the same request still being answered, joined, or a new one from ``start``."""
        fingerprint = _fingerprint(request)
        first = self._exchanges.get(fingerprint)
        if first is not None:
            exchange = await asyncio.shield(first)
            log.info("compat_retry_joined", session_id=exchange.session_id, first_seq=exchange.first_seq)
            return exchange.join()
        answering = self._exchanges[fingerprint] = asyncio.get_running_loop().create_future()
        try:
            exchange = await start()
        except BaseException as exc:
            del self._exchanges[fingerprint]
            answering.set_exception(exc)
            answering.exception()  # a retry that joined has it; none may have
            raise
        answering.set_result(exchange)
        exchange.settled_callback = lambda: self._forget(fingerprint, answering)
        return exchange

    def leave(self, exchange: Exchange, withdraw: Callable[[], bool]) -> None:
        """A request gave up on its exchange; once none waits, ``withdraw`` its turn if it is still
        queued, and a retry after that starts afresh (one of a turn that runs joins it)."""
        if not exchange.leave() or not withdraw():
            return
        for fingerprint, answering in list(self._exchanges.items()):
            if answering.done() and answering.exception() is None and answering.result().same(exchange):
                self._forget(fingerprint, answering)

    def _forget(self, fingerprint: str, answering: asyncio.Future[Exchange]) -> None:
        if self._exchanges.get(fingerprint) is answering:
            del self._exchanges[fingerprint]


def _fingerprint(request: CompatRequest) -> str:
    """What makes two requests the same request: everything they ask, in every part."""
    parts = (
        request.format,
        request.pinned_session,
        request.previous,
        request.affinity_key,
        repr(request.builtin_tools),
        request.stop,
    )
    digest = hashlib.sha256(request.conversation.header())
    digest.update(orjson.dumps([parts, request.conversation.messages]))
    return digest.hexdigest()
