"""Loose JSON checks shared by the three formats' request parsers.

Compat endpoints accept what each provider accepts and ignore sampling knobs Claude Code
does not expose (temperature, top_p, ...), but a field they do read must have its type:
a wrong one is a 400 that names it, never a crash deeper in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ccapi.compat.bodies import Metadata
from ccapi.errors import InvalidRequest, PayloadTooLarge
from ccapi.sessions.inputs import parse_input


def expect(value: Any, kind: type | tuple[type, ...], where: str, what: str) -> Any:
    """``value``, which the request's field ``where`` (``messages[0].content``) holds, if it is a ``kind``."""
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise InvalidRequest(f"{where} must be {what}", param=where)
    return value


def body_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


#: Headers in which clients name their conversation (OpenClaw sends both).
AFFINITY_HEADERS = ("x-session-affinity", "session_id", "session-id")


def affinity_key(body: Any, headers: Mapping[str, str]) -> str | None:
    """The client's own stable name for the conversation, if it sends one: ``prompt_cache_key``
    (OpenAI formats), a session header, or ``metadata.user_id`` (Anthropic). It picks the
    session to try first; the history still decides."""
    fields = body if isinstance(body, dict) else {}
    raw_metadata = fields.get("metadata")
    metadata = raw_metadata if isinstance(raw_metadata, dict) else {}
    found = [fields.get("prompt_cache_key"), *(headers.get(name) for name in AFFINITY_HEADERS), metadata.get("user_id")]
    return next((str(value)[:512] for value in found if isinstance(value, str) and value), None)


def pinned_session(header: str | None, metadata: Metadata | None) -> str | None:
    """``x-cc-session-id`` wins over ``metadata.cc_session_id``."""
    return header or (metadata.cc_session_id if metadata is not None else None)


def input_block(block: Any, where: str) -> dict[str, Any]:
    """One native input block (text, image, document), checked as a native turn's input is, its refusal naming
    the request's own field ``where`` (``messages[0].content[1].source.type``), not the native one (``input[0]``)."""
    try:
        return parse_input([block])[0]
    except (InvalidRequest, PayloadTooLarge) as exc:
        message = where + exc.message.removeprefix("input[0]")
        field = message.split(" ", 1)[0].rstrip(":;,")
        raise type(exc)(message, exc.details, param=field) from None
