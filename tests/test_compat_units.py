"""Compat building blocks without a gateway: canonical form, fingerprints, the affinity
index, reply assembly and seeding."""

from __future__ import annotations

from ccapi.catalog import ModelCatalog
from ccapi.compat.affinity import AffinityIndex
from ccapi.compat.anthropic_messages import parse as parse_messages
from ccapi.compat.conversation import Conversation, Message, ToolCall, normalise
from ccapi.compat.openai_chat import parse as parse_chat
from ccapi.compat.reply import MESSAGE_SEPARATOR, Reply, ReplyBuilder, TextDelta
from ccapi.compat.seed import seed_input
from ccapi.events import Event
from ccapi.sessions.toolcalls import ToolResult

CATALOG = ModelCatalog.from_setting(None)


def _chat(messages: list[dict], **body) -> Conversation:
    return parse_chat({"model": "sonnet", "messages": messages, **body}, CATALOG, "sonnet", None).request.conversation


def test_tool_arguments_and_assistant_whitespace_do_not_change_the_fingerprint() -> None:
    call = {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1, "b": 2}'}}
    one = _chat([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok ", "tool_calls": [call]}])
    call["function"]["arguments"] = '{"b":2,"a":1}'
    two = _chat([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok", "tool_calls": [call]}])
    assert one.prefix_hashes() == two.prefix_hashes()
    assert _chat([{"role": "user", "content": "hi!"}]).prefix_hashes()[1] != one.prefix_hashes()[1]


def test_the_same_conversation_in_openai_and_anthropic_spelling_is_one_fingerprint() -> None:
    chat = _chat([{"role": "system", "content": "S"}, {"role": "user", "content": "hi"},
                  {"role": "assistant", "content": None, "tool_calls": [
                      {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                  {"role": "tool", "tool_call_id": "t1", "content": "done"}])
    messages = parse_messages({"model": "sonnet", "system": "S", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done"}]},
    ]}, CATALOG, "sonnet", None).request.conversation
    assert chat.prefix_hashes() == messages.prefix_hashes()


def test_normalise_merges_runs_and_folds_text_after_results_into_the_last_result() -> None:
    text = {"type": "text", "text": "note"}
    merged = normalise([Message("user", content=(text,)), Message("user", content=(text,)),
                        Message("tool", answers=(ToolResult("a", "1"),)),
                        Message("tool", answers=(ToolResult("b", "2"),)), Message("user", content=(text,))])
    assert [m.role for m in merged] == ["user", "tool"]
    assert len(merged[0].content) == 2
    assert merged[1].answers[0] == ToolResult("a", "1")
    assert merged[1].answers[1].content == [{"type": "text", "text": "2"}, text]


def test_the_index_matches_only_current_heads() -> None:
    index = AffinityIndex(capacity=2)
    index.advance("s1", "h2", 2)
    assert index.match(["h0", "h1", "h2", "h3"]).session_id == "s1"
    assert index.match(["h0", "h1", "h2"]) is None  # nothing new after the head
    index.advance("s1", "h4", 4)  # the session moved on: its old head is gone
    assert index.match(["h0", "h1", "h2", "h3"]) is None
    head = index.match(["h0", "h1", "h2", "h3", "h4", "h5"])
    index.claim(head)
    assert index.head_of("s1") is None
    index.restore(head)
    assert index.head_of("s1") == head
    index.advance("s2", "x", 1)
    index.advance("s3", "y", 1)  # over capacity: the least recent head goes
    assert index.head_of("s1") is None and index.head_of("s3") is not None


def _event(seq: int, type_: str, data: dict) -> Event:
    return Event(seq, type_, "sess_1", "turn_1", "now", data)


def test_reply_builder_sends_unstreamed_text_whole_and_separates_messages() -> None:
    builder = ReplyBuilder("sess_1")
    deltas = []
    for event in [
        _event(1, "turn.started", {}),
        _event(2, "message.delta", {"text": "Let me "}), _event(3, "message.delta", {"text": "look."}),
        _event(4, "message.completed", {"content": [{"type": "text", "text": "Let me look."}]}),
        _event(5, "agent_tool.started", {}),
        _event(6, "message.completed", {"content": [{"type": "text", "text": "Found it."}]}),
        _event(7, "tool_call", {"tool_call_id": "t", "name": "f", "input": {"x": 1}}),
        _event(8, "turn.requires_action", {"tool_calls": []}),
    ]:
        deltas.extend(builder.feed(event))
    assert deltas[:3] == [TextDelta("Let me "), TextDelta("look."), TextDelta(MESSAGE_SEPARATOR + "Found it.")]
    assert deltas[3] == ToolCall("t", "f", {"x": 1})
    reply = deltas[4]
    assert isinstance(reply, Reply) and reply.status == "requires_action" and reply.turn_id == "turn_1"
    assert reply.text == "Let me look.\n\nFound it." and reply.message().tool_calls == (deltas[3],)


def test_seed_input_carries_history_as_a_transcript_and_the_new_input_as_blocks() -> None:
    hello = Message("user", content=({"type": "text", "text": "hello"},))
    assert seed_input((hello,)) == [{"type": "text", "text": "hello"}]
    history = (hello, Message("assistant", text="hi", tool_calls=(ToolCall("t1", "f", {"a": 1}),)),
               Message("tool", answers=(ToolResult("t1", "42"),)), Message("assistant", text="It is 42."),
               Message("user", content=({"type": "text", "text": "thanks"},)))
    transcript, latest = seed_input(history)
    assert latest == {"type": "text", "text": "thanks"}
    for part in ("<conversation_history>", "<user>\nhello", '[called tool f with {"a":1} (call id t1)]',
                 '<tool_result call_id="t1">\n42', "It is 42."):
        assert part in transcript["text"]
    ends_in_results = seed_input(history[:3])
    assert len(ends_in_results) == 1 and "Continue from the tool results" in ends_in_results[0]["text"]


PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def test_openai_image_parts_become_native_image_blocks() -> None:
    conversation = _chat([{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
        {"type": "image_url", "image_url": {"url": "https://images.example.invalid/cat.png"}},
    ]}])
    assert conversation.messages[0].content == (
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "image", "source": {"type": "url", "url": "https://images.example.invalid/cat.png"}},
    )
