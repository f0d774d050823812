"""Server-Sent Events framing: ``id: <seq>``, ``event: <type>``, ``data: <event JSON>``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import orjson
from sanic import Request
from sanic.http import Http

from ccapi.events import Event

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
KEEPALIVE_FRAME = b": keep-alive\n\n"


def frame(event: Event) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.type.encode(), orjson.dumps(event.to_dict()))


async def send_events(
    request: Request, events: AsyncIterator[Event | None], stop: Callable[[Event], bool] = lambda _: False
) -> None:
    """Stream ``events`` (``None`` = keep-alive) until ``stop`` says an event was the last.

    A client that goes away simply ends the stream: the events stay in the log for its
    reconnect, and the turn producing them keeps running.
    """
    response = await request.respond(content_type="text/event-stream", headers=SSE_HEADERS)
    assert response is not None
    await response.send(KEEPALIVE_FRAME)  # the status line at once, not with the first event or keep-alive
    async for event in events:
        if event is None:
            await response.send(KEEPALIVE_FRAME)
            continue
        await response.send(frame(event))
        if stop(event):
            break
    else:  # the log ended the stream (the gateway is stopping, or the session was deleted): close
        if isinstance(request.stream, Http):  # HTTP/1.1: no keep-alive after an ended stream
            request.stream.keep_alive = False
    await response.eof()
