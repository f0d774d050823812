"""structlog JSON lines to ``$CC_API_HOME/logs/cc-api.log`` (rotated) and, in the foreground, stderr.

Every line is JSON — including what Sanic and the SDK log through the standard library — so
``cc-api logs`` and log shippers can parse the whole file. Secret values and secret-looking
keys are redacted before rendering, as defence in depth: no code path should log them anyway.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import logging.handlers
import os
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog

from ccapi.paths import LOG_FILE_NAME

REDACTED = "[redacted]"
SECRET_VARIABLES = (
    "CC_API_KEY",
    "CC_API_WEBHOOK_SECRET",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
)
SECRET_KEYS = frozenset(
    {
        "authorization",
        "x-api-key",
        "api_key",
        "cookie",
        "password",
        "secret",
        "token",
        *(name.lower() for name in SECRET_VARIABLES),
    }
)
_MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words; such keys are not secret anyway
_JSON_NATIVE = (str, int, float, bool, type(None))


def secret_values(env: Mapping[str, str]) -> tuple[str, ...]:
    values = {env.get(name, "").strip() for name in SECRET_VARIABLES}
    values |= {part for name in SECRET_VARIABLES for part in env.get(name, "").split()}  # several webhook secrets
    return tuple(sorted((v for v in values if len(v) >= _MIN_SECRET_LENGTH), key=len, reverse=True))


@dataclass(frozen=True)
class Redactor:
    """A structlog processor: replaces known secret values anywhere in an event, and the values
    of secret-looking keys, with ``[redacted]``."""

    secrets: tuple[str, ...]

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
        return {key: self._clean(key, value) for key, value in event.items()}

    def _clean(self, key: object, value: Any) -> Any:
        if isinstance(key, str) and key.lower() in SECRET_KEYS and value is not None:
            return REDACTED
        if isinstance(value, dict):
            return {k: self._clean(k, v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._clean(None, v) for v in value]
        if not isinstance(value, _JSON_NATIVE):
            value = str(value)  # what the JSON renderer would print, so redact it first
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, REDACTED)
        return value


class _FormatOnce(structlog.stdlib.ProcessorFormatter):
    """Each handler formats the record again (the rotating file even twice, to check its size):
    render a line once, since every handler writes the same JSON."""

    def format(self, record: logging.LogRecord) -> str:
        line: str | None = record.__dict__.get("_ccapi_line")
        if line is None:
            line = record.__dict__["_ccapi_line"] = super().format(record)
        return line


def log_soon(logger: Any, event: str, **fields: Any) -> None:
    """Log ``event`` two turns of the event loop from now: a line about a reply is written after
    the reply has gone out, not ahead of it (rendering it and two writes cost ~0.5 ms). Two, not
    one: a handler awaiting a shielded future (a turn's reply) wakes two turns after it is set, so
    call this after setting it (called before, the line went out ahead of the reply)."""
    loop = asyncio.get_running_loop()
    loop.call_soon(loop.call_soon, functools.partial(logger.info, event, **fields))


class RotatingLogFile(logging.handlers.RotatingFileHandler):
    """A rotating log file that takes along the standard streams writing into it. A gateway that ``cc-api start``
    (or launchd) started has its stdout and stderr on the log file: after a rotation they went on into
    ``cc-api.log.1``, then into a deleted file, and a crash's traceback never reached ``cc-api logs``."""

    followers: tuple[int, ...] = (1, 2)

    def doRollover(self) -> None:
        following = [fd for fd in self.followers if self.stream is not None and _same_file(fd, self.stream.fileno())]
        super().doRollover()
        if self.stream is not None:
            for fd in following:
                os.dup2(self.stream.fileno(), fd)


def _same_file(fd: int, other: int) -> bool:
    try:
        first, second = os.fstat(fd), os.fstat(other)
    except OSError:
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def _not_banner(record: logging.LogRecord) -> bool:
    """Sanic Extensions lists the extensions it loaded at each start, a line each ("Sanic Extensions:", "  > http"):
    the same lines every time, none of them the operator's business."""
    return not (record.name == "sanic.root" and record.module == "bootstrap")


def configure_logging(
    log_dir: Path | None, level: int = logging.INFO, *, console: bool = True, secrets: Iterable[str] = ()
) -> None:
    """``console=False`` when stderr already goes to the log file (``cc-api start``, launchd)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)] if console else []
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            RotatingLogFile(log_dir / LOG_FILE_NAME, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8")
        )
    formatter = _FormatOnce(
        foreign_pre_chain=[
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            Redactor(tuple(secrets)),
            structlog.processors.JSONRenderer(serializer=lambda obj, **_: orjson.dumps(obj, default=str).decode()),
        ],
    )
    root = logging.getLogger()
    root.handlers[:] = []
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(_not_banner)
        root.addHandler(handler)
    root.setLevel(level)
    # httpx logs each request's full URL at info: a webhook receiver's may carry its token (``webhook_attempt``
    # says what was sent, to which host)
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    # the SDK names the Claude Code it runs at each start of one: ``engine_started`` says what the reader needs
    logging.getLogger("claude_agent_sdk._internal.transport.subprocess_cli").setLevel(max(level, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
