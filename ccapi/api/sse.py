"""Server-Sent Events framing: ``id: <seq>``, ``event: <type>``, ``data: <event JSON>``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from sanic import Request
from sanic.http import Http

from ccapi.events import Event, EventBatch

if TYPE_CHECKING:
    from ccapi.sessions import SessionService

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}
KEEPALIVE_FRAME = b": keep-alive\n\n"


def follow_stream(service: SessionService, session_id: str, after: int) -> AsyncIterator[EventBatch | None]:
    """A session's events after ``after`` for one SSE client, cut off if it falls too far behind."""
    settings = service.settings
    return service.events.follow_batches(
        session_id, after, settings.keepalive_seconds, settings.sse_buffer_events, cut_off=True
    )


async def send_events(
    request: Request, batches: AsyncIterator[EventBatch | None], stop: Callable[[Event], bool] | None = None
) -> None:
    """Stream ``batches`` of events (``None`` = keep-alive), each in one write, until ``stop``
    says an event was the last.

    A batch goes out as the frames the log joined once for every subscriber that has the
    same batch (most do): a subscriber costs a write per batch, not work per event.

    A client that goes away simply ends the stream: the events stay in the log for its
    reconnect, and the turn producing them keeps running. So does one the log cut off
    for falling too far behind: it reconnects with ``Last-Event-ID``.
    """
    response = await request.respond(content_type="text/event-stream", headers=SSE_HEADERS)
    assert response is not None
    await response.send(KEEPALIVE_FRAME)  # the status line at once, not with the first event or keep-alive
    async for batch in batches:
        if batch is None:
            await response.send(KEEPALIVE_FRAME)
            continue
        last = None if stop is None else next((i for i, event in enumerate(batch) if stop(event)), None)
        if last is None:
            await response.send(batch.sse_frames)
            continue
        await response.send(b"".join(event.sse_frame for event in batch[: last + 1]))
        break
    else:  # the log ended the stream (the gateway is stopping, the session was deleted, or this
        # client fell too far behind): close
        if isinstance(request.stream, Http):  # HTTP/1.1: no keep-alive after an ended stream
            request.stream.keep_alive = False
    await response.eof()
