"""Compat building blocks without a gateway: canonical form, fingerprints, the affinity
index, reply assembly and seeding."""

from __future__ import annotations

from dataclasses import replace

from ccapi.catalog import ModelCatalog
from ccapi.compat.affinity import AffinityIndex, Head, conversation_key
from ccapi.compat.anthropic_messages import parse as parse_messages
from ccapi.compat.conversation import Conversation, Message, ToolCall, normalise
from ccapi.compat.matching import droppable, mismatch, native_answers, same_call, system_change
from ccapi.compat.openai_chat import parse as parse_chat
from ccapi.compat.reply import MESSAGE_SEPARATOR, Reply, ReplyBuilder, TextDelta
from ccapi.compat.seed import seed_input
from ccapi.events import Event
from ccapi.sessions import ForkPoint
from ccapi.sessions.toolcalls import ToolResult

CATALOG = ModelCatalog.from_setting(None)


def _chat(messages: list[dict], **body) -> Conversation:
    return parse_chat({"model": "sonnet", "messages": messages, **body}, CATALOG, "sonnet", None).request.conversation


def _head(
    session_id: str, conversation: Conversation, messages: tuple[Message, ...], marks: tuple[ForkPoint | None, ...] = ()
) -> Head:
    return Head(
        session_id, conversation_key(conversation), conversation.system, messages, marks or (None,) * len(messages)
    )


def _covers(stored: Conversation, replayed: Conversation) -> bool:
    index = AffinityIndex()
    index.advance(_head("s1", stored, stored.messages))
    grown = replace(replayed, messages=(*replayed.messages, Message("user", content=({"type": "text", "text": "?"},))))
    return index.lookup(grown).head is not None


def test_tool_arguments_and_assistant_whitespace_do_not_change_the_conversation() -> None:
    call = {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1, "b": 2}'}}
    one = _chat([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok ", "tool_calls": [call]}])
    call["function"]["arguments"] = '{"b":2,"a":1}'
    two = _chat([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok", "tool_calls": [call]}])
    assert _covers(one, two)
    assert not _covers(
        one, replace(two, messages=(Message("user", content=({"type": "text", "text": "hi!"},)), two.messages[1]))
    )


def test_the_same_conversation_in_openai_and_anthropic_spelling_is_one_conversation() -> None:
    chat = _chat(
        [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "done"},
        ]
    )
    messages = parse_messages(
        {
            "model": "sonnet",
            "system": "S",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done"}]},
            ],
        },
        CATALOG,
        "sonnet",
        None,
    ).request.conversation
    assert conversation_key(chat) == conversation_key(messages) and chat.messages == messages.messages


def test_a_replayed_message_matches_when_it_is_what_the_client_keeps_of_the_stored_one() -> None:
    context = {
        "type": "text",
        "text": "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>> now 10:00 <<<END_OPENCLAW_INTERNAL_CONTEXT>>>",
    }
    hello = {"type": "text", "text": "hello"}
    assert mismatch(Message("user", content=(hello, context)), Message("user", content=(hello,))) is None
    assert mismatch(Message("user", content=(hello,)), Message("user", content=(hello, context))) is not None
    stored = Message("tool", answers=(ToolResult("toolu_01AbCdEf", [{"type": "text", "text": "42"}, context]),))
    assert mismatch(stored, Message("tool", answers=(ToolResult("toolu01AbCdEf", "42"),))) is None
    assert mismatch(stored, Message("tool", answers=(ToolResult("toolu01AbCdEf", "43"),))) is not None
    call = ToolCall("toolu_01AbCdEf", "f", {})
    assert (
        mismatch(
            Message("assistant", text="a\n\nb", tool_calls=(call,)),
            Message("assistant", text="a b", tool_calls=(replace(call, id="call_toolu_01AbCdEf_fc_9"),)),
        )
        is None
    )
    assert (
        mismatch(
            Message("assistant", tool_calls=(call,)),
            Message("assistant", tool_calls=(replace(call, id="toolu_01AbCdEg"),)),
        )
        is not None
    )


def test_tool_ids_come_back_stripped_or_wrapped_and_map_to_the_issued_ones() -> None:
    assert same_call("toolu_mock_a5db", "toolumocka5db") and same_call("toolu_mock_a5db", "call_toolu_mock_a5db_fc_1")
    assert not same_call("t1", "xt1y") and not same_call("toolu_mock_a5db", "toolu_mock_a5dc")
    waiting = {"toolu_mock_aaaa", "toolu_mock_bbbb"}
    answers = (ToolResult("toolumockbbbb", "b"), ToolResult("toolumockaaaa", "a"))
    assert [a.tool_call_id for a in native_answers(answers, waiting)] == ["toolu_mock_bbbb", "toolu_mock_aaaa"]
    assert native_answers(answers[:1], waiting) is None


def test_normalise_merges_runs_and_folds_text_after_results_into_the_last_result() -> None:
    text = {"type": "text", "text": "note"}
    merged = normalise(
        [
            Message("user", content=(text,)),
            Message("user", content=(text,)),
            Message("assistant", text="Checking."),
            Message("assistant", tool_calls=(ToolCall("a", "f", {}),)),
            Message("assistant", tool_calls=(ToolCall("b", "f", {}),)),
            Message("tool", answers=(ToolResult("a", "1"),)),
            Message("tool", answers=(ToolResult("b", "2"),)),
            Message("user", content=(text,)),
        ]
    )
    assert [m.role for m in merged] == ["user", "assistant", "tool"]
    assert len(merged[0].content) == 2
    assert merged[1].text == "Checking." and [c.id for c in merged[1].tool_calls] == ["a", "b"]
    assert merged[2].answers[0] == ToolResult("a", "1")
    assert merged[2].answers[1].content == [{"type": "text", "text": "2"}, text]


def _says(*texts: str) -> tuple[Message, ...]:
    return tuple(
        Message(
            "user" if n % 2 == 0 else "assistant",
            content=({"type": "text", "text": t},) if n % 2 == 0 else (),
            text="" if n % 2 == 0 else t,
        )
        for n, t in enumerate(texts)
    )


def test_the_index_matches_only_current_heads_and_says_why_it_missed() -> None:
    conversation = _chat([{"role": "user", "content": "x"}])
    index = AffinityIndex(capacity=2)
    index.advance(_head("s1", conversation, _says("a", "b")))
    assert index.lookup(replace(conversation, messages=_says("a", "b", "c"))).head.session_id == "s1"
    repeat = index.lookup(replace(conversation, messages=_says("a", "b")))  # nothing new after the head
    assert repeat.head is None and "without a new message" in repeat.miss
    index.advance(_head("s1", conversation, _says("a", "b", "c", "d")))  # the session moved on: its old head is gone
    miss = index.lookup(replace(conversation, messages=_says("a", "B", "c")))
    assert miss.head is None and "message 1" in miss.miss
    assert miss.passed == ()
    retried = index.lookup(replace(conversation, messages=_says("a", "b", "c")))  # the last request, again
    assert retried.head is None and retried.passed == ("s1",)
    head = index.lookup(replace(conversation, messages=_says("a", "b", "c", "d", "e"))).head
    index.claim(head)
    assert index.head_of("s1") is None
    index.restore(head)
    assert index.head_of("s1") == head
    assert "no session" in index.lookup(replace(conversation, system="other")).miss
    index.advance(_head("s2", conversation, _says("x")))
    index.advance(_head("s3", conversation, _says("y")))  # over capacity: the least recent head goes
    assert index.head_of("s1") is None and index.head_of("s3") is not None


def test_a_divergence_branches_the_head_at_the_last_turn_end_both_share() -> None:
    conversation = _chat([{"role": "user", "content": "x"}])
    marks = (
        None,
        ForkPoint("s1", "sdk1", "u1"),
        None,
        ForkPoint("s1", "sdk1", "u2"),
        None,
        ForkPoint("s1", "sdk1", "u3"),
    )
    index = AffinityIndex()
    index.advance(_head("s1", conversation, _says("a", "A", "b", "B", "c", "C"), marks))
    edited = index.lookup(replace(conversation, messages=_says("a", "A", "d")))
    assert edited.head is None and edited.fork.source.session_id == "s1"
    assert (edited.fork.keep, edited.fork.point) == (2, ForkPoint("s1", "sdk1", "u1"))
    regenerated = index.lookup(replace(conversation, messages=_says("a", "A", "b", "B", "c")))
    assert regenerated.fork.keep == 4 and regenerated.fork.point.uuid == "u2"
    assert index.lookup(replace(conversation, messages=_says("z"))).fork is None


def test_an_exchange_answered_only_by_an_acknowledgement_may_be_left_out() -> None:
    """OpenClaw prunes heartbeat polls answered HEARTBEAT_OK / NO_REPLY from what it replays."""
    conversation = _chat([{"role": "user", "content": "x"}])
    marks = tuple(ForkPoint("s1", "sdk1", f"u{n}") if n % 2 else None for n in range(8))
    stored = _says("a", "A", "poll", "**HEARTBEAT_OK**", "b", "B", "poll", "NO_REPLY")
    index = AffinityIndex()
    index.advance(_head("s1", conversation, stored, marks))
    found = index.lookup(replace(conversation, messages=_says("a", "A", "b", "B", "c")))
    assert found.head is not None and found.match.replayed == 4
    assert found.match.marks == (None, marks[1], None, marks[5])  # the kept messages' own marks
    kept = index.lookup(replace(conversation, messages=(*stored, *_says("c"))))
    assert kept.head is not None and kept.match.replayed == 8  # replayed as it is, it matches as it is
    edited = index.lookup(replace(conversation, messages=_says("a", "A", "b2")))
    assert edited.head is None and (edited.fork.keep, edited.fork.point) == (2, marks[1])

    said_more = _says("a", "A", "poll", "HEARTBEAT_OK, and the disk is nearly full", "b", "B")
    index.advance(_head("s2", replace(conversation, system="other"), said_more, marks[:6]))
    missed = index.lookup(replace(conversation, system="other", messages=_says("a", "A", "b", "B", "c")))
    assert missed.head is None and missed.fork.keep == 2  # a reply that said something is branched around
    called = Message("assistant", text="NO_REPLY", tool_calls=(ToolCall("toolu_1", "f", {}),))
    assert not droppable(stored[2], called) and droppable(stored[2], stored[3])


def test_a_system_prompt_with_a_few_changed_lines_is_the_same_conversation_told_the_new_lines() -> None:
    stable = "\n".join(f"Rule {n}: be careful about thing number {n}." for n in range(40))
    monday, tuesday = f"{stable}\nConversation started: Monday", f"{stable}\nConversation started: Tuesday"
    assert system_change(monday, monday) == ()
    assert system_change(monday, tuesday) == ("Conversation started: Tuesday",)
    assert system_change("You are helpful.", "You are a pirate.") is None
    assert system_change(monday, "Another agent entirely.\n" * 3) is None
    conversation = _chat([{"role": "system", "content": monday}, {"role": "user", "content": "x"}])
    index = AffinityIndex()
    index.advance(_head("s1", conversation, _says("a", "A")))
    found = index.lookup(replace(conversation, system=tuesday, messages=_says("a", "A", "b")))
    assert found.head.session_id == "s1" and found.system_note == ("Conversation started: Tuesday",)


def test_trimmed_tool_results_and_replaced_images_match_what_they_stand_for() -> None:
    long_result = "line of output\n" * 500
    stored = Message("tool", answers=(ToolResult("toolu_0123456789", long_result),))
    for trimmed in (
        "[Old tool result content cleared]",
        "<persisted-output>saved to /tmp/x</persisted-output>",
        long_result[:200] + "\n[... 6000 characters cut ...]\n" + long_result[-200:],
    ):
        assert mismatch(stored, Message("tool", answers=(ToolResult("toolu_0123456789", trimmed),))) is None
    assert mismatch(stored, Message("tool", answers=(ToolResult("toolu_other12345", "[cleared]"),))) is not None
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}
    question = {"type": "text", "text": "what is this?"}
    with_image = Message("user", content=(image, question))
    assert (
        mismatch(with_image, Message("user", content=({"type": "text", "text": "[image omitted]"}, question))) is None
    )
    assert mismatch(with_image, Message("user", content=({"type": "text", "text": "what is that?"},))) is not None


def _event(seq: int, type_: str, data: dict) -> Event:
    return Event(seq, type_, "sess_1", "turn_1", "now", data)


def test_reply_builder_sends_unstreamed_text_whole_and_separates_messages() -> None:
    builder = ReplyBuilder("sess_1")
    deltas = []
    for event in [
        _event(1, "turn.started", {}),
        _event(2, "message.delta", {"text": "Let me "}),
        _event(3, "message.delta", {"text": "look."}),
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
    history = (
        hello,
        Message("assistant", text="hi", tool_calls=(ToolCall("t1", "f", {"a": 1}),)),
        Message("tool", answers=(ToolResult("t1", "42"),)),
        Message("assistant", text="It is 42."),
        Message("user", content=({"type": "text", "text": "thanks"},)),
    )
    transcript, latest = seed_input(history)
    assert latest == {"type": "text", "text": "thanks"}
    for part in (
        "<conversation_history>",
        "<user>\nhello",
        '[called tool f with {"a":1} (call id t1)]',
        '<tool_result call_id="t1">\n42',
        "It is 42.",
    ):
        assert part in transcript["text"]
    ends_in_results = seed_input(history[:3])
    assert len(ends_in_results) == 1 and "Continue from the tool results" in ends_in_results[0]["text"]


PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def test_openai_image_parts_become_native_image_blocks() -> None:
    conversation = _chat(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                    {"type": "image_url", "image_url": {"url": "https://images.example.invalid/cat.png"}},
                ],
            }
        ]
    )
    assert conversation.messages[0].content == (
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "image", "source": {"type": "url", "url": "https://images.example.invalid/cat.png"}},
    )


def test_an_assistant_reply_matches_what_the_client_keeps_of_it() -> None:
    """Clients strip their own markup from replies they keep (OpenClaw's reply directives and
    context markers); a regenerated or edited reply is still another reply."""
    stored = Message(
        "assistant", text="[[reply_to_current]] Hello!\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>> How can I help?"
    )
    assert mismatch(stored, Message("assistant", text="Hello!  How can I help?")) is None
    assert mismatch(stored, Message("assistant", text="Hello! How may I help?")) == "the assistant text differs"
    assert mismatch(stored, Message("assistant", text="How can I help? Hello!")) == "the assistant text differs"
    assert mismatch(Message("assistant", text="Hi"), Message("assistant", text="Hi there")) is not None
