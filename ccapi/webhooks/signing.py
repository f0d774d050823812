"""Webhook signatures as Standard Webhooks (standardwebhooks.com) define them, so any of
its receiver libraries verifies CC API's deliveries.

The secret (``ccapi.webhook_rules``) is ``whsec_`` + base64 of 24-64 random bytes, the HMAC key those bytes. Each
delivery carries ``webhook-id`` (the same on every retry), ``webhook-timestamp`` (Unix
seconds of this attempt) and ``webhook-signature``: ``v1,`` + base64 HMAC-SHA256 of
``{id}.{timestamp}.{body}``, one for each of the gateway's secrets, separated by spaces, while
one is rotated (``CC_API_WEBHOOK_SECRET`` holds both): a receiver that knows either accepts it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from ccapi.webhook_rules import secret_key

#: How far a ``webhook-timestamp`` may be from the receiver's clock (replay protection).
TOLERANCE_SECONDS = 300


class WebhookVerificationError(ValueError):
    """The delivery is not signed with this secret, or is too old or too new to trust."""


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one attempt."""
    digest = hmac.new(secret_key(secret), f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_webhook(
    secret: str | Iterable[str],
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> Any:
    """Check a delivery's signature and timestamp; return its JSON body, or raise
    ``WebhookVerificationError``. ``headers`` is any mapping (names in any case); ``secret`` one secret, several
    space-separated (as ``CC_API_WEBHOOK_SECRET`` holds them) or a list: a receiver rotating its secret accepts
    deliveries signed with either."""
    lowered = {name.lower(): value for name, value in headers.items()}
    webhook_id, stamp = lowered.get("webhook-id"), lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature", "").split()
    if not webhook_id or not stamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    raw = body.encode() if isinstance(body, str) else body
    keys = secret.split() if isinstance(secret, str) else list(secret)
    expected = [sign(key, webhook_id, timestamp, raw) for key in keys]
    if not any(
        candidate.isascii() and hmac.compare_digest(one, candidate) for one in expected for candidate in signatures
    ):
        raise WebhookVerificationError("no webhook-signature matches")
    return orjson.loads(raw)
