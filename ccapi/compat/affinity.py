"""Which session already holds a conversation: the affinity index.

Each session that served a compat request has one *head*: the conversation it now holds
(its model and client tools, the system prompt Claude knows, every message it has seen,
its own reply included) and, for each reply that ended a turn, the SDK message it is — a
point the conversation can be branched at (a *mark*). A request is that conversation,
grown, when its header is the head's and its first messages are what the client keeps of
the head's (see ``matching``): only the messages after the head are new. An exchange of the
head that said nothing (a reply that is only an acknowledgement token, see
``matching.droppable``) may be missing from the request: clients prune those, and Claude
holding one changes nothing, so it is skipped rather than branched around.

A request that shares only part of a head (an edited or regenerated message, a side
request that went into the session first) is served by *forking* the session at the last
mark they share: a new session holds the conversation up to there, and only what follows
is sent. The old session keeps its own line. Marks stay valid while the session exists,
so every turn end of a head is a point to branch at, not only the newest.

The history is the conversation: the system prompt, the tool set and the model are options
of each request, not part of what identifies it. Any head may hold a request's history; the
router applies the request's options (see ``router``). Of heads that hold it equally, the one
the request replays most goes first (a heartbeat's branch holds the line plus the poll the
request prunes, yet the line goes on in the line), then the line rather than a side branch,
then those with the request's own options.

The router keeps every head in the store too (``head_json``), so a restarted gateway, or
another host on the same database, continues a conversation warm.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from ccapi.compat.conversation import Conversation, Message, ToolCall
from ccapi.compat.matching import droppable, mismatch
from ccapi.sessions import ForkPoint
from ccapi.sessions.toolcalls import ToolResult

#: Heads kept at most; the least recently used conversation is forgotten first.
MAX_HEADS = 10_000


@dataclass(frozen=True)
class Head:
    session_id: str
    key: str
    system: str | None
    messages: tuple[Message, ...]
    marks: tuple[ForkPoint | None, ...]
    affinity: str | None = None
    """The client's own key for the conversation, when it sent one."""
    model: str = ""
    tools: str = ""
    """The fingerprint of the client tools the session runs with (``Conversation.tools_key``)."""
    output: str = ""
    """The fingerprint of the output schema the session runs with (``Conversation.output_key``)."""

    @property
    def consumed(self) -> int:
        """How many canonical messages of the conversation the session has seen."""
        return len(self.messages)

    def shared(self, messages: tuple[Message, ...]) -> Match:
        """How far ``messages`` goes along this head, and why not further. A stored exchange
        the request leaves out is skipped when it said nothing (see ``matching.droppable``):
        Claude keeps it, and the client loses nothing by not replaying it."""
        stored = replayed = 0
        marks: list[ForkPoint | None] = []
        why: str | None = None
        while stored < len(self.messages):
            if replayed >= len(messages):
                why = "the request ends before the session's history does"
                break
            why = mismatch(self.messages[stored], messages[replayed])
            if why is None:
                marks.append(self.marks[stored])
                stored, replayed = stored + 1, replayed + 1
            elif stored + 1 < len(self.messages) and droppable(self.messages[stored], self.messages[stored + 1]):
                stored += 2
            else:
                why = f"message {replayed}: {why}"
                break
        return Match(stored, replayed, tuple(marks), why)


@dataclass(frozen=True)
class Match:
    """How a request lines up with a head: ``stored`` of the head's messages are in it (or
    were skipped as droppable), as its first ``replayed`` messages; ``marks`` are those
    messages' marks; ``why`` the request goes no further."""

    stored: int
    replayed: int
    marks: tuple[ForkPoint | None, ...]
    why: str | None

    def whole(self, head: Head, messages: tuple[Message, ...]) -> bool:
        """The request holds all of ``head`` and goes on with at least one new message."""
        return self.stored == head.consumed and self.replayed < len(messages)

    def fork_at(self, messages: tuple[Message, ...]) -> int:
        """How many of the request's messages a branch at the last mark they share keeps
        (0: no mark to branch at); the request must go on with a user message."""
        for index in range(self.replayed - 1, -1, -1):
            if self.marks[index] is not None and index + 1 < len(messages) and messages[index + 1].role == "user":
                return index + 1
        return 0


def head_json(head: Head) -> dict[str, Any]:
    return {
        "session_id": head.session_id,
        "key": head.key,
        "system": head.system,
        "affinity": head.affinity,
        "model": head.model,
        "tools": head.tools,
        "output": head.output,
        "messages": [asdict(message) for message in head.messages],
        "marks": [asdict(mark) if mark else None for mark in head.marks],
    }


def head_from_json(data: dict[str, Any]) -> Head:
    messages = tuple(
        Message(
            m["role"],
            tuple(m["content"]),
            m["text"],
            tuple(ToolCall(**call) for call in m["tool_calls"]),
            tuple(ToolResult(**answer) for answer in m["answers"]),
        )
        for m in data["messages"]
    )
    return Head(
        data["session_id"],
        data["key"],
        data["system"],
        messages,
        tuple(ForkPoint(**mark) if mark else None for mark in data["marks"]),
        data["affinity"],
        data.get("model", ""),
        data.get("tools", ""),
        data.get("output", ""),
    )


@dataclass(frozen=True)
class Fork:
    """Branch ``source`` after the request's first ``keep`` messages (``marks``: theirs; the
    last one's ends them)."""

    source: Head
    keep: int
    marks: tuple[ForkPoint | None, ...]

    @property
    def point(self) -> ForkPoint:
        mark = self.marks[self.keep - 1]
        assert mark is not None
        return mark


@dataclass(frozen=True)
class Lookup:
    """What the index knows about a request: the head it continues (if any), else the head
    to branch and why it continues none, and the sessions it has left behind — their whole
    history but the last reply is in the request, yet the request does not go on from them
    (or the request shares their opening, has their options — it is the same line, not a
    side request — and goes another way: a client's compaction dropped what follows); a head
    the request goes on from whole is never left.
    ``match``: how the request lines up with the head (what is new starts at ``match.replayed``)."""

    head: Head | None
    miss: str | None = None
    passed: tuple[str, ...] = field(default_factory=tuple)
    fork: Fork | None = None
    match: Match | None = None


def conversation_key(conversation: Conversation) -> str:
    """Which heads the store hands back together when one host looks for another's: those of
    the model. (It does not decide the conversation: the history does.)"""
    return hashlib.sha256(orjson.dumps({"model": conversation.model})).hexdigest()


def same_options(head: Head, conversation: Conversation) -> bool:
    return (head.model, head.tools, head.system, head.output) == (
        conversation.model,
        conversation.tools_key,
        conversation.system,
        conversation.output_key,
    )


#: How many opening messages a request with a head's options must share with it to be the
#: same line going another way (a user message and its reply).
_SHARED_OPENING = 2


def side(head: Head, conversation: Conversation) -> bool:
    """The request is a side request over ``head``'s history: another system prompt *and*
    other tools (OpenClaw's memory flush and heartbeat poll). Either alone is the line going
    on with new options (a date line, a dropped prompt section, a tool added)."""
    return bool(head.tools) and head.tools != conversation.tools_key and head.system != conversation.system


def _rank(
    head: Head, match: Match, conversation: Conversation, affinity: str | None
) -> tuple[bool, int, bool, int, bool]:
    """Of heads a request continues: the client's key first, then the one it replays most,
    then the line rather than a side branch (a heartbeat's branch ends with the poll the
    request skips as droppable, so it holds more but is not where the line goes on), then
    the longest, then the request's own options."""
    return (
        head.affinity == affinity,
        match.replayed,
        not side(head, conversation),
        head.consumed,
        same_options(head, conversation),
    )


class AffinityIndex:
    def __init__(self, capacity: int = MAX_HEADS) -> None:
        self._capacity = capacity
        self._heads: OrderedDict[str, Head] = OrderedDict()

    def lookup(self, conversation: Conversation, affinity: str | None = None) -> Lookup:
        """The head whose history is the longest proper prefix of the conversation (at
        least one new message left), those with the request's options first; failing that,
        the head to branch that keeps most. With a client key, only heads of that key (or
        of none) qualify, those of the key first."""
        messages = conversation.messages
        candidates = [h for h in self._heads.values() if affinity is None or h.affinity in (None, affinity)]
        if not candidates:
            return Lookup(None, "no session holds this conversation")
        best: tuple[Head, Match] | None = None
        fork: Fork | None = None
        nearest, why = -1, ""
        reached: list[Head] = []
        for head in candidates:
            match = head.shared(messages)
            whole = match.whole(head, messages)  # the request goes on from all of it: not left
            if not whole and (
                match.stored >= head.consumed - 1
                or (match.replayed >= _SHARED_OPENING and same_options(head, conversation))
            ):
                reached.append(head)
            if whole:
                if best is None or _rank(head, match, conversation, affinity) > _rank(*best, conversation, affinity):
                    best = (head, match)
                continue
            keep = match.fork_at(messages)
            if keep and (fork is None or keep > fork.keep):
                fork = Fork(head, keep, match.marks[:keep])
            if match.replayed > nearest:
                nearest = match.replayed
                why = match.why or "the request repeats the session's history without a new message"
        passed = tuple(h.session_id for h in reached if best is None or h is not best[0])
        if best is not None:
            return Lookup(best[0], passed=passed, match=best[1])
        return Lookup(None, f"{len(candidates)} session(s) considered; the nearest diverges at {why}", passed, fork)

    def replaced(self, conversation: Conversation, affinity: str | None) -> tuple[str, ...]:
        """The sessions a seeded new session replaces: a history no session holds,
        more than one message long, is the client's rewrite (its compaction rewrote the opening)
        of the line it was on — the heads of its conversation key, or, when it sent none, of its
        model and tool set (the same agent)."""
        if affinity is not None:
            return tuple(h.session_id for h in self._heads.values() if h.affinity == affinity)
        agent = (conversation.model, conversation.tools_key)
        return tuple(
            h.session_id for h in self._heads.values() if h.tools and (h.model, h.tools) == agent and h.affinity is None
        )

    def head_of(self, session_id: str) -> Head | None:
        return self._heads.get(session_id)

    def advance(self, head: Head) -> None:
        self.forget(head.session_id)
        self._heads[head.session_id] = head
        while len(self._heads) > self._capacity:
            self.forget(next(iter(self._heads)))

    def forget(self, session_id: str) -> None:
        self._heads.pop(session_id, None)
