"""Which live session already holds a conversation: the affinity index.

Each session that served a compat request has one *head*: the conversation it now holds
(its header — model, system prompt, client tools — and every message it has seen, its own
reply included). A request is that conversation, grown, when its header is the head's and
its first messages are what the client keeps of the head's (see ``matching``): only the
messages after the head are new.

Only heads are kept. When a session moves on, its older state is dropped, so a client
that edits or regenerates history no longer matches it and gets a fresh session, instead
of pushing a different past into a session that remembers another.

The index lives in this process's memory and does not survive a restart: after one, the
next request of each conversation starts a fresh session seeded with the history (one
extra, larger turn), and affinity resumes from there.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field

from ccapi.compat.conversation import Conversation, Message
from ccapi.compat.matching import mismatch

#: Heads kept at most; the least recently used conversation is forgotten first.
MAX_HEADS = 10_000


@dataclass(frozen=True)
class Head:
    session_id: str
    header: str
    messages: tuple[Message, ...]

    @property
    def consumed(self) -> int:
        """How many canonical messages of the conversation the session has seen."""
        return len(self.messages)

    def shared(self, messages: tuple[Message, ...]) -> tuple[int, str | None]:
        """How many of this head's messages ``messages`` starts with, and why the next one is not."""
        for index, stored in enumerate(self.messages):
            if index >= len(messages):
                return index, "the request ends before the session's history does"
            why = mismatch(stored, messages[index])
            if why:
                return index, f"message {index}: {why}"
        return len(self.messages), None


@dataclass(frozen=True)
class Lookup:
    """What the index knows about a request: the head it continues (if any), why it
    continues none, and the sessions it has left behind — their whole history but the last
    reply is in the request, yet the request does not go on from them."""

    head: Head | None
    miss: str | None = None
    passed: tuple[str, ...] = field(default_factory=tuple)


def header_key(conversation: Conversation) -> str:
    return hashlib.sha256(conversation.header()).hexdigest()


class AffinityIndex:
    def __init__(self, capacity: int = MAX_HEADS) -> None:
        self._capacity = capacity
        self._heads: OrderedDict[str, Head] = OrderedDict()
        self._by_header: defaultdict[str, set[str]] = defaultdict(set)

    def lookup(self, conversation: Conversation) -> Lookup:
        """The head whose history is the longest proper prefix of the conversation (at
        least one new message left)."""
        messages = conversation.messages
        candidates = [self._heads[sid] for sid in self._by_header.get(header_key(conversation), ())]
        if not candidates:
            return Lookup(None, "no session holds a conversation with this model, system prompt and tools")
        best: Head | None = None
        nearest, why = -1, ""
        reached: list[Head] = []
        for head in candidates:
            shared, reason = head.shared(messages)
            if shared >= head.consumed - 1:
                reached.append(head)
            if shared == head.consumed < len(messages):
                if best is None or head.consumed > best.consumed:
                    best = head
            elif shared > nearest:
                nearest, why = shared, reason or "the request repeats the session's history without a new message"
        passed = tuple(h.session_id for h in reached if h is not best)
        if best is not None:
            return Lookup(best, passed=passed)
        return Lookup(None, f"{len(candidates)} session(s) share the header; the nearest diverges at {why}", passed)

    def head_of(self, session_id: str) -> Head | None:
        return self._heads.get(session_id)

    def claim(self, head: Head) -> None:
        """Take a head out while its session is being fed, so a concurrent request with
        the same history cannot feed the same session twice."""
        self.forget(head.session_id)

    def advance(self, session_id: str, header: str, messages: tuple[Message, ...]) -> None:
        self.forget(session_id)
        self._heads[session_id] = Head(session_id, header, messages)
        self._by_header[header].add(session_id)
        while len(self._heads) > self._capacity:
            self.forget(next(iter(self._heads)))

    def restore(self, head: Head) -> None:
        """Put back a claimed head whose request failed before feeding anything."""
        if head.session_id not in self._heads:
            self.advance(head.session_id, head.header, head.messages)

    def forget(self, session_id: str) -> None:
        head = self._heads.pop(session_id, None)
        if head is not None:
            sessions = self._by_header[head.header]
            sessions.discard(session_id)
            if not sessions:
                del self._by_header[head.header]
