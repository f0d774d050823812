"""What a new session may subscribe to on this gateway (the rules themselves are ``ccapi.webhook_rules``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ccapi.webhook_rules import AllowList, BadTarget, subscription

if TYPE_CHECKING:
    from ccapi.config import Settings


@dataclass(frozen=True)
class WebhookPolicy:
    """What a new session may subscribe to on this gateway, and what it gets by default."""

    allow: AllowList
    default: dict[str, Any] | None
    signing: bool
    """A secret is set: without one nothing could be signed, so no session may subscribe."""

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookPolicy:
        return cls(settings.webhook_allow_list, settings.default_webhook, settings.webhook_secret is not None)

    def subscription(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The subscription a session-creation body asks for: its ``webhook`` (``null`` for
        none), else the gateway default."""
        if "webhook" not in body:
            return self.default
        value = body["webhook"]
        if value is None:
            return None
        if not self.signing:
            raise BadTarget("webhooks are off on this gateway: it has no CC_API_WEBHOOK_SECRET to sign them")
        if not isinstance(value, dict) or set(value) - {"url", "events"}:
            raise BadTarget('webhook must be {"url": "https://…", "events"?: [event types]} or null')
        return subscription(value.get("url"), value.get("events"), self.allow)
