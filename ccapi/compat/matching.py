"""When a replayed message is the one a session already has: what the client keeps of it.

Clients do not replay their history byte for byte. OpenClaw appends a per-request context
message it never keeps (``<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>``), rewrites tool-call ids
(``toolu_01ab…`` comes back as ``toolu01ab…``, or ``call_toolu_01ab…_fc_…`` on Responses),
and both clients re-space assistant text. One rule covers these without naming a client:
a stored message matches when the replayed one is a *reduction* of it — the same role,
user blocks and tool-result blocks a non-empty subsequence of the stored ones, assistant
text whose words are a subsequence of the stored text's (clients strip their own markup from
replies they keep), and the same tool calls under ids that contain the ids
the gateway issued. A user message may also come back as the same words in other text
blocks (OpenClaw moves a message's timestamp envelope into a block of its own), or with
another runtime metadata line (``Runtime: agent=… | session=… | …``, naming the client's own
session, which a side request run in a session of its own changes). Clients
also shorten what they keep: a tool result replayed shorter
(a cleared-result placeholder, a persisted-output stub, a head/tail cut) or an image
replaced by a short bracketed mention still stands for the stored one, since a call id's
result never changes. Each check returns why it failed, so a miss can be logged. (The
system prompt is no part of it: it is an option of each request, see ``affinity``.)

Clients also drop whole exchanges that said nothing: OpenClaw prunes a heartbeat poll whose
reply was only an acknowledgement token (``HEARTBEAT_OK``, ``NO_REPLY``) from every later
request. ``droppable`` says when a stored exchange is of that kind — a reply that is only
one of ``SILENT_REPLIES``, with no tool calls — so the history may skip it.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from typing import Any

import orjson

from ccapi.compat.conversation import Message, ToolCall
from ccapi.sessions.toolcalls import ToolResult

_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]")
_MEDIA = re.compile(r"image|picture|photo|screenshot|document|file|attachment|media", re.IGNORECASE)
#: The longest text that can stand for a replaced image or document.
_PLACEHOLDER = 300
#: The longest placeholder that stands for a cleared tool result; how much of its ends a cut one keeps.
_STUB = 2000
_SHARED_END = 64
_WHITESPACE = re.compile(r"\s+")
#: Shorter ids than this are only equal to themselves: a short id inside a rewritten one proves nothing.
_MIN_ID = 8
#: Replies that carry nothing: tokens clients declare as "no reply" (OpenClaw's heartbeat
#: acknowledgement and silent-reply tokens). An exchange answered by one alone may be dropped.
SILENT_REPLIES = frozenset({"HEARTBEAT_OK", "NO_REPLY"})
_TOKEN_WRAPPING = re.compile(r"<[^>]*>|[\s*`~.,;:!?\"'()\[\]-]+")
#: A line of runtime metadata a client stamps on a message, ``Label: key=value | key=value | key=value``
#: (OpenClaw's ``Runtime: agent=… | session=… | sessionId=…``, which names the client's own session).
_RUNTIME_LINE = re.compile(
    r"^[^\S\n]*[A-Za-z][\w -]{0,40}:[^\S\n]*(?:[\w.-]+=[^|\n]*\|[^\S\n]*){2,}[\w.-]+=[^|\n]*$", re.M
)


def droppable(request: Message, reply: Message) -> bool:
    """``request`` and its ``reply`` are an exchange a client may leave out of its history:
    the reply is one of ``SILENT_REPLIES`` alone (markup, punctuation and repeats aside)
    and calls no tool, so Claude holding it changes nothing the client sees."""
    if request.role != "user" or reply.role != "assistant" or reply.tool_calls:
        return False
    words = {word.strip("_").upper() for word in _TOKEN_WRAPPING.split(reply.text) if word.strip("_")}
    return bool(words) and words <= SILENT_REPLIES


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
        same = _same_user(stored.content, replayed.content) or _same_user(
            _without_runtime(stored.content), _without_runtime(replayed.content)
        )
        return None if same else "the user message differs"
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
    if not _reduced(stored.text, replayed.text) and (replayed.text.strip() or not stored.tool_calls):
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
    """A tool ran once per call id, so a result that is shorter than the stored one is the
    client's trimmed or placeholder form of it (a cleared result, a persisted-output stub,
    a head/tail cut, a replaced image), never another result."""
    if not same_call(stored.tool_call_id, replayed.tool_call_id):
        return f"tool result for {replayed.tool_call_id!r} where the session has {stored.tool_call_id!r}"
    if _cut(_text(stored.content), _text(replayed.content)):
        return None
    if stored.is_error != replayed.is_error or not _kept(_blocks(stored.content), _blocks(replayed.content)):
        return f"tool result {stored.tool_call_id!r} differs"
    return None


def _cut(stored: str, replayed: str) -> bool:
    """``replayed`` is shorter than ``stored`` and stands for it: a bracketed or tagged
    placeholder, or the stored text with its middle (or one end) cut out."""
    replayed = replayed.strip()
    if len(replayed) >= len(stored):
        return False
    if len(replayed) <= _STUB and replayed[:1] in "[<" and replayed[-1:] in "]>":
        return True
    head = len(os.path.commonprefix([stored, replayed]))  # noqa: RUF071 - text, compared character by character
    tail = len(os.path.commonprefix([stored[::-1], replayed[::-1]]))  # noqa: RUF071 - as above
    return head + tail >= min(_SHARED_END, len(stored) // 2)


def _reduced(stored: str, replayed: str) -> bool:
    """``replayed`` is ``stored`` with words left out and spacing changed: what a client keeps
    of a reply once it strips its own markup from it (reply directives, context markers)."""
    kept, whole = _squash(replayed), _squash(stored)
    words = iter(whole.split(" "))
    return kept == whole or (bool(kept) and all(word in words for word in kept.split(" ")))


def _text(content: str | list[dict[str, Any]]) -> str:
    return "\n".join(block.get("text", f"[{block.get('type')}]") for block in _blocks(content))


def _same_user(stored: tuple[dict[str, Any], ...], replayed: tuple[dict[str, Any], ...]) -> bool:
    return _kept(stored, replayed) or _same_words(stored, replayed)


def _without_runtime(blocks: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
    """The blocks without their runtime metadata lines: a side request the client runs in a session of
    its own (OpenClaw's memory flush) replays the first message with that session's line."""
    return tuple(
        {**block, "text": _RUNTIME_LINE.sub("", block["text"]).strip()} if block.get("type") == "text" else block
        for block in blocks
    )


def _kept(stored: tuple[dict[str, Any], ...], replayed: tuple[dict[str, Any], ...]) -> bool:
    """``replayed`` is a non-empty subsequence of ``stored`` (blocks compared by content; a
    short bracketed text naming an image or document stands for one that was replaced)."""
    remaining = iter(stored)
    return bool(replayed) and all(any(_same_block(old, new) for old in remaining) for new in replayed)


def _same_words(stored: tuple[dict[str, Any], ...], replayed: tuple[dict[str, Any], ...]) -> bool:
    """``replayed`` says what ``stored`` says, or what it keeps of it, in other text blocks:
    its words are those of the stored text blocks less some whole blocks it does not keep
    (a context block), split into other blocks or in another order (OpenClaw re-sends a
    message with its timestamp envelope as a block of its own, moved); its other blocks are
    the stored ones in the same order."""
    if _others(replayed) != _others(stored):
        return False
    said = Counter(_words(replayed))
    left = Counter(_words(stored)) - said
    if not said or sum(said.values()) + left.total() != len(_words(stored)):
        return False  # a word the stored message does not have
    for block in stored:
        words = Counter(_words((block,)))
        if words and words <= left:
            left -= words
    return not left


def _words(blocks: tuple[dict[str, Any], ...]) -> list[str]:
    return [word for block in blocks if block.get("type") == "text" for word in block.get("text", "").split()]


def _others(blocks: tuple[dict[str, Any], ...]) -> list[bytes]:
    return [_key(block) for block in blocks if block.get("type") != "text"]


def _same_block(stored: dict[str, Any], replayed: dict[str, Any]) -> bool:
    if stored.get("type") in ("image", "document") and replayed.get("type") == "text":
        text = replayed.get("text", "").strip()
        return len(text) <= _PLACEHOLDER and text[:1] in "[<(" and _MEDIA.search(text) is not None
    return _key(stored) == _key(replayed)


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
