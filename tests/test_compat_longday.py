"""A long day with a compat client: a history no session holds reaches the model as
messages, never flattened, and the session is warm from there (issue 28)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ccapi.testing import MockModel, Reply, ToolUse
from tests.compat_support import WEATHER_SCHEMA, main_requests, user_texts
from tests.gateway import AUTO_COMPACTING, Gateway
from tests.metrics_support import moved, scrape

TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER_SCHEMA},
}


@pytest.fixture
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{gateway.base_url}/v1", timeout=60) as client:
        yield client


def _chat(http: httpx.Client, messages: list[dict[str, Any]], **extra: Any) -> tuple[str, dict[str, Any]]:
    response = http.post("/chat/completions", json={"model": "sonnet", "messages": messages, **extra})
    assert response.status_code == 200, response.text
    return response.headers["x-cc-session-id"], response.json()["choices"][0]


def _weather_history(city: str) -> list[dict[str, Any]]:
    """A conversation the gateway never served: a question, a tool call, its result, a reply."""
    call = f"call_{city.lower()}_1"
    return [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"weather in {city}?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": call,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": f'{{"city":"{city}"}}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call, "content": "-3C and snowing"},
        {"role": "assistant", "content": f"{city}: -3C and snowing."},
    ]


def _no_flattening(mock: MockModel) -> None:
    assert all("<conversation_history>" not in str(body["messages"]) for body in main_requests(mock))


def test_an_unknown_history_reaches_the_model_as_messages_and_then_stays_warm(
    http: httpx.Client, gateway: Gateway, mock_model: MockModel
) -> None:
    history = _weather_history("Oslo")
    session, choice = _chat(http, [*history, {"role": "user", "content": "and tomorrow?"}], tools=[TOOL])
    assert choice["message"]["content"] == "mock reply: and tomorrow?"
    [first] = main_requests(mock_model)
    sent = first["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert user_texts(sent[0]) == ["weather in Oslo?"]
    assert sent[1]["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_oslo_1", "name": "mcp__client__get_weather", "input": {"city": "Oslo"}},
    ]
    [result] = sent[2]["content"]
    assert (result["type"], result["tool_use_id"], result["content"]) == (
        "tool_result",
        "call_oslo_1",
        "-3C and snowing",
    )
    assert sent[3]["content"] == [{"type": "text", "text": "Oslo: -3C and snowing."}]
    assert user_texts(sent[4]) == ["and tomorrow?"]
    _no_flattening(mock_model)

    follow_up = [
        *history,
        {"role": "user", "content": "and tomorrow?"},
        choice["message"],
        {"role": "user", "content": "thanks"},
    ]
    again, _ = _chat(http, follow_up, tools=[TOOL])
    assert again == session
    second = main_requests(mock_model)[-1]["messages"]
    assert len(second) == 7 and user_texts(second[-1]) == ["thanks"]
    turns = [e["data"]["input"] for e in gateway.events(session) if e["type"] == "turn.started"]
    assert turns == [[{"type": "text", "text": "and tomorrow?"}], [{"type": "text", "text": "thanks"}]]


def test_an_unknown_history_ending_in_tool_results_continues_from_them(
    http: httpx.Client, mock_model: MockModel
) -> None:
    mock_model.script(Reply(text="Lima: warm."))
    history = _weather_history("Lima")[:-1]  # the client ran the call; the reply is still to come
    session, choice = _chat(http, history, tools=[TOOL])
    assert choice["message"]["content"] == "Lima: warm."
    [first] = main_requests(mock_model)
    sent = first["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"][-1]["type"] == "tool_use"
    result = sent[2]["content"][0]
    assert (result["type"], result["tool_use_id"]) == ("tool_result", "call_lima_1")
    assert str(result["content"]).startswith("-3C and snowing")
    _no_flattening(mock_model)
    again, _ = _chat(http, [*history, choice["message"], {"role": "user", "content": "thanks, Lima"}], tools=[TOOL])
    assert again == session and len(main_requests(mock_model)[-1]["messages"]) == 5  # warm from there


def _tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}


def _live(gateway: Gateway) -> int:
    return gateway.client.get("/healthz").json()["live_engines"]


def test_a_short_prompt_whose_time_line_changes_each_turn_stays_on_one_session(
    http: httpx.Client, mock_model: MockModel
) -> None:
    """The model sees the prompt the client sent now; the history, not the prompt, is the conversation."""

    def system(now: str) -> dict[str, str]:  # ~200 characters, a third of it the time line
        return {
            "role": "system",
            "content": "You are Pip, a terse helper for a small team. Answer in one line, never guess.\n"
            f"Current date and time: Thursday 3 December 2026, {now} UTC (week 49).",
        }

    history: list[dict[str, Any]] = []
    sessions = set()
    for turn, now in enumerate(["09:00", "09:07", "09:21"]):
        history.append({"role": "user", "content": f"question {turn}"})
        session, choice = _chat(http, [system(now), *history])
        sessions.add(session)
        history.append({"role": "assistant", "content": choice["message"]["content"]})
    assert len(sessions) == 1
    bodies = main_requests(mock_model)
    assert [len(b["messages"]) for b in bodies] == [1, 3, 5]  # one transcript, growing
    for body, now in zip(bodies, ["09:00", "09:07", "09:21"], strict=True):
        assert f"{now} UTC" in str(body["system"])
    _no_flattening(mock_model)


@pytest.mark.slow  # a line and a released fork, four turns
def test_a_changed_prompt_restarts_the_session_and_a_side_request_with_other_tools_is_a_released_fork(
    http: httpx.Client, gateway: Gateway, mock_model: MockModel
) -> None:
    """OpenClaw's day: BOOTSTRAP leaves the prompt (same session, new prompt); a memory flush with
    other tools over the same history, its first message stamped with the flush's own session, is a
    branch whose process stops once it answers."""
    bootstrap = "\n".join(f"Bootstrap step {n}: set up the workspace part {n}." for n in range(40))
    base = "You are a personal assistant. Tools: weather."
    runtime = "Runtime: agent=main | session=agent:main:{} | host=vm | model=cc-api/claude-sonnet-4-5"
    history: list[dict[str, Any]] = [{"role": "user", "content": f"hello\n\n{runtime.format('main')}"}]
    main, choice = _chat(http, [{"role": "system", "content": f"{base}\n{bootstrap}"}, *history], tools=[TOOL])
    history += [choice["message"], {"role": "user", "content": "what now?"}]
    same, choice = _chat(http, [{"role": "system", "content": base}, *history], tools=[TOOL])
    assert same == main
    restarted = main_requests(mock_model)[-1]
    assert len(restarted["messages"]) == 3 and "Bootstrap step" not in str(restarted["system"])
    history.append(choice["message"])
    live = _live(gateway)

    flush = [
        {"role": "system", "content": "Pre-compaction memory flush. Store durable memories now."},
        {"role": "user", "content": f"hello\n\n{runtime.format('internal-session-effects:1f2e')}"},
        *history[1:],
        {"role": "user", "content": "Write anything worth keeping to memory/2026-12-03.md."},
    ]
    side, _ = _chat(http, flush, tools=[_tool("read"), _tool("write")])
    assert side != main
    sent = main_requests(mock_model)[-1]
    assert len(sent["messages"]) == 5 and "memory flush" in str(sent["system"])
    assert {t["name"] for t in sent["tools"]} == {"mcp__client__read", "mcp__client__write"}
    assert _live(gateway) == live  # the branch's Claude Code stopped once it answered

    history.append({"role": "user", "content": "thanks"})
    again, _ = _chat(http, [{"role": "system", "content": base}, *history], tools=[TOOL])
    assert again == main  # the main line goes on warm, without the flush
    last = main_requests(mock_model)[-1]
    assert len(last["messages"]) == 5 and "memory" not in str(last["messages"])
    _no_flattening(mock_model)


def test_a_one_off_summary_gives_its_process_back_once_it_answers(http: httpx.Client, gateway: Gateway) -> None:
    live = _live(gateway)
    _, choice = _chat(http, [{"role": "user", "content": "Summarise this conversation: [...]"}])
    assert choice["message"]["content"] == "mock reply: Summarise this conversation: [...]"
    assert _live(gateway) == live


@pytest.mark.slow  # three sessions, a paused one released
def test_a_session_paused_on_a_call_its_compacted_history_dropped_is_released_but_not_by_a_heartbeat(
    http: httpx.Client, gateway: Gateway, mock_model: MockModel
) -> None:
    system = {"role": "system", "content": "You are an agent with weather."}
    opening: list[dict[str, Any]] = [{"role": "user", "content": "hello, compacting agent"}]
    _, choice = _chat(http, [system, *opening], tools=[TOOL])
    opening.append(choice["message"])
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Bergen"}),)))
    paused, choice = _chat(http, [system, *opening, {"role": "user", "content": "Bergen?"}], tools=[TOOL])
    assert choice["finish_reason"] == "tool_calls"

    poll = {"role": "user", "content": "[heartbeat poll] anything to report?"}  # another prompt and tool set
    _chat(http, [{"role": "system", "content": "Heartbeat."}, *opening, poll], tools=[_tool("notify")])
    assert gateway.client.get(f"/api/sessions/{paused}").json()["status"] == "requires_action"

    compacted = [system, *opening, {"role": "user", "content": "Summary of earlier turns: weather talk.\n\nWhat now?"}]
    _, choice = _chat(http, compacted, tools=[TOOL])  # the client's compaction dropped the pending call
    assert choice["message"]["content"].startswith("mock reply:")
    session = gateway.client.get(f"/api/sessions/{paused}").json()
    assert session["status"] == "idle"
    ended = [e["type"] for e in gateway.events(paused) if e["type"] in ("turn.requires_action", "turn.interrupted")]
    assert ended == ["turn.requires_action", "turn.interrupted"]


def test_a_user_message_resent_in_two_blocks_with_its_timestamp_moved_stays_warm(
    http: httpx.Client, mock_model: MockModel
) -> None:
    """After a NO_REPLY poll OpenClaw re-sends the user's message with its envelope as a block of its own."""
    asked = "[Thu 2026-12-03 10:00 UTC] what is on my calendar, envelope test?"
    session, choice = _chat(http, [{"role": "user", "content": asked}])
    resent = {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is on my calendar, envelope test?"},
            {"type": "text", "text": "[Thu 2026-12-03 10:00 UTC]"},
        ],
    }
    again, _ = _chat(http, [resent, choice["message"], {"role": "user", "content": "and tomorrow?"}])
    assert again == session
    assert [len(b["messages"]) for b in main_requests(mock_model)] == [1, 3]  # warm: no branch, nothing re-sent
    _no_flattening(mock_model)


@pytest.mark.slow  # a line and its branch, three turns
def test_a_branch_gets_the_messages_after_its_fork_point_as_messages(
    http: httpx.Client, gateway: Gateway, mock_model: MockModel
) -> None:
    """An edited turn with a reply the client already has: branch at the last shared reply and
    write what follows into the branch's transcript; only the newest input is a turn."""
    history: list[dict[str, Any]] = []
    for question in ("branch one", "branch two"):
        history.append({"role": "user", "content": question})
        original, choice = _chat(http, history)
        history.append(choice["message"])
    edited = [
        *history[:2],
        {"role": "user", "content": "branch two, edited"},
        {"role": "assistant", "content": "An answer from elsewhere."},
        {"role": "user", "content": "branch three"},
    ]
    mock_model.clear()
    branch, _ = _chat(http, edited)
    assert branch != original
    [sent] = main_requests(mock_model)
    texts = [user_texts(m) if m["role"] == "user" else [b["text"] for b in m["content"]] for m in sent["messages"]]
    assert texts == [
        ["branch one"],
        ["mock reply: branch one"],
        ["branch two, edited"],
        ["An answer from elsewhere."],
        ["branch three"],
    ]
    created = gateway.events(branch)[0]["data"]
    assert created["forked_from"]["session_id"] == original and created["history_messages"] == 2
    assert [e["data"]["input"] for e in gateway.events(branch) if e["type"] == "turn.started"] == [
        [{"type": "text", "text": "branch three"}]
    ]


def test_a_tool_result_without_its_call_is_the_one_corner_flattened_and_counted(
    http: httpx.Client, gateway: Gateway, mock_model: MockModel
) -> None:
    before = scrape(gateway)
    orphan = [
        {"role": "user", "content": "orphan result test"},
        {"role": "assistant", "content": "Done earlier."},
        {"role": "tool", "tool_call_id": "call_gone_1", "content": "stale output"},
        {"role": "user", "content": "go on"},
    ]
    _chat(http, orphan, tools=[TOOL])
    sent = main_requests(mock_model)[-1]["messages"]
    assert any("[result of tool call call_gone_1]\nstale output" in text for text in user_texts(sent[2]))
    assert moved(before, scrape(gateway), "cc_api_compat_flattened_total", format="openai.chat") == 1


PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def test_an_anthropic_history_keeps_its_images_and_tool_blocks(http: httpx.Client, mock_model: MockModel) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "what is in this picture?"}, image]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_pic_1", "name": "get_weather", "input": {"city": "Oslo"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_pic_1", "content": "-3C"}]},
        {"role": "assistant", "content": "A snowy street in Oslo."},
        {"role": "user", "content": "and now?"},
    ]
    tool = {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER_SCHEMA}
    response = http.post(
        "/messages", json={"model": "sonnet", "max_tokens": 100, "messages": messages, "tools": [tool]}
    )
    assert response.status_code == 200, response.text
    sent = main_requests(mock_model)[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert sent[0]["content"][1] == image
    assert sent[1]["content"][0]["name"] == "mcp__client__get_weather"
    assert sent[2]["content"][0]["tool_use_id"] == "toolu_pic_1"


@pytest.mark.slow  # a line and its branch, four turns
def test_a_line_the_clients_compaction_left_gives_its_process_back(
    http: httpx.Client, gateway: Gateway, mock_model: MockModel
) -> None:
    system = {"role": "system", "content": "You are a compacting agent."}
    history: list[dict[str, Any]] = []
    for question in ("left line one", "left line two", "left line three"):
        history.append({"role": "user", "content": question})
        old, choice = _chat(http, [system, *history], tools=[TOOL])
        history.append(choice["message"])
    live = _live(gateway)
    compacted = [system, *history[:2], {"role": "user", "content": "Summary: two more questions.\n\nAnd now?"}]
    new, _ = _chat(http, compacted, tools=[TOOL])
    assert new != old and _live(gateway) == live  # the branch runs; the line it left stopped
    assert len(main_requests(mock_model)[-1]["messages"]) == 3


def _status(gateway: Gateway, session: str) -> str:
    return str(gateway.client.get(f"/api/sessions/{session}").json()["status"])


def _session_live(gateway: Gateway, session: str) -> bool:
    return bool(gateway.client.get(f"/api/sessions/{session}").json()["live"])


@pytest.mark.slow  # two lines and a resume, four turns
def test_a_line_whose_opening_the_clients_compression_rewrote_gives_its_process_back(
    http: httpx.Client, gateway: Gateway, mock_model: MockModel
) -> None:
    """Hermes's compression rewrites the opening: the seeded new session replaces the line of the same agent."""
    system = {"role": "system", "content": "You are a compressing agent."}
    tools = [_tool("compress_probe")]  # this agent's own tool set
    history: list[dict[str, Any]] = []
    for question in ("compressed line one", "compressed line two"):
        history.append({"role": "user", "content": question})
        old, choice = _chat(http, [system, *history], tools=tools)
        history.append(choice["message"])
    rewritten = [
        system,
        {"role": "user", "content": "[CONTEXT COMPACTION] Summary: two questions were answered."},
        {"role": "assistant", "content": "Understood; continuing from the summary."},
        {"role": "user", "content": "and next?"},
    ]
    new, _ = _chat(http, rewritten, tools=tools)
    assert new != old and _session_live(gateway, new)  # the new line runs
    assert _status(gateway, old) == "idle" and not _session_live(gateway, old)  # the one it replaced stopped
    assert len(main_requests(mock_model)[-1]["messages"]) == 3  # seeded as messages, only the new input sent
    history.append({"role": "user", "content": "back to the old line?"})
    again, _ = _chat(http, [system, *history], tools=tools)
    assert again == old  # parked, not lost: it resumes
    _no_flattening(mock_model)


@pytest.mark.slow  # two sessions, a paused one released by its key
def test_a_session_paused_on_a_call_a_compression_dropped_is_released_by_the_clients_key(
    http: httpx.Client, gateway: Gateway, mock_model: MockModel
) -> None:
    """A tool call ran in a side branch, then the client compressed: the branch stops waiting."""
    key = {"prompt_cache_key": "longday-paused-key"}
    system = {"role": "system", "content": "You are an agent with weather, keyed."}
    opening: list[dict[str, Any]] = [{"role": "user", "content": "hello, keyed agent"}]
    _, choice = _chat(http, [system, *opening], tools=[TOOL], **key)
    opening.append(choice["message"])
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Tromso"}),)))
    paused, choice = _chat(http, [system, *opening, {"role": "user", "content": "Tromso?"}], tools=[TOOL], **key)
    assert choice["finish_reason"] == "tool_calls"
    rewritten = [
        {"role": "system", "content": "You are an agent with weather, keyed. [Earlier turns were compacted.]"},
        {"role": "user", "content": "Summary: we greeted and asked about Tromso."},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "what now?"},
    ]
    new, choice = _chat(http, rewritten, tools=[TOOL], **key)
    assert new != paused and choice["message"]["content"] == "mock reply: what now?"
    assert _status(gateway, paused) == "idle" and not _session_live(gateway, paused)  # released
    ended = [e["type"] for e in gateway.events(paused) if e["type"] in ("turn.requires_action", "turn.interrupted")]
    assert ended == ["turn.requires_action", "turn.interrupted"]


@pytest.mark.slow  # a line and a side branch, three turns
def test_a_side_branch_that_called_a_client_tool_gives_its_process_back_when_its_turn_ends(
    http: httpx.Client, gateway: Gateway, mock_model: MockModel
) -> None:
    """OpenClaw's memory flush calls the client's ``write`` tool; once the result is in and it answers, it stops."""
    base = {"role": "system", "content": "You are a flushing assistant."}
    history: list[dict[str, Any]] = [{"role": "user", "content": "remember the dentist on Friday"}]
    main, choice = _chat(http, [base, *history], tools=[TOOL])
    history.append(choice["message"])
    flush = [
        {"role": "system", "content": "Pre-compaction memory flush turn."},
        *history,
        {"role": "user", "content": "Store durable memories now."},
    ]
    flush_tools = [_tool("read"), _tool("write")]
    mock_model.script(Reply(tool_uses=(ToolUse("write", {}),)))
    side, choice = _chat(http, flush, tools=flush_tools)
    assert side != main and choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    result = {"role": "tool", "tool_call_id": call["id"], "content": "written"}
    mock_model.script(Reply(text="NO_REPLY"))
    after, choice = _chat(http, [*flush, choice["message"], result], tools=flush_tools)
    assert after == side and choice["message"]["content"] == "NO_REPLY"
    assert _status(gateway, side) == "idle" and not _session_live(gateway, side)  # its Claude Code stopped
    assert _session_live(gateway, main)  # the line it branched from stays warm


@pytest.mark.slow  # a line and a poll's branch, three turns
def test_the_first_user_turn_after_a_heartbeat_poll_continues_the_main_line(
    http: httpx.Client, gateway: Gateway, mock_model: MockModel
) -> None:
    """The poll's branch holds the line plus the pruned poll; the next turn still goes to the line itself."""
    base = {"role": "system", "content": "You are a polled assistant."}
    history: list[dict[str, Any]] = [{"role": "user", "content": "what is due this week, polled?"}]
    main, choice = _chat(http, [base, *history], tools=[TOOL])
    history.append(choice["message"])
    poll = {"role": "user", "content": "[heartbeat poll] reply HEARTBEAT_OK if nothing needs attention."}
    mock_model.script(Reply(text="HEARTBEAT_OK"))
    side, _ = _chat(http, [{"role": "system", "content": "Heartbeat."}, *history, poll], tools=[_tool("notify")])
    assert side != main
    history.append({"role": "user", "content": "and next week?"})  # the poll pruned, as OpenClaw does
    again, _ = _chat(http, [base, *history], tools=[TOOL])
    assert again == main
    last = main_requests(mock_model)[-1]
    assert len(last["messages"]) == 3 and "heartbeat" not in str(last["messages"])  # warm, no poll in it


@pytest.mark.slow  # a gateway of its own, long turns and two compactions
def test_a_branch_after_claude_code_compacted_the_conversation_forks_from_what_it_kept(
    make_gateway, mock_model: MockModel
) -> None:
    """Claude Code compacts a long compat conversation by itself (its thresholds brought down to the mock's turns):
    a client that then edits its newest turn gets a fork of the compacted session, the summary and what followed it
    and not the conversation the summary replaced; one that edits a turn from before the compaction gets a fork of
    the conversation up to there, which Claude Code compacts in its turn."""
    gateway = make_gateway(**AUTO_COMPACTING)
    history: list[dict[str, Any]] = []
    with httpx.Client(base_url=f"{gateway.base_url}/v1", timeout=60) as http:
        for question in ("one " + "words " * 3000, "two " + "words " * 3000, "three", "four"):
            if question == "three":
                mock_model.script(Reply(text="<summary>Summary: one and two, long.</summary>"))
            history.append({"role": "user", "content": question})
            original, choice = _chat(http, history)
            history.append(choice["message"])
        compactions = gateway.client.get(f"/api/sessions/{original}/events", params={"types": "session.compacted"})
        assert [e["data"]["trigger"] for e in compactions.json()["data"]] == ["auto"]

        mock_model.clear()
        after, choice = _chat(http, [*history[:6], {"role": "user", "content": "four, edited"}])
        assert after != original and choice["message"]["content"] == "mock reply: four, edited"
        [sent] = main_requests(mock_model)
        said = str(sent["messages"])
        assert "Summary: one and two, long." in said and "one words" not in said, said[:2000]
        assert [user_texts(m) for m in sent["messages"] if m["role"] == "user"][-1] == ["four, edited"]

        mock_model.clear()
        mock_model.script(Reply(text="<summary>Summary: one and two, again.</summary>"))
        before, choice = _chat(http, [*history[:4], {"role": "user", "content": "three, edited"}])
        assert before not in (original, after) and choice["message"]["content"] == "mock reply: three, edited"
        summarised, answered = main_requests(mock_model)
        assert "one words" in str(summarised["messages"]) and "Summary: one and two, again." in str(answered)
    for branch in (after, before):
        assert gateway.events(branch)[0]["data"]["forked_from"]["session_id"] == original
