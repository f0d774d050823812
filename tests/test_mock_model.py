"""Unit tests of the mock Messages API, spoken to over HTTP the way the Claude Code CLI speaks to it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ccapi.testing import MockError, MockModel, Reply, ToolUse
from ccapi.testing.mock_model import last_user_text, resolve_tool_name

MAIN_TOOLS = [{"name": "Read", "input_schema": {"type": "object"}}]
"""A main request carries tools; see is_side_request."""


@pytest.fixture
def mock() -> Iterator[MockModel]:
    with MockModel() as model:
        yield model


def request_body(text: str = "hello", *, stream: bool = True, tools: list[Any] | None = None) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": stream,
        "tools": MAIN_TOOLS if tools is None else tools,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
    }


def post_messages(mock: MockModel, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{mock.url}/v1/messages?beta=true", json=body, timeout=10)


def sse_events(response: httpx.Response) -> list[dict[str, Any]]:
    """Parse an SSE body, checking that each frame's event name matches its data type."""
    events = []
    for frame in response.text.split("\n\n"):
        if not frame.strip():
            continue
        name_line, data_line = frame.split("\n")
        event = json.loads(data_line.removeprefix("data: "))
        assert name_line == f"event: {event['type']}"
        events.append(event)
    return events


def streamed(mock: MockModel, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = post_messages(mock, body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    return sse_events(response)


def deltas(events: list[dict[str, Any]], kind: str, key: str) -> list[str]:
    return [e["delta"][key] for e in events if e["type"] == "content_block_delta" and e["delta"]["type"] == kind]


def test_text_stream_has_the_real_event_sequence(mock: MockModel) -> None:
    mock.script(Reply(text="one two three four five six seven"))
    events = streamed(mock, request_body())
    types = [e["type"] for e in events]
    assert types[:3] == ["message_start", "ping", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert deltas(events, "text_delta", "text") == ["one two three ", "four five six ", "seven"]
    assert events[-2]["delta"]["stop_reason"] == "end_turn"
    start = events[0]["message"]
    assert start["model"] == "claude-sonnet-4-5" and start["content"] == []
    assert start["usage"]["input_tokens"] > 0 and events[-2]["usage"]["output_tokens"] > 0


def test_response_headers(mock: MockModel) -> None:
    response = post_messages(mock, request_body())
    assert response.headers["request-id"].startswith("req_mock_")
    assert response.headers["connection"] == "close"


def test_thinking_then_text(mock: MockModel) -> None:
    mock.script(Reply(thinking="let me think about it", text="done"))
    events = streamed(mock, request_body())
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert [b["type"] for b in starts] == ["thinking", "text"]
    assert "".join(deltas(events, "thinking_delta", "thinking")) == "let me think about it"
    assert deltas(events, "signature_delta", "signature")[0].startswith("mock-sig-")


def test_tool_use_streams_partial_json_and_stops_for_tool_use(mock: MockModel) -> None:
    tool_input = {"query": "a fairly long search query", "limit": 5}
    mock.script(Reply(text="calling", tool_uses=(ToolUse("search", tool_input, id="toolu_fixed"),)))
    events = streamed(mock, request_body())
    block = next(e for e in events if e["type"] == "content_block_start" and e["index"] == 1)["content_block"]
    assert block == {"type": "tool_use", "id": "toolu_fixed", "name": "search", "input": {}}
    pieces = deltas(events, "input_json_delta", "partial_json")
    assert len(pieces) > 1 and json.loads("".join(pieces)) == tool_input
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_tool_use_ids_are_generated() -> None:
    first, second = ToolUse("a"), ToolUse("a")
    assert first.id.startswith("toolu_mock_") and first.id != second.id


def test_plain_tool_name_resolves_to_the_mcp_name(mock: MockModel) -> None:
    tools = [*MAIN_TOOLS, {"name": "mcp__client__lookup", "input_schema": {"type": "object"}}]
    mock.script(Reply(tool_uses=(ToolUse("lookup"),)))
    message = post_messages(mock, request_body(stream=False, tools=tools)).json()
    assert message["content"][0]["name"] == "mcp__client__lookup"


def test_tool_name_resolution_rules() -> None:
    body = {"tools": [{"name": "mcp__a__get"}, {"name": "mcp__b__get"}, {"name": "mcp__a__put"}, {"name": "get"}]}
    assert resolve_tool_name("put", body) == "mcp__a__put"
    assert resolve_tool_name("get", body) == "get"  # exact match wins
    assert resolve_tool_name("mcp__b__get", body) == "mcp__b__get"
    assert resolve_tool_name("missing", body) == "missing"
    del body["tools"][3]
    assert resolve_tool_name("get", body) == "get"  # ambiguous: left as given


def test_deferred_mcp_tools_named_in_the_conversation_resolve() -> None:
    reminder = "<system-reminder>\nThe following deferred tools are available via ToolSearch:\nmcp__client__lookup\n"
    body = {"tools": MAIN_TOOLS, "messages": [{"role": "user", "content": [{"type": "text", "text": reminder}]}]}
    assert resolve_tool_name("lookup", body) == "mcp__client__lookup"


def test_non_streamed_message(mock: MockModel) -> None:
    mock.script(Reply(text="full answer"))
    response = post_messages(mock, request_body(stream=False))
    assert response.status_code == 200
    message = response.json()
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [{"type": "text", "text": "full answer"}]
    assert message["stop_reason"] == "end_turn" and message["usage"]["output_tokens"] > 0


def test_explicit_stop_reason(mock: MockModel) -> None:
    mock.script(Reply(text="cut", stop_reason="max_tokens"))
    assert post_messages(mock, request_body(stream=False)).json()["stop_reason"] == "max_tokens"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, "invalid_request_error"), (429, "rate_limit_error"), (500, "api_error"), (529, "overloaded_error")],
)
def test_error_envelope(mock: MockModel, status: int, error_type: str) -> None:
    mock.script(Reply(error=MockError(status, error_type, "it broke", retry_after=2)))
    response = post_messages(mock, request_body())
    assert response.status_code == status
    assert response.json() == {"type": "error", "error": {"type": error_type, "message": "it broke"}}
    assert response.headers["retry-after"] == "2"


def test_default_reply_echoes_the_last_typed_user_text(mock: MockModel) -> None:
    body = request_body("first")
    body["messages"][0]["content"].append({"type": "text", "text": "<system-reminder>\nnoise\n</system-reminder>"})
    body["messages"][0]["content"].insert(0, {"type": "text", "text": "<system-reminder>x</system-reminder>"})
    assert post_messages(mock, {**body, "stream": False}).json()["content"][0]["text"] == "mock reply: first"
    assert "".join(deltas(streamed(mock, request_body("second")), "text_delta", "text")) == "mock reply: second"


def test_last_user_text_edge_cases() -> None:
    assert last_user_text({"messages": []}) == ""
    assert last_user_text({"messages": [{"role": "user", "content": "plain string"}]}) == "plain string"
    tool_result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]}
    assert last_user_text({"messages": [tool_result]}) == ""


def test_scripted_replies_are_consumed_in_order(mock: MockModel) -> None:
    mock.script(Reply(text="a"), Reply(text="b"))
    assert mock.pending == 2
    texts = [post_messages(mock, request_body(stream=False)).json()["content"][0]["text"] for _ in range(3)]
    assert texts == ["a", "b", "mock reply: hello"]
    assert mock.pending == 0


def test_side_requests_do_not_consume_the_script(mock: MockModel) -> None:
    mock.script(Reply(text="scripted"))
    side = post_messages(mock, request_body("name this", stream=False, tools=[])).json()
    assert side["content"][0]["text"] == "mock side reply"
    assert mock.pending == 1
    assert post_messages(mock, request_body(stream=False)).json()["content"][0]["text"] == "scripted"
    sides = [r.side for r in mock.message_requests()]
    assert sides == [True, False]
    assert [r.side for r in mock.message_requests(include_side=False)] == [False]


def test_side_request_asking_for_json_gets_matching_json(mock: MockModel) -> None:
    body = request_body("title please", tools=[])
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    text = "".join(deltas(streamed(mock, body), "text_delta", "text"))
    assert json.loads(text) == {"title": "mock"}


def test_count_tokens(mock: MockModel) -> None:
    body = request_body("x" * 4000)
    response = httpx.post(f"{mock.url}/v1/messages/count_tokens?beta=true", json=body)
    assert response.status_code == 200
    assert response.json()["input_tokens"] >= 1000
    assert mock.message_requests() == []  # count_tokens is recorded, but is not a Messages request
    assert mock.requests[0].path == "/v1/messages/count_tokens"


def test_requests_are_recorded(mock: MockModel) -> None:
    post_messages(mock, request_body("recorded"))
    (recorded,) = mock.requests
    assert (recorded.method, recorded.path, recorded.query) == ("POST", "/v1/messages", "beta=true")
    assert recorded.body["messages"][0]["content"][0]["text"] == "recorded"
    assert recorded.headers["content-type"] == "application/json"
    mock.clear()
    assert mock.requests == []


def test_unknown_route_is_a_404_envelope(mock: MockModel) -> None:
    response = httpx.get(f"{mock.url}/v1/models")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_invalid_json_body_is_a_400(mock: MockModel) -> None:
    response = httpx.post(f"{mock.url}/v1/messages", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_chunk_delay_spreads_the_stream(mock: MockModel) -> None:
    mock.script(Reply(text="a b c d e f g h i", chunk_delay=0.05))
    started = time.monotonic()
    with httpx.stream("POST", f"{mock.url}/v1/messages", json=request_body()) as response:
        arrivals = [time.monotonic() - started for _ in response.iter_bytes()]
    assert arrivals[-1] - arrivals[0] >= 0.2


def test_first_byte_delay(mock: MockModel) -> None:
    mock.script(Reply(text="late", first_byte_delay=0.2))
    started = time.monotonic()
    post_messages(mock, request_body())
    assert time.monotonic() - started >= 0.2


def test_drop_after_chunks_truncates_the_stream(mock: MockModel) -> None:
    mock.script(Reply(text="never finished", drop_after_chunks=3))
    with pytest.raises(httpx.RemoteProtocolError):
        post_messages(mock, request_body())


def test_drop_on_non_streamed_request_closes_without_answer(mock: MockModel) -> None:
    mock.script(Reply(text="never sent", drop_after_chunks=0))
    with pytest.raises(httpx.RemoteProtocolError):
        post_messages(mock, request_body(stream=False))


def test_malformed_stream(mock: MockModel) -> None:
    mock.script(Reply(malformed=True), Reply(malformed=True))
    response = post_messages(mock, request_body())
    assert response.status_code == 200
    with pytest.raises(ValueError):
        sse_events(response)
    with pytest.raises(ValueError):
        post_messages(mock, request_body(stream=False)).json()


def test_control_endpoints(mock: MockModel) -> None:
    script = [
        {"text": "from control"},
        {"tool_uses": [{"name": "lookup", "input": {"k": 1}, "id": "toolu_x"}]},
        {"error": {"status": 529, "type": "overloaded_error", "message": "busy"}},
    ]
    assert httpx.post(f"{mock.url}/_mock/script", json=script).json() == {"pending": 3}
    assert post_messages(mock, request_body(stream=False)).json()["content"][0]["text"] == "from control"
    tool_use = post_messages(mock, request_body(stream=False)).json()["content"][0]
    assert (tool_use["id"], tool_use["input"]) == ("toolu_x", {"k": 1})
    assert post_messages(mock, request_body(stream=False)).status_code == 529

    recorded = httpx.get(f"{mock.url}/_mock/requests").json()
    assert [r["path"] for r in recorded] == ["/v1/messages"] * 3  # control calls are not recorded
    assert recorded[0]["body"]["messages"][0]["content"][0]["text"] == "hello"
    assert httpx.delete(f"{mock.url}/_mock/requests").status_code == 200
    assert httpx.get(f"{mock.url}/_mock/requests").json() == []

    httpx.post(f"{mock.url}/_mock/script", json=[{"text": "dropped"}])
    assert httpx.delete(f"{mock.url}/_mock/script").json() == {"pending": 0}
    assert mock.pending == 0


def test_a_web_page_cannot_script_or_read_the_mock(mock: MockModel) -> None:
    """``cc-api run --mock-model`` serves the mock on a loopback port a page can find: a ``text/plain`` POST (no
    preflight) scripted a Bash call that the gateway's Claude Code then ran, and a page rebinding its name to
    loopback read every prompt recorded. What a browser marks as a page's, a Host that names no loopback, and a body
    that is not JSON are refused; the scripts and tests that drive it (no Origin, JSON) go on as before."""
    script = '[{"tool_uses": [{"name": "Bash", "input": {"command": "id"}}]}]'
    control = f"{mock.url}/_mock/script"
    refused = [
        httpx.post(control, content=script, headers={"content-type": "text/plain"}),
        httpx.post(control, json=[], headers={"origin": "https://evil.example"}),
        httpx.post(control, json=[], headers={"sec-fetch-site": "cross-site"}),
        httpx.get(f"{mock.url}/_mock/requests", headers={"host": f"rebound.example:{mock.port}"}),
    ]
    assert [r.status_code for r in refused] == [415, 403, 403, 403]
    assert mock.pending == 0
    assert httpx.post(control, json=[{"text": "ok"}], headers={"host": f"localhost:{mock.port}"}).status_code == 200
    assert httpx.get(f"{mock.url}/_mock/requests").status_code == 200


def test_control_rejects_unknown_reply_fields(mock: MockModel) -> None:
    response = httpx.post(f"{mock.url}/_mock/script", json=[{"txt": "typo"}])
    assert response.status_code == 400
    assert mock.pending == 0


def test_lifecycle() -> None:
    model = MockModel()
    with pytest.raises(RuntimeError):
        _ = model.url
    model.start()
    url = model.url
    assert url.startswith("http://127.0.0.1:")
    model.stop()
    model.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{url}/v1/messages", json=request_body())


def test_runs_as_a_process() -> None:
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "ccapi.testing.mock_model", "--port", "0", "--quiet"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("mock model listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        reply = httpx.post(f"{url}/v1/messages", json=request_body("proc", stream=False), timeout=10).json()
        assert reply["content"][0]["text"] == "mock reply: proc"
    finally:
        process.terminate()
    assert process.wait(timeout=10) == 0
