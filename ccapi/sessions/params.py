"""Typed, validated request parameters for the sessions layer.

The API hands raw JSON in; what comes out is checked, normalised and frozen, so the
rest of the code never re-validates a field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from ccapi.catalog import ModelCatalog
from ccapi.errors import ApiError, InvalidRequest
from ccapi.sessions import bodies
from ccapi.sessions.inputs import parse_input
from ccapi.sessions.shape import Shape, checked
from ccapi.sessions.toolcalls import Decision, ToolResult
from ccapi.toolpolicy import BUILTIN_TOOL_NAMES, BuiltinTools, parse_builtin_tools
from ccapi.webhooks.targets import BadTarget, WebhookPolicy


@dataclass(frozen=True)
class ForkPoint:
    """A point a new session branches from: the message (its SDK ``uuid``) that ends a turn of a
    session's Claude Code conversation (its SDK session id): an assistant message, or the result of
    a ``StructuredOutput`` call (a session's output schema)."""

    session_id: str
    sdk_session_id: str
    uuid: str


@dataclass(frozen=True)
class History:
    """Messages a new session's Claude Code transcript starts with (after a fork's, when it
    is branched): Anthropic-format ``role``/``content``, client tool calls by the client's
    names. ``uuids`` name their transcript entries, so a seeded reply is a point to branch at."""

    messages: tuple[dict[str, Any], ...]
    uuids: tuple[str, ...]


@dataclass(frozen=True)
class NewSession:
    model: str
    system_prompt: str | None
    tools: tuple[dict[str, Any], ...]
    metadata: dict[str, Any]
    max_turns: int | None
    cwd: str | None
    permission_mode: str | None
    builtin_tools: BuiltinTools = "all"
    max_budget_usd: float | None = None
    webhook: dict[str, Any] | None = None
    mcp_servers: dict[str, dict[str, Any]] | None = None
    output_schema: dict[str, Any] | None = None
    """The JSON schema every answer must match (``object_schema``): Claude Code's structured output."""

    @classmethod
    def from_json(
        cls,
        body: Any,
        catalog: ModelCatalog,
        default_model: str,
        default_builtin_tools: BuiltinTools = "all",
        default_budget: float | None = None,
        *,
        webhooks: WebhookPolicy | None = None,
    ) -> NewSession:
        """``webhooks``: the gateway's webhook policy; without one (compat sessions) a session
        has no subscription and may not ask for one."""
        _refuse_webhook_without(webhooks, bodies.NewSession, body)
        shape = checked(bodies.NewSession, body)
        model = known_model(catalog, shape.given("model", default_model))
        _check_prompt(shape.system_prompt)
        _check_metadata(shape.metadata)
        if shape.cwd is not None and (not Path(shape.cwd).is_absolute() or not _is_dir(shape.cwd)):
            raise InvalidRequest("cwd must be the absolute path of an existing directory")
        try:
            builtin_tools = parse_builtin_tools(shape.given("builtin_tools", default_builtin_tools))
        except ValueError as exc:
            raise InvalidRequest(str(exc), {"known": list(BUILTIN_TOOL_NAMES)}) from None
        asked = {"webhook": shape.webhook} if "webhook" in shape.model_fields_set else {}
        webhook = _subscription(webhooks, asked)
        return cls(
            model,
            shape.system_prompt,
            _tools(shape.tools),
            dict(shape.metadata),
            shape.max_turns,
            shape.cwd,
            shape.permission_mode,
            builtin_tools,
            shape.given("max_budget_usd", default_budget),
            webhook,
            shape.mcp_servers or None,
            None if shape.output_schema is None else object_schema(shape.output_schema, "output_schema"),
        )


@dataclass(frozen=True)
class SessionChanges:
    """``PATCH /api/sessions/{id}``: what may change between turns, only the fields the body names
    (``max_budget_usd``, ``model``, ``output_schema``, ``permission_mode``, ``system_prompt``, ``webhook``); the
    next turn runs with them, and the events written from then on owe deliveries to the webhook."""

    fields: dict[str, Any]

    @classmethod
    def from_json(cls, body: Any, catalog: ModelCatalog, *, webhooks: WebhookPolicy | None = None) -> SessionChanges:
        """``webhooks``: the gateway's webhook policy, which checks a ``webhook`` as it does at creation."""
        _refuse_webhook_without(webhooks, bodies.SessionChanges, body)
        shape = checked(bodies.SessionChanges, body)
        if not shape.model_fields_set:
            raise InvalidRequest(
                "nothing to change: send max_budget_usd, model, output_schema, permission_mode, system_prompt"
                " or webhook"
            )
        fields = {name: getattr(shape, name) for name in shape.model_fields_set}
        _check_prompt(fields.get("system_prompt"))
        if fields.get("output_schema") is not None:
            fields["output_schema"] = object_schema(fields["output_schema"], "output_schema")
        if "model" in fields:
            fields["model"] = known_model(catalog, fields["model"])
        if "webhook" in fields:
            fields["webhook"] = _subscription(webhooks, {"webhook": fields["webhook"]})
        return cls(fields)


def _refuse_webhook_without(webhooks: WebhookPolicy | None, shape: type[Shape], body: Any) -> None:
    """Without the gateway's webhook policy (compat sessions) nothing may subscribe: ``webhook`` is unknown."""
    if not webhooks and isinstance(body, dict) and "webhook" in body:
        allowed = sorted(set(shape.model_fields) - {"webhook"})
        raise InvalidRequest("unknown field(s): webhook", {"allowed": allowed})


def _subscription(webhooks: WebhookPolicy | None, asked: dict[str, Any]) -> dict[str, Any] | None:
    """The subscription a body ``asked`` for (its ``webhook``, ``null`` for none; else the gateway default), as
    the gateway's rules admit it: one way for a new session and a ``PATCH``, so both refuse the same with a 400."""
    if not webhooks:
        return None
    try:
        return webhooks.subscription(asked)
    except BadTarget as exc:
        raise InvalidRequest(str(exc), {"webhook": asked.get("webhook")}) from None


#: The most a session's ``metadata`` may take as JSON: every listing of sessions carries it (a page of 100 sessions
#: with 10 MB of metadata each was a gigabyte to read, and the console polls the list).
MAX_METADATA_BYTES = 16 * 1024


def _check_metadata(metadata: Mapping[str, Any]) -> None:
    size = len(orjson.dumps(metadata))
    if size > MAX_METADATA_BYTES:
        raise InvalidRequest(
            f"metadata must take at most {MAX_METADATA_BYTES} bytes as JSON (it takes {size}): keep large data "
            "elsewhere and a reference to it here",
            {"limit": MAX_METADATA_BYTES, "size": size},
            param="metadata",
        )


def _check_prompt(prompt: str | None) -> None:
    if prompt and "\x00" in prompt:  # no database text column or CLI argument holds one
        raise InvalidRequest("system_prompt must not contain NUL (\\u0000) characters")


def known_model(
    catalog: ModelCatalog, requested: Any, unknown: type[ApiError] = InvalidRequest, listing: str = "/api/models"
) -> str:
    """The canonical id of the model ``requested`` names; an unknown one is an ``unknown`` error pointing at
    ``listing`` (native routes: a 400 and ``/api/models``; the compat ones pass a 404 and ``/v1/models``)."""
    if not isinstance(requested, str) or not requested.strip():
        raise InvalidRequest("model must be a non-empty string (or left out, for the default)")
    model = catalog.resolve(requested)
    if model is None:
        raise unknown(f"unknown model {requested!r}; GET {listing} lists the known ones", {"model": requested})
    return model


@dataclass(frozen=True)
class TurnRequest:
    content: tuple[dict[str, Any], ...]
    stream: bool
    background: bool
    queue: bool = False
    """Wait behind a running turn instead of a 409 (see ``sessions.queue``)."""
    changes: Mapping[str, Any] | None = None
    """Session options (model, system prompt, tools) to change as the turn starts, and only if it does: a queued
    turn withdrawn before it started changes nothing (a compat request's options are its own)."""

    @classmethod
    def from_json(cls, body: Any, wants_sse: bool = False) -> TurnRequest:
        shape = checked(bodies.TurnInput, body)
        stream, background = _reply_mode(shape, wants_sse)
        return cls(shape.input, stream, background, shape.queue)


@dataclass(frozen=True)
class InterruptRequest:
    """``POST /interrupt``: by default the running turn; ``turn_id`` names it, or a queued turn."""

    turn_id: str | None

    @classmethod
    def from_json(cls, body: Any) -> InterruptRequest:
        return cls(checked(bodies.InterruptRequest, body).turn_id)


@dataclass(frozen=True)
class ToolResultsRequest:
    results: tuple[ToolResult, ...]
    stream: bool
    background: bool

    @classmethod
    def from_json(cls, body: Any, wants_sse: bool = False) -> ToolResultsRequest:
        shape = checked(bodies.ToolResults, body)
        stream, background = _reply_mode(shape, wants_sse)
        return cls(tuple(_result(index, item) for index, item in enumerate(shape.results)), stream, background)


@dataclass(frozen=True)
class DecisionsRequest:
    """``POST /permissions``: the client's answers to the turn's permission requests."""

    decisions: tuple[Decision, ...]
    stream: bool
    background: bool

    @classmethod
    def from_json(cls, body: Any, wants_sse: bool = False) -> DecisionsRequest:
        shape = checked(bodies.Decisions, body)
        stream, background = _reply_mode(shape, wants_sse)
        return cls(tuple(_decision(index, item) for index, item in enumerate(shape.decisions)), stream, background)


@dataclass(frozen=True)
class CompactRequest:
    instructions: str | None

    @classmethod
    def from_json(cls, body: Any) -> CompactRequest:
        instructions = checked(bodies.CompactRequest, body).instructions
        return cls(instructions.strip() or None if instructions else None)


@dataclass(frozen=True)
class ForkRequest:
    """Where ``POST /api/sessions/{id}/fork`` branches: after a turn, or after the last
    assistant message at or before an event seq; neither means after everything."""

    turn_id: str | None
    after_seq: int | None

    @classmethod
    def from_json(cls, body: Any) -> ForkRequest:
        shape = checked(bodies.ForkRequest, body)
        if shape.turn_id is not None and shape.after_seq is not None:
            raise InvalidRequest("give turn_id or after_seq, not both")
        return cls(shape.turn_id, shape.after_seq)


def _reply_mode(shape: bodies.ReplyMode, wants_sse: bool) -> tuple[bool, bool]:
    """``stream`` as the body says, else as the ``Accept`` header asks (``wants_sse``), unless the body asks for
    ``background``: a client whose every request accepts SSE was refused a background turn it never asked to stream."""
    background = shape.background
    stream = shape.given("stream", wants_sse and not background)
    if stream and background:
        raise InvalidRequest("choose one of stream and background")
    return stream, background


def _result(index: int, item: bodies.ToolResult) -> ToolResult:
    where = f"results[{index}]"
    content: str | list[dict[str, Any]] = item.content if isinstance(item.content, str) else []
    if not isinstance(item.content, str):
        blocks = (block.model_dump(exclude_unset=True) for block in item.content)
        content = [_result_block(f"{where}.content[{n}]", block) for n, block in enumerate(blocks)]
    return ToolResult(item.tool_call_id, content, item.is_error)


def _decision(index: int, item: bodies.Decision) -> Decision:
    where = f"decisions[{index}]"
    allow = item.behavior == "allow"
    if item.updated_input is not None and not allow:
        raise InvalidRequest(f"{where}.updated_input must be an object, and only with behavior allow")
    if item.scope == "session" and not allow:
        raise InvalidRequest(f'{where}.scope must be "call" or "session", and "session" only with behavior allow')
    message = item.message or ("" if allow else "the user denied this tool call")
    return Decision(item.request_id, allow, message, item.updated_input, for_session=item.scope == "session")


def _result_block(where: str, block: dict[str, Any]) -> dict[str, Any]:
    if block.get("type") not in ("text", "image"):
        raise InvalidRequest(f"{where} must be a text block or a base64 image block")
    try:
        parsed = parse_input([block])[0]
    except InvalidRequest as exc:
        raise InvalidRequest(f"{where}: {exc.message}") from None
    if parsed["type"] == "image" and parsed["source"]["type"] != "base64":
        raise InvalidRequest(f"{where}: tool results carry images as base64, not URLs")
    return parsed


def _is_dir(path: str) -> bool:
    """Whether ``path`` names a directory; a name the OS refuses (too long, say) does not."""
    try:
        return Path(path).is_dir()
    except OSError:
        return False


def _tools(declared: list[bodies.ToolDefinition]) -> tuple[dict[str, Any], ...]:
    seen: set[str] = set()
    for index, tool in enumerate(declared):
        where = f"tools[{index}]"
        if tool.name in seen:
            raise InvalidRequest(f"{where}.name {tool.name!r} is declared twice")
        if tool.input_schema.get("type", "object") != "object":
            raise InvalidRequest(f"{where}.input_schema must be a JSON schema object with type 'object'")
        check_schema(f"{where}.input_schema", tool.input_schema, f" of tool {tool.name!r}", {"tool": tool.name})
        seen.add(tool.name)
    return tuple(tool.model_dump() for tool in declared)


def check_schema(where: str, schema: dict[str, Any], of: str = "", details: dict[str, Any] | None = None) -> None:
    """A JSON schema Claude Code is given (a tool's input, a structured output's), at ``where`` (``of`` says whose):
    Claude Code drops the whole tool list, silently, over one invalid schema, so it is refused here. Checked
    against the draft the schema names in ``$schema``, else 2020-12 (the Messages API's)."""
    if not isinstance(schema.get("$schema", ""), str):
        raise InvalidRequest(f"{where}.$schema{of} must be a string", details)
    validator = validator_for(schema, default=Draft202012Validator)
    try:
        validator.check_schema(schema)
    except SchemaError as exc:
        at = "".join(f".{part}" if isinstance(part, str) else f"[{part}]" for part in exc.path)
        raise InvalidRequest(f"{where}{at}{of} is not a valid JSON Schema: {exc.message[:300]}", details) from None
    except RecursionError:
        raise InvalidRequest(f"{where}{of} is nested too deeply", details) from None


def object_schema(schema: Any, where: str) -> dict[str, Any]:
    """A structured output's schema (``output_schema``): a valid JSON schema of an object, one that names no type
    taken as one. Claude Code takes the answer as a tool's input, which is a JSON object."""
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{where} must be a JSON schema (an object)")
    kind = schema.get("type", "object")
    if kind != "object":
        raise InvalidRequest(
            f"{where}.type must be object: Claude Code returns structured output as a tool's input, "
            f"which is a JSON object (wrap the {kind if isinstance(kind, str) else 'value'} in a property)"
        )
    schema = {**schema, "type": "object"}
    check_schema(where, schema)
    return schema
