"""Compat building blocks without a gateway: canonical form, fingerprints, the affinity
index, reply assembly and seeding."""

from __future__ import annotations

from dataclasses import replace

from ccapi.catalog import ModelCatalog
from ccapi.compat.affinity import AffinityIndex, Head, conversation_key, same_options
from ccapi.compat.anthropic_messages import parse as parse_messages
from ccapi.compat.conversation import Conversation, Message, ToolCall, normalise
from ccapi.compat.matching import droppable, mismatch, native_answers, same_call
from ccapi.compat.openai_chat import parse as parse_chat
from ccapi.compat.reply import MESSAGE_SEPARATOR, Reply, ReplyBuilder, TextDelta
from ccapi.compat.seed import Seed, seed
from ccapi.engine.history import transcript_entries
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
    assert index.head_of("s1") == head  # matching a head leaves it findable (a concurrent request queues)
    assert "no session" in AffinityIndex().lookup(conversation).miss
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
    index = AffinityIndex()
    index.advance(_head("s2", conversation, said_more, marks[:6]))
    missed = index.lookup(replace(conversation, messages=_says("a", "A", "b", "B", "c")))
    assert missed.head is None and missed.fork.keep == 2  # a reply that said something is branched around
    called = Message("assistant", text="NO_REPLY", tool_calls=(ToolCall("toolu_1", "f", {}),))
    assert not droppable(stored[2], called) and droppable(stored[2], stored[3])


def test_the_history_finds_the_session_whatever_the_options_and_its_own_options_go_first() -> None:
    """A changed system prompt, tool set or model does not make another conversation."""
    conversation = _chat([{"role": "system", "content": "Now: Monday 10:00"}, {"role": "user", "content": "x"}])
    index = AffinityIndex()
    index.advance(_head("s1", conversation, _says("a", "A")))
    tuesday = replace(conversation, system="Now: Tuesday 09:00", messages=_says("a", "A", "b"))
    found = index.lookup(tuesday)
    assert found.head.session_id == "s1" and not same_options(found.head, tuesday)
    other_tools = replace(tuesday, tools=({"name": "read", "input_schema": {"type": "object"}},))
    assert index.lookup(other_tools).head.session_id == "s1"
    index.advance(replace(_head("s2", tuesday, _says("a", "A")), tools=tuesday.tools_key, model=tuesday.model))
    found = index.lookup(tuesday)
    assert found.head.session_id == "s2" and same_options(found.head, tuesday)


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


def test_a_seed_writes_the_history_as_messages_with_paired_tool_blocks() -> None:
    hello = Message("user", content=({"type": "text", "text": "hello"},))
    assert seed((hello,)) == Seed(None, ({"type": "text", "text": "hello"},), ())
    history = (
        hello,
        Message("assistant", text="hi", tool_calls=(ToolCall("call.1", "f", {"a": 1}),)),
        Message("tool", answers=(ToolResult("call.1", "42"), ToolResult("gone", "x"))),
        Message("assistant", text="It is 42."),
        Message("user", content=({"type": "text", "text": "thanks"},)),
    )
    planted = seed(history)
    assert planted.input == ({"type": "text", "text": "thanks"},)
    assert planted.history is not None
    assert planted.history.messages == (
        {"role": "user", "content": [{"type": "text", "text": "hello"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "42"},
                {"type": "text", "text": "[result of tool call gone]\nx"},  # its call is not in the history
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "It is 42."}]},
    )
    assert planted.flattened == ("gone",)
    assert [p is not None for p in planted.points] == [False, False, False, True]  # a reply ending a turn
    assert planted.points[3] == planted.history.uuids[3]
    ends_in_results = seed(history[:3])
    assert ends_in_results.input == () and len(ends_in_results.history.messages) == 3
    unanswered = seed(
        (hello, history[1], Message("user", content=({"type": "text", "text": "never mind"},)), history[3], history[4])
    )
    assert unanswered.history.messages[2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "call_1",
        "content": "(no result for this call is in the conversation)",
        "is_error": True,
    }


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


def _user(*texts: str) -> Message:
    return Message("user", content=tuple({"type": "text", "text": text} for text in texts))


def test_a_user_message_replayed_as_the_same_words_in_other_blocks_matches() -> None:
    """OpenClaw re-sends a message with its timestamp envelope moved into a block of its own."""
    stored = _user("[Thu 2026-12-03 10:00 UTC] what is on today?")
    assert mismatch(stored, _user("what is on today?", "[Thu 2026-12-03 10:00 UTC]")) is None
    assert mismatch(stored, _user("[Thu 2026-12-03 10:00 UTC]", "what is on today?")) is None
    with_context = _user("[Thu 2026-12-03 10:00 UTC] what is on today?", "<<<CONTEXT>>> request 3 <<<END>>>")
    assert mismatch(with_context, _user("what is on today?", "[Thu 2026-12-03 10:00 UTC]")) is None
    for other in (
        _user("what is on tomorrow?", "[Thu 2026-12-03 10:00 UTC]"),  # another word
        _user("what is on today?"),  # a part of a block left out
        _user("what is on today? today?", "[Thu 2026-12-03 10:00 UTC]"),  # a word more
    ):
        assert mismatch(stored, other) == "the user message differs"
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}}
    assert mismatch(Message("user", content=(image, *stored.content)), _user("what is on today?")) is not None


def test_a_user_message_whose_runtime_line_names_another_session_matches() -> None:
    """OpenClaw stamps the first message with ``Runtime: … | session=…``; its memory flush runs in a
    session of its own and replays that message with its own line: still the same message."""
    line = "Runtime: agent=main | session=agent:main:{} | sessionId={} | host=vm"
    stored = _user(f"[Sun 2026-11-29 23:40 UTC] plan the day\n\n{line.format('main', 'a1')}")
    assert mismatch(stored, _user(f"[Sun 2026-11-29 23:40 UTC] plan the day\n\n{line.format('flush', 'b2')}")) is None
    assert mismatch(stored, _user("[Sun 2026-11-29 23:40 UTC] plan the day")) is None  # the line left out
    for other in (
        _user(f"[Sun 2026-11-29 23:40 UTC] plan the night\n\n{line.format('flush', 'b2')}"),  # another word
        _user("[Sun 2026-11-29 23:40 UTC] plan the day\n\nNote: the runtime line is prose here, not keys"),
    ):
        assert mismatch(stored, other) == "the user message differs"


def test_seeded_transcript_entries_chain_after_their_parent_and_name_client_tools_as_the_model_knows_them() -> None:
    """Claude Code resumes from the newest entry along ``parentUuid``: a seeded history must
    follow a fork's last entry in time and in the chain."""
    parent = {"uuid": "p-1", "timestamp": "2099-01-01T00:00:00.000Z"}
    messages = (
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "read.file", "input": {}}]},
    )
    entries = transcript_entries("sdk-1", messages, ("u-1", "u-2"), "claude-sonnet-4-5", "/w", parent)
    assert [(e["type"], e["uuid"], e["parentUuid"]) for e in entries] == [
        ("user", "u-1", "p-1"),
        ("assistant", "u-2", "u-1"),
    ]
    assert entries[0]["timestamp"] > parent["timestamp"] and entries[1]["timestamp"] > entries[0]["timestamp"]
    assert entries[1]["message"]["content"][0]["name"] == "mcp__client__read_file"
    assert entries[1]["message"]["stop_reason"] == "tool_use" and entries[0]["sessionId"] == "sdk-1"
