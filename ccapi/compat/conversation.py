"""One canonical conversation shape for the three wire formats.

OpenAI Chat, OpenAI Responses and Anthropic Messages each spell a transcript their own
way; each format module parses its request into a :class:`Conversation`, so session
affinity, fingerprints and seeding are written once. The canonical form keeps only what
decides the conversation (roles, text, content blocks, tool calls and results) and
normalises what clients re-encode freely (JSON key order of tool arguments, runs of
same-role messages); ``matching`` decides when a replayed message is a stored one.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson

from ccapi.sessions.toolcalls import ToolResult

Role = Literal["user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """A client tool call the assistant made: the native ``tool_call_id``, name and input."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Message:
    """One canonical message. ``user`` carries native input blocks (text/image/document),
    ``assistant`` text and tool calls, ``tool`` the answers to earlier calls."""

    role: Role
    content: tuple[dict[str, Any], ...] = ()
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    answers: tuple[ToolResult, ...] = ()


@dataclass(frozen=True)
class Conversation:
    """What a compat request says: the session-level header (model, system prompt, client
    tools, the schema the reply must match) and the full message list, normalised."""

    model: str
    system: str | None
    tools: tuple[dict[str, Any], ...]
    messages: tuple[Message, ...]
    output_schema: dict[str, Any] | None = None
    """The JSON schema the reply's text must match (structured output, see ``structured``); ``None``: free text."""

    @functools.cached_property
    def tools_key(self) -> str:
        """The fingerprint of the client tools, computed once: the affinity index compares it
        with every session's."""
        return hashlib.sha256(orjson.dumps(list(self.tools), option=orjson.OPT_SORT_KEYS)).hexdigest()

    @functools.cached_property
    def output_key(self) -> str:
        """The fingerprint of the output schema (empty for free text), as the index keeps it."""
        if self.output_schema is None:
            return ""
        return hashlib.sha256(orjson.dumps(self.output_schema, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def header(self) -> bytes:
        return orjson.dumps(
            {"model": self.model, "system": self.system, "tools": list(self.tools), "output": self.output_schema},
            option=orjson.OPT_SORT_KEYS,
        )


def normalise(messages: list[Message]) -> tuple[Message, ...]:
    """Merge runs that the formats split differently: adjacent user messages, adjacent
    tool messages, adjacent assistant messages (Responses echoes a reply's text and each of
    its function calls as separate items), and user text right after tool results
    (Anthropic puts both in one user turn; it reaches Claude appended to the last result,
    as in one native turn)."""
    merged: list[Message] = []
    for message in messages:
        previous = merged[-1] if merged else None
        if previous is not None and previous.role == message.role == "user":
            merged[-1] = replace(previous, content=previous.content + message.content)
        elif previous is not None and previous.role == message.role == "assistant":
            merged[-1] = replace(
                previous,
                text="\n\n".join(t for t in (previous.text, message.text) if t),
                tool_calls=previous.tool_calls + message.tool_calls,
            )
        elif previous is not None and previous.role == message.role == "tool":
            merged[-1] = replace(previous, answers=previous.answers + message.answers)
        elif previous is not None and previous.role == "tool" and message.role == "user":
            merged[-1] = replace(
                previous, answers=(*previous.answers[:-1], _append(previous.answers[-1], message.content))
            )
        else:
            merged.append(message)
    return tuple(merged)


def _append(answer: ToolResult, blocks: tuple[dict[str, Any], ...]) -> ToolResult:
    content = answer.content
    base = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    extra = [
        block if block["type"] in ("text", "image") else {"type": "text", "text": "[document]"} for block in blocks
    ]
    return replace(answer, content=base + extra)


def answer_text(content: str | list[dict[str, Any]]) -> str:
    """A tool answer as plain text (images become ``[image]``), for transcripts."""
    if isinstance(content, str):
        return content
    return "\n".join(block.get("text", "") if block["type"] == "text" else f"[{block['type']}]" for block in content)
