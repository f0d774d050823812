"""The browser guard: what a web page the user happens to visit must not be able to do.

A loopback gateway without ``CC_API_KEY`` trusts whoever reaches its port, and a browser
reaches it on behalf of any page. Three rules, the ones local developer servers (Vite,
Jupyter, webpack-dev-server) settled on, close the doors a page has, with or without a key:

- **Host allow-list** (DNS rebinding): a page on ``attacker.example`` whose name is re-pointed at
  127.0.0.1 reaches the port with ``Host: attacker.example``. Only loopback names, ``.localhost``
  names, IP literals (which cannot be rebound), the bind host and ``CC_API_ALLOWED_HOSTS`` pass.
- **Same origin** (cross-site requests): a request the browser marks as coming from another site
  (``Origin`` not this gateway's, ``Sec-Fetch-Site`` ``cross-site`` / ``same-site``) is refused;
  only a top-level navigation (a link to the console) may cross, not a frame's (``Sec-Fetch-Dest``
  ``iframe``: a page that frames an answer could still lead the user to click or drag in it).
- **JSON bodies only** (CSRF through "simple" requests): a form or ``text/plain`` POST needs no
  CORS preflight, so a body is accepted only as ``application/json``, which a page can send
  cross-site only after a preflight that this gateway never grants.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sanic import Request

from ccapi.config import Settings
from ccapi.errors import Forbidden, UnsupportedMediaType
from ccapi.hosts import DEFAULT_PORTS, is_ip_address

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_BROWSER_FETCH_SITES = frozenset({"same-origin", "none"})  # "none": typed in the address bar, a bookmark


@dataclass(frozen=True)
class HostPolicy:
    """Which ``Host`` names address this gateway: exact names, and suffixes (``.example.com``)."""

    names: frozenset[str]
    suffixes: tuple[str, ...]
    any_host: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> HostPolicy:
        names = set(_LOOPBACK_NAMES)
        if settings.host not in _WILDCARD_BINDS:
            names.add(settings.host.lower())
        suffixes = [".localhost"]
        for entry in settings.allowed_hosts:
            entry = entry.lower()
            if entry.startswith("."):
                suffixes.append(entry)
                names.add(entry[1:])
            else:
                names.add(entry)
        return cls(frozenset(names), tuple(suffixes), "*" in names)

    def allows(self, hostname: str) -> bool:
        # an IP literal names no domain an attacker could re-point
        return self.any_host or hostname in self.names or hostname.endswith(self.suffixes) or is_ip_address(hostname)


def split_host(value: str) -> tuple[str, int | None] | None:
    """``Host`` header → (lower-case hostname, port); ``None`` when it does not parse."""
    try:
        parts = urlsplit(f"//{value}")
        return (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None


async def guard_browser_requests(request: Request) -> None:
    """Refuse what a foreign web page could send; see the module docstring."""
    if request.method == "NONE":  # Sanic's stand-in for a request whose head never arrived
        return
    policy: HostPolicy = request.app.ctx.host_policy
    host_header = request.headers.get("host")
    host = split_host(host_header) if host_header is not None else None
    if host_header is not None and (host is None or not policy.allows(host[0])):
        raise Forbidden(
            f"this gateway does not answer to Host {host_header!r}; a name other than loopback "
            "must be listed in CC_API_ALLOWED_HOSTS"
        )
    _refuse_cross_site(request, host)
    if request.method in _BODY_METHODS and request.body and not _is_json(request.headers.get("content-type", "")):
        raise UnsupportedMediaType(
            "request bodies must be JSON, sent with 'Content-Type: application/json' (curl: --json)"
        )


def _refuse_cross_site(request: Request, host: tuple[str, int | None] | None) -> None:
    if (
        request.method in _SAFE_METHODS
        and request.headers.get("sec-fetch-mode") == "navigate"
        and request.headers.get("sec-fetch-dest", "document") == "document"
    ):
        return  # a link to the console: the user sees the page, the linking site reads nothing
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in _BROWSER_FETCH_SITES:
        raise Forbidden(f"cross-origin request refused (Sec-Fetch-Site: {fetch_site})")
    origin = request.headers.get("origin")
    if origin is not None and not _same_origin(origin, host):
        raise Forbidden(f"cross-origin request refused (Origin: {origin})")


def _same_origin(origin: str, host: tuple[str, int | None] | None) -> bool:
    try:
        parts = urlsplit(origin)
        origin_host, origin_port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return False
    if host is None or parts.scheme not in DEFAULT_PORTS or not origin_host:
        return False  # "null" (sandboxed frames, file:) and anything unparsable are foreign
    default = DEFAULT_PORTS[parts.scheme]
    return (origin_host, origin_port or default) == (host[0], host[1] or default)


def _is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))
