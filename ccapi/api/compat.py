"""Compat routes: OpenAI Chat, OpenAI Responses, Anthropic Messages and OpenAI-style models.

Thin: parse with the format's module, route through ``CompatRouter`` onto a native session,
render in the format (JSON, or the format's own SSE). Errors are rendered by the global
handler first, then re-spelled in the path's format (``respelled_error``), so both agree on status and message.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import orjson
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json

from ccapi.api.request import json_body
from ccapi.api.sse import KEEPALIVE_FRAME, SSE_HEADERS
from ccapi.catalog import ModelInfo
from ccapi.compat import anthropic_messages, openai_chat, openai_responses
from ccapi.compat.errors import (
    ModelNotFound,
    anthropic_error,
    failure,
    openai_error,
    param_of,
    rate_limit_headers,
)
from ccapi.compat.exchange import CompatRequest, Exchange
from ccapi.compat.parsing import affinity_key
from ccapi.compat.replies import AnthropicError, CompatModel, CompatModelList, OpenAIError
from ccapi.compat.reply import Delta, Reply, ReplyStream
from ccapi.compat.router import CompatRouter
from ccapi.errors import ApiError, InvalidRequest
from ccapi.limits import RateLimited
from ccapi.toolpolicy import parse_builtin_tools_text

bp = Blueprint("compat", url_prefix="/v1")

SESSION_HEADER = "x-cc-session-id"
BUILTIN_TOOLS_HEADER = "x-cc-builtin-tools"


def _router(request: Request) -> CompatRouter:
    """One router (and affinity index) per process, made on first use."""
    ctx = request.app.ctx
    if not hasattr(ctx, "compat_router"):
        ctx.compat_router = CompatRouter(ctx.service, ctx.catalog)
    return ctx.compat_router


def _model(model: ModelInfo, id_: str | None = None) -> CompatModel:
    """OpenAI's model shape, with the fields Anthropic's ``models.list`` reads, and the
    context window and output limit under the names agent clients look for (OpenRouter's
    ``context_length`` / ``top_provider.max_completion_tokens``, Anthropic's
    ``max_input_tokens`` / ``max_tokens``, ``context_window`` / ``max_output_tokens``),
    so they need not probe other URLs or guess; ``lifecycle`` (required by Anthropic's SDK types) is ``active``:
    the catalog lists the models one can use. ``id_``: the name asked for, when not the id."""
    window, output = model.context_window, model.max_output_tokens
    return {
        "id": id_ or model.id,
        "object": "model",
        "type": "model",
        "created": 0,
        "created_at": "1970-01-01T00:00:00Z",
        "owned_by": "anthropic",
        "display_name": model.display_name,
        "lifecycle": "active",
        "context_length": window,
        "context_window": window,
        "max_input_tokens": window,
        "max_completion_tokens": output,
        "max_output_tokens": output,
        "max_tokens": output,
        "top_provider": {"context_length": window, "max_completion_tokens": output},
    }


def _policy(request: Request, compat: CompatRequest) -> CompatRequest:
    """``x-cc-builtin-tools: all | none | Read,Grep`` gives a new session Claude Code's built-in tools."""
    raw = request.headers.get(BUILTIN_TOOLS_HEADER)
    if raw is None:
        return compat
    try:
        return replace(compat, builtin_tools=parse_builtin_tools_text(raw))
    except ValueError as exc:
        raise InvalidRequest(f"{BUILTIN_TOOLS_HEADER}: {exc}") from None


@bp.get("/models")
async def list_models(request: Request) -> HTTPResponse:
    models = [_model(m) for m in request.app.ctx.catalog.models]
    listed: CompatModelList = {
        "object": "list",
        "data": models,
        "has_more": False,
        "first_id": models[0]["id"] if models else None,
        "last_id": models[-1]["id"] if models else None,
    }
    return json(listed)


@bp.get("/models/<model_id:path>")
async def get_model(request: Request, model_id: str) -> HTTPResponse:
    """One model by any name the compat endpoints accept (id, alias, ``anthropic/…``)."""
    catalog = request.app.ctx.catalog
    canonical = catalog.resolve(model_id) or ""
    found = max(
        (m for m in catalog.models if canonical == m.id or canonical.startswith(f"{m.id}-")),
        key=lambda m: len(m.id),
        default=None,
    )  # a dated snapshot is its base model
    if found is None:
        raise ModelNotFound(
            f"unknown model {model_id!r}; GET /v1/models lists the known ones", {"model": model_id}, param=None
        )
    return json(_model(found, canonical))


@bp.post("/chat/completions")
async def chat_completions(request: Request) -> HTTPResponse | None:
    ctx = request.app.ctx
    parsed = openai_chat.parse(json_body(request), ctx.catalog, ctx.settings.model, request.headers.get(SESSION_HEADER))
    exchange = await _send(request, _policy(request, parsed.request))
    if parsed.stream:
        await _stream(request, exchange, openai_chat.ChatStream(exchange.model, parsed.include_usage))
        return None
    return json(
        openai_chat.completion(await _settled(request, exchange), exchange.model), headers=_headers(request, exchange)
    )


@bp.post("/responses")
async def responses(request: Request) -> HTTPResponse | None:
    ctx = request.app.ctx
    parsed = openai_responses.parse(
        json_body(request), ctx.catalog, ctx.settings.model, request.headers.get(SESSION_HEADER)
    )
    exchange = await _send(request, _policy(request, parsed.request))
    response_id = openai_responses.response_id(exchange.session_id, exchange.first_seq, parsed.store)
    if parsed.stream:
        await _stream(request, exchange, openai_responses.ResponseStream(exchange.model, response_id, parsed.settings))
        return None
    return json(
        openai_responses.response(await _settled(request, exchange), exchange.model, response_id, parsed.settings),
        headers=_headers(request, exchange),
    )


@bp.post("/messages")
async def messages(request: Request) -> HTTPResponse | None:
    ctx = request.app.ctx
    parsed = anthropic_messages.parse(
        json_body(request), ctx.catalog, ctx.settings.model, request.headers.get(SESSION_HEADER)
    )
    exchange = await _send(request, _policy(request, parsed.request))
    if parsed.stream:
        await _stream(request, exchange, anthropic_messages.MessageStream(exchange.model))
        return None
    return json(
        anthropic_messages.message(await _settled(request, exchange), exchange.model),
        headers=_headers(request, exchange),
    )


def serves(path: str) -> bool:
    """Whether ``path`` is the compat API's, routed or not: its errors, a ``404`` for an endpoint it lacks or a
    ``405`` included, must be in the format's envelope, which the clients' SDKs parse."""
    return path.startswith(f"{bp.url_prefix}/")


def respelled_error(request: Request, exception: Exception, native: HTTPResponse) -> HTTPResponse:
    """The native error ``native`` (same status, message and headers) in the envelope of the format ``request``'s
    path is: Anthropic's for ``/v1/messages…``, OpenAI's (naming the field at fault, where known) for the rest."""
    assert native.body is not None  # the envelope handler always writes a JSON body
    error = orjson.loads(native.body)["error"]
    anthropic = _anthropic(request)
    headers = {**native.headers, **_request_id(request)}
    if isinstance(exception, RateLimited):
        headers.update(rate_limit_headers(exception, anthropic))
    if anthropic:
        body: AnthropicError | OpenAIError = anthropic_error(error["type"], error["message"])
    else:
        body = openai_error(error["type"], error["message"], param_of(exception))
    return json(body, status=native.status, headers=headers)


async def _send(request: Request, compat: CompatRequest) -> Exchange:
    keyed = replace(compat, affinity_key=affinity_key(json_body(request), request.headers))
    return await _router(request).send(keyed)


async def _settled(request: Request, exchange: Exchange) -> Reply:
    try:
        reply = await exchange.reply()
    except asyncio.CancelledError:
        _abandon(request, exchange)
        raise
    if reply.failed:
        error = failure(reply.error)
        error.headers.setdefault(SESSION_HEADER, exchange.session_id)  # the session is there, as on a reply
        raise error
    return reply


def _abandon(request: Request, exchange: Exchange) -> None:
    """A client gone while its turn still waits in the queue leaves no turn to run later."""
    _router(request).leave(exchange)


def _headers(request: Request, exchange: Exchange) -> dict[str, str]:
    """The session the reply came from, and any usage-window warning for the client to log."""
    return {SESSION_HEADER: exchange.session_id, **_request_id(request), **request.app.ctx.limits.warning_headers()}


def _anthropic(request: Request) -> bool:
    return request.path.startswith("/v1/messages")


def _request_id(request: Request) -> dict[str, str]:
    """Anthropic's SDKs read a reply's id from ``request-id`` (``_request_id``, an error's ``request_id``); OpenAI's
    read ``x-request-id``, which every reply of the gateway carries."""
    request_id = getattr(request.ctx, "request_id", None)
    return {"request-id": request_id} if request_id and _anthropic(request) else {}


async def _stream(request: Request, exchange: Exchange, stream: ReplyStream) -> None:
    """The format's SSE frames as the reply grows; a failure mid-stream ends it with the format's error frame.

    The status line waits for the reply's first delta (or the first keep-alive, ``CC_API_KEEPALIVE_SECONDS``): a turn
    refused before it said anything, for what the client asked (a prompt past the context window, a round limit)
    or a spent usage window, is that 4xx, as the providers answer before they stream, so the SDKs raise their
    ``BadRequestError`` or back off on ``RateLimitError``'s ``Retry-After``. An upstream failure (5xx) stays in the
    stream: Claude Code has retried it already, and an SDK would retry a 5xx status twice more."""
    deltas = exchange.deltas()
    unanswered: ApiError | None = None  # the reply will never come: said in the stream (below)
    try:
        first = await anext(deltas, None)
    except asyncio.CancelledError:
        _abandon(request, exchange)
        raise
    except ApiError as exc:
        first, unanswered = None, exc
    if isinstance(first, Reply) and first.failed:
        error = failure(first.error)
        if error.status < 500:
            error.headers.setdefault(SESSION_HEADER, exchange.session_id)
            raise error
    response = await request.respond(
        content_type="text/event-stream", headers={**SSE_HEADERS, **_headers(request, exchange)}
    )
    assert response is not None
    await response.send(b"".join(stream.start()))
    try:
        if unanswered is not None:
            raise unanswered
        await response.send(b"".join(_frames(stream, first)))
        async for delta in deltas:
            await response.send(b"".join(_frames(stream, delta)))
    except ApiError as exc:
        await response.send(b"".join(stream.error(exc)))
    finally:
        _abandon(request, exchange)  # a no-op once the turn has started
    await response.eof()


def _frames(stream: ReplyStream, delta: Delta | None) -> list[bytes]:
    if delta is None:
        return [KEEPALIVE_FRAME]
    if isinstance(delta, Reply):
        return stream.error(failure(delta.error)) if delta.failed else stream.end(delta)
    return stream.delta(delta)
