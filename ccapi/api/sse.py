"""Server-Sent Events framing: ``id: <seq>``, ``event: <type>``, ``data: <event JSON>``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncGenerator, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, cast

from sanic import HTTPResponse, Request
from sanic.http import Http

from ccapi.errors import Unavailable
from ccapi.events import Event, EventBatch
from ccapi.sessions.lease import RETRY_AFTER_SECONDS

if TYPE_CHECKING:
    from ccapi.sessions import SessionService

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
KEEPALIVE_FRAME = b": keep-alive\n\n"


_WRITE_CHUNK = 64 * 1024
"""Largest single write: a connection that stopped reading buffers at most about this (plus
the transport's high-water mark) in the gateway, however large an event."""


_WRITING_TO: ContextVar[Request | None] = ContextVar("ccapi_sse_writing_to", default=None)
"""The request ``send_events`` writes to, in its task: how ``follow_stream``, iterated there (behind
whatever filter its caller added), learns which connection to close when the log ends it."""


async def follow_stream(
    service: SessionService, session_id: str, after: int
) -> AsyncGenerator[EventBatch | None, None]:
    """A session's events after ``after`` for one SSE client, cut off if it falls too far
    behind, in events or in bytes.

    Sent by ``send_events``: when the log ends the stream (a cut-off, the session deleted, the
    gateway stopping) while its client is not taking what it was sent, the connection is closed
    at that moment (``_close_if_stuck``), not once the writer waiting on that client gets on."""
    request = _WRITING_TO.get()
    settings = service.settings
    batches = service.events.follow_batches(
        session_id,
        after,
        settings.keepalive_seconds,
        settings.sse_buffer_events,
        cut_off=True,
        max_bytes=settings.sse_buffer_bytes,
        on_end=None if request is None else functools.partial(_close_if_stuck, request),
    )
    async with contextlib.aclosing(batches):
        async for batch in batches:
            yield batch


async def only(
    batches: AsyncGenerator[EventBatch | None, None], keep: Callable[[Event], bool], keepalive: float
) -> AsyncGenerator[EventBatch | None, None]:
    """The events ``keep`` keeps (of some types, of one turn). The log sends keep-alives after a quiet
    ``keepalive``; a session busy with other events is not quiet, so one goes out here too once that
    long passed with none of these (a long turn's deltas, filtered out, would otherwise leave the
    client and any proxy between hearing nothing until the turn ends)."""
    loop = asyncio.get_running_loop()
    last_sent = loop.time()
    async with contextlib.aclosing(batches):
        async for batch in batches:
            if batch is not None:
                chosen = EventBatch(event for event in batch if keep(event))
                if not chosen and loop.time() - last_sent < keepalive:
                    continue
                batch = chosen or None
            yield batch
            last_sent = loop.time()


def make_room(service: SessionService, session_id: str) -> None:
    """Refuse a new event stream beyond ``CC_API_SSE_MAX_STREAMS`` (per session and per gateway): a ``503`` with
    ``Retry-After`` (a stream frees its place the moment its client leaves) and the limit in ``details``."""
    settings = service.settings
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    limit = settings.sse_max_streams_per_session
    if service.events.followers(session_id) >= limit:
        raise Unavailable(
            f"this session already has {limit} event streams (CC_API_SSE_MAX_STREAMS_PER_SESSION); retry shortly",
            {"limit": limit},
            headers=retry,
        )
    limit = settings.sse_max_streams
    if service.events.followers() >= limit:
        raise Unavailable(
            f"the gateway already serves {limit} event streams (CC_API_SSE_MAX_STREAMS); retry shortly",
            {"limit": limit},
            headers=retry,
        )


def head_only(request: Request) -> HTTPResponse | None:
    """A ``HEAD`` of a stream route: the stream's status and headers, no body (Sanic cannot stream a ``HEAD``:
    its first write raised a ``TypeError`` into the log). ``None`` for any other method."""
    if request.method != "HEAD":
        return None
    return HTTPResponse(content_type="text/event-stream", headers=SSE_HEADERS)


async def send_events(
    request: Request, batches: AsyncGenerator[EventBatch | None, None], stop: Callable[[Event], bool] | None = None
) -> None:
    """Stream ``batches`` of events (``None`` = keep-alive), each in one write (or 64 KiB pieces,
    when larger), until ``stop`` says an event was the last.

    A batch goes out as the frames the log joined once for every subscriber that has the
    same batch (most do): a subscriber costs a write per batch, not work per event.

    A client that goes away simply ends the stream: the events stay in the log for its
    reconnect, and the turn producing them keeps running. So does one the log cut off
    for falling too far behind: it reconnects with ``Last-Event-ID``. One that has stopped
    reading when the log ends its stream has its connection closed then, even while a write
    waits on it (see ``follow_stream``).
    """
    writing = _WRITING_TO.set(request)  # for the ``follow_stream`` behind ``batches``
    try:
        response = await request.respond(content_type="text/event-stream", headers=SSE_HEADERS)
        assert response is not None
        await response.send(KEEPALIVE_FRAME)  # the status line at once, not with the first event or keep-alive
        async with contextlib.aclosing(batches):  # unsubscribes at once when the client goes
            async for batch in batches:
                if batch is None:
                    await response.send(KEEPALIVE_FRAME)
                    continue
                last = None if stop is None else next((i for i, event in enumerate(batch) if stop(event)), None)
                if last is None:
                    await _send(response, batch.sse_frames)
                    continue
                await _send(response, b"".join(event.sse_frame for event in batch[: last + 1]))
                break
            else:
                if _ended(request):
                    return
    finally:
        _WRITING_TO.reset(writing)
    await response.eof()


def _ended(request: Request) -> bool:
    """The log ended the stream (the gateway is stopping, the session was deleted, or this client
    fell too far behind): close the connection after it. Returns whether it is closed already, the
    stream unended, as its client was not taking what it was sent (``_close_if_stuck``)."""
    if isinstance(request.stream, Http):  # HTTP/1.1: no keep-alive after an ended stream
        request.stream.keep_alive = False
    return _close_if_stuck(request)


def _close_if_stuck(request: Request) -> bool:
    """Close the connection now if the log ended its stream while it holds bytes its client has not
    taken; returns whether it did. Such a client has stopped reading, or reads too slowly to keep
    up: a write waiting on it would hold the stream (its place under CC_API_SSE_MAX_STREAMS and
    ..._PER_SESSION) and the connection until it reads, or for RESPONSE_TIMEOUT (a day), and the
    final empty chunk would wait behind it too. The frame being sent is cut short (an SSE client
    discards an unfinished event); the client reconnects with ``Last-Event-ID`` and the log
    replays what it missed."""
    transport = cast(asyncio.WriteTransport, request.transport)  # HTTP/1.1's, asyncio's or uvloop's
    try:
        stuck = not transport.is_closing() and transport.get_write_buffer_size() > 0
    except (AttributeError, NotImplementedError):  # not a socket's (the ASGI test client's)
        return False
    if stuck:
        transport.abort()  # unlike close(), does not wait for the client to take the buffer first
    return stuck


async def _send(response: HTTPResponse, frames: bytes) -> None:
    """``frames`` in pieces, each waiting until the connection takes more (see ``_WRITE_CHUNK``)."""
    if len(frames) <= _WRITE_CHUNK:
        await response.send(frames)
        return
    for start in range(0, len(frames), _WRITE_CHUNK):
        await response.send(frames[start : start + _WRITE_CHUNK])
