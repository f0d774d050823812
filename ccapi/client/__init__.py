"""A small typed Python client for CC API's native API, sync (``Client``) and async
(``AsyncClient``), on httpx.

Sessions, turns, tool results, approvals, forks, compaction and the event log, plus the two
things every client otherwise writes itself: an event stream that reconnects with
``Last-Event-ID`` whenever its connection ends, dropped or ended by the gateway (no event lost,
none repeated), and a tool loop that answers client tool calls with Python callables until the
turn completes::

    from ccapi.client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as cc:
        session = cc.create_session(tools=[{"name": "add", "input_schema": {"type": "object"}}])
        turn = cc.run_tools(session.id, "What is 2 + 3?", {"add": lambda a, b: a + b})
        print(turn.text)

A webhook receiver checks a delivery with ``verify_webhook(secret, headers, body)``, which
returns the event or raises ``WebhookVerificationError``.

The request building and response parsing are shared (``wire``); only the I/O differs
between the two clients (``sync``, ``aio``). The shapes they return and take are ``shapes``.
"""

from __future__ import annotations

from ccapi.client.aio import AsyncClient
from ccapi.client.shapes import (
    CCAPIConnectionError,
    CCAPIError,
    Compaction,
    Decision,
    PermissionRequest,
    Session,
    ToolCall,
    ToolResult,
    Turn,
    WebhookDelivery,
)
from ccapi.client.sync import Client
from ccapi.events import Event
from ccapi.webhooks.signing import WebhookVerificationError, verify_webhook

__all__ = [
    "AsyncClient",
    "CCAPIConnectionError",
    "CCAPIError",
    "Client",
    "Compaction",
    "Decision",
    "Event",
    "PermissionRequest",
    "Session",
    "ToolCall",
    "ToolResult",
    "Turn",
    "WebhookDelivery",
    "WebhookVerificationError",
    "verify_webhook",
]
