"""Seeding a new session with history it never saw, as messages.

When a compat request's history is held by no session (first contact, a history the
client's own compaction rewrote, a gateway that lost its store), or goes on past the point
a session is branched at, the messages the session lacks are written into its Claude Code
transcript as they are — user turns, assistant turns with their tool calls, tool results,
images — and the session's first turn is only the newest user input. Claude Code resumes
that transcript, so the model sees what a plain provider would show it, and from then on
the session is warm. A history that ends in tool results has no new user input: the turn
continues from those results (Claude Code re-runs the turn its transcript ends in).

Anthropic's rules for a transcript are kept: every tool call is answered in the next
message and every result follows its call, under ids of the allowed characters. A call the
client's history never answered gets an error result saying so; a result whose call is not
in the history has nothing to pair with, so it becomes text — the one corner that still
flattens, logged as ``compat.flattened``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from ccapi.compat.conversation import Message, answer_text
from ccapi.sessions import History

_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")
_UNANSWERED = "(no result for this call is in the conversation)"


@dataclass(frozen=True)
class Seed:
    """What a new session starts from: ``history`` (``None``: nothing before the turn),
    the first turn's ``input`` (empty: continue from the tool results the history ends
    in), and for each of the seeded messages the uuid of its transcript entry when it is a
    point to branch at (a reply without tool calls), else ``None``."""

    history: History | None
    input: tuple[dict[str, Any], ...]
    points: tuple[str | None, ...]
    flattened: tuple[str, ...] = ()
    """The client's ids of tool results that had to become text (see the module docstring)."""


def seed(messages: tuple[Message, ...]) -> Seed:
    """The seed of a session that starts at the end of ``messages``."""
    last = messages[-1]
    body, new = (messages[:-1], last.content) if last.role == "user" else (messages, ())
    native: list[dict[str, Any]] = []
    points: list[str | None] = []
    flattened: list[str] = []
    for message in body:
        if message.role == "assistant":
            native.append({"role": "assistant", "content": _assistant(message)})
            points.append(None if message.tool_calls else str(uuid.uuid4()))
            continue
        calls = _calls(native[-1]) if native else []
        content = _answers(message, calls, flattened) if message.role == "tool" else list(message.content)
        answered = {b["tool_use_id"] for b in content if b.get("type") == "tool_result"}
        missing = [c for c in calls if c not in answered]
        if missing:
            content = [*_unanswered(missing), *content]
        native.append({"role": "user", "content": content})
        points.append(None)
    if not native:
        return Seed(None, tuple(new), ())
    uuids = tuple(point or str(uuid.uuid4()) for point in points)
    return Seed(History(tuple(native), uuids), tuple(new), tuple(points), tuple(flattened))


def _assistant(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": message.text}] if message.text.strip() else []
    blocks += [
        {"type": "tool_use", "id": native_id(call.id), "name": call.name, "input": call.input}
        for call in message.tool_calls
    ]
    return blocks or [{"type": "text", "text": "(no content)"}]


def _calls(message: dict[str, Any]) -> list[str]:
    """The ids of the tool calls a native message makes (none for a user message)."""
    if message["role"] != "assistant":
        return []
    return [block["id"] for block in message["content"] if block["type"] == "tool_use"]


def _answers(message: Message, calls: list[str], flattened: list[str]) -> list[dict[str, Any]]:
    """A tool message as ``tool_result`` blocks for the calls it answers, each once; any
    other result as text."""
    blocks: list[dict[str, Any]] = []
    open_calls = set(calls)
    for answer in message.answers:
        call_id = native_id(answer.tool_call_id)
        if call_id in open_calls:
            open_calls.discard(call_id)
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id, "content": answer.content}
            if answer.is_error:
                block["is_error"] = True
            blocks.append(block)
        else:
            flattened.append(answer.tool_call_id)
            blocks.append(
                {
                    "type": "text",
                    "text": f"[result of tool call {answer.tool_call_id}]\n{answer_text(answer.content)}",
                }
            )
    return blocks


def _unanswered(calls: list[str]) -> list[dict[str, Any]]:
    return [{"type": "tool_result", "tool_use_id": c, "content": _UNANSWERED, "is_error": True} for c in calls]


def native_id(call_id: str) -> str:
    """A client's tool-call id in the characters Anthropic allows (``[A-Za-z0-9_-]``)."""
    return _NOT_ID.sub("_", call_id) or "call"
