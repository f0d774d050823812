"""``POST /api/sessions/{id}/turns``: send new input; reply as JSON, SSE, or 202."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from ccapi.api.render import turn_view
from ccapi.api.request import json_body, wants_event_stream
from ccapi.api.sse import send_events
from ccapi.events import Event
from ccapi.sessions import SessionService, TurnRequest

bp = Blueprint("turns", url_prefix="/api/sessions")


@bp.post("/<session_id:str>/turns")
async def create_turn(request: Request, session_id: str) -> HTTPResponse | None:
    service: SessionService = request.app.ctx.service
    turn_request = TurnRequest.from_json(json_body(request), wants_sse=wants_event_stream(request))
    run = await service.start_turn(session_id, turn_request)
    if turn_request.background:
        return json({
            "turn_id": run.turn.id, "object": "turn", "session_id": session_id, "status": "running",
            "first_event_seq": run.started_seq,
            "events_url": f"/api/sessions/{session_id}/events/stream?after={run.started_seq - 1}",
        }, status=202)
    if turn_request.stream:
        turn_id = run.turn.id
        events = service.events.follow(session_id, run.started_seq - 1, service.settings.keepalive_seconds)
        await send_events(request, events, stop=lambda e: _ends_turn(e, turn_id))
        return None
    return json(turn_view(await run.wait()))


def _ends_turn(event: Event, turn_id: str) -> bool:
    return event.turn_id == turn_id and event.ends_turn


@bp.get("/<session_id:str>/turns/<turn_id:str>")
async def get_turn(request: Request, session_id: str, turn_id: str) -> HTTPResponse:
    return json(turn_view(await request.app.ctx.service.get_turn(session_id, turn_id)))
