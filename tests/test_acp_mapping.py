"""What an ACP client sees of native events, and what the model gets of ACP prompt blocks (no gateway needed)."""

from __future__ import annotations

import pytest
from acp import RequestError, image_block, resource_block, resource_link_block, text_block
from acp.schema import (
    AgentMessageChunk,
    AgentPlanUpdate,
    AgentThoughtChunk,
    BlobResourceContents,
    EnvVariable,
    HttpHeader,
    HttpMcpServer,
    McpServerStdio,
    SseMcpServer,
    TextResourceContents,
    ToolCallProgress,
    ToolCallStart,
    UserMessageChunk,
)

from ccapi.acp.agent import _stop_reason
from ccapi.acp.commands import compacted
from ccapi.acp.options import native_mcp_servers
from ccapi.acp.prompt import native_input
from ccapi.acp.updates import UpdateMapper, merged
from ccapi.events import Event, EventType


def updates_for(event: Event, *, replay: bool) -> list:
    return UpdateMapper(replay=replay)(event)


def _event(type_: str, data: dict) -> Event:
    return Event(seq=1, type=type_, session_id="sess_x", turn_id="turn_x", created_at="2026-01-01T00:00:00Z", data=data)


def test_todowrite_becomes_the_plan_not_a_tool_call() -> None:
    todos = [{"content": "read", "status": "completed"}, {"content": "fix", "status": "in_progress"}]
    [update] = updates_for(
        _event("agent_tool.started", {"tool_use_id": "t1", "name": "TodoWrite", "input": {"todos": todos}}),
        replay=False,
    )
    assert isinstance(update, AgentPlanUpdate)
    assert [(e.content, e.status) for e in update.entries] == [("read", "completed"), ("fix", "in_progress")]
    mapper = UpdateMapper(replay=False)
    mapper(_event("agent_tool.started", {"tool_use_id": "t1", "name": "TodoWrite", "input": {"todos": todos}}))
    assert mapper(_event("agent_tool.completed", {"tool_use_id": "t1", "content": "ok", "is_error": False})) == []


def test_an_edit_is_an_edit_tool_call_with_its_diff_and_file() -> None:
    edit = {"file_path": "/w/a.py", "old_string": "x = 1", "new_string": "x = 2"}
    [start] = updates_for(
        _event("agent_tool.started", {"tool_use_id": "t2", "name": "Edit", "input": edit}), replay=False
    )
    assert isinstance(start, ToolCallStart) and start.kind == "edit" and start.raw_input == edit
    assert start.locations[0].path == "/w/a.py"
    assert (start.content[0].old_text, start.content[0].new_text) == ("x = 1", "x = 2")
    [done] = updates_for(
        _event(
            "agent_tool.completed",
            {"tool_use_id": "t2", "is_error": True, "content": [{"type": "text", "text": "no such file"}]},
        ),
        replay=False,
    )
    assert isinstance(done, ToolCallProgress) and done.status == "failed"
    assert done.content[0].content.text == "no such file"


def test_thinking_streams_as_thought_and_the_users_input_only_on_replay() -> None:
    [thought] = updates_for(_event("thinking.delta", {"index": 0, "thinking": "hmm"}), replay=False)
    assert isinstance(thought, AgentThoughtChunk) and thought.content.text == "hmm"
    started = _event(
        "turn.started",
        {
            "input": [
                {"type": "text", "text": "hi"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "bytes": 9}},
            ]
        },
    )
    assert updates_for(started, replay=False) == []
    replayed = updates_for(started, replay=True)
    assert all(isinstance(u, UserMessageChunk) for u in replayed)
    assert [u.content.text for u in replayed] == ["hi", "\n\n[image: image/png]"]  # a paragraph each, joined


def test_prompt_blocks_become_native_input() -> None:
    blocks = [
        text_block("look"),
        text_block(""),
        image_block("aGk=", "image/png"),
        resource_block(TextResourceContents(uri="file:///w/a.py", text="x = 1")),
        resource_block(BlobResourceContents(uri="file:///w/a.pdf", blob="JVBERg==", mime_type="application/pdf")),
        resource_link_block("b.py", "file:///w/b.py"),
    ]
    assert native_input(blocks) == [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "aGk="}},
        {"type": "text", "text": '<context ref="file:///w/a.py">\nx = 1\n</context>'},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERg=="},
            "title": "file:///w/a.pdf",
        },
        {"type": "text", "text": "[@b.py](file:///w/b.py)"},
    ]


def test_client_mcp_servers_get_names_the_gateway_takes() -> None:
    servers = [
        McpServerStdio(name="my notes", command="/bin/notes", args=["-v"], env=[EnvVariable(name="K", value="v")]),
        McpServerStdio(name="client", command="/bin/c", args=[], env=[]),
        HttpMcpServer(type="http", name="web", url="http://127.0.0.1:9/mcp", headers=[HttpHeader(name="A", value="b")]),
        SseMcpServer(type="sse", name="old", url="http://127.0.0.1:9/sse", headers=[]),
    ]
    assert native_mcp_servers(servers) == {
        "my_notes": {"type": "stdio", "command": "/bin/notes", "args": ["-v"], "env": {"K": "v"}},
        "client_": {"type": "stdio", "command": "/bin/c", "args": [], "env": {}},
        "web": {"type": "http", "url": "http://127.0.0.1:9/mcp", "headers": {"A": "b"}},
    }


def test_a_replay_sends_each_reply_as_one_chunk_not_one_per_delta() -> None:
    events = [_event("message.delta", {"index": 0, "text": word}) for word in ("gen", "eral ", "kenobi")]
    events.insert(0, _event("thinking.delta", {"index": 0, "thinking": "a famous line"}))
    updates = merged(u for event in events for u in updates_for(event, replay=True))
    assert [(type(u).__name__, u.content.text) for u in updates] == [
        ("AgentThoughtChunk", "a famous line"),
        ("AgentMessageChunk", "general kenobi"),
    ]


def test_a_prompt_the_client_cancelled_ends_cancelled_however_its_turn_ended() -> None:
    """A cancel that reached the gateway as the turn completed (or failed) still answers the prompt ``cancelled``,
    as ACP asks; without a cancel the turn's own ending counts."""
    completed = _event(EventType.TURN_COMPLETED, {"stop_reason": "end_turn"})
    failed = _event(EventType.TURN_FAILED, {"error": {"type": "upstream_error", "message": "overloaded"}})
    interrupted = _event(EventType.TURN_INTERRUPTED, {"error": {"message": "the console interrupted it"}})
    assert [_stop_reason(e, cancelled=True) for e in (completed, failed, interrupted)] == ["cancelled"] * 3
    assert _stop_reason(completed, cancelled=False) == "end_turn"
    with pytest.raises(RequestError):
        _stop_reason(interrupted, cancelled=False)


def _said(events: list[Event], *, replay: bool) -> list[str]:
    """The agent message text each event makes, in order (a replay's user chunks left out)."""
    mapper = UpdateMapper(replay=replay)
    return [u.content.text for event in events for u in mapper(event) if isinstance(u, AgentMessageChunk)]


def _completed(text: str, model: str = "claude-sonnet-4-5", parent: str | None = None) -> Event:
    content = [{"type": "text", "text": text}]
    return _event("message.completed", {"model": model, "content": content, "parent_tool_use_id": parent})


@pytest.mark.parametrize("replay", [False, True], ids=["live", "replayed"])
def test_a_message_claude_code_made_up_is_passed_on_and_a_streamed_one_is_not_sent_twice(replay: bool) -> None:
    """``/context`` and ``/cost`` answer with a ``<synthetic>`` message and no delta; a streamed reply's
    ``message.completed`` (after its thinking's) repeats what its deltas said; a subagent's is not the reply."""
    events = [
        _event("thinking.delta", {"index": 0, "thinking": "hmm"}),
        _event("message.completed", {"content": [{"type": "thinking", "thinking": "hmm"}], "parent_tool_use_id": None}),
        _event("message.delta", {"index": 1, "text": "hello "}),
        _event("message.delta", {"index": 1, "text": "there"}),
        _completed("hello there"),
        _completed("a subagent's reply", parent="toolu_1"),
        _event(EventType.TURN_COMPLETED, {"stop_reason": "end_turn"}),
        _event("message.delta", {"index": 0, "text": "cut off by an interrupt"}),
        _event(EventType.TURN_INTERRUPTED, {}),
        _completed("## Context Usage", model="<synthetic>"),
        _event(EventType.TURN_COMPLETED, {"stop_reason": None}),
    ]
    assert _said(events, replay=replay) == ["hello ", "there", "cut off by an interrupt", "## Context Usage"]


@pytest.mark.parametrize("replay", [False, True], ids=["live", "replayed"])
def test_a_compaction_reads_as_the_compact_prompt_answered_and_an_automatic_one_as_its_own_paragraph(
    replay: bool,
) -> None:
    manual = _event("session.compacted", {"trigger": "manual", "pre_tokens": 22000, "post_tokens": 2425})
    auto = _event("session.compacted", {"trigger": "auto", "pre_tokens": 180000, "post_tokens": 12000})
    said = _said([manual, auto, _event("message.delta", {"index": 0, "text": "the reply"})], replay=replay)
    assert said == [
        compacted("manual", 22000, 2425),
        "Compacted the conversation automatically, as the context window filled up: 180,000 tokens before, "
        "12,000 after.\n\n",
        "the reply",
    ]
    assert said[0] == "Compacted the conversation: 22,000 tokens before, 2,425 after."


@pytest.mark.parametrize("replay", [False, True], ids=["live", "replayed"])
def test_a_failed_turns_error_replays_as_its_answer_and_is_not_told_twice_live(replay: bool) -> None:
    """Live, the prompt's error answer carries it; a replay has no answer, and showed the prompt with nothing after."""
    failed = _event(
        EventType.TURN_FAILED, {"status": "failed", "error": {"type": "api_error", "message": "overloaded"}}
    )
    said = _said([_event("message.delta", {"index": 0, "text": "partial "}), failed], replay=replay)
    assert said == (["partial ", "The turn failed: overloaded"] if replay else ["partial "])
