"""Turn routes: send input, continue with tool results, interrupt, compact.

Input, tool results and permission decisions answer the same way: the turn as JSON once
it settles (ends, or pauses on client tool calls or permission requests), as SSE with
``stream``, or 202 at once with ``background``.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from ccapi.api.render import accepted_view, turn_view
from ccapi.api.replies import Compaction, TurnStatus
from ccapi.api.request import json_body, wants_event_stream
from ccapi.api.sse import follow_stream, make_room, only, send_events
from ccapi.errors import InvalidRequest
from ccapi.events import Event, EventType
from ccapi.sessions import SessionService, TurnRun
from ccapi.sessions.idempotency import Idempotency, Replay
from ccapi.sessions.params import CompactRequest, DecisionsRequest, InterruptRequest, ToolResultsRequest, TurnRequest
from ccapi.sessions.queue import QueuedTurn
from ccapi.store import TurnRecord

bp = Blueprint("turns", url_prefix="/api/sessions")


@bp.post("/<session_id:str>/turns")
async def create_turn(request: Request, session_id: str) -> HTTPResponse | None:
    service: SessionService = request.app.ctx.service
    raw = json_body(request)
    body = TurnRequest.from_json(raw, wants_sse=wants_event_stream(request))
    idempotency = _idempotency(request, raw)
    result = await service.start_turn(session_id, body, idempotency)
    if isinstance(result, Replay):
        return await _replayed(request, service, result, body.stream, body.background)
    if isinstance(result, QueuedTurn):
        keyed = idempotency is not None
        return await _reply_queued(request, service, result, body.stream, body.background, keyed)
    return await _reply(request, service, result, body.stream, body.background, result.started_seq)


@bp.post("/<session_id:str>/tool-results")
async def submit_tool_results(request: Request, session_id: str) -> HTTPResponse | None:
    service: SessionService = request.app.ctx.service
    raw = json_body(request)
    body = ToolResultsRequest.from_json(raw, wants_sse=wants_event_stream(request))
    result, first_seq = await service.submit_tool_results(session_id, list(body.results), _idempotency(request, raw))
    return await _continued(request, service, result, first_seq, body.stream, body.background)


@bp.post("/<session_id:str>/permissions")
async def decide_permissions(request: Request, session_id: str) -> HTTPResponse | None:
    """Allow or deny the built-in tool calls the paused turn waits on; the same turn continues."""
    service: SessionService = request.app.ctx.service
    raw = json_body(request)
    body = DecisionsRequest.from_json(raw, wants_sse=wants_event_stream(request))
    result, first_seq = await service.submit_decisions(session_id, list(body.decisions), _idempotency(request, raw))
    return await _continued(request, service, result, first_seq, body.stream, body.background)


@bp.post("/<session_id:str>/interrupt")
async def interrupt_turn(request: Request, session_id: str) -> HTTPResponse:
    """The running turn, or the one ``turn_id`` names (a queued one is withdrawn before it starts)."""
    body = InterruptRequest.from_json(json_body(request))
    return json(turn_view(await request.app.ctx.service.interrupt(session_id, turn_id=body.turn_id)))


@bp.post("/<session_id:str>/compact")
async def compact_session(request: Request, session_id: str) -> HTTPResponse:
    """Claude Code's own compaction; reports the tokens before and after."""
    service: SessionService = request.app.ctx.service
    body = CompactRequest.from_json(json_body(request))
    run = await service.compact(session_id, body.instructions)
    record = await run.wait()
    compaction = run.compaction or {}
    reply: Compaction = {
        "object": "compaction",
        "session_id": session_id,
        "turn_id": record.id,
        "status": cast(TurnStatus, record.status),
        "trigger": compaction.get("trigger"),
        "pre_tokens": compaction.get("pre_tokens"),
        "post_tokens": compaction.get("post_tokens"),
        "last_event_seq": record.last_event_seq,
    }
    if record.error:
        reply["error"] = record.error
    return json(reply)


@bp.get("/<session_id:str>/turns/<turn_id:str>")
async def get_turn(request: Request, session_id: str, turn_id: str) -> HTTPResponse:
    return json(turn_view(await request.app.ctx.service.get_turn(session_id, turn_id)))


async def _continued(
    request: Request,
    service: SessionService,
    result: TurnRun | Replay,
    first_seq: int,
    stream: bool,
    background: bool,
) -> HTTPResponse | None:
    """A paused turn's continuation, answered like a turn from its first new event."""
    if isinstance(result, Replay):
        return await _replayed(request, service, result, stream, background)
    return await _reply(request, service, result, stream, background, first_seq or result.started_seq)


async def _reply(
    request: Request, service: SessionService, run: TurnRun, stream: bool, background: bool, from_seq: int
) -> HTTPResponse | None:
    session_id, turn_id = run.session.id, run.turn.id
    if background and run.settled:  # nothing runs on: an answer that left calls open gets what is left
        return json(turn_view(await run.wait()))
    if background:
        await service.events.flush(bounded=True)  # the events the reply points to are committed before it goes
        return json(accepted_view(session_id, turn_id, "running", from_seq), status=202)
    if stream:
        await _stream_leg(request, service, session_id, turn_id, from_seq)
        return None
    return json(turn_view(await run.wait()))


async def _replayed(
    request: Request, service: SessionService, replay: Replay, stream: bool, background: bool
) -> HTTPResponse | None:
    """A retried ``Idempotency-Key`` gets its first request's answer: streamed, the same events — from the one
    that answer began with to the turn's next settle, out of the log once the turn has moved on (paused again,
    continued, ended), live while it has not; else the turn as it stands (``202`` while it runs, with
    ``background``)."""
    earlier = replay.turn
    if isinstance(earlier, QueuedTurn):
        return await _reply_queued(request, service, earlier, stream, background, keyed=True)
    if isinstance(earlier, TurnRecord) and (background or not stream):
        return json(turn_view(earlier))
    if isinstance(earlier, TurnRun) and not (stream or background):
        return json(turn_view(await earlier.wait()))
    opening = await service.replay_opening(replay)
    if opening is None:  # not in the log (never expected): the turn from where it stands
        if isinstance(earlier, TurnRun):
            return await _reply(request, service, earlier, stream, background, earlier.started_seq)
        return json(turn_view(earlier))
    if isinstance(earlier, TurnRun) and background:
        return await _reply(request, service, earlier, stream, background, opening.seq)
    # a queued turn's answer streamed its own events only (see ``_reply_queued``)
    own_only = opening.type == EventType.TURN_QUEUED
    make_room(service, replay.session_id)  # a retry is one more stream: bounded as the others (each retry opened one)
    await _stream_leg(request, service, replay.session_id, replay.turn_id, opening.seq, own_only)
    return None


async def _stream_leg(
    request: Request, service: SessionService, session_id: str, turn_id: str, from_seq: int, own_only: bool = False
) -> None:
    """The session's events from ``from_seq`` (only the turn's, ``own_only``) up to the turn's next settle."""
    batches = follow_stream(service, session_id, from_seq - 1)
    if own_only:  # the session's stream also carries the turn it waits behind
        batches = only(batches, lambda event: event.turn_id == turn_id, service.settings.keepalive_seconds)
    await send_events(request, batches, stop=lambda e: _settles(e, turn_id))


async def _reply_queued(
    request: Request,
    service: SessionService,
    queued: QueuedTurn,
    stream: bool,
    background: bool,
    keyed: bool = False,
) -> HTTPResponse | None:
    """A turn queued behind the running one: 202 at once (``background``), its own events
    from ``turn.queued`` on (``stream``), or the turn once it settles. A client that goes
    away while its turn still waits withdraws it; ``background`` never does, nor does a turn sent with an
    ``Idempotency-Key`` (``keyed``): its client's retry rejoins it (a client whose read timeout is shorter than
    the wait would otherwise send it again at the back of the queue, for ever)."""
    session_id, turn_id, seq = queued.session_id, queued.turn_id, queued.queued_seq
    if background:  # turn.queued is committed already
        return json(accepted_view(session_id, turn_id, "queued", seq), status=202)
    if stream:
        try:
            await _stream_leg(request, service, session_id, turn_id, seq, own_only=True)
        finally:
            if not keyed:
                service.abandon_queued(session_id, seq)  # a no-op once it started; before, the client is gone
        return None
    try:
        outcome = await queued.started()
    except asyncio.CancelledError:
        if not keyed:
            service.abandon_queued(session_id, seq)
        raise
    if isinstance(outcome, TurnRecord):
        return json(turn_view(outcome))
    return json(turn_view(await outcome.wait()))


def _settles(event: Event, turn_id: str) -> bool:
    return event.turn_id == turn_id and event.ends_turn


def _idempotency(request: Request, body: Any) -> Idempotency | None:
    """The request's ``Idempotency-Key``, fingerprinting ``body`` (the parsed JSON of the request's body)."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255:
        raise InvalidRequest("Idempotency-Key must be 1 to 255 characters")
    return Idempotency.of(key, body, request.body or b"")
