"""Loose JSON checks shared by the three formats' request parsers.

Compat endpoints accept what each provider accepts and ignore sampling knobs Claude Code
does not expose (temperature, top_p, ...), but a field they do read must have its type:
a wrong one is a 400 that names it, never a crash deeper in.
"""

from __future__ import annotations

from typing import Any

from ccapi.errors import InvalidRequest


def expect(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise InvalidRequest(f"{where} must be {what}")
    return value


def body_object(body: Any) -> dict[str, Any]:
    return expect(body, dict, "the request body", "a JSON object")


def flag(body: dict[str, Any], name: str) -> bool:
    """A boolean option; ``null`` (which some clients send for "unset") is false."""
    value = body.get(name)
    return False if value is None else bool(expect(value, bool, name, "a boolean"))


def pinned_session(header: str | None, metadata: Any) -> str | None:
    """``x-cc-session-id`` wins over ``metadata.cc_session_id``."""
    if header:
        return header
    if metadata is None:
        return None
    pinned = expect(metadata, dict, "metadata", "an object").get("cc_session_id")
    return expect(pinned, str, "metadata.cc_session_id", "a string") if pinned is not None else None
