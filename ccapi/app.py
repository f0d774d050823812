"""Builds the Sanic app: blueprints, middleware, error envelope, and the per-process
state (store, event log, engine pool) created in a server-start listener."""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any
from urllib.parse import urlsplit

import orjson
import structlog
from sanic import Sanic

from ccapi.api import compat, events, info, limits, metrics, models, reference, sessions, turns
from ccapi.api.errors import EnvelopeErrorHandler
from ccapi.api.guard import HostPolicy, guard_browser_requests
from ccapi.api.middleware import DeadlineRequest, authenticate, finish_request, start_request
from ccapi.api.tracing import end_request_trace, trace_request
from ccapi.catalog import ModelCatalog
from ccapi.config import Settings
from ccapi.engine import EnginePool
from ccapi.engine.credentials import find_credentials
from ccapi.limits import LimitBoard, auth_mode
from ccapi.observability import tracing as otel
from ccapi.observability.metrics import Metrics
from ccapi.sessions import EventLog, SessionService
from ccapi.store import StoreUnavailable, open_store
from ccapi.webhooks.sender import WebhookSender
from ccapi.webhooks.targets import WebhookPolicy

log = structlog.get_logger(__name__)


def _dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value).decode()


def create_app(settings: Settings, name: str = "ccapi", tracing: otel.Tracing | None = None) -> Sanic:
    """``tracing``: spans go there (a test's in-memory exporter); by default the ``OTEL_*`` variables
    decide (see ``ccapi.observability.tracing``)."""
    app = Sanic(
        name,
        dumps=_dumps,
        loads=orjson.loads,
        configure_logging=False,
        error_handler=EnvelopeErrorHandler(),
        env_prefix=None,  # the environment is read once, by ``Settings``: no variable changes Sanic unseen
        request_class=DeadlineRequest,
    )
    app.config.REQUEST_MAX_SIZE = settings.max_body_bytes
    # the body as a whole; see DeadlineRequest (Sanic annotates it int, but any number of seconds works)
    app.config["REQUEST_TIMEOUT"] = settings.request_timeout
    app.config["KEEP_ALIVE_TIMEOUT"] = settings.request_timeout  # an idle connection, new or between requests
    app.config.RESPONSE_TIMEOUT = 24 * 3600  # a default-mode turn reply waits for the whole turn
    app.config.CORS = False
    # sanic-ext's Swagger and Redoc pages load scripts from a CDN (Swagger's oauth2-redirect route even on the
    # server), and its inferred paths were replaced by the written document anyway: api/reference.py serves
    # that document at /docs/openapi.json and as a page at /docs.
    app.config.OAS = False
    app.ctx.settings = settings
    app.ctx.catalog = ModelCatalog.from_setting(settings.models)
    app.ctx.credentials = find_credentials(settings)
    app.ctx.host_policy = HostPolicy.from_settings(settings)
    app.ctx.webhook_policy = WebhookPolicy.from_settings(settings)
    app.ctx.metrics = Metrics()
    app.ctx.tracing = tracing if tracing is not None else otel.from_environment(os.environ)

    for module in (info, reference, models, limits, sessions, turns, events, compat, metrics):
        app.blueprint(module.bp)
    app.on_request(start_request, priority=100)
    if app.ctx.tracing is not None:
        app.on_request(trace_request, priority=99)
        app.on_response(end_request_trace)
    app.on_request(guard_browser_requests, priority=95)
    app.on_request(authenticate, priority=90)
    app.on_response(finish_request)

    app.before_server_start(_start_state)
    app.after_server_start(_freeze_startup_heap)
    app.before_server_stop(_stop_state)
    return app


def _freeze_startup_heap(app: Sanic) -> None:
    """What startup built (modules, routes, the OpenAPI document: ~130k objects) lives as long
    as the process. Frozen, the cyclic collector no longer walks it on each full collection,
    which otherwise stalls whatever turn is streaming for ~40 ms."""
    gc.collect()
    gc.freeze()


async def _start_state(app: Sanic) -> None:
    settings: Settings = app.ctx.settings
    try:
        app.ctx.store = store = await open_store(settings)
    except Exception as exc:  # noqa: BLE001 - whatever the backend raised, the start-up says where and why, once
        reason = (str(exc) or type(exc).__name__).splitlines()[0]
        where = _database_label(settings)
        raise StoreUnavailable(
            f"cannot open the store at {where}: {reason}", lasting=not settings.database_url
        ) from None
    app.ctx.events = events_log = EventLog(store, write_timeout=settings.store_write_timeout)
    events_log.start()
    loop = asyncio.get_running_loop()
    store.watch(lambda session_id: loop.call_soon_threadsafe(events_log.nudge, session_id))
    metrics: Metrics = app.ctx.metrics
    app.ctx.pool = pool = EnginePool(
        settings.max_live, settings.idle_timeout, settings.queue_timeout, settings.max_queued, metrics
    )
    pool.start()
    app.ctx.limits = board = LimitBoard(auth_mode(app.ctx.credentials.source))
    app.ctx.service = service = SessionService(settings, store, events_log, pool, board, metrics, app.ctx.tracing)
    metrics.watch(pool, events_log, board, service.queues)
    await service.start()
    # without a secret no session can subscribe; one that did before the secret was removed gets its deliveries
    # failed, each saying why (they stayed pending for ever, listed as due)
    app.ctx.webhooks = webhooks = WebhookSender(settings, store, metrics, service.webhook_gone)
    events_log.on_commit(webhooks.committed)
    webhooks.start()
    credentials = app.ctx.credentials
    log.info(
        "started",
        host=settings.host,
        port=settings.port,
        database=_database_label(settings),
        mock_model=settings.mock_model,
        credentials_found=credentials.found,
        credentials=credentials.message,
    )
    log.info("permissions", **service.permissions.describe(settings.permission_mode))
    sandbox = service.sandbox.describe()
    if sandbox["enabled"]:
        log.info("sandbox", **sandbox)
    else:
        log.warning("no_sandbox", boundary="Claude Code's tools act with this user's full authority", **sandbox)
    if not credentials.found:
        log.warning("no_claude_credentials", message=credentials.message)


def _database_label(settings: Settings) -> str:
    """Where the sessions live, for the log: a PostgreSQL URL without its credentials."""
    if settings.database_url:
        url = urlsplit(settings.database_url)
        return f"{url.scheme}://{url.hostname or ''}{f':{url.port}' if url.port else ''}{url.path}"
    return f"jsondir:{settings.session_dir}" if settings.session_dir else str(settings.database_path)


async def _stop_state(app: Sanic) -> None:
    await app.ctx.service.shutdown()
    await app.ctx.pool.close()
    await app.ctx.events.stop()
    await app.ctx.webhooks.stop()
    await app.ctx.store.close()
    if app.ctx.tracing is not None:
        app.ctx.tracing.shutdown()
    log.info("stopped")
