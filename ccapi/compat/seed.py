"""Seeding a new session with history it never saw.

When a compat request matches no live session (first contact, an edited history, a
gateway restart), a fresh session starts and its first turn carries the earlier history
as one ``<conversation_history>`` text block, followed by the newest user input as real
content blocks. Claude reads the transcript as context, and from then on the session is
warm: later requests feed it only what is new. The system prompt stays the client's own,
unchanged, so the session's header fingerprint matches the client's next request.
"""

from __future__ import annotations

from typing import Any

import orjson

from ccapi.compat.conversation import Message, answer_text

_PREAMBLE = (
    "The conversation so far took place before this session started. Read it as context and "
    "continue it as the assistant; the newest input follows the history."
)
_AFTER_RESULTS = "Continue from the tool results at the end of the history above."


def seed_input(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """The first turn's input for a session that starts at the end of ``messages``.

    A conversation of one user message needs no transcript; otherwise the history before
    the newest user message becomes the transcript block (all of it when the conversation
    ends in tool results, whose calls this session never made)."""
    last = messages[-1]
    if not flattens(messages):
        return list(last.content)
    if last.role == "user":
        return [{"type": "text", "text": transcript(messages[:-1])}, *last.content]
    return [{"type": "text", "text": transcript(messages) + "\n\n" + _AFTER_RESULTS}]


def flattens(messages: tuple[Message, ...]) -> bool:
    """Whether ``seed_input`` writes earlier history into a text block (all but a lone user message)."""
    return len(messages) > 1 or messages[-1].role != "user"


def transcript(messages: tuple[Message, ...]) -> str:
    lines = ["<conversation_history>", _PREAMBLE]
    for message in messages:
        if message.role == "user":
            body = "\n".join(
                block["text"] if block["type"] == "text" else f"[{block['type']}]" for block in message.content
            )
            lines.append(f"<user>\n{body}\n</user>")
        elif message.role == "assistant":
            calls = [
                f"[called tool {call.name} with {orjson.dumps(call.input).decode()} (call id {call.id})]"
                for call in message.tool_calls
            ]
            body = "\n".join(part for part in (message.text.strip(), *calls) if part)
            lines.append(f"<assistant>\n{body}\n</assistant>")
        else:
            lines.extend(
                f'<tool_result call_id="{answer.tool_call_id}"{" is_error" if answer.is_error else ""}>\n'
                f"{answer_text(answer.content)}\n</tool_result>"
                for answer in message.answers
            )
    lines.append("</conversation_history>")
    return "\n".join(lines)
