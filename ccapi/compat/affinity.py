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

A system prompt that differs from the head's in a few lines only (a date, a runtime line)
is the same conversation; the router tells Claude the new lines with the next turn.

The router keeps every head in the store too (``head_json``), so a restarted gateway, or
another host on the same database, continues a conversation warm.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from ccapi.compat.conversation import Conversation, Message, ToolCall
from ccapi.compat.matching import droppable, mismatch, system_change
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
    history but the last reply is in the request, yet the request does not go on from them.
    ``system_note``: the system prompt lines that changed since the head's; ``match``: how
    the request lines up with the head (what is new starts at ``match.replayed``)."""

    head: Head | None
    miss: str | None = None
    passed: tuple[str, ...] = field(default_factory=tuple)
    fork: Fork | None = None
    system_note: tuple[str, ...] = ()
    match: Match | None = None


def conversation_key(conversation: Conversation) -> str:
    """What must be equal for two requests to be one conversation: the model and the tools."""
    return hashlib.sha256(
        orjson.dumps({"model": conversation.model, "tools": list(conversation.tools)}, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()


class AffinityIndex:
    def __init__(self, capacity: int = MAX_HEADS) -> None:
        self._capacity = capacity
        self._heads: OrderedDict[str, Head] = OrderedDict()
        self._by_key: defaultdict[str, set[str]] = defaultdict(set)

    def lookup(self, conversation: Conversation, affinity: str | None = None) -> Lookup:
        """The head whose history is the longest proper prefix of the conversation (at
        least one new message left); failing that, the head to branch that keeps most.
        With a client key, only heads of that key (or of none) qualify, those of the key first."""
        messages = conversation.messages
        candidates: list[tuple[Head, tuple[str, ...]]] = []
        for sid in self._by_key.get(conversation_key(conversation), ()):
            head = self._heads[sid]
            if affinity is not None and head.affinity not in (None, affinity):
                continue
            note = system_change(head.system, conversation.system)
            if note is not None:
                candidates.append((head, note))
        if not candidates:
            return Lookup(None, "no session holds a conversation with this model, system prompt and tools")
        best: tuple[Head, tuple[str, ...], Match] | None = None
        fork: Fork | None = None
        nearest, why = -1, ""
        reached: list[Head] = []
        for head, note in candidates:
            match = head.shared(messages)
            if match.stored >= head.consumed - 1:
                reached.append(head)
            if match.whole(head, messages):
                if best is None or (head.affinity == affinity, head.consumed) > (
                    best[0].affinity == affinity,
                    best[0].consumed,
                ):
                    best = (head, note, match)
                continue
            keep = match.fork_at(messages)
            if keep and (fork is None or keep > fork.keep):
                fork = Fork(head, keep, match.marks[:keep])
            if match.replayed > nearest:
                nearest = match.replayed
                why = match.why or "the request repeats the session's history without a new message"
        passed = tuple(h.session_id for h in reached if best is None or h is not best[0])
        if best is not None:
            return Lookup(best[0], passed=passed, system_note=best[1], match=best[2])
        return Lookup(
            None, f"{len(candidates)} session(s) share the header; the nearest diverges at {why}", passed, fork
        )

    def head_of(self, session_id: str) -> Head | None:
        return self._heads.get(session_id)

    def claim(self, head: Head) -> None:
        """Take a head out while its session is being fed, so a concurrent request with
        the same history cannot feed the same session twice."""
        self.forget(head.session_id)

    def advance(self, head: Head) -> None:
        self.forget(head.session_id)
        self._heads[head.session_id] = head
        self._by_key[head.key].add(head.session_id)
        while len(self._heads) > self._capacity:
            self.forget(next(iter(self._heads)))

    def restore(self, head: Head) -> None:
        """Put back a claimed head whose request failed before feeding anything."""
        if head.session_id not in self._heads:
            self.advance(head)

    def forget(self, session_id: str) -> None:
        head = self._heads.pop(session_id, None)
        if head is not None:
            sessions = self._by_key[head.key]
            sessions.discard(session_id)
            if not sessions:
                del self._by_key[head.key]
