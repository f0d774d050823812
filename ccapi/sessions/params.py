"""Typed, validated request parameters for the sessions layer.

The API hands raw JSON in; what comes out is checked, normalised and frozen, so the
rest of the code never re-validates a field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from ccapi.catalog import ModelCatalog
from ccapi.config import PERMISSION_MODES
from ccapi.errors import ApiError, InvalidRequest
from ccapi.sessions.inputs import parse_input
from ccapi.sessions.mcp_servers import parse_mcp_servers
from ccapi.sessions.toolcalls import Decision, ToolResult
from ccapi.toolpolicy import BUILTIN_TOOL_NAMES, BuiltinTools, parse_builtin_tools
from ccapi.webhooks.targets import BadTarget, WebhookPolicy

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SESSION_FIELDS = {
    "model",
    "system_prompt",
    "tools",
    "metadata",
    "max_turns",
    "cwd",
    "permission_mode",
    "builtin_tools",
    "max_budget_usd",
    "webhook",
    "mcp_servers",
}
_TURN_FIELDS = {"input", "stream", "background", "queue"}
_RESULTS_FIELDS = {"results", "stream", "background"}
_RESULT_FIELDS = {"tool_call_id", "content", "is_error"}
_DECISIONS_FIELDS = {"decisions", "stream", "background"}
_DECISION_FIELDS = {"request_id", "behavior", "message", "updated_input", "scope"}
MAX_RESULTS = 128


@dataclass(frozen=True)
class ForkPoint:
    """A point a new session branches from: an assistant message (its SDK ``uuid``) that
    ends a turn of a session's Claude Code conversation (its SDK session id)."""

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
        body = _object(body, _SESSION_FIELDS if webhooks else _SESSION_FIELDS - {"webhook"})
        model = known_model(catalog, body.get("model", default_model))
        system_prompt = body.get("system_prompt")
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise InvalidRequest("system_prompt must be a string")
        if system_prompt and "\x00" in system_prompt:  # no database text column or CLI argument holds one
            raise InvalidRequest("system_prompt must not contain NUL (\\u0000) characters")
        metadata = body.get("metadata", {})
        if not isinstance(metadata, dict):
            raise InvalidRequest("metadata must be an object")
        max_turns = body.get("max_turns")
        if max_turns is not None and (
            not isinstance(max_turns, int) or isinstance(max_turns, bool) or not 1 <= max_turns <= 1000
        ):
            raise InvalidRequest("max_turns must be an integer between 1 and 1000")
        permission_mode = _permission_mode(body.get("permission_mode"))
        cwd = body.get("cwd")
        if cwd is not None and (not isinstance(cwd, str) or not Path(cwd).is_absolute() or not _is_dir(cwd)):
            raise InvalidRequest("cwd must be the absolute path of an existing directory")
        try:
            builtin_tools = parse_builtin_tools(body.get("builtin_tools", default_builtin_tools))
        except ValueError as exc:
            raise InvalidRequest(str(exc), {"known": list(BUILTIN_TOOL_NAMES)}) from None
        budget = budget_usd(body.get("max_budget_usd", default_budget))
        try:
            webhook = webhooks.subscription(body) if webhooks else None
        except BadTarget as exc:
            raise InvalidRequest(str(exc), {"webhook": body.get("webhook")}) from None
        return cls(
            model,
            system_prompt,
            _tools(body.get("tools", [])),
            metadata,
            max_turns,
            cwd,
            permission_mode,
            builtin_tools,
            budget,
            webhook,
            parse_mcp_servers(body.get("mcp_servers")) or None,
        )


@dataclass(frozen=True)
class SessionChanges:
    """``PATCH /api/sessions/{id}``: what may change between turns, only the fields the body names
    (``max_budget_usd``, ``model``, ``permission_mode``); the next turn runs with them."""

    fields: dict[str, Any]

    @classmethod
    def from_json(cls, body: Any, catalog: ModelCatalog) -> SessionChanges:
        body = _object(body, {"max_budget_usd", "model", "permission_mode"})
        if not body:
            raise InvalidRequest("nothing to change: send max_budget_usd, model or permission_mode")
        fields: dict[str, Any] = {}
        if "max_budget_usd" in body:
            fields["max_budget_usd"] = budget_usd(body["max_budget_usd"])
        if "model" in body:
            fields["model"] = known_model(catalog, body["model"])
        if "permission_mode" in body:
            fields["permission_mode"] = _permission_mode(body["permission_mode"])
        return cls(fields)


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


def _permission_mode(value: Any) -> str | None:
    if value is not None and value not in PERMISSION_MODES:
        raise InvalidRequest(f"permission_mode must be one of {', '.join(PERMISSION_MODES)}")
    return value


def budget_usd(value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 1_000_000:
        raise InvalidRequest("max_budget_usd must be a positive number of US dollars (or null for no cap)")
    return float(value)


@dataclass(frozen=True)
class TurnRequest:
    content: tuple[dict[str, Any], ...]
    stream: bool
    background: bool
    queue: bool = False
    """Wait behind a running turn instead of a 409 (see ``sessions.queue``)."""

    @classmethod
    def from_json(cls, body: Any, wants_sse: bool = False) -> TurnRequest:
        body = _object(body, _TURN_FIELDS)
        if "input" not in body:
            raise InvalidRequest("input is required")
        stream, background = _reply_mode(body, wants_sse)
        queue = body.get("queue", False)
        if not isinstance(queue, bool):
            raise InvalidRequest("queue must be a boolean")
        return cls(tuple(parse_input(body["input"])), stream, background, queue)


@dataclass(frozen=True)
class InterruptRequest:
    """``POST /interrupt``: by default the running turn; ``turn_id`` names it, or a queued turn."""

    turn_id: str | None

    @classmethod
    def from_json(cls, body: Any) -> InterruptRequest:
        turn_id = _object(body, {"turn_id"}).get("turn_id")
        if turn_id is not None and (not isinstance(turn_id, str) or not turn_id):
            raise InvalidRequest("turn_id must be a non-empty string")
        return cls(turn_id)


@dataclass(frozen=True)
class ToolResultsRequest:
    results: tuple[ToolResult, ...]
    stream: bool
    background: bool

    @classmethod
    def from_json(cls, body: Any, wants_sse: bool = False) -> ToolResultsRequest:
        body = _object(body, _RESULTS_FIELDS)
        results = body.get("results")
        if not isinstance(results, list) or not results:
            raise InvalidRequest("results must be a non-empty list of {tool_call_id, content, is_error?}")
        if len(results) > MAX_RESULTS:
            raise InvalidRequest(f"at most {MAX_RESULTS} results per request", {"got": len(results)})
        stream, background = _reply_mode(body, wants_sse)
        return cls(tuple(_result(index, item) for index, item in enumerate(results)), stream, background)


@dataclass(frozen=True)
class DecisionsRequest:
    """``POST /permissions``: the client's answers to the turn's permission requests."""

    decisions: tuple[Decision, ...]
    stream: bool
    background: bool

    @classmethod
    def from_json(cls, body: Any, wants_sse: bool = False) -> DecisionsRequest:
        body = _object(body, _DECISIONS_FIELDS)
        decisions = body.get("decisions")
        if not isinstance(decisions, list) or not decisions:
            raise InvalidRequest(
                'decisions must be a non-empty list of {request_id, behavior: "allow" | "deny", '
                "message?, updated_input?, scope?}"
            )
        if len(decisions) > MAX_RESULTS:
            raise InvalidRequest(f"at most {MAX_RESULTS} decisions per request", {"got": len(decisions)})
        stream, background = _reply_mode(body, wants_sse)
        return cls(tuple(_decision(index, item) for index, item in enumerate(decisions)), stream, background)


@dataclass(frozen=True)
class CompactRequest:
    instructions: str | None

    @classmethod
    def from_json(cls, body: Any) -> CompactRequest:
        body = _object(body, {"instructions"})
        instructions = body.get("instructions")
        if instructions is not None and (not isinstance(instructions, str) or len(instructions) > 10_000):
            raise InvalidRequest("instructions must be a string of at most 10,000 characters")
        return cls(instructions.strip() or None if instructions else None)


@dataclass(frozen=True)
class ForkRequest:
    """Where ``POST /api/sessions/{id}/fork`` branches: after a turn, or after the last
    assistant message at or before an event seq; neither means after everything."""

    turn_id: str | None
    after_seq: int | None

    @classmethod
    def from_json(cls, body: Any) -> ForkRequest:
        body = _object(body, {"turn_id", "after_seq"})
        turn_id, after_seq = body.get("turn_id"), body.get("after_seq")
        if turn_id is not None and after_seq is not None:
            raise InvalidRequest("give turn_id or after_seq, not both")
        if turn_id is not None and not isinstance(turn_id, str):
            raise InvalidRequest("turn_id must be a string")
        if after_seq is not None and (not isinstance(after_seq, int) or isinstance(after_seq, bool) or after_seq < 1):
            raise InvalidRequest("after_seq must be a positive integer")
        return cls(turn_id, after_seq)


def _reply_mode(body: dict[str, Any], wants_sse: bool) -> tuple[bool, bool]:
    stream, background = body.get("stream", wants_sse), body.get("background", False)
    if not isinstance(stream, bool) or not isinstance(background, bool):
        raise InvalidRequest("stream and background must be booleans")
    if stream and background:
        raise InvalidRequest("choose one of stream and background")
    return stream, background


def _result(index: int, item: Any) -> ToolResult:
    where = f"results[{index}]"
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where} must be an object")
    unknown = sorted(set(item) - _RESULT_FIELDS)
    if unknown:
        raise InvalidRequest(f"{where} has unknown field(s): {', '.join(unknown)}")
    call_id, content, is_error = item.get("tool_call_id"), item.get("content"), item.get("is_error", False)
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}.tool_call_id must be a string")
    if not isinstance(is_error, bool):
        raise InvalidRequest(f"{where}.is_error must be a boolean")
    if isinstance(content, list):
        content = [_result_block(f"{where}.content[{n}]", block) for n, block in enumerate(content)]
    elif not isinstance(content, str):
        raise InvalidRequest(f"{where}.content must be a string or a list of text/image blocks")
    return ToolResult(call_id, content, is_error)


def _decision(index: int, item: Any) -> Decision:
    where = f"decisions[{index}]"
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where} must be an object")
    unknown = sorted(set(item) - _DECISION_FIELDS)
    if unknown:
        raise InvalidRequest(f"{where} has unknown field(s): {', '.join(unknown)}")
    request_id, behavior = item.get("request_id"), item.get("behavior")
    message, updated_input = item.get("message", ""), item.get("updated_input")
    if not isinstance(request_id, str) or not request_id:
        raise InvalidRequest(f"{where}.request_id must be a string")
    if behavior not in ("allow", "deny"):
        raise InvalidRequest(f'{where}.behavior must be "allow" or "deny"')
    if not isinstance(message, str) or len(message) > 10_000:
        raise InvalidRequest(f"{where}.message must be a string of at most 10,000 characters")
    if updated_input is not None and (behavior != "allow" or not isinstance(updated_input, dict)):
        raise InvalidRequest(f"{where}.updated_input must be an object, and only with behavior allow")
    scope = item.get("scope", "call")
    if scope not in ("call", "session") or (scope == "session" and behavior != "allow"):
        raise InvalidRequest(f'{where}.scope must be "call" or "session", and "session" only with behavior allow')
    if behavior == "deny" and not message:
        message = "the user denied this tool call"
    return Decision(request_id, behavior == "allow", message, updated_input, for_session=scope == "session")


def _result_block(where: str, block: Any) -> dict[str, Any]:
    if not isinstance(block, dict) or block.get("type") not in ("text", "image"):
        raise InvalidRequest(f"{where} must be a text block or a base64 image block")
    try:
        parsed = parse_input([block])[0]
    except InvalidRequest as exc:
        raise InvalidRequest(f"{where}: {exc.message}") from None
    if parsed["type"] == "image" and parsed["source"]["type"] != "base64":
        raise InvalidRequest(f"{where}: tool results carry images as base64, not URLs")
    return parsed


def _object(body: Any, allowed: set[str]) -> dict[str, Any]:
    """The body as a dict with only ``allowed`` keys; a missing body is ``{}``."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}", {"allowed": sorted(allowed)})
    return body


def _is_dir(path: str) -> bool:
    """Whether ``path`` names a directory; a name the OS refuses (too long, say) does not."""
    try:
        return Path(path).is_dir()
    except OSError:
        return False


def _tools(value: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list):
        raise InvalidRequest("tools must be a list of {name, description, input_schema}")
    seen: set[str] = set()
    tools = []
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise InvalidRequest(f"{where} must be an object")
        name, description, schema = tool.get("name"), tool.get("description", ""), tool.get("input_schema")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise InvalidRequest(f"{where}.name must match [A-Za-z0-9_-]{{1,64}}")
        if name in seen:
            raise InvalidRequest(f"{where}.name {name!r} is declared twice")
        if not isinstance(description, str):
            raise InvalidRequest(f"{where}.description must be a string")
        if not isinstance(schema, dict) or schema.get("type", "object") != "object":
            raise InvalidRequest(f"{where}.input_schema must be a JSON schema object with type 'object'")
        _check_schema(where, name, schema)
        seen.add(name)
        tools.append({"name": name, "description": description, "input_schema": schema})
    return tuple(tools)


def _check_schema(where: str, name: str, schema: dict[str, Any]) -> None:
    """Claude Code drops the whole tool list, silently, over one invalid schema: refuse it here.
    Checked against the draft the schema names in ``$schema``, else 2020-12 (the Messages API's)."""
    if not isinstance(schema.get("$schema", ""), str):
        raise InvalidRequest(f"{where}.input_schema.$schema of tool {name!r} must be a string", {"tool": name})
    validator = validator_for(schema, default=Draft202012Validator)
    try:
        validator.check_schema(schema)
    except SchemaError as exc:
        at = "".join(f".{part}" if isinstance(part, str) else f"[{part}]" for part in exc.path)
        raise InvalidRequest(
            f"{where}.input_schema{at} of tool {name!r} is not a valid JSON Schema: {exc.message[:300]}", {"tool": name}
        ) from None
    except RecursionError:
        raise InvalidRequest(f"{where}.input_schema of tool {name!r} is nested too deeply", {"tool": name}) from None
