"""Claude Code's transcript in the gateway's store, which a resume reads: all of a turn's lines by the time the turn is
acknowledged, a paused turn's while it waits for the client, a resumed conversation's once; line for line Claude
Code's own file, less the bookkeeping Claude Code keeps for itself."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway

BOOKKEEPING = {"api-request", "api-request-shape", "api-request-blob", "api-request-resumed", "cost-state"}
"""Lines of Claude Code's local file that it does not hand to a session store: a resume does without them."""

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _local_transcript(gw: Gateway, timeout: float = 10) -> Path:
    """Claude Code's own file of the gateway's one conversation (it writes it within a second or so)."""
    deadline = time.monotonic() + timeout
    while not (found := list((gw.home / "user" / ".claude" / "projects").glob("*/*.jsonl"))):
        assert time.monotonic() < deadline, "Claude Code wrote no transcript"
        time.sleep(0.1)
    [path] = found
    return path


def _user_texts(entries: list[dict[str, Any]]) -> list[str]:
    texts = []
    for entry in entries:
        if entry["type"] == "user" and not entry.get("isMeta"):
            content = entry["message"]["content"]
            texts += [content] if isinstance(content, str) else [b["text"] for b in content if b["type"] == "text"]
    return texts


def _tool_use_ids(entries: list[dict[str, Any]]) -> list[str]:
    return [
        block["id"]
        for entry in entries
        if entry["type"] == "assistant"
        for block in entry["message"]["content"]
        if block["type"] == "tool_use"
    ]


def test_an_acknowledged_turn_has_its_transcript_stored(make_gateway) -> None:
    gw = make_gateway()
    session = gw.create_session()
    reply = gw.turn(session["id"], "the pelican is called Gustav")
    assert reply["status"] == "completed"
    local = _local_transcript(gw)
    stored = gw.transcript(local.stem)  # read as soon as the reply is in: acknowledged means stored

    assert _user_texts(stored) == ["the pelican is called Gustav"]
    assert any(
        "mock reply: the pelican is called Gustav" in str(e["message"]) for e in stored if e["type"] == "assistant"
    )
    # line for line Claude Code's own file, less its bookkeeping (it may have written more since)
    lines = [orjson.loads(line) for line in local.read_bytes().splitlines()]
    assert stored == [line for line in lines if line["type"] not in BOOKKEEPING][: len(stored)]


@pytest.mark.slow
def test_a_turn_waiting_for_a_client_tool_has_its_transcript_stored_while_it_waits(
    make_gateway, mock_model: MockModel
) -> None:
    """A paused turn has no result yet; its lines (the input, the tool call) still reach the store within a few
    seconds, as the mirror had them, so a crash or a branch meanwhile finds them there."""
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Lima"}),)), Reply(text="Lima is mild."))
    gw = make_gateway()
    session = gw.create_session(tools=[WEATHER])
    paused = gw.turn(session["id"], "weather in Lima?")
    assert paused["status"] == "requires_action"
    [call] = paused["tool_calls"]
    sdk_id = _local_transcript(gw).stem
    deadline = time.monotonic() + 10
    while call["tool_call_id"] not in _tool_use_ids(stored := gw.transcript(sdk_id)):
        assert time.monotonic() < deadline, f"the paused turn's tool call never reached the store: {stored}"
        time.sleep(0.2)
    assert _user_texts(stored) == ["weather in Lima?"]

    done = gw.client.post(
        f"/api/sessions/{session['id']}/tool-results",
        json={"results": [{"tool_call_id": call["tool_call_id"], "content": "14C, overcast"}]},
    ).json()
    assert done["status"] == "completed"
    stored = gw.transcript(sdk_id)
    results = [
        block
        for entry in stored
        if entry["type"] == "user" and isinstance(entry["message"]["content"], list)
        for block in entry["message"]["content"]
        if block["type"] == "tool_result"
    ]
    assert [r["tool_use_id"] for r in results] == [call["tool_call_id"]]
    assert _tool_use_ids(stored) == [call["tool_call_id"]]  # each line once, however many times it was read


@pytest.mark.slow
def test_a_resumed_conversation_goes_on_in_the_same_stored_transcript_and_its_copy_goes_with_its_process(
    make_gateway, mock_model: MockModel
) -> None:
    """After a restart Claude Code resumes from a copy of the store's transcript (its own files are gone), in a
    directory of its own; the store then gets what that process adds, and the copy is removed with the process."""
    gw = make_gateway()
    session = gw.create_session()
    gw.turn(session["id"], "first: my locker is 7734")
    sdk_id = _local_transcript(gw).stem
    gw.stop()
    shutil.rmtree(gw.home / "user" / ".claude" / "projects")  # only the store knows the conversation now
    gw.start()
    mock_model.clear()
    assert gw.turn(session["id"], "second: which locker?")["status"] == "completed"
    sent = orjson.dumps(mock_model.message_requests(include_side=False)[-1].body["messages"]).decode()
    assert "first: my locker is 7734" in sent

    stored = gw.transcript(sdk_id)
    assert _user_texts(stored) == ["first: my locker is 7734", "second: which locker?"]
    assert list(Path(gw.env["TMPDIR"]).glob("claude-resume-*")), "Claude Code should resume from a copy"
    gw.stop()
    assert not list(Path(gw.env["TMPDIR"]).glob("claude-resume-*")), "the resume's copy outlived its process"
