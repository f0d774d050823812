"""The durable event log, as pages of JSON or as a live SSE stream."""

from __future__ import annotations

from typing import cast

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from ccapi.api.replies import Event, EventList
from ccapi.api.request import int_arg, names_arg, plain_int
from ccapi.api.sse import follow_stream, head_only, make_room, only, send_events
from ccapi.events import EventType
from ccapi.sessions import SessionService

bp = Blueprint("events", url_prefix="/api/sessions")

_MAX_SEQ = 2**62
_EVENT_TYPES = frozenset(kind.value for kind in EventType)


@bp.get("/<session_id:str>/events")
async def list_events(request: Request, session_id: str) -> HTTPResponse:
    service: SessionService = request.app.ctx.service
    after = int_arg(request, "after", 0, 0, _MAX_SEQ)
    limit = int_arg(request, "limit", 100, 1, 1000)
    types = _types(request)
    events = await service.events_page(session_id, after, limit + 1, types)
    page = events[:limit]
    body: EventList = {
        "object": "list",
        "data": [cast(Event, event.to_dict()) for event in page],  # built by ccapi.events, below this layer
        "has_more": len(events) > limit,
        "last_seq": page[-1].seq if page else after,
    }
    return json(body)


@bp.get("/<session_id:str>/events/stream")
async def stream_events(request: Request, session_id: str) -> HTTPResponse | None:
    """Replays from ``Last-Event-ID`` (or ``after``), then follows live with keep-alives; with
    ``types``, only events of those types (each under its own seq, so a reconnect resumes right).
    A ``HEAD`` is checked as the ``GET`` and answered with its headers."""
    service: SessionService = request.app.ctx.service
    after = _resume_point(request)
    await service.check_position(session_id, after)
    types = _types(request)
    head = head_only(request)
    if head is not None:
        return head
    make_room(service, session_id)
    batches = follow_stream(service, session_id, after)
    if types is not None:
        kept = frozenset(types)
        batches = only(batches, lambda event: event.type in kept, service.settings.keepalive_seconds)
    await send_events(request, batches)
    return None


def _resume_point(request: Request) -> int:
    """``Last-Event-ID``, else ``after``. An empty ``Last-Event-ID`` is none: in the SSE standard an empty last
    event id means the client has none (a browser leaves the header out then; other clients send it empty).
    ``Last-Event-ID`` wins over ``after`` (an ``EventSource`` reconnects to the URL it was given, ``after=`` and
    all, with the last id it saw), but an unreadable ``after`` is a ``400`` either way, not ignored."""
    after = int_arg(request, "after", 0, 0, _MAX_SEQ)
    last_event_id = (request.headers.get("last-event-id") or "").strip()
    if not last_event_id:
        return after
    return plain_int(last_event_id, "Last-Event-ID (an event seq)", 0, _MAX_SEQ)


def _types(request: Request) -> list[str] | None:
    return names_arg(request, "types", _EVENT_TYPES, "event type")
