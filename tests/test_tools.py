"""Client tools: declared once, called by Claude, answered by the client, continued."""

from __future__ import annotations

import time

import orjson
import pytest

from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway, sse_events

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {
    "name": "get_time",
    "description": "Local time in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _tool_results_sent(mock: MockModel) -> list[dict]:
    blocks = []
    for request in mock.message_requests(include_side=False):
        for message in request.body["messages"]:
            if message["role"] == "user" and isinstance(message["content"], list):
                blocks.extend(b for b in message["content"] if b.get("type") == "tool_result")
    return blocks


def _text(content) -> str:
    """The tool's own text: Claude Code may append a <system-reminder> block or line after it."""
    text = content if isinstance(content, str) else content[0]["text"]
    return text.split("<system-reminder>")[0]


def test_tool_call_pauses_the_turn_and_the_result_continues_it(gateway: Gateway, mock_model: MockModel) -> None:
    mock_model.script(
        Reply(tool_uses=(ToolUse("get_weather", {"city": "Vancouver"}),)), Reply(text="It is 12C in Vancouver.")
    )
    session = gateway.create_session(tools=[WEATHER])
    paused = gateway.turn(session["id"], "What's the weather in Vancouver?")

    assert paused["status"] == "requires_action"
    assert len(paused["tool_calls"]) == 1
    call = paused["tool_calls"][0]
    assert call["name"] == "get_weather" and call["input"] == {"city": "Vancouver"}
    assert gateway.client.get(f"/api/sessions/{session['id']}").json()["status"] == "requires_action"

    response = gateway.client.post(
        f"/api/sessions/{session['id']}/tool-results",
        json={"results": [{"tool_call_id": call["tool_call_id"], "content": "Vancouver is 12C."}]},
    )
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["status"] == "completed" and done["turn_id"] == paused["turn_id"]
    assert done["output"][-1]["text"] == "It is 12C in Vancouver."

    results = _tool_results_sent(mock_model)
    assert [(r["tool_use_id"], _text(r["content"]).strip()) for r in results] == [
        (call["tool_call_id"], "Vancouver is 12C.")
    ]
    # the client declared the tool once; the model got it on every request, from the server
    main = mock_model.message_requests(include_side=False)
    assert len(main) == 2
    assert all(any(t["name"].endswith("get_weather") for t in r.body["tools"]) for r in main)
    types = [e["type"] for e in gateway.events(session["id"])]
    assert types.index("tool_call") < types.index("turn.requires_action") < types.index("tool_result")
    assert types[-1] == "turn.completed"
    tool_call = next(e for e in gateway.events(session["id"]) if e["type"] == "tool_call")
    assert tool_call["data"]["name"] == "get_weather"  # the client's own name, not mcp__…


def test_parallel_calls_answered_in_one_post(gateway: Gateway, mock_model: MockModel) -> None:
    both = (ToolUse("get_weather", {"city": "Oslo"}), ToolUse("get_time", {"city": "Rome"}))
    mock_model.script(Reply(tool_uses=both), Reply(text="Oslo is cold and Rome is late."))
    session = gateway.create_session(tools=[WEATHER, TIME])
    paused = gateway.turn(session["id"], "weather in Oslo and time in Rome")
    assert paused["status"] == "requires_action"
    calls = {c["name"]: c for c in paused["tool_calls"]}
    assert set(calls) == {"get_weather", "get_time"}

    done = gateway.client.post(
        f"/api/sessions/{session['id']}/tool-results",
        json={
            "results": [
                {"tool_call_id": calls["get_weather"]["tool_call_id"], "content": "Oslo: -3C"},
                {
                    "tool_call_id": calls["get_time"]["tool_call_id"],
                    "content": [{"type": "text", "text": "Rome: 23:10"}],
                },
            ]
        },
    ).json()
    assert done["status"] == "completed"
    sent = {r["tool_use_id"]: _text(r["content"]).strip() for r in _tool_results_sent(mock_model)}
    assert sent == {calls["get_weather"]["tool_call_id"]: "Oslo: -3C", calls["get_time"]["tool_call_id"]: "Rome: 23:10"}
    last = mock_model.message_requests(include_side=False)[-1].body["messages"][-1]
    assert {b["tool_use_id"] for b in last["content"] if b.get("type") == "tool_result"} == set(sent)


def test_parallel_calls_answered_one_post_each_reply_at_once_with_what_is_left(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """A client that runs its tools one by one posts each result as it has it: each reply comes at once, saying what
    the turn still waits for, and the last one carries the rest of the turn (before, the first reply waited until the
    other call timed out, CC_API_TOOL_TIMEOUT, five minutes by default)."""
    both = (ToolUse("get_weather", {"city": "Oslo"}), ToolUse("get_time", {"city": "Rome"}))
    mock_model.script(Reply(tool_uses=both), Reply(text="Oslo is cold and Rome is late."))
    session = gateway.create_session(tools=[WEATHER, TIME])
    paused = gateway.turn(session["id"], "weather in Oslo and time in Rome")
    calls = {c["name"]: c["tool_call_id"] for c in paused["tool_calls"]}
    url = f"/api/sessions/{session['id']}/tool-results"

    first = gateway.client.post(url, json={"results": [{"tool_call_id": calls["get_weather"], "content": "-3C"}]})
    assert first.status_code == 200 and first.elapsed.total_seconds() < 5
    left = first.json()
    assert left["status"] == "requires_action" and left["turn_id"] == paused["turn_id"]
    assert [c["tool_call_id"] for c in left["tool_calls"]] == [calls["get_time"]]
    assert gateway.client.get(f"/api/sessions/{session['id']}").json()["status"] == "requires_action"

    done = gateway.client.post(url, json={"results": [{"tool_call_id": calls["get_time"], "content": "23:10"}]})
    assert done.json()["status"] == "completed"
    assert done.json()["output"][-1]["text"] == "Oslo is cold and Rome is late."
    assert {r["tool_use_id"] for r in _tool_results_sent(mock_model)} == set(calls.values())


def test_a_streamed_post_of_some_parallel_results_ends_at_once_with_what_is_left(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """Posted with ``stream``, a result that leaves calls unanswered ends its stream at once, on a
    ``turn.requires_action`` naming the calls still pending (the log says the turn still waits), and its
    JSON twin's ``last_event_seq`` is that event. The stream used to stay open with nothing more to say
    until the other call was answered or timed out (CC_API_TOOL_TIMEOUT, five minutes by default)."""
    three = tuple(ToolUse("get_weather", {"city": city}) for city in ("Oslo", "Rome", "Lima"))
    mock_model.script(Reply(tool_uses=three), Reply(text="All three are mild."))
    session = gateway.create_session(tools=[WEATHER])
    paused = gateway.turn(session["id"], "weather in Oslo, Rome and Lima")
    oslo, rome, lima = (call["tool_call_id"] for call in paused["tool_calls"])
    url = f"/api/sessions/{session['id']}/tool-results"

    def streamed(body: dict, key: str) -> list[dict]:
        frames: list[dict] = []
        deadline = time.monotonic() + 15
        with gateway.client.stream("POST", url, json=body, headers={"Idempotency-Key": key}) as response:
            for frame in sse_events(response.iter_lines()):  # a keep-alive at least every 15 s: the deadline holds
                frames += [frame] if "event" in frame else []
                if time.monotonic() > deadline:
                    break
        return frames

    oslo_body = {"results": [{"tool_call_id": oslo, "content": "mild"}], "stream": True}
    frames = streamed(oslo_body, "oslo")
    assert [f["event"] for f in frames] == ["tool_result", "turn.requires_action"]
    assert [c["tool_call_id"] for c in frames[-1]["data"]["data"]["tool_calls"]] == [rome, lima]

    left = gateway.client.post(url, json={"results": [{"tool_call_id": rome, "content": "mild"}]}).json()
    assert left["status"] == "requires_action" and [c["tool_call_id"] for c in left["tool_calls"]] == [lima]
    last = gateway.events(session["id"])[-1]
    assert (last["seq"], last["type"]) == (left["last_event_seq"], "turn.requires_action")
    assert streamed(oslo_body, "oslo") == frames  # a streamed retry replays its own answer, and ends as it did

    rest = streamed({"results": [{"tool_call_id": lima, "content": "mild"}], "stream": True}, "lima")
    assert rest[0]["event"] == "tool_result" and rest[-1]["event"] == "turn.completed"


def test_a_background_post_of_some_parallel_results_answers_what_is_left(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """Posted with ``background``, a result that leaves calls unanswered answers ``200`` with the turn as it
    stands, ``requires_action`` and the calls still pending, as its retry does: nothing runs on, and a client
    told ``202 running`` would follow a stream that says nothing until the other calls are answered. The post
    that answers the last call runs the turn on: ``202``, then the turn completes."""
    two = tuple(ToolUse("get_weather", {"city": city}) for city in ("Oslo", "Rome"))
    mock_model.script(Reply(tool_uses=two), Reply(text="Both are mild."))
    session = gateway.create_session(tools=[WEATHER])
    paused = gateway.turn(session["id"], "weather in Oslo and Rome")
    oslo, rome = (call["tool_call_id"] for call in paused["tool_calls"])
    url = f"/api/sessions/{session['id']}/tool-results"

    def post(call_id: str) -> tuple[int, dict]:
        body = {"results": [{"tool_call_id": call_id, "content": "mild"}], "background": True}
        response = gateway.client.post(url, json=body, headers={"Idempotency-Key": call_id})
        return response.status_code, response.json()

    status, left = post(oslo)
    assert status == 200, left
    assert left["status"] == "requires_action" and [c["tool_call_id"] for c in left["tool_calls"]] == [rome]
    assert post(oslo) == (200, left)  # its retry: the turn as it stands

    status, accepted = post(rome)
    assert (status, accepted["status"]) == (202, "running")
    deadline = time.monotonic() + 30
    while (turn := gateway.client.get(f"/api/sessions/{session['id']}/turns/{paused['turn_id']}").json())[
        "status"
    ] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert turn["status"] == "completed" and turn["output"][-1]["text"] == "Both are mild."


def test_streamed_tool_turn_and_streamed_continuation(gateway: Gateway, mock_model: MockModel) -> None:
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Lima"}),)), Reply(text="Sunny in Lima."))
    session = gateway.create_session(tools=[WEATHER])
    with gateway.client.stream(
        "POST", f"/api/sessions/{session['id']}/turns", json={"input": "Lima?", "stream": True}
    ) as response:
        frames = [f for f in sse_events(response.iter_lines()) if "event" in f]
    assert frames[-1]["event"] == "turn.requires_action"
    call = frames[-1]["data"]["data"]["tool_calls"][0]
    with gateway.client.stream(
        "POST",
        f"/api/sessions/{session['id']}/tool-results",
        json={"results": [{"tool_call_id": call["tool_call_id"], "content": "sunny"}], "stream": True},
    ) as response:
        rest = [f for f in sse_events(response.iter_lines()) if "event" in f]
    assert rest[0]["event"] == "tool_result" and rest[-1]["event"] == "turn.completed"
    assert int(rest[0]["id"]) == int(frames[-1]["id"]) + 1


BAD_RESULTS = [
    ({"results": [{"tool_call_id": "toolu_unknown", "content": "x"}]}, 400, "invalid_request"),
    ({"results": []}, 400, "invalid_request"),
    ({"results": [{"tool_call_id": "a", "content": 5}]}, 400, "invalid_request"),
    ({"results": [{"tool_call_id": f"id{n}", "content": "x"} for n in range(1000)]}, 400, "invalid_request"),
]


def test_bad_tool_results_are_rejected_and_change_nothing(gateway: Gateway, mock_model: MockModel) -> None:
    session = gateway.create_session(tools=[WEATHER])
    nothing = gateway.client.post(
        f"/api/sessions/{session['id']}/tool-results", json={"results": [{"tool_call_id": "toolu_x", "content": "x"}]}
    )
    assert nothing.status_code == 409 and nothing.json()["error"]["type"] == "conflict"

    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Bern"}),)), Reply(text="ok"))
    paused = gateway.turn(session["id"], "Bern?")
    call_id = paused["tool_calls"][0]["tool_call_id"]
    events_before = gateway.events(session["id"])
    twice = {"results": [{"tool_call_id": call_id, "content": "a"}, {"tool_call_id": call_id, "content": "b"}]}
    for body, status, kind in [*BAD_RESULTS, (twice, 400, "invalid_request")]:
        response = gateway.client.post(f"/api/sessions/{session['id']}/tool-results", json=body)
        assert response.status_code == status, response.text
        assert response.json()["error"]["type"] == kind
    assert gateway.events(session["id"]) == events_before
    assert gateway.client.get(f"/api/sessions/{session['id']}").json()["status"] == "requires_action"

    done = gateway.client.post(
        f"/api/sessions/{session['id']}/tool-results", json={"results": [{"tool_call_id": call_id, "content": "rainy"}]}
    )
    assert done.json()["status"] == "completed"
    again = gateway.client.post(
        f"/api/sessions/{session['id']}/tool-results", json={"results": [{"tool_call_id": call_id, "content": "rainy"}]}
    )
    assert again.status_code == 409


@pytest.mark.slow
def test_unanswered_call_times_out_with_an_error_claude_sees(make_gateway, mock_model: MockModel) -> None:
    gw = make_gateway(CC_API_TOOL_TIMEOUT="1")
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Quito"}),)), Reply(text="I could not check."))
    session = gw.create_session(tools=[WEATHER])
    paused = gw.turn(session["id"], "Quito?")
    assert paused["status"] == "requires_action"
    with gw.client.stream(
        "GET", f"/api/sessions/{session['id']}/events/stream", params={"after": paused["last_event_seq"]}
    ) as response:
        frames = []
        for frame in sse_events(response.iter_lines()):
            if "event" in frame:
                frames.append(frame["data"])
                if frame["event"] == "turn.completed":
                    break
    timed_out = frames[0]
    assert timed_out["type"] == "tool_result" and timed_out["data"]["timed_out"] is True
    assert timed_out["data"]["is_error"] is True
    sent = _tool_results_sent(mock_model)
    assert sent[-1]["is_error"] is True and "did not return a result" in _text(sent[-1]["content"])
    late = gw.client.post(
        f"/api/sessions/{session['id']}/tool-results",
        json={"results": [{"tool_call_id": paused["tool_calls"][0]["tool_call_id"], "content": "too late"}]},
    )
    assert late.status_code == 409


@pytest.mark.parametrize(
    "tools",
    [
        [{"name": "get_weather", "input_schema": {"type": "array"}}],
        [WEATHER, WEATHER],
        "get_weather",
    ],
)
def test_bad_tool_declarations_are_400(gateway: Gateway, tools) -> None:
    response = gateway.client.post("/api/sessions", json={"tools": tools})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request"


@pytest.mark.slow
def test_client_tool_calls_do_not_count_against_the_tool_turn_limit(
    make_gateway, mock_model: MockModel, tmp_path
) -> None:
    """CC_API_TOOL_MAX_TURNS bounds a tool session's rounds of Claude Code's own tools; the
    client's own tool loop is not cut by it, and the limit is reported by name. The call past the
    limit never runs, and the model is not asked again."""
    gw = make_gateway(CC_API_TOOL_MAX_TURNS="1", CC_API_MAX_TURNS="8")
    weather = Reply(tool_uses=(ToolUse("get_weather", {"city": "Bonn"}),))
    past_the_limit = tmp_path / "past-the-limit"
    mock_model.script(
        weather,
        weather,
        weather,
        Reply(tool_uses=(ToolUse("Bash", {"command": "true"}),)),
        Reply(tool_uses=(ToolUse("Bash", {"command": f"touch {past_the_limit}"}),)),
        Reply(text="never reached"),
    )
    session = gw.create_session(tools=[WEATHER])
    turn = gw.turn(session["id"], "Bonn?")
    for _ in range(3):  # three client calls in one turn, over a limit of one
        assert turn["status"] == "requires_action", turn
        turn = gw.client.post(
            f"/api/sessions/{session['id']}/tool-results",
            json={"results": [{"tool_call_id": turn["tool_calls"][0]["tool_call_id"], "content": "mild"}]},
        ).json()
    assert turn["status"] == "failed" and turn["error"]["type"] == "max_turns"
    assert "CC_API_TOOL_MAX_TURNS" in turn["error"]["message"]
    assert orjson.dumps(turn).decode().count("never reached") == 0
    assert len(mock_model.message_requests(include_side=False)) == 5
    assert not past_the_limit.exists()
    assert gw.turn(session["id"], "go on")["status"] == "completed"  # the next turn starts its own count


def test_parallel_calls_of_claude_codes_tools_are_one_round(make_gateway, mock_model: MockModel) -> None:
    """Claude Code sends each block of a model round as a message of its own: two calls the model
    made at once are still one round of CC_API_TOOL_MAX_TURNS, and both run."""
    gw = make_gateway(CC_API_TOOL_MAX_TURNS="1")
    mock_model.script(
        Reply(
            text="Both at once.",
            tool_uses=(ToolUse("Bash", {"command": "echo first"}), ToolUse("Bash", {"command": "echo second"})),
        ),
        Reply(text="Done."),
    )
    session = gw.create_session(tools=[WEATHER])
    turn = gw.turn(session["id"], "echo both")
    assert turn["status"] == "completed", turn
    assert turn["output"][-1]["text"] == "Done."
    ran = [e["data"] for e in gw.events(session["id"]) if e["type"] == "agent_tool.completed"]
    assert sorted(orjson.dumps(result["content"]).decode() for result in ran) == ['"first"', '"second"']


def test_a_client_tool_named_like_claude_codes_own_does_not_hide_its_rounds(
    make_gateway, mock_model: MockModel, tmp_path
) -> None:
    """A client may name its tool ``Bash``: Claude Code's own Bash calls still count, and are told apart by
    the call, not the name (taken for the client's, each waited for a verdict that never came)."""
    gw = make_gateway(CC_API_TOOL_MAX_TURNS="1")
    past_the_limit = tmp_path / "past-the-limit"
    mock_model.script(
        Reply(tool_uses=(ToolUse("Bash", {"command": "true"}),)),
        Reply(tool_uses=(ToolUse("Bash", {"command": f"touch {past_the_limit}"}),)),
        Reply(text="never reached"),
    )
    session = gw.create_session(tools=[{**WEATHER, "name": "Bash"}])
    turn = gw.turn(session["id"], "go")
    assert turn["status"] == "failed" and turn["error"]["type"] == "max_turns", turn
    assert not past_the_limit.exists() and len(mock_model.message_requests(include_side=False)) == 2
    assert "tool_call_unseen" not in gw.log_text()


def test_a_round_claude_code_refused_itself_is_let_go_and_the_next_one_stopped(
    make_gateway, mock_model: MockModel
) -> None:
    """A call Claude Code refuses before it runs (a bad input) never reaches the gate: a round past the limit
    made only of such calls runs nothing, so the turn goes on; a second round past it is interrupted."""
    gw = make_gateway(CC_API_TOOL_MAX_TURNS="1")
    bad = Reply(tool_uses=(ToolUse("Bash", {"nocommand": 1}),))
    mock_model.script(Reply(tool_uses=(ToolUse("Bash", {"command": "true"}),)), bad, Reply(text="Answered."))
    session = gw.create_session(tools=[WEATHER])
    turn = gw.turn(session["id"], "go")
    assert turn["status"] == "completed" and turn["output"][-1]["text"] == "Answered.", turn

    mock_model.script(Reply(tool_uses=(ToolUse("Bash", {"command": "true"}),)), bad, bad, bad, bad)
    turn = gw.turn(session["id"], "again")
    assert turn["status"] == "failed" and turn["error"]["type"] == "max_turns", turn


def test_a_round_stopped_at_the_limit_does_not_wait_for_its_client_calls(
    make_gateway, mock_model: MockModel, tmp_path
) -> None:
    """A round past the limit that calls the client's tool too ends the turn at once: the client is not
    asked for a result the stopped turn would throw away."""
    gw = make_gateway(CC_API_TOOL_MAX_TURNS="1")
    past_the_limit = tmp_path / "past-the-limit"
    mock_model.script(
        Reply(tool_uses=(ToolUse("Bash", {"command": "true"}),)),
        Reply(
            tool_uses=(
                ToolUse("get_weather", {"city": "Bonn"}),
                ToolUse("Bash", {"command": f"touch {past_the_limit}"}),
            )
        ),
        Reply(text="never reached"),
    )
    session = gw.create_session(tools=[WEATHER])
    turn = gw.turn(session["id"], "go")
    assert turn["status"] == "failed" and turn["error"]["type"] == "max_turns", turn
    assert not past_the_limit.exists() and len(mock_model.message_requests(include_side=False)) == 2
    assert gw.turn(session["id"], "go on")["status"] == "completed"


SCHEMAS = {
    "bare": {"type": "object"},
    "draft": {"type": "object", "$schema": "http://json-schema.org/draft-07/schema#"},
    "untyped": {"properties": {"q": {"type": "string"}}, "required": ["q"]},
}
ON_THE_WIRE = {
    "bare": {"type": "object", "properties": {}},
    "draft": {"type": "object", "properties": {}, "$schema": "http://json-schema.org/draft-07/schema#"},
    "untyped": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
}


def _offered(mock: MockModel) -> dict[str, dict]:
    [body] = [r.body for r in mock.message_requests(include_side=False)]
    return {t["name"].rpartition("__")[2]: t["input_schema"] for t in body["tools"] if t["name"].startswith("mcp__")}


@pytest.mark.parametrize("route", ["native", "chat", "messages", "responses"])
def test_the_model_receives_each_declared_schema(gateway: Gateway, mock_model: MockModel, route: str) -> None:
    """Issue 23: a schema without ``properties`` (or with ``$schema``) is neither rewritten into a
    parameter named ``type`` nor dropped, on the native API and every compat endpoint."""
    mock_model.script(Reply(text="ok"))
    if route == "native":
        tools = [{"name": name, "input_schema": schema} for name, schema in SCHEMAS.items()]
        gateway.turn(gateway.create_session(tools=tools)["id"], "hi")
    else:
        path, tools = {
            "chat": (
                "/v1/chat/completions",
                [{"type": "function", "function": {"name": n, "parameters": s}} for n, s in SCHEMAS.items()],
            ),
            "messages": ("/v1/messages", [{"name": n, "input_schema": s} for n, s in SCHEMAS.items()]),
            "responses": (
                "/v1/responses",
                [{"type": "function", "name": n, "parameters": s} for n, s in SCHEMAS.items()],
            ),
        }[route]
        key = "input" if route == "responses" else "messages"
        body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "tools": tools}
        body[key] = [{"role": "user", "content": "hi"}]
        response = gateway.client.post(path, json=body)
        assert response.status_code == 200, response.text
    assert _offered(mock_model) == ON_THE_WIRE


def test_a_non_string_dollar_schema_is_a_400(gateway: Gateway) -> None:
    tools = [{"name": "t", "input_schema": {"type": "object", "$schema": 5}}]
    response = gateway.client.post("/api/sessions", json={"tools": tools})
    assert response.status_code == 400 and "$schema" in response.json()["error"]["message"], response.text


@pytest.mark.slow
def test_two_thousand_long_tool_names_still_run_a_turn(gateway: Gateway, mock_model: MockModel) -> None:
    """Issue 23: 2,100 tools with 64-character names used to fail every turn ("Argument list too long")."""
    tools = [{"name": f"{i:04d}".ljust(64, "x"), "input_schema": {"type": "object"}} for i in range(2100)]
    mock_model.script(Reply(tool_uses=(ToolUse("0007".ljust(64, "x"), {}),)), Reply(text="done"))
    session = gateway.create_session(tools=tools)
    paused = gateway.turn(session["id"], "call one")
    assert paused["status"] == "requires_action", paused
    [call] = paused["tool_calls"]
    response = gateway.client.post(
        f"/api/sessions/{session['id']}/tool-results",
        json={"results": [{"tool_call_id": call["tool_call_id"], "content": "fine"}]},
    )
    assert response.status_code == 200 and response.json()["status"] == "completed", response.text
    first = mock_model.message_requests(include_side=False)[0].body
    assert sum(t["name"].startswith("mcp__client__") for t in first["tools"]) == 2100
