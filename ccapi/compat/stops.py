"""Stop sequences (Chat's ``stop``, Messages' ``stop_sequences``), honoured the one way a gateway can.

Claude Code has no per-turn stop sequences: the model writes its whole answer, and the session keeps it. What the
client gets is what the providers promise: the reply's text ends just before the first stop sequence in it, with
``finish_reason: stop`` (Anthropic: ``stop_reason: stop_sequence`` and the ``stop_sequence`` found). A streamed
reply holds back the end of its text that could still begin a stop sequence until the next delta says whether it
does, so no part of a stop sequence is ever sent. A reply that calls the client's tools keeps its calls (the turn
waits for their results); only its text is cut. The cut reply is what the session's head records, so the client's
next request, which replays the cut text, continues the session warm.
"""

from __future__ import annotations

import bisect
from dataclasses import replace

from ccapi.compat.conversation import ToolCall
from ccapi.compat.reply import Delta, Reply, TextDelta


def first_stop(text: str, stops: tuple[str, ...]) -> tuple[int, str] | None:
    """Where the first of ``stops`` begins in ``text``, and which (at one place, the one listed first)."""
    found = [(at, stop) for stop in stops if (at := text.find(stop)) >= 0]
    return min(found, key=lambda hit: hit[0]) if found else None


class StopCut:
    """Cuts one reply's deltas at the first of the request's stop sequences (none: deltas pass unchanged)."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._sorted = sorted(set(self._stops))  # what a text's end may begin is found by bisection (``_open_end``)
        self._longest = max(map(len, self._stops), default=0)
        self._held = ""  # text not sent yet: it may be the beginning of a stop sequence
        self._stopped = False

    def feed(self, delta: Delta) -> list[Delta]:
        if not self._stops:
            return [delta]
        if isinstance(delta, TextDelta):
            return self._text(delta.text)
        if isinstance(delta, ToolCall):
            return [*self._flush(), delta]
        return [*self._flush(), self._settled(delta)]

    def _text(self, text: str) -> list[Delta]:
        if self._stopped:
            return []
        text = self._held + text
        hit = first_stop(text, self._stops)
        if hit is not None:
            self._stopped, self._held = True, ""
            return [TextDelta(text[: hit[0]])] if hit[0] else []
        keep = self._open_end(text)
        sent, self._held = text[: len(text) - keep], text[len(text) - keep :]
        return [TextDelta(sent)] if sent else []

    def _open_end(self, text: str) -> int:
        """How much of ``text``'s end could begin a stop sequence the next delta completes: its longest end that is
        the beginning of one. Each end is looked up in the sorted stop sequences (the first one not below it begins
        with it, if any does), not compared with each of them: a request's stop sequences are the client's to
        choose, thousands of them, and this runs on the event loop for every delta of the reply."""
        for at in range(max(0, len(text) - self._longest + 1), len(text)):
            end = text[at:]
            index = bisect.bisect_left(self._sorted, end)
            if index < len(self._sorted) and self._sorted[index].startswith(end):
                return len(text) - at
        return 0

    def _flush(self) -> list[Delta]:
        held, self._held = self._held, ""
        return [TextDelta(held)] if held and not self._stopped else []

    def _settled(self, reply: Reply) -> Reply:
        hit = first_stop(reply.text, self._stops)
        return reply if hit is None else replace(reply, text=reply.text[: hit[0]], stop_sequence=hit[1])
