"""What a webhook setting or subscription may be: the secret's format and the targets a gateway allows.

Pure rules with no state, kept below both ``ccapi.config`` (which refuses bad ``CC_API_WEBHOOK_*`` values at
start-up) and ``ccapi.webhooks`` (which signs and delivers), so the settings import nothing above them.

A gateway that POSTs to any URL a client names is a way into the network it runs in, so
targets must be ``http``/``https`` URLs whose host ``CC_API_WEBHOOK_ALLOW`` admits
(default: loopback only). The check reads the URL's host as written, with no DNS
lookup: a name is allowed if it is listed (the operator's own DNS is trusted), or by ``*``, which admits any name
but only public addresses: a name only ``*`` admits is resolved when it is sent to, and connected to only at an
address the list admits (``ccapi.webhooks.sender``), so a client cannot aim the gateway at its own network.
Numeric hosts other than dotted quads (``2130706433``, ``0177.0.0.1``, ``127.1``) are refused: the resolver
reads them as addresses where this check would read a name.

The secret is ``whsec_`` + base64 of 24-64 random bytes (Standard Webhooks); the HMAC key is those bytes.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ccapi.events import DEFAULT_WEBHOOK_EVENTS, WEBHOOK_EVENT_TYPES
from ccapi.hosts import DEFAULT_PORTS, is_ip_address

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

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
        """Whether a URL may name ``host``, as written (no DNS lookup)."""
        host = host.lower()
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return not _numeric(host) and (self.any_host or self.lists(host))
        return self.admits(address)

    def lists(self, host: str) -> bool:
        """A name listed, or under a listed suffix: the operator's, trusted wherever their DNS points it."""
        return host.lower() in self.names or host.lower().endswith(self.suffixes)

    def admits(self, address: IPAddress) -> bool:
        """An address in a listed network, or under ``*`` a public one: ``*`` is the internet, not the
        gateway's own network (loopback, private ranges, the cloud metadata address)."""
        return any(address in network for network in self.networks) or (self.any_host and address.is_global)

    def pins(self, host: str) -> bool:
        """A name only ``*`` admits: where it points is checked when it is connected to, not trusted."""
        return self.any_host and not is_ip_address(host) and not self.lists(host)


def _numeric(host: str) -> bool:
    """An address in a form only C's ``inet_aton`` reads (decimal, octal, hex, short): never a name."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def name_error(host: str) -> str | None:
    """Why the resolver or the HTTP client cannot take ``host`` (as ``urlsplit`` reads it) as a name, or ``None``
    (an address is no name: ``None``). Checked before any lookup: such a name raised out of a delivery attempt,
    which then never ended, and a lookup of it must not leave the machine either."""
    if is_ip_address(host):
        return None
    try:
        host.encode("idna")  # the resolver's codec (getaddrinfo): no empty label, none longer than 63 characters
        if not host.isascii() or host.startswith("xn--"):  # what httpx checks of an internationalised name
            import idna

            if host.isascii():
                idna.decode(host)
            else:
                idna.encode(host)
    except UnicodeError as exc:  # idna.IDNAError is one
        return str(exc.__cause__ or exc)
    return None


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
    if (why := name_error(host)) is not None:
        raise BadTarget(f"webhook.url host {host!r} is not a host name: {why}")
    if not allow.allows(host):
        raise BadTarget(f"webhook.url host {host!r} is not allowed by CC_API_WEBHOOK_ALLOW")
    return url


def shown_url(url: str) -> str:
    """A receiver's URL as the log shows it: its scheme and host (and port). A path or query often carries the
    receiver's own token, a redirect's ``Location`` a user and password, and the log is read by more people than
    the session's owner."""
    parts = urlsplit(url)
    rest = "/…" if parts.path not in ("", "/") or parts.query else ""
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{rest}"  # a redirect's user and password neither


def receiver(url: str) -> str:
    """The receiver a URL reaches: its origin (scheme, host and port, the port a scheme's default when left out),
    the unit the sender caps deliveries in flight by. URLs that differ only in path or query (a token per session
    in its query, say) reach one server, and one slow server must not take more slots for having more URLs."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a URL stored before ``check_url`` refused it: a receiver of its own
        return url
    if not host:
        return url
    scheme = parts.scheme.lower()
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port or DEFAULT_PORTS.get(scheme, 0)}"


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


SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret (the prefix may be left off)."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not 24 <= len(key) <= 64:
        raise ValueError("a webhook secret is whsec_ followed by the base64 of 24 to 64 random bytes")
    return key
