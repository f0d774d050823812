"""Sessions and incremental turns on the real SDK + CLI + mock model."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from ccapi.testing import MockModel, Reply
from tests.conftest import BACKENDS
from tests.gateway import Gateway


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """This suite runs on every store backend."""
    return request.param


def _user_texts(body: dict) -> list[str]:
    texts = []
    for message in body["messages"]:
        if message["role"] != "user":
            continue
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        texts.extend(b["text"] for b in blocks if b.get("type") == "text")
    return texts


def test_three_turns_keep_context_server_side(gateway: Gateway, mock_model: MockModel) -> None:
    session = gateway.create_session(system_prompt="You are the CC API test persona.")
    inputs = ["first question alpha", "second question beta", "third question gamma"]
    replies = [gateway.turn(session["id"], text) for text in inputs]

    assert [r["status"] for r in replies] == ["completed"] * 3
    assert [r["output"][-1]["text"] for r in replies] == [f"mock reply: {t}" for t in inputs]
    assert [r["number"] for r in replies] == [1, 2, 3]
    # cost is per turn (Claude Code reports a running total), and the session sums the turns
    assert 0 < replies[2]["cost_usd"] < 1.5 * replies[0]["cost_usd"]
    totals = gateway.client.get(f"/api/sessions/{session['id']}").json()["usage"]
    assert totals["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in replies))
    assert totals["output_tokens"] == sum(r["usage"]["output_tokens"] for r in replies)

    main = mock_model.message_requests(include_side=False)
    assert len(main) == 3
    first, third = main[0].body, main[2].body
    first_texts = " ".join(_user_texts(first))
    assert inputs[0] in first_texts and inputs[1] not in first_texts
    third_texts = " ".join(_user_texts(third))
    assert all(text in third_texts for text in inputs), third_texts
    assert "You are the CC API test persona." in orjson.dumps(third["system"]).decode()
    # the earlier answers travelled back to the model too, from the server's own state
    assistant = orjson.dumps([m for m in third["messages"] if m["role"] == "assistant"]).decode()
    assert "mock reply: first question alpha" in assistant


def test_a_changed_or_cleared_system_prompt_holds_from_the_next_turn(gateway: Gateway, mock_model: MockModel) -> None:
    """A session's system prompt is an option of the next turn: another prompt replaces it, and a cleared one
    is gone, although Claude Code, restarted on the same transcript, would bring back the prompt it recorded."""
    session = gateway.create_session(system_prompt="Prompt A")
    url = f"/api/sessions/{session['id']}"
    gateway.turn(session["id"], "one")
    for bad in ({"system_prompt": 5}, {"system_prompt": "a\u0000b"}):
        refused = gateway.client.patch(url, json=bad)
        assert refused.status_code == 400 and "system_prompt" in refused.json()["error"]["message"], refused.text
    assert gateway.client.get(url).json()["system_prompt"] == "Prompt A"
    assert gateway.client.patch(url, json={"system_prompt": "Prompt B"}).status_code == 200
    gateway.turn(session["id"], "two")
    assert gateway.client.patch(url, json={"system_prompt": None}).status_code == 200
    gateway.turn(session["id"], "three")
    systems = [str(r.body["system"]) for r in mock_model.message_requests(include_side=False)]
    assert ["Prompt A" in s for s in systems] == [True, False, False]
    assert ["Prompt B" in s for s in systems] == [False, True, False]
    assert "one" in " ".join(_user_texts(mock_model.message_requests(include_side=False)[-1].body))


def test_turn_reply_reports_usage_cost_and_log_position(gateway: Gateway, mock_model: MockModel) -> None:
    session = gateway.create_session()
    reply = gateway.turn(session["id"], "how much did this cost")
    assert reply["usage"]["input_tokens"] > 0 and reply["usage"]["output_tokens"] > 0
    assert reply["cost_usd"] is not None and reply["duration_ms"] >= 0
    events = gateway.events(session["id"])
    assert events[-1]["seq"] == reply["last_event_seq"]
    assert events[-1]["type"] == "turn.completed"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types[0] == "session.created" and types[1] == "turn.started"
    assert "message.delta" in types and "message.completed" in types

    fetched = gateway.client.get(f"/api/sessions/{session['id']}").json()
    assert fetched["turn_count"] == 1 and fetched["status"] == "idle"
    assert fetched["usage"]["output_tokens"] == reply["usage"]["output_tokens"]
    turn = gateway.client.get(f"/api/sessions/{session['id']}/turns/{reply['turn_id']}").json()
    assert turn == reply


def test_a_turns_duration_is_the_time_it_took_claude_codes_start_included(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """A session's first turn starts Claude Code (about half a second): its ``duration_ms`` (reply, event, turn
    record, log line) is the turn's time from its start to its end, as the client waited for it, not Claude Code's
    own figure, which left the start out (78 ms for a turn that took 700)."""
    session = gateway.create_session()
    mock_model.script(Reply(text="slow", first_byte_delay=0.3))
    reply = gateway.turn(session["id"], "hello")
    took = datetime.fromisoformat(reply["completed_at"]) - datetime.fromisoformat(reply["created_at"])
    # from the turn's record to its end (the record is written first); Claude Code's own figure was ~0.5 s less
    assert took.total_seconds() * 1000 - 100 <= reply["duration_ms"] <= took.total_seconds() * 1000 + 10, reply
    [ended] = [event for event in gateway.events(session["id"]) if event["type"] == "turn.completed"]
    assert ended["data"]["duration_ms"] == reply["duration_ms"]
    deadline = time.monotonic() + 5
    while not (logged := _turn_log_lines(gateway, reply["turn_id"])) and time.monotonic() < deadline:
        time.sleep(0.05)  # the line is written just after the reply
    assert [line["duration_ms"] for line in logged] == [reply["duration_ms"]]


def _turn_log_lines(gateway: Gateway, turn_id: str) -> list[dict[str, Any]]:
    lines = (orjson.loads(line) for line in gateway.log_text().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == "turn" and line.get("turn_id") == turn_id]


def test_thinking_streams_as_thinking_delta(gateway: Gateway, mock_model: MockModel) -> None:
    mock_model.script(Reply(thinking="Let me consider the options carefully.", text="Decided."))
    session = gateway.create_session()
    reply = gateway.turn(session["id"], "think first")
    assert reply["output"][-1] == {"type": "text", "text": "Decided."}
    thinking = [e for e in gateway.events(session["id"]) if e["type"] == "thinking.delta"]
    assert "".join(e["data"]["thinking"] for e in thinking) == "Let me consider the options carefully."


def test_upstream_error_fails_the_turn_and_the_session_stays_usable(gateway: Gateway, mock_model: MockModel) -> None:
    from ccapi.testing import MockError

    # Claude Code retries 400s with other request shapes; a 403 it reports straight away.
    mock_model.script(Reply(error=MockError(403, "permission_error", "this key may not use that model")))
    session = gateway.create_session()
    failed = gateway.turn(session["id"], "this one fails")
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "upstream_error"
    assert "this key may not use that model" in failed["error"]["message"]
    assert "ANTHROPIC_API_KEY" in failed["error"]["message"]  # says what to do about it
    assert gateway.events(session["id"])[-1]["type"] == "turn.failed"

    again = gateway.turn(session["id"], "and this one works")
    assert again["status"] == "completed"
    assert again["output"][-1]["text"] == "mock reply: and this one works"


def test_sessions_list_newest_first_with_cursor(gateway: Gateway) -> None:
    ids = [gateway.create_session(metadata={"n": n})["id"] for n in range(3)]
    first = gateway.client.get("/api/sessions", params={"limit": 2}).json()
    assert [s["id"] for s in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    second = gateway.client.get("/api/sessions", params={"limit": 2, "after": first["next_after"]}).json()
    assert second["data"][0]["id"] == ids[0]

    # the cursor's session deleted meanwhile: a 400 that says so, not an empty page that ends the listing
    assert gateway.client.delete(f"/api/sessions/{first['next_after']}").status_code in (200, 204)
    gone = gateway.client.get("/api/sessions", params={"limit": 2, "after": first["next_after"]})
    assert gone.status_code == 400 and "deleted" in gone.json()["error"]["message"], gone.text
    older = gateway.client.get("/api/sessions", params={"limit": 100, "after": ids[0]})  # a page of older ones only
    assert older.status_code == 200 and not {s["id"] for s in older.json()["data"]} & set(ids)


def _files_holding(folder: Path, text: str) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and text.encode() in path.read_bytes()]


def test_delete_removes_session_and_its_engine(gateway: Gateway) -> None:
    """Its data goes: the store's, and the transcript Claude Code keeps in its own config directory."""
    session = gateway.create_session()
    words = f"private words {session['id']}"
    gateway.turn(session["id"], words)
    config = Path(gateway.env["CLAUDE_CONFIG_DIR"])
    assert _files_holding(config / "projects", words), "Claude Code keeps a copy of the conversation"
    assert gateway.client.get(f"/api/sessions/{session['id']}").json()["live"] is True
    live_before = gateway.client.get("/healthz").json()["live_engines"]
    deleted = gateway.client.delete(f"/api/sessions/{session['id']}")
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert gateway.client.get(f"/api/sessions/{session['id']}").status_code == 404
    assert gateway.client.get(f"/api/sessions/{session['id']}/events").status_code == 404
    assert gateway.client.get("/healthz").json()["live_engines"] == live_before - 1
    assert _files_holding(config, words) == [], "Claude Code's copy is gone too"
