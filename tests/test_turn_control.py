"""Interrupt, compaction, idempotency, multimodal input and models on the real stack."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import httpx
import orjson

from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import AUTO_COMPACTING, Gateway, eventually, sse_events
from tests.inprocess import InProcessGateway
from tests.metrics_support import moved, scrape, value
from tests.test_tools import WEATHER

PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002"
        "00015e2d2a5f0000000049454e44ae426082"
    )
).decode()
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n").decode()


def test_interrupt_a_slow_streamed_reply_then_continue(gateway: Gateway, mock_model: MockModel) -> None:
    slow = " ".join(f"w{n}" for n in range(400))
    mock_model.script(Reply(text=slow, chunk_delay=0.05))
    session = gateway.create_session()
    with gateway.client.stream(
        "POST", f"/api/sessions/{session['id']}/turns", json={"input": "talk slowly", "stream": True}
    ) as response:
        frames: list[dict] = []
        stopped = None
        for frame in sse_events(response.iter_lines()):
            if "event" not in frame:
                continue
            frames.append(frame)
            if stopped is None and sum(f["event"] == "message.delta" for f in frames) == 2:
                began = time.monotonic()
                stopped = gateway.client.post(f"/api/sessions/{session['id']}/interrupt")
            if frame["event"] in ("turn.interrupted", "turn.completed", "turn.failed"):
                break
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "interrupted"
    assert time.monotonic() - began < 10
    assert frames[-1]["event"] == "turn.interrupted"
    # the model call it cut was made, and counts: Claude Code's result says zero tokens for an interrupted turn
    usage = stopped.json()["usage"]
    assert usage["input_tokens"] > 0 and frames[-1]["data"]["data"]["usage"] == usage, frames[-1]
    assert gateway.client.get(f"/api/sessions/{session['id']}").json()["usage"]["input_tokens"] == usage["input_tokens"]

    after = gateway.turn(session["id"], "are you still there")
    assert after["status"] == "completed"
    assert after["output"][-1]["text"] == "mock reply: are you still there"
    sent = orjson.dumps(mock_model.message_requests(include_side=False)[-1].body["messages"]).decode()
    assert "talk slowly" in sent  # the interrupted turn stays in the context


def test_interrupt_while_waiting_for_tool_results(gateway: Gateway, mock_model: MockModel) -> None:
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Nice"}),)))
    session = gateway.create_session(tools=[WEATHER])
    paused = gateway.turn(session["id"], "Nice?")
    assert paused["status"] == "requires_action"
    stopped = gateway.client.post(f"/api/sessions/{session['id']}/interrupt").json()
    assert stopped["status"] == "interrupted" and stopped["turn_id"] == paused["turn_id"]
    types = [e["type"] for e in gateway.events(session["id"])]
    assert types[-1] == "turn.interrupted"
    late = gateway.client.post(
        f"/api/sessions/{session['id']}/tool-results",
        json={"results": [{"tool_call_id": paused["tool_calls"][0]["tool_call_id"], "content": "late"}]},
    )
    assert late.status_code == 409
    again = gateway.turn(session["id"], "never mind, hello")
    assert again["status"] == "completed" and again["output"][-1]["text"] == "mock reply: never mind, hello"


def test_interrupt_while_claude_code_starts_stops_the_turn(gateway: Gateway, mock_model: MockModel) -> None:
    """An interrupt that lands while the turn's Claude Code is still starting (a new session's first turn) stops
    the turn: its input never reaches the model. It was lost: Claude Code had nothing to interrupt yet, and the
    turn then ran to its end."""
    mock_model.script(Reply(text="never asked for", first_byte_delay=2))
    session = gateway.create_session()
    url = f"/api/sessions/{session['id']}"
    started = gateway.client.post(f"{url}/turns", json={"input": "hello", "background": True})
    assert started.status_code == 202, started.text
    stopped = gateway.client.post(f"{url}/interrupt")
    assert stopped.status_code == 200 and stopped.json()["status"] == "interrupted", stopped.text
    assert [e["type"] for e in gateway.events(session["id"])][-1] == "turn.interrupted"
    assert gateway.turn(session["id"], "and now?")["status"] == "completed"  # the session goes on


def test_interrupt_with_nothing_running_is_409(gateway: Gateway) -> None:
    session = gateway.create_session()
    response = gateway.client.post(f"/api/sessions/{session['id']}/interrupt")
    assert response.status_code == 409 and response.json()["error"]["type"] == "conflict"


def test_compact_reports_tokens_and_the_session_goes_on(gateway: Gateway, mock_model: MockModel) -> None:
    session = gateway.create_session()
    gateway.turn(session["id"], "remember that the answer is 42")
    summary = "<analysis>short</analysis>\n<summary>Summary: the user said the answer is 42.</summary>"
    mock_model.script(Reply(text=summary))
    before = scrape(gateway)
    response = gateway.client.post(f"/api/sessions/{session['id']}/compact", json={"instructions": "keep numbers"})
    assert response.status_code == 200, response.text
    compacted = response.json()
    assert compacted["status"] == "completed" and compacted["trigger"] == "manual"
    assert isinstance(compacted["pre_tokens"], int) and compacted["pre_tokens"] > 0
    assert isinstance(compacted["post_tokens"], int) and compacted["post_tokens"] < compacted["pre_tokens"]
    event = next(e for e in gateway.events(session["id"]) if e["type"] == "session.compacted")
    assert event["data"]["pre_tokens"] == compacted["pre_tokens"]
    assert moved(before, scrape(gateway), "cc_api_compactions_total", trigger="manual") == 1

    after = gateway.turn(session["id"], "what was the answer")
    assert after["status"] == "completed"
    sent = orjson.dumps(mock_model.message_requests(include_side=False)[-1].body["messages"]).decode()
    assert "Summary: the user said the answer is 42." in sent
    context = gateway.client.get(f"/api/sessions/{session['id']}").json()["context"]
    assert context["total_tokens"] > 0 and context["max_tokens"] > 0


def test_an_automatic_compaction_is_reported_in_the_turn_it_came_before(make_gateway, mock_model: MockModel) -> None:
    """Claude Code compacts by itself when the context fills up: the log says so as it says a compaction asked for
    (``session.compacted``, trigger ``auto``, tokens before and after), in the turn it ran in, and the model is sent
    the summary instead of the conversation."""
    gateway = make_gateway(**AUTO_COMPACTING)
    session = gateway.create_session()
    for said in ("remember 42 ", "and 43 "):  # Claude Code leaves a conversation of fewer turns as it is
        assert gateway.turn(session["id"], said + "words " * 3000)["status"] == "completed"
    assert not _compactions(gateway, session["id"])
    summary = "<analysis>short</analysis>\n<summary>Summary: the user said to remember 42 and 43.</summary>"
    mock_model.script(Reply(text=summary), Reply(text="it was 42"))
    second = gateway.turn(session["id"], "what was it?")
    assert second["status"] == "completed" and second["output"][0]["text"] == "it was 42", second
    [compacted] = _compactions(gateway, session["id"])
    assert compacted["turn_id"] == second["turn_id"] and compacted["seq"] < second["last_event_seq"]
    assert (
        compacted["data"]["trigger"] == "auto"
        and 0 < compacted["data"]["post_tokens"] < compacted["data"]["pre_tokens"]
    )
    summarising, answering = mock_model.message_requests()[-2:]
    assert "remember 42" in orjson.dumps(summarising.body["messages"]).decode()
    metrics = scrape(gateway)
    assert value(metrics, "cc_api_compactions_total", trigger="auto") == 1
    assert value(metrics, "cc_api_compactions_total", trigger="manual") == 0
    sent = orjson.dumps(answering.body["messages"]).decode()
    assert "the user said to remember 42 and 43" in sent and "remember 42 words" not in sent


def _compactions(gateway: Gateway, session_id: str) -> list[dict]:
    listed = gateway.client.get(f"/api/sessions/{session_id}/events", params={"types": "session.compacted"})
    return listed.json()["data"]


def test_a_compaction_that_fails_says_so(gateway: Gateway, mock_model: MockModel) -> None:
    """Claude Code ends a compaction that failed (here the summary came back empty) as a turn like any other, with
    its error as a message: the reply said ``completed``, with no tokens, and the client took it for done."""
    session = gateway.create_session()
    gateway.turn(session["id"], "remember that the answer is 42")
    mock_model.script(Reply(text=""))
    response = gateway.client.post(f"/api/sessions/{session['id']}/compact")
    assert response.status_code == 200, response.text
    failed = response.json()
    assert (failed["status"], failed["pre_tokens"]) == ("failed", None), failed
    assert failed["error"]["type"] == "compaction_failed" and "empty response" in failed["error"]["message"], failed
    assert gateway.events(session["id"])[-1]["type"] == "turn.failed"
    assert gateway.turn(session["id"], "still there?")["status"] == "completed"


def test_an_interrupted_compaction_is_interrupted_not_failed(gateway: Gateway, mock_model: MockModel) -> None:
    """Claude Code ends a compaction stopped mid-summary as one that did not compact ("Compaction canceled."):
    it was reported ``failed`` (``compaction_failed``), as if the summary had gone wrong."""
    session = gateway.create_session()
    gateway.turn(session["id"], "remember that the answer is 42")
    mock_model.script(Reply(text="<summary>never</summary>", first_byte_delay=30))
    asked = len(mock_model.message_requests())
    thread_result: list[httpx.Response] = []
    compacting = threading.Thread(
        target=lambda: thread_result.append(gateway.client.post(f"/api/sessions/{session['id']}/compact"))
    )
    compacting.start()
    assert eventually(lambda: len(mock_model.message_requests()) > asked, 30)  # the summary is being written
    stopped = gateway.client.post(f"/api/sessions/{session['id']}/interrupt")
    compacting.join(30)
    assert stopped.status_code == 200 and stopped.json()["status"] == "interrupted", stopped.text
    assert thread_result and thread_result[0].json()["status"] == "interrupted", thread_result
    ended = gateway.events(session["id"])[-1]
    assert ended["type"] == "turn.interrupted" and ended["data"]["error"]["type"] == "interrupted", ended
    assert gateway.turn(session["id"], "still there?")["status"] == "completed"


def test_compact_before_any_turn_is_409(gateway: Gateway) -> None:
    session = gateway.create_session()
    assert gateway.client.post(f"/api/sessions/{session['id']}/compact").status_code == 409


def test_idempotency_key_runs_the_input_once(gateway: Gateway, mock_model: MockModel) -> None:
    session = gateway.create_session()
    url = f"/api/sessions/{session['id']}/turns"
    body = {"input": "charge the card once"}
    first = gateway.client.post(url, json=body, headers={"Idempotency-Key": "k-123"})
    second = gateway.client.post(url, json=body, headers={"Idempotency-Key": "k-123"})
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    seen = [
        r
        for r in mock_model.message_requests(include_side=False)
        if "charge the card once" in orjson.dumps(r.body["messages"][-1]).decode()
    ]
    assert len(seen) == 1
    assert gateway.client.get(f"/api/sessions/{session['id']}").json()["turn_count"] == 1
    reused = gateway.client.post(url, json={"input": "something else"}, headers={"Idempotency-Key": "k-123"})
    assert reused.status_code == 400 and reused.json()["error"]["type"] == "invalid_request"


def test_idempotent_tool_results(gateway: Gateway, mock_model: MockModel) -> None:
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Riga"}),)), Reply(text="Riga noted."))
    session = gateway.create_session(tools=[WEATHER])
    paused = gateway.turn(session["id"], "Riga?")
    body = {"results": [{"tool_call_id": paused["tool_calls"][0]["tool_call_id"], "content": "windy"}]}
    url = f"/api/sessions/{session['id']}/tool-results"
    first = gateway.client.post(url, json=body, headers={"Idempotency-Key": "tr-1"})
    second = gateway.client.post(url, json=body, headers={"Idempotency-Key": "tr-1"})
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json() and first.json()["status"] == "completed"
    assert sum(e["type"] == "tool_result" for e in gateway.events(session["id"])) == 1


def test_image_and_pdf_reach_the_model_as_content_blocks(gateway: Gateway, mock_model: MockModel) -> None:
    session = gateway.create_session()
    reply = gateway.turn(
        session["id"],
        [
            {"type": "text", "text": "describe these"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
        ],
    )
    assert reply["status"] == "completed"
    last_user = mock_model.message_requests(include_side=False)[-1].body["messages"][-1]["content"]
    image = next(b for b in last_user if b["type"] == "image")
    document = next(b for b in last_user if b["type"] == "document")
    assert image["source"] == {"type": "base64", "media_type": "image/png", "data": PNG}
    assert document["source"]["media_type"] == "application/pdf" and document["source"]["data"] == PDF
    started = next(e for e in gateway.events(session["id"]) if e["type"] == "turn.started")
    # the log keeps sizes, not bytes
    assert started["data"]["input"][1]["source"]["bytes"] == len(base64.b64decode(PNG))


def test_bad_base64_image_is_400_and_never_reaches_the_model(gateway: Gateway, mock_model: MockModel) -> None:
    session = gateway.create_session()
    response = gateway.client.post(
        f"/api/sessions/{session['id']}/turns",
        json={
            "input": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "not*base64"}}]
        },
    )
    assert response.status_code == 400 and "base64" in response.json()["error"]["message"]
    assert mock_model.message_requests() == []


def test_models_and_name_normalisation(tmp_path: Path) -> None:
    """In process (no Claude Code is reached): CC_API_MODELS read as a gateway reads it, names normalised."""
    gw = InProcessGateway(
        tmp_path, CC_API_MODELS='[{"id": "claude-test-1", "context_window": 500000, "aliases": ["tester"]}]'
    )
    models = gw.request("GET", "/api/models").json["data"]
    by_id = {m["id"]: m for m in models}
    assert by_id["claude-opus-4-6"]["aliases"] == ["opus"]
    assert by_id["claude-test-1"]["context_window"] == 500000
    assert all({"id", "display_name", "context_window", "max_output_tokens", "aliases"} <= set(m) for m in models)
    for name, model in (("anthropic/claude-opus-4.6", "claude-opus-4-6"), ("sonnet", "claude-sonnet-4-5")):
        created = gw.request("POST", "/api/sessions", json={"model": name})
        assert created.status == 201 and created.json["model"] == model
    created = gw.request("POST", "/api/sessions", json={"model": "tester"})
    assert created.status == 201 and created.json["model"] == "claude-test-1"
    unknown = gw.request("POST", "/api/sessions", json={"model": "gpt-5"})
    assert unknown.status == 400 and "gpt-5" in unknown.json["error"]["message"]


def _user_texts(body: dict) -> list[str]:
    return [
        b["text"]
        for m in body["messages"]
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "text" and not b["text"].lstrip().startswith("<system-")
    ]


def test_fork_at_a_turn_branches_without_replaying_anything(gateway: Gateway, mock_model: MockModel) -> None:
    session = gateway.create_session(system_prompt="fork test")
    first = gateway.turn(session["id"], "branch a")
    gateway.turn(session["id"], "branch b")
    gateway.turn(session["id"], "branch c")
    mock_model.clear()

    forked = gateway.client.post(f"/api/sessions/{session['id']}/fork", json={"turn_id": first["turn_id"]})
    assert forked.status_code == 201, forked.text
    branch = forked.json()
    assert branch["id"] != session["id"] and branch["turn_count"] == 0
    assert mock_model.message_requests(include_side=False) == []  # forking runs nothing
    created = gateway.events(branch["id"])[0]["data"]
    assert created["forked_from"]["session_id"] == session["id"]

    reply = gateway.turn(branch["id"], "branch d")  # regenerate from after a: the model sees a and d only
    assert reply["status"] == "completed"
    [sent] = [r.body for r in mock_model.message_requests(include_side=False)]
    assert _user_texts(sent) == ["branch a", "branch d"] and len(sent["messages"]) == 3
    assert gateway.client.get(f"/api/sessions/{session['id']}").json()["turn_count"] == 3  # the source is untouched

    undo = gateway.client.post(f"/api/sessions/{session['id']}/fork")  # no body: everything so far
    assert undo.status_code == 201
    mock_model.clear()
    gateway.turn(undo.json()["id"], "branch e")
    [sent] = [r.body for r in mock_model.message_requests(include_side=False)]
    assert _user_texts(sent) == ["branch a", "branch b", "branch c", "branch e"]


def test_fork_refuses_bad_points_with_clear_errors(gateway: Gateway, mock_model: MockModel) -> None:
    empty = gateway.create_session()
    nothing = gateway.client.post(f"/api/sessions/{empty['id']}/fork")
    assert nothing.status_code == 409 and "no assistant message" in nothing.json()["error"]["message"]
    both = gateway.client.post(f"/api/sessions/{empty['id']}/fork", json={"turn_id": "turn_x", "after_seq": 3})
    assert both.status_code == 400 and both.json()["error"]["type"] == "invalid_request"
    unknown = gateway.client.post(f"/api/sessions/{empty['id']}/fork", json={"turn_id": "turn_nope"})
    assert unknown.status_code == 404
    assert gateway.client.post("/api/sessions/sess_missing/fork").status_code == 404
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Rome"}),)))
    paused = gateway.create_session(tools=[WEATHER])
    response = gateway.client.post(f"/api/sessions/{paused['id']}/turns", json={"input": "Rome?"})
    assert response.json()["status"] == "requires_action"
    waiting = gateway.client.post(f"/api/sessions/{paused['id']}/fork")
    assert waiting.status_code == 409 and "waits for tool results" in waiting.json()["error"]["message"]
    gateway.client.post(f"/api/sessions/{paused['id']}/interrupt")
