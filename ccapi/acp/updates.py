"""Native events → ACP ``session/update`` notifications, the same for a live turn and a replayed log.

``message.delta`` and ``thinking.delta`` become agent message and thought chunks, and the text of a
``message.completed`` that streamed no delta (Claude Code's own answer to ``/context`` or ``/cost``) one more message
chunk; ``session.compacted`` the line a ``/compact`` prompt answers (``commands.compacted``); ``agent_tool.started`` a
tool call (title, kind, file locations, Claude Code's input as ``rawInput``, a diff for Edit and Write, the plan of
ExitPlanMode) and ``agent_tool.completed`` its update (``completed`` or ``failed``, the result as content and
``rawOutput``); TodoWrite's todo list becomes the plan instead of a tool call. ``turn.started`` replays as the user's
message (a live prompt's own input is the client's already). ``session.updated`` with a permission mode (an approved
plan leaves plan mode) moves the client's mode picker. A turn that ends with tool calls still open (its Claude Code
died) ends them ``failed``, so the client does not show them running for ever. A message cut off mid-stream that
Claude Code asks for again (``turn.retrying``) is left out of a replay, and live its second try starts a new
paragraph (what streamed cannot be taken back). The rest (usage, rate limits, permission events, which the agent
turns into requests; a failed turn's error, which is the prompt's error answer live, and replays as a message) maps
to nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from acp import (
    plan_entry,
    start_tool_call,
    text_block,
    tool_content,
    tool_diff_content,
    update_agent_message,
    update_agent_thought,
    update_plan,
    update_tool_call,
)
from acp.schema import (
    AgentMessageChunk,
    AgentThoughtChunk,
    CurrentModeUpdate,
    TextContentBlock,
    ToolCallLocation,
    ToolCallStart,
    ToolKind,
)

from ccapi.acp.commands import compacted
from ccapi.acp.options import MODES
from ccapi.acp.prompt import replayed_input
from ccapi.events import TERMINAL_TURN_EVENTS, Event, EventType

TODO_TOOL = "TodoWrite"
_KINDS: dict[str, ToolKind] = {
    "Read": "read",
    "NotebookRead": "read",
    "Edit": "edit",
    "MultiEdit": "edit",
    "Write": "edit",
    "NotebookEdit": "edit",
    "Bash": "execute",
    "BashOutput": "execute",
    "KillShell": "execute",
    "Glob": "search",
    "Grep": "search",
    "WebFetch": "fetch",
    "WebSearch": "fetch",
    "Agent": "think",
    "Task": "think",
    "ExitPlanMode": "switch_mode",
}
_PLAN_STATUSES = ("pending", "in_progress", "completed")


class UpdateMapper:
    """The updates each native event makes (none for most), for one turn's stream or one replay. It remembers the
    TodoWrite calls it turned into plans, so their results are not sent as updates of calls the client never saw."""

    def __init__(self, *, replay: bool) -> None:
        self.replay = replay
        self._plans: set[str] = set()
        self._asked: dict[str, str] = {}  # permission request → the tool call it is about
        self._open: dict[str, None] = {}  # tool calls started and not completed, in order
        self._streamed = False  # text deltas since the last message with text: that message was sent already
        self._streaming: list[Any] = []  # the chunks of the message streaming now, which a retry may drop

    def __call__(self, event: Event) -> list[Any]:
        """The event's updates. A message cut off mid-stream that Claude Code asks for again (``turn.retrying`` with
        ``discarded_message_id``) streams again from its start: a replay takes back what the cut one streamed
        (``Retracted``, which ``merged`` applies); live, what went cannot be taken back, so the new one starts a
        paragraph of its own rather than running on from the fragment."""
        if event.type == EventType.TURN_RETRYING and event.data.get("discarded_message_id"):
            return self._discarded()
        updates = self._updates(event)
        if event.type in (EventType.MESSAGE_DELTA, EventType.THINKING_DELTA):
            self._streaming.extend(updates)
        elif updates or event.type == EventType.MESSAGE_COMPLETED or event.type in TERMINAL_TURN_EVENTS:
            self._streaming = []  # the message was kept (or another update came after it)
        return updates

    def _discarded(self) -> list[Any]:
        cut, self._streaming = self._streaming, []
        if self.replay:
            return [Retracted(len(cut))] if cut else []
        paragraph = text_block("\n\n")
        thought = [update_agent_thought(paragraph)] if any(isinstance(c, AgentThoughtChunk) for c in cut) else []
        return thought + (
            [update_agent_message(paragraph)] if any(isinstance(c, AgentMessageChunk) for c in cut) else []
        )

    def _updates(self, event: Event) -> list[Any]:
        data = event.data
        if event.type == EventType.MESSAGE_DELTA and data.get("text"):
            self._streamed = True
            return [update_agent_message(text_block(data["text"]))]
        if event.type == EventType.MESSAGE_COMPLETED and data.get("parent_tool_use_id") is None:
            return self._unstreamed(data)
        if event.type == EventType.SESSION_COMPACTED:
            return [_compaction(data)]
        if event.type == EventType.THINKING_DELTA and data.get("thinking"):
            return [update_agent_thought(text_block(data["thinking"]))]
        if event.type == EventType.AGENT_TOOL_STARTED:
            started = tool_started(data.get("tool_use_id", ""), data.get("name", ""), data.get("input") or {})
            if not isinstance(started, ToolCallStart):
                self._plans.add(data.get("tool_use_id", ""))
            else:
                self._open[started.tool_call_id] = None
            return [started]
        if event.type == EventType.AGENT_TOOL_COMPLETED:
            self._open.pop(data.get("tool_use_id", ""), None)
            return [] if data.get("tool_use_id") in self._plans else [tool_completed(data)]
        if event.type in TERMINAL_TURN_EVENTS:
            left, self._open, self._streamed = list(self._open), {}, False
            return [update_tool_call(call, status="failed") for call in left] + self._failure(event)
        if event.type == EventType.PERMISSION_REQUESTED and data.get("tool_use_id"):
            self._asked[data["request_id"]] = data["tool_use_id"]
        if event.type == EventType.PERMISSION_RESOLVED and data.get("behavior") == "allow":
            call = self._asked.get(data.get("request_id", ""))
            return [update_tool_call(call, status="in_progress")] if call else []  # approved: it runs now
        if event.type == EventType.TURN_STARTED and self.replay:
            return list(replayed_input(data.get("input") or []))
        if event.type == EventType.SESSION_UPDATED and data.get("permission_mode") in MODES:
            return [CurrentModeUpdate(session_update="current_mode_update", current_mode_id=data["permission_mode"])]
        return []

    def _failure(self, event: Event) -> list[Any]:
        """A failed turn's error, in a replay only: live it is the prompt's error answer, which the client shows
        (a replay has no answer to carry it, and the user would see their prompt answered by nothing)."""
        error = event.data.get("error") or {}
        if not self.replay or event.type != EventType.TURN_FAILED or not error.get("message"):
            return []
        return [update_agent_message(text_block(f"The turn failed: {error['message']}"))]

    def _unstreamed(self, message: dict[str, Any]) -> list[Any]:
        """The text of a message Claude Code made up rather than streamed (``model: "<synthetic>"``: its answer to
        ``/context`` or ``/cost``); a streamed message's text went to the client as its deltas. A failed turn's
        error message never reaches the log as a message (the engine keeps it for ``turn.failed``)."""
        text = "".join(b.get("text", "") for b in message.get("content") or [] if b.get("type") == "text")
        if not text:
            return []
        streamed, self._streamed = self._streamed, False
        return [] if streamed else [update_agent_message(text_block(text))]


def _compaction(data: dict[str, Any]) -> AgentMessageChunk:
    """A compaction as the line a ``/compact`` prompt answers. Claude Code's own (``auto``) comes inside a turn,
    before the model's next reply: a paragraph of its own, so that reply does not run on from it."""
    line = compacted(data.get("trigger"), data.get("pre_tokens"), data.get("post_tokens"))
    return update_agent_message(text_block(f"{line}\n\n" if data.get("trigger") == "auto" else line))


@dataclass(frozen=True)
class Retracted:
    """In a replay's updates (never sent): the last ``count`` chunks were a message Claude Code dropped (cut off
    mid-stream, asked for again), which ``merged`` leaves out. They are the last updates: any other came after
    the message was kept."""

    count: int


def merged(updates: Iterable[Any]) -> list[Any]:
    """Consecutive agent message (or thought) text chunks as one: a replay sends a reply in one notification
    rather than one per streamed delta. The chunks of a message Claude Code dropped (``Retracted``) are left out."""
    settled: list[Any] = []
    for update in updates:
        if isinstance(update, Retracted):
            del settled[len(settled) - update.count :]
        else:
            settled.append(update)
    out: list[Any] = []
    for update in settled:
        last: Any = out[-1] if out else None
        if (
            isinstance(update, AgentMessageChunk | AgentThoughtChunk)
            and type(last) is type(update)
            and isinstance(update.content, TextContentBlock)
            and isinstance(last.content, TextContentBlock)
        ):
            out[-1] = last.model_copy(update={"content": text_block(last.content.text + update.content.text)})
        else:
            out.append(update)
    return out


def tool_started(tool_use_id: str, name: str, tool_input: dict[str, Any]) -> Any:
    """A tool call as Claude Code made it; TodoWrite's list is the plan."""
    if name == TODO_TOOL and isinstance(tool_input.get("todos"), list):
        return update_plan(
            plan_entry(str(todo.get("content", "")), status=_plan_status(todo.get("status")))
            for todo in tool_input["todos"]
            if isinstance(todo, dict)
        )
    path = _path(tool_input)
    return start_tool_call(
        tool_use_id,
        tool_title(name, tool_input),
        kind=tool_kind(name),
        status="pending",
        content=_diff(name, tool_input, path) or _plan(name, tool_input),
        locations=[ToolCallLocation(path=path)] if path else None,
        raw_input=tool_input,
    )


def tool_kind(name: str) -> ToolKind:
    return _KINDS.get(name, "other")


def tool_completed(data: dict[str, Any]) -> Any:
    content = data.get("content")
    text = content_text(content)
    return update_tool_call(
        data.get("tool_use_id", ""),
        status="failed" if data.get("is_error") else "completed",
        content=[tool_content(text_block(text))] if text else None,
        raw_output=content,
    )


def tool_title(name: str, tool_input: dict[str, Any]) -> str:
    if name == "Bash" and tool_input.get("command"):
        return f"`{tool_input['command']}`"
    if (path := _path(tool_input)) is not None:
        return f"{name} {path}"
    for key in ("pattern", "query", "url", "description"):
        if isinstance(tool_input.get(key), str):
            return f"{name}: {tool_input[key]}"
    return name


def content_text(content: Any) -> str:
    """A tool result's text: a string, or the text of its blocks (images noted)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            block.get("text", "") if block.get("type") == "text" else f"[{block.get('type')}]"
            for block in content
            if isinstance(block, dict)
        ]
        return "\n".join(parts)
    return "" if content is None else str(content)


def _path(tool_input: dict[str, Any]) -> str | None:
    for key in ("file_path", "notebook_path", "path"):
        if isinstance(tool_input.get(key), str):
            return str(tool_input[key])
    return None


def _diff(name: str, tool_input: dict[str, Any], path: str | None) -> list[Any] | None:
    if path is None:
        return None
    if name == "Edit" and isinstance(tool_input.get("new_string"), str):
        return [tool_diff_content(path, tool_input["new_string"], tool_input.get("old_string"))]
    if name == "Write" and isinstance(tool_input.get("content"), str):
        return [tool_diff_content(path, tool_input["content"])]
    return None


def _plan(name: str, tool_input: dict[str, Any]) -> list[Any] | None:
    """The plan Claude Code asks to go ahead with (``ExitPlanMode``) as the call's content: what the user approves
    or rejects, shown with the permission request rather than only in its raw input."""
    if name == "ExitPlanMode" and isinstance(tool_input.get("plan"), str) and tool_input["plan"]:
        return [tool_content(text_block(tool_input["plan"]))]
    return None


def _plan_status(status: Any) -> Any:
    return status if status in _PLAN_STATUSES else "pending"
