"""Identifiers and timestamps. Ids are validated before they touch a query or a path."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def is_safe_id(value: str) -> bool:
    """True for ids made only of ``[A-Za-z0-9_-]``: no dots, slashes or NULs can reach a path."""
    return _SAFE_ID.fullmatch(value) is not None  # not ``$``, which lets a trailing newline through


def utcnow() -> str:
    """ISO-8601 UTC with milliseconds; sorts lexically in time order."""
    return isoformat(datetime.now(UTC).timestamp())


def isoformat(timestamp: float) -> str:
    """A Unix time in ``utcnow``'s format."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> float:
    """The inverse of ``isoformat``."""
    return datetime.fromisoformat(value).timestamp()
