"""Which live session already holds a conversation: the affinity index.

Each session that served a compat request has one *head*: the fingerprint of the
conversation it now holds (header + every message it has seen, its own reply included)
and how many messages that is. A request whose messages start with a head's prefix is
that conversation, grown: only the messages after the head are new.

Only heads are kept. When a session moves on, its older fingerprint is dropped, so a
client that edits or regenerates history no longer matches it and gets a fresh session,
instead of pushing a different past into a session that remembers another.

The index lives in this process's memory and does not survive a restart: after one, the
next request of each conversation starts a fresh session seeded with the history (one
extra, larger turn), and affinity resumes from there.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

#: Heads kept at most; the least recently used conversation is forgotten first.
MAX_HEADS = 10_000


@dataclass(frozen=True)
class Head:
    session_id: str
    key: str
    consumed: int
    """How many canonical messages of the conversation the session has seen."""


class AffinityIndex:
    def __init__(self, capacity: int = MAX_HEADS) -> None:
        self._capacity = capacity
        self._by_key: OrderedDict[str, Head] = OrderedDict()
        self._by_session: dict[str, Head] = {}

    def match(self, hashes: list[str]) -> Head | None:
        """The head that is the longest proper prefix of a conversation (``hashes[i]``
        fingerprints its first ``i`` messages), leaving at least one new message."""
        for consumed in range(len(hashes) - 2, 0, -1):
            head = self._by_key.get(hashes[consumed])
            if head is not None and head.consumed == consumed:
                return head
        return None

    def head_of(self, session_id: str) -> Head | None:
        return self._by_session.get(session_id)

    def claim(self, head: Head) -> None:
        """Take a head out while its session is being fed, so a concurrent request with
        the same history cannot feed the same session twice."""
        self.forget(head.session_id)

    def advance(self, session_id: str, key: str, consumed: int) -> None:
        self.forget(session_id)
        displaced = self._by_key.pop(key, None)
        if displaced is not None:
            self._by_session.pop(displaced.session_id, None)
        head = Head(session_id, key, consumed)
        self._by_key[key] = head
        self._by_session[session_id] = head
        while len(self._by_key) > self._capacity:
            _, oldest = self._by_key.popitem(last=False)
            self._by_session.pop(oldest.session_id, None)

    def restore(self, head: Head) -> None:
        """Put back a claimed head whose request failed before feeding anything."""
        if head.session_id not in self._by_session:
            self.advance(head.session_id, head.key, head.consumed)

    def forget(self, session_id: str) -> None:
        head = self._by_session.pop(session_id, None)
        if head is not None:
            self._by_key.pop(head.key, None)
