"""When a replayed message is the one a session already has: what the client keeps of it.

Clients do not replay their history byte for byte. OpenClaw appends a per-request context
message it never keeps (``<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>``), rewrites tool-call ids
(``toolu_01ab…`` comes back as ``toolu01ab…``, or ``call_toolu_01ab…_fc_…`` on Responses),
and both clients re-space assistant text. One rule covers these without naming a client:
a stored message matches when the replayed one is a *reduction* of it — the same role,
user blocks and tool-result blocks a non-empty subsequence of the stored ones, the same
assistant text up to whitespace, and the same tool calls under ids that contain the ids
the gateway issued. Each check returns why it failed, so a miss can be logged.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ccapi.compat.conversation import Message, ToolCall
from ccapi.sessions.toolcalls import ToolResult

_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]")
_WHITESPACE = re.compile(r"\s+")
#: Shorter ids than this are only equal to themselves: a short id inside a rewritten one proves nothing.
_MIN_ID = 8


def same_call(issued: str, replayed: str) -> bool:
    """``replayed`` is the id ``issued`` as a client rewrote it: equal, or containing it once
    every non-alphanumeric character is stripped from both."""
    if issued == replayed:
        return True
    core = _NOT_ALNUM.sub("", issued)
    return len(core) >= _MIN_ID and core in _NOT_ALNUM.sub("", replayed)


def mismatch(stored: Message, replayed: Message) -> str | None:
    """Why ``replayed`` is not what the client keeps of ``stored``; ``None`` when it is."""
    if stored.role != replayed.role:
        return f"a {replayed.role} message where the session has a {stored.role} message"
    if stored.role == "user":
        return None if _kept(stored.content, replayed.content) else "the user message differs"
    if stored.role == "assistant":
        return _assistant(stored, replayed)
    if len(stored.answers) != len(replayed.answers):
        return "a different number of tool results"
    for old, new in zip(stored.answers, replayed.answers, strict=True):
        why = _answer(old, new)
        if why:
            return why
    return None


def _assistant(stored: Message, replayed: Message) -> str | None:
    if _squash(replayed.text) != _squash(stored.text) and (replayed.text.strip() or not stored.tool_calls):
        return "the assistant text differs"
    if len(stored.tool_calls) != len(replayed.tool_calls):
        return "a different number of tool calls"
    for old, new in zip(stored.tool_calls, replayed.tool_calls, strict=True):
        why = _call(old, new)
        if why:
            return why
    return None


def _call(stored: ToolCall, replayed: ToolCall) -> str | None:
    if not same_call(stored.id, replayed.id):
        return f"tool call id {replayed.id!r} is not {stored.id!r}"
    if stored.name != replayed.name or stored.input != replayed.input:
        return f"tool call {stored.id!r} has another name or input"
    return None


def _answer(stored: ToolResult, replayed: ToolResult) -> str | None:
    if not same_call(stored.tool_call_id, replayed.tool_call_id):
        return f"tool result for {replayed.tool_call_id!r} where the session has {stored.tool_call_id!r}"
    if stored.is_error != replayed.is_error or not _kept(_blocks(stored.content), _blocks(replayed.content)):
        return f"tool result {stored.tool_call_id!r} differs"
    return None


def _kept(stored: tuple[dict[str, Any], ...], replayed: tuple[dict[str, Any], ...]) -> bool:
    """``replayed`` is a non-empty subsequence of ``stored`` (blocks compared by content)."""
    keys = iter([_key(block) for block in stored])
    wanted = [_key(block) for block in replayed]
    return bool(wanted) and all(key in keys for key in wanted)


def _key(block: dict[str, Any]) -> bytes:
    if block.get("type") == "text":
        return b"text:" + _squash(block.get("text", "")).encode()
    return orjson.dumps(block, option=orjson.OPT_SORT_KEYS)


def _blocks(content: str | list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    return ({"type": "text", "text": content},) if isinstance(content, str) else tuple(content)


def _squash(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def native_answers(answers: tuple[ToolResult, ...], waiting: set[str]) -> list[ToolResult] | None:
    """The client's tool results under the ids the session issued, when they answer exactly
    the calls it waits for (each once); ``None`` otherwise."""
    native: list[ToolResult] = []
    for answer in answers:
        ids = [issued for issued in waiting if same_call(issued, answer.tool_call_id)]
        if len(ids) != 1:
            return None
        native.append(ToolResult(ids[0], answer.content, answer.is_error))
    return native if sorted(a.tool_call_id for a in native) == sorted(waiting) else None
