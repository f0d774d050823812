"""Structured output: the JSON schema a compat request asks its reply to match, read from each format's field.

Claude Code takes such a schema as a process option (``--json-schema``, the SDK's ``output_format``): it offers the
model a ``StructuredOutput`` tool whose input is the schema, reminds the model once when it answers in text instead,
checks each call against the schema (an invalid one is an error the model sees; the fifth fails the turn), and
reports the checked value as the result's ``structured_output``. So a schema is an option of the session, as its
system prompt and tools are (``options``), and the reply's text is that value as JSON (``reply``).

A tool's input is a JSON object: a schema of another type cannot be honoured, and is refused. ``json_object``
(valid JSON, any shape) is the schema ``{"type": "object"}``.
"""

from __future__ import annotations

import re
from typing import Any

from ccapi.compat.bodies import ResponseFormat
from ccapi.compat.parsing import expect
from ccapi.errors import InvalidRequest
from ccapi.sessions.params import object_schema

ANY_OBJECT: dict[str, Any] = {"type": "object"}
"""What ``json_object`` asks for: a JSON object, of any shape."""

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def chat_schema(response_format: ResponseFormat | None) -> dict[str, Any] | None:
    """Chat's ``response_format``: ``json_object``, or ``json_schema`` with its ``json_schema``
    (``name``, and optional ``schema``, ``description``, ``strict``)."""
    if response_format is None or response_format.type != "json_schema":
        return _plain_or_any(response_format)
    spec = expect(
        (response_format.model_extra or {}).get("json_schema"), dict, "response_format.json_schema", "an object"
    )
    return _named(spec, "response_format.json_schema", schema_required=False)


def responses_schema(text_format: ResponseFormat | None) -> dict[str, Any] | None:
    """Responses' ``text.format``: ``json_object``, or ``json_schema`` with ``name`` and ``schema`` beside it."""
    if text_format is None or text_format.type != "json_schema":
        return _plain_or_any(text_format)
    return _named(text_format.model_extra or {}, "text.format", schema_required=True)


def _plain_or_any(response_format: ResponseFormat | None) -> dict[str, Any] | None:
    return dict(ANY_OBJECT) if response_format is not None and response_format.type == "json_object" else None


def messages_schema(output_config: Any, output_format: Any) -> dict[str, Any] | None:
    """Anthropic's ``output_config.format`` (``{"type": "json_schema", "schema"}``), or the beta's ``output_format``
    it replaced, which Anthropic still takes."""
    config = expect(output_config, dict, "output_config", "an object") if output_config is not None else {}
    chosen, where = config.get("format"), "output_config.format"
    if output_format is not None:
        if chosen is not None:
            raise InvalidRequest("give output_config.format or output_format (its deprecated name), not both")
        chosen, where = output_format, "output_format"
    if chosen is None:
        return None
    chosen = expect(chosen, dict, where, "an object")
    if chosen.get("type") != "json_schema":
        raise InvalidRequest(f"{where}.type must be json_schema", param=f"{where}.type")
    return object_schema(chosen.get("schema"), f"{where}.schema")


def _named(spec: dict[str, Any], where: str, schema_required: bool) -> dict[str, Any]:
    """OpenAI's named schema: its ``name`` (which Claude Code does not use: its tool is ``StructuredOutput``),
    ``description`` and ``strict`` are checked as OpenAI checks them."""
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRequest(
            f"{where}.name must be 1 to 64 letters, digits, underscores or dashes", param=f"{where}.name"
        )
    if spec.get("description") is not None:
        expect(spec["description"], str, f"{where}.description", "a string")
    if spec.get("strict") is not None:
        expect(spec["strict"], bool, f"{where}.strict", "a boolean")
    if spec.get("schema") is None and not schema_required:
        return dict(ANY_OBJECT)
    return object_schema(spec.get("schema"), f"{where}.schema")
