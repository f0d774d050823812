"""Request sequences as Hermes Agent and OpenClaw really send them stay on one warm session.

OpenClaw ends each request with a context message it drops from the next one (or moves
after a tool result), strips non-alphanumerics from tool-call ids on custom providers and
sends ``call_<id>_fc_<n>`` on Responses; both clients echo a Responses reply's text and
each function call as separate items. None of that may start a new, re-seeded session,
and a paused session the client has gone past must not keep its live slot.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ccapi.testing import MockModel, Reply, ToolUse
from tests.compat_support import WEATHER_SCHEMA, main_requests, result_text, tool_results_sent, user_texts
from tests.gateway import Gateway
from tests.metrics_support import moved, scrape

CHAT_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER_SCHEMA},
}
RESPONSES_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": WEATHER_SCHEMA,
}


@pytest.fixture
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{gateway.base_url}/v1", timeout=60) as client:
        yield client


def _context(n: int) -> dict[str, str]:
    """OpenClaw's per-request context message: sent once, never kept in its history."""
    return {
        "role": "user",
        "content": f"<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nrequest {n}, "
        f"time 10:0{n}\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>",
    }


def _chat(http: httpx.Client, messages: list[dict[str, Any]], **extra: Any) -> tuple[str, dict[str, Any]]:
    response = http.post("/chat/completions", json={"model": "sonnet", "messages": messages, **extra})
    assert response.status_code == 200, response.text
    return response.headers["x-cc-session-id"], response.json()["choices"][0]


def _no_reseed(mock: MockModel) -> None:
    assert all("<conversation_history>" not in str(body["messages"]) for body in main_requests(mock))


def test_openclaw_chat_with_context_messages_and_stripped_tool_ids_stays_on_one_session(
    http: httpx.Client, mock_model: MockModel
) -> None:
    history: list[dict[str, Any]] = [{"role": "system", "content": "You are a personal assistant."}]
    sessions = set()

    session, choice = _chat(http, [*history, {"role": "user", "content": "hello"}, _context(0)], tools=[CHAT_TOOL])
    sessions.add(session)
    history += [{"role": "user", "content": "hello"}, {"role": "assistant", "content": choice["message"]["content"]}]

    mock_model.script(
        Reply(text="Let me check.", tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)), Reply(text="Oslo: -3C.")
    )
    session, choice = _chat(
        http, [*history, {"role": "user", "content": "weather in Oslo?"}, _context(1)], tools=[CHAT_TOOL]
    )
    sessions.add(session)
    assert choice["finish_reason"] == "tool_calls"
    issued = choice["message"]["tool_calls"][0]["id"]
    stripped = re.sub("[^A-Za-z0-9]", "", issued)
    assert stripped != issued
    history += [
        {"role": "user", "content": "weather in Oslo?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": stripped,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": stripped, "content": "-3C and snowing"},
    ]
    session, choice = _chat(http, [*history, _context(2)], tools=[CHAT_TOOL])  # context after the result
    sessions.add(session)
    assert choice["message"]["content"] == "Oslo: -3C."
    history.append({"role": "assistant", "content": "Oslo: -3C."})

    session, choice = _chat(http, [*history, {"role": "user", "content": "thanks"}, _context(3)], tools=[CHAT_TOOL])
    sessions.add(session)

    assert len(sessions) == 1
    bodies = main_requests(mock_model)
    assert len(bodies) == 4  # hello, the tool call, its continuation, thanks: no re-seeded turn
    assert [len(b["messages"]) for b in bodies] == [1, 3, 5, 7]
    _no_reseed(mock_model)
    [sent] = tool_results_sent(mock_model)  # under the id Claude issued, this request's context with it
    assert sent["tool_use_id"] == issued and result_text(sent).startswith("-3C and snowing")
    assert "request 2" in result_text(sent)
    assert any("request 3" in text for text in user_texts(bodies[-1]["messages"][-1]))  # this turn's context


def test_responses_items_split_and_wrapped_call_ids_stay_on_one_session(
    http: httpx.Client, mock_model: MockModel
) -> None:
    mock_model.script(
        Reply(
            text="Checking both.",
            tool_uses=(ToolUse("get_weather", {"city": "Oslo"}), ToolUse("get_weather", {"city": "Lima"})),
        ),
        Reply(text="Oslo is cold, Lima is warm."),
    )
    items: list[dict[str, Any]] = [{"role": "user", "content": "Oslo and Lima?"}]
    sessions = set()
    first = http.post("/responses", json={"model": "sonnet", "input": items, "tools": [RESPONSES_TOOL]})
    sessions.add(first.headers["x-cc-session-id"])
    output = first.json()["output"]
    assert [item["type"] for item in output] == ["message", "function_call", "function_call"]
    for n, item in enumerate(output):
        if item["type"] == "message":  # echoed as an input message, the way Hermes and OpenClaw do
            items.append({"type": "message", "role": "assistant", "content": item["content"]})
            continue
        wrapped = f"call_{item['call_id']}_fc_{n}"
        items.append(
            {"type": "function_call", "call_id": wrapped, "name": item["name"], "arguments": item["arguments"]}
        )
    items += [
        {"type": "function_call_output", "call_id": items[2]["call_id"], "output": "-3C"},
        {"type": "function_call_output", "call_id": items[3]["call_id"], "output": "25C"},
    ]
    second = http.post("/responses", json={"model": "sonnet", "input": items, "tools": [RESPONSES_TOOL]})
    sessions.add(second.headers["x-cc-session-id"])
    assert second.json()["output"][0]["content"][0]["text"] == "Oslo is cold, Lima is warm."
    items += [
        {"type": "message", "role": "assistant", "content": second.json()["output"][0]["content"]},
        {"role": "user", "content": "thanks"},
    ]
    third = http.post("/responses", json={"model": "sonnet", "input": items, "tools": [RESPONSES_TOOL]})
    sessions.add(third.headers["x-cc-session-id"])

    assert len(sessions) == 1
    assert len(main_requests(mock_model)) == 3
    _no_reseed(mock_model)
    assert [result_text(b) for b in tool_results_sent(mock_model)] == ["-3C", "25C"]


def _wait_idle(gateway: Gateway, session_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while (session := gateway.client.get(f"/api/sessions/{session_id}").json())["status"] != "idle":
        assert time.monotonic() < deadline, session
        time.sleep(0.05)
    return session


def test_a_retried_request_releases_the_session_paused_on_its_tool_call(
    http: httpx.Client, gateway: Gateway, mock_model: MockModel
) -> None:
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Rome"}),)))
    request = [{"role": "user", "content": "Rome?"}]
    paused, choice = _chat(http, request, tools=[CHAT_TOOL])
    assert choice["finish_reason"] == "tool_calls"

    again, choice = _chat(http, request, tools=[CHAT_TOOL])  # Hermes gives up on the call and re-sends
    assert again != paused and choice["message"]["content"] == "mock reply: Rome?"
    _wait_idle(gateway, paused)
    ended = [e for e in gateway.events(paused) if e["type"].startswith("turn.") and e["type"] != "turn.started"]
    assert [e["type"] for e in ended] == ["turn.requires_action", "turn.interrupted"]
    assert "went on without" in ended[-1]["data"]["error"]["message"]
    time.sleep(0.3)
    assert len(main_requests(mock_model)) == 2  # the released session made no further model call


@pytest.mark.slow  # a gateway of its own with one slot, and a 1 s queue timeout (~6 s)
def test_a_full_pool_is_freed_by_released_sessions_and_a_503_leaves_no_empty_session(
    make_gateway, mock_model: MockModel
) -> None:
    gateway = make_gateway(CC_API_MAX_LIVE="1", CC_API_QUEUE_TIMEOUT="1")
    with httpx.Client(base_url=f"{gateway.base_url}/v1", timeout=60) as http:
        mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Rome"}),)))
        request = [{"role": "user", "content": "Rome?"}]
        paused, _ = _chat(http, request, tools=[CHAT_TOOL])  # holds the only live slot

        busy = http.post(
            "/chat/completions",
            json={
                "model": "sonnet",
                "messages": [{"role": "system", "content": "another agent"}, {"role": "user", "content": "hi"}],
            },
        )
        assert busy.status_code == 503 and busy.headers["retry-after"]
        listed = gateway.client.get("/api/sessions").json()["data"]
        assert [s["id"] for s in listed] == [paused]  # the 503 created nothing

        again, choice = _chat(http, request, tools=[CHAT_TOOL])  # the paused session gives its slot up
        assert again != paused and choice["message"]["content"] == "mock reply: Rome?"


def test_a_ten_call_tool_loop_in_one_user_turn_stays_on_one_session(http: httpx.Client, mock_model: MockModel) -> None:
    """The client's own loop is not cut by CC_API_TOOL_MAX_TURNS (4 here): its calls are not Claude Code turns."""
    cities = [f"city{n}" for n in range(10)]
    mock_model.script(
        *(Reply(tool_uses=(ToolUse("get_weather", {"city": c}),)) for c in cities), Reply(text="All ten are mild.")
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "weather everywhere?"}]
    sessions = set()
    for city in cities:
        session, choice = _chat(http, messages, tools=[CHAT_TOOL])
        sessions.add(session)
        assert choice["finish_reason"] == "tool_calls"
        call = choice["message"]["tool_calls"][0]
        assert call["function"]["arguments"] == f'{{"city":"{city}"}}'
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": f"{city}: mild"},
        ]
    session, choice = _chat(http, messages, tools=[CHAT_TOOL])
    sessions.add(session)
    assert choice["finish_reason"] == "stop" and choice["message"]["content"] == "All ten are mild."
    assert len(sessions) == 1 and len(main_requests(mock_model)) == 11
    _no_reseed(mock_model)


@pytest.mark.slow  # a gateway and a mock of their own (~5 s)
def test_a_turn_limit_is_reported_as_a_limit_not_as_truncated_output(tmp_path: Path, backend: str) -> None:
    # A compat session has no built-in tools: a model that calls Bash anyway gets Claude Code's own refusal, past
    # the limit once (nothing ran, the turn goes on), then the round after is interrupted. Under load Claude Code
    # may go on after the interrupt and answer "never reached"; the turn still reached its limit, and is reported so.
    with MockModel() as own:
        gateway = Gateway(tmp_path / "gw", own.url, backend, CC_API_TOOL_MAX_TURNS="1").start()
        try:
            bash = Reply(tool_uses=(ToolUse("Bash", {"command": "true"}),))
            own.script(bash, bash, bash, Reply(text="never reached"))
            with httpx.Client(base_url=f"{gateway.base_url}/v1", timeout=60) as http:
                response = http.post(
                    "/chat/completions",
                    json={
                        "model": "sonnet",
                        "tools": [CHAT_TOOL],
                        "messages": [{"role": "user", "content": "loop on your own tools"}],
                    },
                )
        finally:
            gateway.stop()
        seen = [
            (r.side, len(r.body.get("tools") or ()), str(r.body["messages"][-1])[-120:]) for r in own.message_requests()
        ]
    assert gateway.lingering_processes() == []
    assert response.status_code == 422, (response.text[:300], seen)
    error = response.json()["error"]
    assert error["code"] == "turn_limit" and "CC_API_TOOL_MAX_TURNS" in error["message"]


def test_models_carry_context_window_and_output_limit(http: httpx.Client) -> None:
    listed = {m["id"]: m for m in http.get("/models").json()["data"]}
    opus = listed["claude-opus-4-6"]
    assert (opus["context_length"], opus["max_completion_tokens"]) == (200_000, 128_000)
    assert (opus["context_window"], opus["max_output_tokens"], opus["max_input_tokens"], opus["max_tokens"]) == (
        200_000,
        128_000,
        200_000,
        128_000,
    )
    assert opus["top_provider"] == {"context_length": 200_000, "max_completion_tokens": 128_000}
    for name in ("claude-opus-4-6", "opus", "anthropic/claude-opus-4.6"):
        one = http.get(f"/models/{name}")
        assert one.status_code == 200 and one.json() == opus
    dated = http.get("/models/claude-sonnet-4-5-20250929").json()
    assert dated["id"] == "claude-sonnet-4-5-20250929" and dated["max_completion_tokens"] == 64_000
    unknown = http.get("/models/gpt-4o")
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"


@pytest.mark.slow  # two sessions, six turns (~4 s); test_compat_affinity forks in the fast loop
def test_an_edited_history_forks_the_warm_session_at_the_last_shared_reply(
    http: httpx.Client, gateway: Gateway, mock_model: MockModel
) -> None:
    """Turns a, b, c; then a's history with a new d: a branch holding a and d only, no re-seed."""
    before = scrape(gateway)
    messages: list[dict[str, Any]] = []
    for text in ("fork a", "fork b", "fork c"):
        messages.append({"role": "user", "content": text})
        main, choice = _chat(http, messages)
        messages.append({"role": "assistant", "content": choice["message"]["content"]})
    assert len(main_requests(mock_model)[-1]["messages"]) == 5  # one warm session so far
    mock_model.clear()

    branch, choice = _chat(http, [*messages[:2], {"role": "user", "content": "fork d"}])
    assert branch != main and choice["message"]["content"] == "mock reply: fork d"
    [first] = main_requests(mock_model)
    assert [user_texts(m) for m in first["messages"] if m["role"] == "user"] == [["fork a"], ["fork d"]]
    assert len(first["messages"]) == 3 and "mock reply: fork a" in str(first["messages"][1])
    _no_reseed(mock_model)
    assert gateway.client.get(f"/api/sessions/{main}").json()["turn_count"] == 3  # the old line is untouched
    created = gateway.events(branch)[0]
    assert created["type"] == "session.created" and created["data"]["forked_from"] == {"session_id": main}

    mock_model.clear()
    old_line, _ = _chat(http, [*messages, {"role": "user", "content": "fork e"}])
    new_line, _ = _chat(
        http,
        [
            *messages[:2],
            {"role": "user", "content": "fork d"},
            {"role": "assistant", "content": choice["message"]["content"]},
            {"role": "user", "content": "fork f"},
        ],
    )
    assert (old_line, new_line) == (main, branch)
    assert [len(b["messages"]) for b in main_requests(mock_model)] == [7, 5]  # both lines warm
    after = scrape(gateway)
    routes = {r: moved(before, after, "cc_api_compat_requests_total", format="openai.chat", route=r) for r in ROUTES}
    assert routes == {"new": 1, "warm": 4, "fork": 1, "seeded": 0}
    assert moved(before, after, "cc_api_compat_flattened_total", format="openai.chat") == 0
    assert moved(before, after, "cc_api_engine_starts_total", reason="new") == 2  # the first line's and the branch's


ROUTES = ("new", "warm", "fork", "seeded")
STABLE_PROMPT = "\n".join(f"Rule {n}: follow house style number {n} closely." for n in range(30))


@pytest.mark.slow  # two sessions, four turns (~6 s)
def test_a_changed_date_line_reaches_the_model_and_a_side_request_does_not_reseed_the_main_line(
    http: httpx.Client, mock_model: MockModel
) -> None:
    def system(day: str) -> dict[str, str]:  # Hermes: a date line that simply changes, no marker
        return {"role": "system", "content": f"{STABLE_PROMPT}\nConversation started: {day}"}

    history: list[dict[str, Any]] = [{"role": "user", "content": "plan my week"}]
    main, choice = _chat(http, [system("Monday"), *history])
    history += [{"role": "assistant", "content": choice["message"]["content"]}, {"role": "user", "content": "and?"}]
    same, choice = _chat(http, [system("Tuesday"), *history])
    assert same == main
    sent = main_requests(mock_model)[-1]  # the same transcript, under the prompt the client sent now
    assert len(sent["messages"]) == 3 and "Conversation started: Tuesday" in str(sent["system"])
    assert user_texts(sent["messages"][-1]) == ["and?"]
    history.append({"role": "assistant", "content": choice["message"]["content"]})

    side, _ = _chat(
        http,
        [
            system("Tuesday"),
            *history,  # Hermes's side request, never part of the main line
            {"role": "user", "content": "Review the conversation above and save what matters."},
        ],
    )
    mock_model.clear()
    history.append({"role": "user", "content": "thanks"})
    branch, _ = _chat(http, [system("Tuesday"), *history])
    assert side == main and branch != main
    [first] = main_requests(mock_model)  # the main line goes on from its own last reply, not re-seeded
    assert len(first["messages"]) == 5 and user_texts(first["messages"][-1]) == ["thanks"]
    assert "Review the conversation" not in str(first["messages"])
    _no_reseed(mock_model)


def test_a_cleared_tool_result_still_matches_its_session(http: httpx.Client, mock_model: MockModel) -> None:
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)), Reply(text="Cold."))
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Oslo weather, in detail"}]
    session, choice = _chat(http, messages, tools=[CHAT_TOOL])
    call = choice["message"]["tool_calls"][0]
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "hourly: -3C\n" * 400},
    ]
    same, choice = _chat(http, messages, tools=[CHAT_TOOL])
    messages[-1] = {
        "role": "tool",
        "tool_call_id": call["id"],  # OpenClaw clears old results
        "content": "[Old tool result content cleared]",
    }
    messages += [{"role": "assistant", "content": choice["message"]["content"]}, {"role": "user", "content": "ok"}]
    again, _ = _chat(http, messages, tools=[CHAT_TOOL])
    assert session == same == again
    assert [len(b["messages"]) for b in main_requests(mock_model)] == [1, 3, 5]
    _no_reseed(mock_model)


@pytest.mark.slow  # each key costs two sessions and four turns (~6 s)
@pytest.mark.parametrize("how", ["prompt_cache_key", "x-session-affinity", "session_id"])
def test_a_client_conversation_key_keeps_two_identical_openings_apart(
    http: httpx.Client, mock_model: MockModel, how: str
) -> None:
    def send(key: str, messages: list[dict[str, Any]]) -> str:
        body: dict[str, Any] = {"model": "sonnet", "messages": messages}
        headers = {}
        if how == "prompt_cache_key":
            body["prompt_cache_key"] = key
        else:
            headers[how] = key
        response = http.post("/chat/completions", json=body, headers=headers)
        assert response.status_code == 200, response.text
        return response.headers["x-cc-session-id"]

    opening = [{"role": "user", "content": f"same opening {how}"}]
    first, second = send("conv-1", opening), send("conv-2", opening)
    grown = [
        *opening,
        {"role": "assistant", "content": f"mock reply: same opening {how}"},
        {"role": "user", "content": "go on"},
    ]
    assert first != second
    assert (send("conv-2", grown), send("conv-1", grown)) == (second, first)
    assert [len(b["messages"]) for b in main_requests(mock_model)] == [1, 1, 3, 3]  # each warm on its own session
    _no_reseed(mock_model)


@pytest.mark.slow  # two sessions, four turns (~5 s); a chat conversation key stays in the fast loop
def test_anthropic_metadata_user_id_is_a_conversation_key(http: httpx.Client, mock_model: MockModel) -> None:
    def send(key: str, messages: list[dict[str, Any]]) -> str:
        response = http.post(
            "/messages", json={"model": "sonnet", "max_tokens": 100, "messages": messages, "metadata": {"user_id": key}}
        )
        assert response.status_code == 200, response.text
        return response.headers["x-cc-session-id"]

    opening = [{"role": "user", "content": "same opening, anthropic"}]
    first, second = send("user-1", opening), send("user-2", opening)
    grown = [
        *opening,
        {"role": "assistant", "content": "mock reply: same opening, anthropic"},
        {"role": "user", "content": "go on"},
    ]
    assert (send("user-2", grown), send("user-1", grown)) == (second, first) and first != second
    assert [len(b["messages"]) for b in main_requests(mock_model)] == [1, 1, 3, 3]


def test_usage_is_the_same_measure_whether_a_reply_ends_the_turn_or_calls_a_tool(
    http: httpx.Client, mock_model: MockModel
) -> None:
    """prompt_tokens: the prompt the model read for the reply's last call; completion_tokens: what it wrote."""
    mock_model.script(
        Reply(text="Checking.", tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)),
        Reply(text="Oslo is cold today."),
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Oslo?"}]
    response = http.post("/chat/completions", json={"model": "sonnet", "messages": messages, "tools": [CHAT_TOOL]})
    called = response.json()
    call = called["choices"][0]["message"]["tool_calls"][0]
    messages += [
        {"role": "assistant", "content": "Checking.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "-3C"},
    ]
    ended = http.post("/chat/completions", json={"model": "sonnet", "messages": messages, "tools": [CHAT_TOOL]}).json()
    sizes = [len(orjson.dumps(body)) // 4 for body in main_requests(mock_model)]  # the mock: 4 bytes a token
    for reply, size in zip((called, ended), sizes, strict=True):
        usage = reply["usage"]
        assert abs(usage["prompt_tokens"] - size) < size * 0.05, (usage, size)
        assert usage["completion_tokens"] > 0
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def _session_ids(gateway: Gateway) -> set[str]:
    return {s["id"] for s in gateway.client.get("/api/sessions", params={"limit": 100}).json()["data"]}


HEARTBEAT = "Read HEARTBEAT.md if it exists. If nothing needs attention, reply HEARTBEAT_OK."


def test_a_pruned_heartbeat_exchange_keeps_the_warm_session_without_a_fork(
    http: httpx.Client, gateway: Gateway, mock_model: MockModel
) -> None:
    """OpenClaw drops a heartbeat poll answered only HEARTBEAT_OK from every later request:
    the session goes on with only the new input, no branch, no re-seed."""
    history: list[dict[str, Any]] = [{"role": "user", "content": "remind me about the dentist"}]
    session, choice = _chat(http, [*history, _context(0)])
    history.append({"role": "assistant", "content": choice["message"]["content"]})

    mock_model.script(Reply(text="HEARTBEAT_OK"))
    polled, choice = _chat(http, [*history, {"role": "user", "content": HEARTBEAT}, _context(1)])
    assert polled == session and choice["message"]["content"] == "HEARTBEAT_OK"

    mock_model.clear()
    before = _session_ids(gateway)
    same, choice = _chat(http, [*history, {"role": "user", "content": "what time is it?"}, _context(2)])
    assert same == session
    [sent] = main_requests(mock_model)  # the warm session's transcript plus only the new input
    assert len(sent["messages"]) == 5
    assert user_texts(sent["messages"][2])[0] == HEARTBEAT and "HEARTBEAT_OK" in str(sent["messages"][3])
    assert user_texts(sent["messages"][-1])[0] == "what time is it?"
    _no_reseed(mock_model)
    assert _session_ids(gateway) == before  # no branch, no new session
    assert gateway.client.get(f"/api/sessions/{session}").json()["turn_count"] == 3

    history += [
        {"role": "user", "content": "what time is it?"},
        {"role": "assistant", "content": choice["message"]["content"]},
    ]
    again, _ = _chat(http, [*history, {"role": "user", "content": "thanks"}, _context(3)])
    assert again == session and len(main_requests(mock_model)[-1]["messages"]) == 7


@pytest.mark.slow  # a slow turn to queue behind (~5 s)
def test_a_queued_request_that_gave_up_leaves_the_session_its_options(
    http: httpx.Client, gateway: Gateway, mock_model: MockModel
) -> None:
    """A request queued behind a running turn whose client gave up changed nothing: its system prompt is not the one
    the conversation's next turn runs with (it was, written into the session as the request queued)."""
    prompt_a, prompt_b = {"role": "system", "content": "Prompt A"}, {"role": "system", "content": "Prompt B, withdrawn"}
    one = [prompt_a, {"role": "user", "content": "one"}]
    session, choice = _chat(http, one, tools=[CHAT_TOOL])
    two = [*one, {"role": "assistant", "content": choice["message"]["content"]}, {"role": "user", "content": "two"}]
    mock_model.script(Reply(text="slow two", first_byte_delay=3))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(_chat, http, two, tools=[CHAT_TOOL])
        time.sleep(1)  # the turn runs
        poll = [prompt_b, *two[1:-1], {"role": "user", "content": "poll"}]  # queues behind it, then gives up
        with pytest.raises(httpx.TimeoutException):
            http.post("/chat/completions", json={"model": "sonnet", "messages": poll, "tools": [CHAT_TOOL]}, timeout=1)
        assert slow.result()[0] == session
    four = [*two, {"role": "assistant", "content": "slow two"}, {"role": "user", "content": "four"}]
    assert _chat(http, four, tools=[CHAT_TOOL])[0] == session
    sent = main_requests(mock_model)[-1]
    assert user_texts(sent["messages"][-1])[-1] == "four"
    assert "Prompt A" in str(sent["system"]) and "Prompt B" not in str(sent["system"])
