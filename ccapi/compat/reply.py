"""Native events → what a compat client sees: text deltas, tool calls, and the settled reply.

A compat reply is the slice of a session's event log between the request's first event and
the turn's next settle (completed, failed, interrupted, or paused on client tool calls).
Streaming and non-streaming replies are built from the same deltas, so a streamed reply
adds up to the non-streamed one — but for a model answer cut off mid-stream and asked for
again (``turn.retrying`` with ``discarded_message_id``): what it had streamed cannot be taken
back, and the settled reply leaves it out. Claude Code's own tools (``agent_tool.*``) stay
on the server: a compat client sees only text and calls to its own tools.

A request that asks for structured output (``structured``) gets none of the model's text: its reply's text is the
turn's ``structured_output`` as JSON, sent whole as the turn ends (Claude Code checks it against the schema only once
the model has called its ``StructuredOutput`` tool), and a later divergence branches at that tool's result, where
the turn ends. A turn that ends without one — the model answered in text even after Claude Code's reminder — is a
failed reply, not text the client would take for JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson

from ccapi.compat.conversation import Message, ToolCall
from ccapi.errors import ApiError
from ccapi.events import Event, EventType

#: Between the texts of two assistant messages of one turn (e.g. around a Claude Code tool use).
MESSAGE_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Reply:
    """A settled compat reply. ``status`` is the native turn status at the settle."""

    session_id: str
    turn_id: str
    status: str
    text: str
    tool_calls: tuple[ToolCall, ...]
    usage: dict[str, int] = field(default_factory=dict)
    stop_reason: str | None = None
    error: dict[str, Any] | None = None
    uuid: str | None = None
    """The SDK uuid of the turn's last assistant message, when the reply ends the turn
    with text: the point a later divergence can branch the conversation at."""
    ran: bool = True
    """False for a turn that ended while still queued (withdrawn, or it could not start)."""
    stop_sequence: str | None = None
    """The request's stop sequence the text was cut before (``stops``), if one was found in it."""

    @property
    def truncated(self) -> bool:
        """Claude stopped for length (the model's max_tokens). A turn stopped by a round
        limit is not truncated output: it fails, and the client is told which limit."""
        return self.stop_reason == "max_tokens"

    @property
    def failed(self) -> bool:
        """No reply to give: the turn failed, or it never ran (see ``ran``)."""
        return (self.status == "failed" and not self.truncated) or not self.ran

    def message(self) -> Message:
        """The reply as the canonical assistant message a client will echo back."""
        return Message("assistant", text=self.text, tool_calls=self.tool_calls)


Delta = TextDelta | ToolCall | Reply


class ReplyStream(Protocol):
    """How a wire format spells a streamed reply: SSE frames for each step."""

    def start(self) -> list[bytes]: ...

    def delta(self, delta: TextDelta | ToolCall) -> list[bytes]: ...

    def end(self, reply: Reply) -> list[bytes]: ...

    def error(self, exc: ApiError) -> list[bytes]: ...


class ReplyBuilder:
    """Feeds on one session's events, in order; ``feed`` returns the deltas they make."""

    def __init__(self, session_id: str, structured: bool = False) -> None:
        self._session_id = session_id
        self._structured = structured
        self._text: list[str] = []
        self._calls: list[ToolCall] = []
        self._streamed_since_message = False
        self._at_message_boundary = False
        self._last: dict[str, Any] = {}
        self._turn_id: str | None = None
        self._began: dict[str, int] = {}  # message id → where its text begins in ``_text``
        self._settled_text = 0  # ``_text``'s length at the last message end: where the next message's begins
        self._answer_uuid: str | None = None  # where a structured answer's turn ends: its tool result's message

    def feed(self, event: Event) -> list[Delta]:
        """The first event fed is the reply's own (``turn.started``, ``turn.queued`` or a
        ``tool_result``); events of other turns (the one a queued turn waits behind) are skipped."""
        if self._turn_id is None:
            self._turn_id = event.turn_id
        elif event.turn_id != self._turn_id:
            return []
        data = event.data
        if event.type == EventType.MESSAGE_DELTA:
            self._streamed_since_message = True
            return self._add_text(data["text"])
        if event.type == EventType.MESSAGE_COMPLETED and data.get("parent_tool_use_id") is None:
            return self._message_completed(data)
        if event.type == EventType.TURN_RETRYING and data.get("discarded_message_id"):
            self._discard(data["discarded_message_id"])
            return []
        if event.type == EventType.AGENT_TOOL_COMPLETED and self._structured and data.get("uuid"):
            self._answer_uuid = None if data.get("is_error") else data["uuid"]
            return []
        if event.type == EventType.TOOL_CALL:
            call = ToolCall(data["tool_call_id"], data["name"], data["input"])
            self._calls.append(call)
            return [call]
        if event.type == EventType.TURN_REQUIRES_ACTION:
            return [self._settle(event, "requires_action", data)]
        if event.ends_turn and self._structured:
            return self._settle_structured(event, data)
        if event.ends_turn:
            return [self._settle(event, event.type.removeprefix("turn."), data)]
        return []

    def _message_completed(self, data: dict[str, Any]) -> list[Delta]:
        """Text that was not streamed as deltas is sent now, whole."""
        self._began.setdefault(data.get("message_id") or "", self._settled_text)
        self._last = data
        text = "".join(block["text"] for block in data.get("content", []) if block.get("type") == "text")
        deltas = [] if self._streamed_since_message or not text else self._add_text(text)
        self._streamed_since_message = False
        if text:
            self._at_message_boundary = True
        self._settled_text = len(self._text)
        return deltas

    def _discard(self, message_id: str) -> None:
        """The text of a message cut off mid-stream, which Claude Code asks for again: its finished blocks and
        what it streamed since."""
        del self._text[self._began.pop(message_id, self._settled_text) :]
        self._settled_text = len(self._text)
        self._streamed_since_message = False
        self._at_message_boundary = bool(self._text)

    def _settle_structured(self, event: Event, data: dict[str, Any]) -> list[Delta]:
        """The structured output, as the reply's whole text; a completed turn without one fails."""
        status, output = event.type.removeprefix("turn."), data.get("structured_output")
        self._text = [] if output is None else [orjson.dumps(output).decode()]
        if output is None and status == "completed" and data.get("stop_reason") != "max_tokens":
            error = {
                "type": "no_structured_output",
                "message": "the model answered without the structured output the request's format asks for "
                "(it answered in text, even after Claude Code reminded it)",
            }
            return [self._settle(event, "failed", {**data, "error": error})]
        reply = self._settle(event, status, data)
        if output is not None and status == "completed":  # a later divergence branches at the answer
            reply = replace(reply, uuid=self._answer_uuid)
        return [TextDelta(reply.text), reply] if reply.text else [reply]

    def _add_text(self, text: str) -> list[Delta]:
        if self._structured:  # the model's own text is not the reply's
            return []
        if self._at_message_boundary and self._text:
            text = MESSAGE_SEPARATOR + text
        self._at_message_boundary = False
        self._text.append(text)
        return [TextDelta(text)]

    def _settle(self, event: Event, status: str, data: dict[str, Any]) -> Reply:
        asks_for_tools = any(b.get("type") == "tool_use" for b in self._last.get("content", []))
        ends_turn = status == "completed" and not asks_for_tools
        return Reply(
            session_id=self._session_id,
            turn_id=event.turn_id or "",
            status=status,
            text="".join(self._text),
            tool_calls=tuple(self._calls),
            usage=data.get("round_usage") or data.get("usage") or {},
            stop_reason=data.get("stop_reason"),
            error=data.get("error"),
            uuid=self._last.get("uuid") if ends_turn else None,
            ran=not data.get("queued"),
        )
