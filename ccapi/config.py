"""One typed settings object, read once from the environment.

Every ``CC_API_*`` variable is parsed here and nowhere else, so a bad value fails
at start-up with a message that names the variable instead of deep in a turn.
"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ccapi.hosts import is_ip_address, is_ip_network
from ccapi.paths import StatePaths, default_home, home_from_env
from ccapi.toolpolicy import BuiltinTools, parse_builtin_tools_text
from ccapi.webhook_rules import LOOPBACK, AllowList, BadTarget, secret_key, subscription

SANDBOX_MODES = ("auto", "require", "off")
PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HOST_NAME = re.compile(
    r"\*|\.?[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?"
)
"""An entry of ``CC_API_ALLOWED_HOSTS`` or ``CC_API_WEBHOOK_ALLOW`` that is a name: as a URL writes it, without a
scheme or port; ``.`` first for its subdomains; ``*`` for any."""


class ConfigError(ValueError):
    """A setting from the environment is unusable; the message names it."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    home: Path = field(default_factory=default_home)
    api_key: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    model: str = "claude-sonnet-4-5"
    models: str | None = None
    permission_mode: str = "bypassPermissions"
    tool_permission_mode: str = "bypassPermissions"
    max_turns: int = 8
    tool_max_turns: int = 4
    builtin_tools: BuiltinTools = "all"
    compat_builtin_tools: BuiltinTools = "none"
    approval_timeout: float = 300.0
    max_budget_usd: float | None = None
    cwd: Path | None = None
    session_db: Path | None = None
    session_dir: Path | None = None
    database_url: str | None = None
    max_live: int = 8
    lease_ttl: float = 30.0
    host_id: str | None = None
    queue_timeout: float = 30.0
    max_queued: int = 64
    idle_timeout: float = 600.0
    compat_retention: float = 30 * 24 * 3600.0
    """Seconds a session the compat endpoints created is kept after its last use (0: kept); its client holds the
    conversation and sends it again, so a later request starts a session from it (``ccapi.sessions.retention``)."""
    session_retention: float = 0.0
    """The same for every other session (native, ACP): 0, the default, keeps them until they are deleted."""
    tool_timeout: float = 300.0
    store_write_timeout: float = 30.0
    """Seconds the store may refuse event writes (a full disk, a lost database) before the replies waiting on
    them get a 503 instead of waiting on; the events stay queued and are written once it accepts them."""
    upstream_url: str | None = None
    upstream_retries: int | None = None
    upstream_timeout: float | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    request_timeout: float = 30.0
    keepalive_seconds: float = 15.0
    sse_buffer_events: int = 4096
    """Events an SSE client may fall behind by before its stream is cut off (it resumes with ``Last-Event-ID``)."""
    sse_buffer_bytes: int = 16 * 1024 * 1024
    """Bytes of events an SSE client may fall behind by before its stream is cut off."""
    sse_max_streams: int = 1024
    sse_max_streams_per_session: int = 128
    pass_env: tuple[str, ...] = ()
    sandbox: str = "auto"
    """Claude Code's sandbox for Bash: ``auto`` (where available), ``require`` (refuse to start without), ``off``."""
    sandbox_domains: tuple[str, ...] = ()
    """Domains sandboxed Bash commands may reach; none by default."""
    """Variables of the gateway's environment that Claude Code children get besides their own."""
    mock_model: bool = False
    child_umask: int = 0o022
    """The umask the gateway was started with: it runs with 077, its Claude Code children with this."""
    webhook_url: str | None = None
    webhook_events: tuple[str, ...] = ()
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_allow: tuple[str, ...] = LOOPBACK
    webhook_timeout: float = 10.0
    webhook_backoff: float = 2.0
    webhook_retry_for: float = 24 * 3600.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        reader = _Reader(env)
        settings = cls(
            host=reader.text("CC_API_HOST", cls.host),
            port=reader.integer("CC_API_PORT", cls.port, minimum=0, maximum=65535),
            home=home_from_env(env),
            api_key=reader.optional("CC_API_KEY"),
            allowed_hosts=reader.host_names("CC_API_ALLOWED_HOSTS"),
            model=reader.text("CC_API_MODEL", cls.model),
            models=reader.optional("CC_API_MODELS"),
            permission_mode=reader.choice("CC_API_PERMISSION_MODE", cls.permission_mode, PERMISSION_MODES),
            tool_permission_mode=reader.choice(
                "CC_API_TOOL_PERMISSION_MODE", cls.tool_permission_mode, PERMISSION_MODES
            ),
            max_turns=reader.integer("CC_API_MAX_TURNS", cls.max_turns, minimum=1),
            tool_max_turns=reader.integer("CC_API_TOOL_MAX_TURNS", cls.tool_max_turns, minimum=1),
            builtin_tools=reader.builtin_tools("CC_API_BUILTIN_TOOLS", cls.builtin_tools),
            compat_builtin_tools=reader.builtin_tools("CC_API_COMPAT_BUILTIN_TOOLS", cls.compat_builtin_tools),
            approval_timeout=reader.number("CC_API_APPROVAL_TIMEOUT", cls.approval_timeout),
            max_budget_usd=reader.optional_number("CC_API_MAX_BUDGET_USD"),
            cwd=reader.path("CC_API_CWD"),
            session_db=reader.path("CC_API_SESSION_DB"),
            session_dir=reader.path("CC_API_SESSION_DIR"),
            database_url=reader.optional("CC_API_DATABASE_URL"),
            max_live=reader.integer("CC_API_MAX_LIVE", cls.max_live, minimum=1),
            lease_ttl=reader.number("CC_API_LEASE_TTL", cls.lease_ttl),
            host_id=reader.optional("CC_API_HOST_ID"),
            queue_timeout=reader.number("CC_API_QUEUE_TIMEOUT", cls.queue_timeout),
            max_queued=reader.integer("CC_API_MAX_QUEUED", cls.max_queued, minimum=0),
            idle_timeout=reader.number("CC_API_IDLE_TIMEOUT", cls.idle_timeout),
            compat_retention=reader.number("CC_API_COMPAT_RETENTION", cls.compat_retention, zero_is_off=True),
            session_retention=reader.number("CC_API_SESSION_RETENTION", cls.session_retention, zero_is_off=True),
            tool_timeout=reader.number("CC_API_TOOL_TIMEOUT", cls.tool_timeout),
            store_write_timeout=reader.number("CC_API_STORE_WRITE_TIMEOUT", cls.store_write_timeout),
            upstream_url=reader.optional("CC_API_UPSTREAM_URL"),
            upstream_retries=reader.optional_integer("CC_API_UPSTREAM_RETRIES", minimum=0, maximum=20),
            upstream_timeout=reader.optional_number("CC_API_UPSTREAM_TIMEOUT"),
            max_body_bytes=reader.integer("CC_API_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1024),
            request_timeout=reader.number("CC_API_REQUEST_TIMEOUT", cls.request_timeout),
            keepalive_seconds=reader.number("CC_API_KEEPALIVE_SECONDS", cls.keepalive_seconds),
            sse_buffer_events=reader.integer("CC_API_SSE_BUFFER_EVENTS", cls.sse_buffer_events, minimum=1),
            sse_buffer_bytes=reader.integer("CC_API_SSE_BUFFER_BYTES", cls.sse_buffer_bytes, minimum=1024),
            sse_max_streams=reader.integer("CC_API_SSE_MAX_STREAMS", cls.sse_max_streams, minimum=1),
            sse_max_streams_per_session=reader.integer(
                "CC_API_SSE_MAX_STREAMS_PER_SESSION", cls.sse_max_streams_per_session, minimum=1
            ),
            pass_env=reader.variable_names("CC_API_PASS_ENV"),
            sandbox=reader.choice("CC_API_SANDBOX", cls.sandbox, SANDBOX_MODES),
            sandbox_domains=reader.domains("CC_API_SANDBOX_DOMAINS"),
            webhook_url=reader.optional("CC_API_WEBHOOK_URL"),
            webhook_events=reader.items("CC_API_WEBHOOK_EVENTS"),
            webhook_secret=reader.optional("CC_API_WEBHOOK_SECRET"),
            webhook_allow=reader.host_names("CC_API_WEBHOOK_ALLOW", networks=True) or LOOPBACK,
            webhook_timeout=reader.number("CC_API_WEBHOOK_TIMEOUT", cls.webhook_timeout),
            webhook_backoff=reader.number("CC_API_WEBHOOK_BACKOFF", cls.webhook_backoff),
            webhook_retry_for=reader.number("CC_API_WEBHOOK_RETRY_FOR", cls.webhook_retry_for),
        )
        settings.check()
        return settings

    def with_overrides(self, **changes: Any) -> Settings:
        updated = replace(self, **changes)
        updated.check()
        return updated

    def check(self) -> None:
        """Refuse combinations that would be unsafe, or that this version cannot serve."""
        if self.database_url and not self.database_url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("CC_API_DATABASE_URL must be a postgresql://user:password@host:port/database URL")
        if self.database_url and self.session_dir:
            raise ConfigError("set one of CC_API_DATABASE_URL and CC_API_SESSION_DIR, not both")
        self._check_paths()
        if self.upstream_url is not None:
            url = urlsplit(self.upstream_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ConfigError(  # not repeated: it may hold credentials (https://user:token@host)
                    "CC_API_UPSTREAM_URL must be an http:// or https:// URL with a host "
                    "(an Anthropic-compatible base URL, such as https://api.anthropic.com)"
                )
        from ccapi.catalog import ModelCatalog  # it reads ConfigError from here

        catalog = ModelCatalog.from_setting(self.models)  # a bad CC_API_MODELS is told now, before anything starts
        if catalog.resolve(self.model) is None:  # else every session that names no model is refused (400)
            raise ConfigError(
                f"CC_API_MODEL={self.model!r} is not a known model: name one that GET /api/models lists "
                "(an id or an alias, such as claude-sonnet-4-5 or sonnet), or add it to CC_API_MODELS"
            )
        if self.host not in LOOPBACK_HOSTS and not self.api_key:
            raise ConfigError(
                f"refusing to listen on non-loopback host {self.host!r} without CC_API_KEY: "
                "anyone who can reach it could run tools on this machine. Set CC_API_KEY "
                "or bind 127.0.0.1."
            )
        self._check_webhooks()

    def _check_paths(self) -> None:
        """Paths that cannot be what they name: told at start-up, not by every turn (a working directory that is
        not one), nor after the start-up made a whole tree private (a database path that is a folder)."""
        for name, folder in (("CC_API_HOME", self.home), ("CC_API_SESSION_DIR", self.session_dir)):
            if folder is not None and _holds_users_home(folder):
                raise ConfigError(
                    f"{name}={str(folder)!r} holds your home folder: the gateway makes its state private, all of "
                    "it (every file and folder under it, for its user alone); give it a folder of its own, such as "
                    "~/.cc-api"
                )
        if self.cwd is not None and not self.cwd.is_dir():
            raise ConfigError(
                f"CC_API_CWD={str(self.cwd)!r} is not a directory: it names the existing folder Claude Code works in"
            )
        if self.cwd is not None:  # as a session's own cwd is checked (``EngineSpecs.check_cwd``): Bash writes there
            from ccapi.privacy import exposed_by  # it reads Settings from here

            if exposed_by(self.cwd, self) is not None:
                raise ConfigError(
                    f"CC_API_CWD={str(self.cwd)!r} is the file system's root or in the gateway's state "
                    "(CC_API_HOME, its database or session folder): Claude Code's sandbox lets Bash write where it "
                    "works; give it a folder of its own"
                )
        if self.session_db is not None and self.session_db.is_dir():
            raise ConfigError(
                f"CC_API_SESSION_DB={str(self.session_db)!r} is a directory: it names the SQLite database file "
                "(created if missing), such as <folder>/sessions.db"
            )
        if self.session_dir is not None and self.session_dir.exists() and not self.session_dir.is_dir():
            raise ConfigError(
                f"CC_API_SESSION_DIR={str(self.session_dir)!r} is not a directory: it names the folder of the "
                "JSON-directory store (created if missing)"
            )

    def _check_webhooks(self) -> None:
        if self.webhook_secret is not None:
            try:
                for secret in self.webhook_secrets or [""]:
                    secret_key(secret)
            except ValueError as exc:
                raise ConfigError(f"CC_API_WEBHOOK_SECRET: {exc} (`cc-api install-service` writes one)") from None
        if self.webhook_url is None:
            return
        if self.webhook_secret is None:
            raise ConfigError("CC_API_WEBHOOK_URL needs CC_API_WEBHOOK_SECRET to sign the deliveries")
        try:
            _ = self.default_webhook  # parses the URL and events, raising on a bad target
        except BadTarget as exc:
            raise ConfigError(f"CC_API_WEBHOOK_URL / CC_API_WEBHOOK_EVENTS: {exc}") from None

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        """``CC_API_WEBHOOK_SECRET`` may hold several secrets, space-separated, while one is rotated: each delivery
        is signed with every one of them (Standard Webhooks' several signatures), the new first."""
        return tuple((self.webhook_secret or "").split())

    @property
    def webhook_allow_list(self) -> AllowList:
        return AllowList.parse(self.webhook_allow)

    @property
    def default_webhook(self) -> dict[str, Any] | None:
        """The subscription of sessions created without a ``webhook`` field."""
        if self.webhook_url is None:
            return None
        return subscription(self.webhook_url, list(self.webhook_events) or None, self.webhook_allow_list)

    @property
    def paths(self) -> StatePaths:
        return StatePaths(self.home)

    @property
    def database_path(self) -> Path:
        return self.session_db or self.paths.database

    @property
    def owner_id(self) -> str:
        """This gateway's identity in session leases: stable across its restarts (so a restart
        reclaims its own sessions at once) and distinct between hosts and ports."""
        return self.host_id or f"{socket.gethostname()}:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.paths.log_dir

    @property
    def base_url(self) -> str:
        """Where a local client reaches this gateway (a wildcard bind is reached on loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


def _holds_users_home(folder: Path) -> bool:
    """Whether ``folder`` is the user's home folder, or one above it (``/``)."""
    try:
        home, folder = Path.home().resolve(), folder.expanduser().resolve()
    except (OSError, RuntimeError):  # no home to speak of
        return False
    return folder == home or folder in home.parents


@dataclass(frozen=True)
class _Reader:
    env: Mapping[str, str]

    def optional(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self.optional(name) or default

    def items(self, name: str) -> tuple[str, ...]:
        """A comma- or space-separated list."""
        return tuple(self.text(name, "").replace(",", " ").split())

    def path(self, name: str) -> Path | None:
        value = self.optional(name)
        return Path(value).expanduser() if value else None

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in allowed:
            raise ConfigError(f"{name}={value!r} is not one of: {', '.join(allowed)}")
        return value

    def builtin_tools(self, name: str, default: BuiltinTools) -> BuiltinTools:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            return parse_builtin_tools_text(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None

    def integer(self, name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not an integer") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            if maximum is None:
                accepted = f"at least {minimum}"
            elif minimum is None:
                accepted = f"at most {maximum}"
            else:
                accepted = f"from {minimum} to {maximum}"
            raise ConfigError(f"{name}={value} is out of range: it must be an integer {accepted}")
        return value

    def host_names(self, name: str, networks: bool = False) -> tuple[str, ...]:
        """Host names (and IP addresses, or with ``networks`` IP networks) that hosts are matched against by name
        alone: an entry with a scheme, a port or a path never matched any, silently."""
        names = self.items(name)
        for item in names:
            literal = item.removeprefix("[").removesuffix("]")
            if not HOST_NAME.fullmatch(item) and not (is_ip_network if networks else is_ip_address)(literal):
                raise ConfigError(
                    f"{name}: {item!r} is not a host name{' or IP network' if networks else ''}: give names as "
                    "clients write them in URLs, without a scheme, port or path (gw.example.com), .example.com for "
                    f"its subdomains{', networks as 10.0.0.0/8' if networks else ''}, or *"
                )
        return names

    def domains(self, name: str) -> tuple[str, ...]:
        """Domains as Claude Code's sandbox matches them (``example.com``, ``*.example.com``, ``*``): an entry with a
        scheme, a port or a path never matched any, silently."""
        names = self.items(name)
        for item in names:
            if not HOST_NAME.fullmatch(item.removeprefix("*.")):
                raise ConfigError(
                    f"{name}: {item!r} is not a domain: give domains without a scheme, port or path (example.com), "
                    "*.example.com for its subdomains, or *"
                )
        return names

    def variable_names(self, name: str) -> tuple[str, ...]:
        """Environment variable names; ``CC_API_*`` ones are the gateway's own and never pass."""
        names = self.items(name)
        for item in names:
            if not VARIABLE_NAME.fullmatch(item) or item.startswith("CC_API_"):
                raise ConfigError(f"{name}: {item!r} is not a variable name Claude Code may be given")
        return names

    def optional_integer(self, name: str, minimum: int, maximum: int) -> int | None:
        return self.integer(name, 0, minimum, maximum) if self.optional(name) is not None else None

    def optional_number(self, name: str) -> float | None:
        return self.number(name, 0.0) if self.optional(name) is not None else None

    def number(self, name: str, default: float, zero_is_off: bool = False) -> float:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        accepted = "a positive number" + (" (or 0: off)" if zero_is_off else "")
        if not math.isfinite(value):  # float() takes "nan" and "inf": neither is a number of seconds or dollars
            raise ConfigError(f"{name}={raw!r} is not a number: it must be {accepted}")
        if value < 0 or (value == 0 and not zero_is_off):
            raise ConfigError(f"{name}={value:g} must be {accepted}")
        return value
