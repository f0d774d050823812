"""Session routes: create, list, read, delete."""

from __future__ import annotations

from typing import get_args

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from ccapi.api.render import session_view, webhook_delivery_view
from ccapi.api.replies import Deleted, Session, SessionList, SessionStatus, WebhookDeliveryList
from ccapi.api.request import int_arg, json_body, names_arg, plain_int
from ccapi.errors import InvalidRequest
from ccapi.sessions import NewSession, SessionService
from ccapi.sessions.params import ForkRequest, SessionChanges
from ccapi.sessions.retention import COMPAT_MARK
from ccapi.store import SessionRecord

bp = Blueprint("sessions", url_prefix="/api/sessions")

_STATUSES = get_args(SessionStatus)

_MAX_SEQ = 2**62


def _view(service: SessionService, record: SessionRecord) -> Session:
    run = service.running(record.id)
    return session_view(
        record, live=service.pool.get(record.id) is not None, running_turn_id=run.turn.id if run else None
    )


@bp.post("")
async def create_session(request: Request) -> HTTPResponse:
    ctx = request.app.ctx
    settings = ctx.settings
    params = NewSession.from_json(
        json_body(request),
        ctx.catalog,
        settings.model,
        settings.builtin_tools,
        settings.max_budget_usd,
        webhooks=ctx.webhook_policy,
    )
    _refuse_compat_mark(params.metadata)
    record = await ctx.service.create(params)
    return json(_view(ctx.service, record), status=201)


def _refuse_compat_mark(metadata: dict[str, object]) -> None:
    """``metadata.compat`` marks the sessions the compat endpoints make, and such a session is deleted once unused for
    ``CC_API_COMPAT_RETENTION`` (30 days): a native session given that key was deleted with them, silently."""
    if COMPAT_MARK in metadata:
        raise InvalidRequest(
            f"metadata.{COMPAT_MARK} is reserved: it marks the sessions the compat endpoints (/v1/...) create, which "
            "are deleted once unused for CC_API_COMPAT_RETENTION; name the key otherwise",
            {"reserved": [COMPAT_MARK]},
            param=f"metadata.{COMPAT_MARK}",
        )


@bp.get("")
async def list_sessions(request: Request) -> HTTPResponse:
    service: SessionService = request.app.ctx.service
    limit = int_arg(request, "limit", 20, 1, 100)
    statuses = names_arg(request, "status", _STATUSES, "session status")
    records = await service.list_sessions(limit + 1, request.args.get("after"), statuses)
    page = records[:limit]
    body: SessionList = {
        "object": "list",
        "data": [_view(service, record) for record in page],
        "has_more": len(records) > limit,
        "next_after": page[-1].id if len(records) > limit else None,
    }
    return json(body)


@bp.get("/<session_id:str>")
async def get_session(request: Request, session_id: str) -> HTTPResponse:
    service: SessionService = request.app.ctx.service
    record = await service.get(session_id)
    body = _view(service, record)
    body["context"] = await service.context_usage(record)
    return json(body)


@bp.patch("/<session_id:str>")
async def update_session(request: Request, session_id: str) -> HTTPResponse:
    """Change what may change between turns: the spending cap, the model, the permission mode, the system
    prompt, the output schema, the webhook (checked as at creation)."""
    ctx = request.app.ctx
    service: SessionService = ctx.service
    changes = SessionChanges.from_json(json_body(request), ctx.catalog, webhooks=ctx.webhook_policy)
    return json(_view(service, await service.change(session_id, changes.fields)))


@bp.get("/<session_id:str>/webhooks")
async def list_webhooks(request: Request, session_id: str) -> HTTPResponse:
    """The session's webhook deliveries (state, attempts, last error) in event order, or newest first
    (``order=desc``: what a person watching wants), paged by ``after`` / ``before`` an event seq."""
    service: SessionService = request.app.ctx.service
    newest_first = _newest_first(request)
    after = int_arg(request, "after", 0, 0, _MAX_SEQ)
    before = None if (raw := request.args.get("before")) is None else plain_int(raw, "before", 1, _MAX_SEQ)
    limit = int_arg(request, "limit", 100, 1, 1000)
    deliveries = await service.webhooks_page(session_id, after, limit + 1, before, newest_first)
    page = deliveries[:limit]
    first = await service.first_owed_seqs(session_id) if any(d.state == "pending" for d in page) else {}
    body: WebhookDeliveryList = {
        "object": "list",
        "data": [webhook_delivery_view(delivery, first.get(delivery.url)) for delivery in page],
        "has_more": len(deliveries) > limit,
        "last_seq": page[-1].seq if page else after,
    }
    return json(body)


def _newest_first(request: Request) -> bool:
    """``order``: ``asc`` (event order, the default) or ``desc``; anything else is a 400, not a silent default."""
    order = request.args.get("order", "asc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("order must be asc or desc")
    return order == "desc"


@bp.post("/<session_id:str>/fork")
async def fork_session(request: Request, session_id: str) -> HTTPResponse:
    """A new session holding this one's conversation up to a turn: branch, regenerate or undo."""
    service: SessionService = request.app.ctx.service
    body = ForkRequest.from_json(json_body(request))
    record = await service.fork(session_id, body.turn_id, body.after_seq)
    return json(_view(service, record), status=201)


@bp.delete("/<session_id:str>")
async def delete_session(request: Request, session_id: str) -> HTTPResponse:
    await request.app.ctx.service.delete(session_id)
    body: Deleted = {"id": session_id, "object": "session.deleted", "deleted": True}
    return json(body)
