"""Where a webhook may point, and what a subscription is.

A gateway that POSTs to any URL a client names is a way into the network it runs in, so
targets must be ``http``/``https`` URLs whose host ``CC_API_WEBHOOK_ALLOW`` admits
(default: loopback only). The check reads the URL's host as written, with no DNS
lookup: a name is allowed only if it is listed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ccapi.events import DEFAULT_WEBHOOK_EVENTS, WEBHOOK_EVENT_TYPES

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The default allow-list: this machine only.
LOOPBACK = ("localhost", "127.0.0.0/8", "::1")
MAX_URL_LENGTH = 2048


class BadTarget(ValueError):
    """A webhook URL or subscription that may not be used; the message says why."""


@dataclass(frozen=True)
class AllowList:
    """Host names (``.example.com`` admits its subdomains, ``*`` anything) and IP networks."""

    names: frozenset[str]
    suffixes: tuple[str, ...]
    networks: tuple[IPNetwork, ...]
    any_host: bool

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        names: set[str] = set()
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        for entry in (e.strip().lower().strip("[]") for e in entries):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if entry.startswith("."):
                suffixes.append(entry)
            else:
                names.add(entry)
        return cls(frozenset(names), tuple(suffixes), tuple(networks), "*" in names)

    def allows(self, host: str) -> bool:
        host = host.lower()
        if self.any_host or host in self.names or host.endswith(self.suffixes):
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def check_url(url: Any, allow: AllowList) -> str:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise BadTarget(f"webhook.url must be an http(s) URL of at most {MAX_URL_LENGTH} characters")
    if not url.isprintable() or " " in url:  # no store holds NUL, and no URL has control characters or spaces
        raise BadTarget("webhook.url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError:
        raise BadTarget("webhook.url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise BadTarget("webhook.url must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise BadTarget("webhook.url must not carry credentials; receivers verify the signature instead")
    if not allow.allows(host):
        raise BadTarget(f"webhook.url host {host!r} is not allowed by CC_API_WEBHOOK_ALLOW")
    return url


def check_events(events: Any) -> list[str]:
    if events is None:
        return [str(e) for e in DEFAULT_WEBHOOK_EVENTS]
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise BadTarget("webhook.events must be a non-empty list of event types")
    unknown = sorted(set(events) - WEBHOOK_EVENT_TYPES)
    if unknown:
        raise BadTarget(
            f"webhook.events: {', '.join(unknown)} cannot be subscribed to; "
            f"choose from {', '.join(sorted(WEBHOOK_EVENT_TYPES))}"
        )
    return list(dict.fromkeys(events))


def subscription(url: Any, events: Any, allow: AllowList) -> dict[str, Any]:
    """A checked ``{"url", "events"}``, as sessions store it."""
    return {"url": check_url(url, allow), "events": check_events(events)}


@dataclass(frozen=True)
class WebhookPolicy:
    """What a new session may subscribe to on this gateway, and what it gets by default."""

    allow: AllowList
    default: dict[str, Any] | None
    signing: bool
    """A secret is set: without one nothing could be signed, so no session may subscribe."""

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
