"""``cc-api acp``'s slash commands and working directories end to end: the ACP library's own client drives
``cc-api acp`` over stdio against the real gateway, the SDK, the CLI and the mock model (as tests/test_acp.py does)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from acp import PROTOCOL_VERSION, RequestError, image_block, text_block
from acp.schema import AgentMessageChunk, AvailableCommandsUpdate, UserMessageChunk

from ccapi.acp.commands import compact_instructions
from ccapi.testing import MockError, MockModel, Reply
from tests.gateway import AUTO_COMPACTING, Gateway
from tests.test_acp import RecordingClient, _env, _run, acp_agent

SUMMARY = "<analysis>short</analysis>\n<summary>Summary: the user said the answer is 42.</summary>"
COMMANDS = ["compact", "context", "cost"]


async def _advertised(client: RecordingClient) -> list[Any]:
    """The commands the agent advertised: it sends them once it has answered ``session/new`` or ``session/load``,
    so they may land just after that answer."""
    for _ in range(500):
        if found := [u for u in client.updates if isinstance(u, AvailableCommandsUpdate)]:
            return found
        await asyncio.sleep(0.01)
    return []


def _conversation(client: RecordingClient) -> list[tuple[str, str]]:
    """Who said what, in the order the client was told (a replay: each reply one chunk)."""
    said = {UserMessageChunk: "user", AgentMessageChunk: "agent"}
    return [(said[type(u)], u.content.text) for u in client.updates if type(u) in said]


def _compactions(gateway: Gateway, session_id: str) -> list[dict[str, Any]]:
    return [e for e in gateway.events(session_id) if e["type"] == "turn.started" and e["data"]["kind"] == "compact"]


def test_a_compact_prompt_compacts_the_session_and_tells_the_tokens_before_and_after_live_and_replayed(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The reply to ``/compact`` is not in the log: a replay makes the same line of the ``session.compacted`` event."""
    mock_model.script(Reply(text="noted"), Reply(text=SUMMARY))
    client = RecordingClient()

    async def run() -> tuple[str, list[Any], RequestError, Any, str, list[tuple[str, str]]]:
        async with acp_agent(gateway, client) as conn:
            session_id = (await conn.new_session(cwd=str(tmp_path))).session_id
            advertised = await _advertised(client)
            with pytest.raises(RequestError) as early:  # nothing to compact yet: the gateway's 409
                await conn.prompt(session_id=session_id, prompt=[text_block("/compact")])
            await conn.prompt(session_id=session_id, prompt=[text_block("remember that the answer is 42")])
            client.updates.clear()
            reply = await conn.prompt(session_id=session_id, prompt=[text_block("/compact  keep the numbers\n")])
            live = client.text()
            client.updates.clear()
            await conn.load_session(cwd=str(tmp_path), session_id=session_id)
        return session_id, advertised, early.value, reply, live, _conversation(client)

    session_id, advertised, early, reply, live, replayed = _run(run())

    [commands] = [update.available_commands for update in advertised]
    assert [command.name for command in commands] == COMMANDS
    assert commands[0].input is not None and commands[0].input.root.hint
    assert early.code == -32602 and "nothing to compact" in str(early.data)
    [compacted] = [e["data"] for e in gateway.events(session_id) if e["type"] == "session.compacted"]
    assert reply.stop_reason == "end_turn" and len(_compactions(gateway, session_id)) == 1
    pre, post = compacted["pre_tokens"], compacted["post_tokens"]
    assert live == f"Compacted the conversation: {pre:,} tokens before, {post:,} after." and post < pre
    assert replayed == [
        ("user", "remember that the answer is 42"),
        ("agent", "noted"),
        ("user", "/compact keep the numbers"),  # the command as the gateway ran it
        ("agent", live),
    ]
    asked = str(mock_model.message_requests(include_side=False)[-1].body["messages"][-1])
    assert "Additional Instructions:\\nkeep the numbers\\n" in asked


def test_an_automatic_compaction_tells_the_editor_before_the_answer_live_and_replayed(
    make_gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """Claude Code compacts by itself before a turn once the context fills up (thresholds brought down to the
    mock's turns): the editor reads a line of its own that says so, ahead of that turn's answer, live and on load."""
    gateway = make_gateway(**AUTO_COMPACTING)
    client = RecordingClient()

    async def run() -> tuple[str, str, list[tuple[str, str]]]:
        async with acp_agent(gateway, client) as conn:
            session_id = (await conn.new_session(cwd=str(tmp_path))).session_id
            for said in ("remember 42 ", "and 43 "):
                await conn.prompt(session_id=session_id, prompt=[text_block(said + "words " * 3000)])
            mock_model.script(Reply(text=SUMMARY), Reply(text="it was 42"))
            client.updates.clear()
            await conn.prompt(session_id=session_id, prompt=[text_block("what was it?")])
            live = client.text()
            client.updates.clear()
            await conn.load_session(cwd=str(tmp_path), session_id=session_id)
        return session_id, live, _conversation(client)

    session_id, live, replayed = _run(run())
    listed = gateway.client.get(f"/api/sessions/{session_id}/events", params={"types": "session.compacted"})
    [compacted] = [event["data"] for event in listed.json()["data"]]
    assert compacted["trigger"] == "auto"
    line = (
        "Compacted the conversation automatically, as the context window filled up: "
        f"{compacted['pre_tokens']:,} tokens before, {compacted['post_tokens']:,} after."
    )
    assert live == f"{line}\n\nit was 42" and replayed[-2:] == [("user", "what was it?"), ("agent", live)], replayed


def test_the_commands_follow_the_answer_to_session_new(gateway: Gateway, tmp_path: Path) -> None:
    """ACP's order (a client learns the session's id from the answer, and may drop updates of a session it does not
    know yet), on the agent's stdout as the client reads it."""

    async def run() -> list[dict[str, Any]]:
        command = (sys.executable, "-m", "ccapi", "acp", "--url", gateway.base_url)
        pipe = asyncio.subprocess.PIPE
        process = await asyncio.create_subprocess_exec(*command, stdin=pipe, stdout=pipe, env=_env())
        assert process.stdin is not None and process.stdout is not None
        try:
            for request_id, method, params in [
                (1, "initialize", {"protocolVersion": PROTOCOL_VERSION}),
                (2, "session/new", {"cwd": str(tmp_path), "mcpServers": []}),
            ]:
                process.stdin.write(
                    orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
                )
                process.stdin.write(b"\n")
            lines: list[dict[str, Any]] = []
            with contextlib.suppress(TimeoutError):  # an update that never comes fails below, not here
                while len(lines) < 3:
                    lines.append(orjson.loads(await asyncio.wait_for(process.stdout.readline(), 10)))
            process.stdin.close()
            await asyncio.wait_for(process.wait(), 20)
            return lines
        finally:
            if process.returncode is None:
                process.kill()

    lines = _run(run())

    assert len(lines) == 3, lines
    _, created, advertised = lines
    assert created.get("id") == 2 and "sessionId" in created["result"], lines
    update = advertised["params"]["update"]
    assert advertised["params"]["sessionId"] == created["result"]["sessionId"]
    assert (
        update["sessionUpdate"] == "available_commands_update" and update["availableCommands"][0]["name"] == "compact"
    )


def test_a_session_made_over_http_without_a_cwd_lists_where_claude_code_runs_and_loads_with_its_commands(
    gateway: Gateway, mock_model: MockModel
) -> None:
    session = gateway.create_session()  # Claude Code tells the model its working directory
    mock_model.script(Reply(text="here"))
    gateway.turn(session["id"], "where are you?")
    sent = orjson.dumps(mock_model.message_requests(include_side=False)[-1].body["messages"]).decode()
    client = RecordingClient()

    async def run() -> tuple[Any, Any, list[Any]]:
        async with acp_agent(gateway, client) as conn:
            listed = await conn.list_sessions()
            here = await conn.list_sessions(cwd=str(gateway.home))
            await conn.load_session(cwd=str(gateway.home), session_id=session["id"])
            return listed, here, await _advertised(client)

    listed, here, advertised = _run(run())

    [info] = [s for s in listed.sessions if s.session_id == session["id"]]
    assert info.cwd == str(gateway.home) and f"Primary working directory: {info.cwd}\\n" in sent
    assert session["id"] in [s.session_id for s in here.sessions]
    assert [[c.name for c in update.available_commands] for update in advertised] == [COMMANDS]


def test_context_and_cost_answer_in_the_editor_live_and_replayed_and_a_failed_turn_tells_its_error_once(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """Claude Code answers ``/context`` and ``/cost`` with a message it makes up and never streams; a streamed reply
    is not told twice, and a failed turn's error is the prompt's error answer, not a message too."""
    mock_model.script(Reply(text="hello there"))
    client = RecordingClient()

    async def run() -> tuple[dict[str, tuple[str, str]], RequestError, str, list[tuple[str, str]]]:
        async with acp_agent(gateway, client) as conn:
            session_id = (await conn.new_session(cwd=str(tmp_path))).session_id
            said = {}
            for text in ("hi", "/context", "/cost"):
                client.updates.clear()
                reply = await conn.prompt(session_id=session_id, prompt=[text_block(text)])
                said[text] = reply.stop_reason, client.text()
            client.updates.clear()
            mock_model.script(Reply(error=MockError(403, "permission_error", "this key may not use that model")))
            with pytest.raises(RequestError) as failed:
                await conn.prompt(session_id=session_id, prompt=[text_block("this one fails")])
            said_when_failing = client.text()
            client.updates.clear()
            await conn.load_session(cwd=str(tmp_path), session_id=session_id)
        return said, failed.value, said_when_failing, _conversation(client)

    said, failed, said_when_failing, replayed = _run(run())

    assert said["hi"] == ("end_turn", "hello there")
    (context_stop, context), (cost_stop, cost) = said["/context"], said["/cost"]
    assert context_stop == cost_stop == "end_turn"
    assert context.startswith("## Context Usage") and "claude-sonnet-4-5" in context
    assert "Estimated cost:" in cost and "Usage by model:" in cost
    assert "this key may not use that model" in str(failed.data) and said_when_failing == ""
    assert replayed == [
        ("user", "hi"),
        ("agent", "hello there"),
        ("user", "/context"),
        ("agent", context),
        ("user", "/cost"),
        ("agent", cost),
        ("user", "this one fails"),
        ("agent", f"The turn failed: {failed.data['message']}"),  # live, the prompt's error answer said it
    ]


def test_cancel_stops_a_compaction_prompt(gateway: Gateway, mock_model: MockModel, tmp_path: Path) -> None:
    """``POST /compact`` names its turn only once it has ended: the cancel finds it as the session's running turn,
    and the compaction stops (the summary would take 30 s)."""
    mock_model.script(Reply(text="noted"), Reply(text=SUMMARY, first_byte_delay=30))
    client = RecordingClient()

    async def run() -> tuple[str, Any]:
        async with acp_agent(gateway, client) as conn:
            session_id = (await conn.new_session(cwd=str(tmp_path))).session_id
            await conn.prompt(session_id=session_id, prompt=[text_block("remember that the answer is 42")])
            sent = len(mock_model.message_requests(include_side=False))
            prompt = asyncio.ensure_future(conn.prompt(session_id=session_id, prompt=[text_block("/compact")]))
            while len(mock_model.message_requests(include_side=False)) == sent:  # noqa: ASYNC110 - the mock records in its thread
                await asyncio.sleep(0.05)
            await conn.cancel(session_id=session_id)
            return session_id, await prompt

    session_id, reply = _run(run())

    assert reply.stop_reason == "cancelled" and "Compacted" not in client.text()
    [compaction] = _compactions(gateway, session_id)
    ended = [e for e in gateway.events(session_id) if e.get("turn_id") == compaction["turn_id"]][-1]
    assert ended["type"] == "turn.interrupted", ended
    assert "session.compacted" not in [e["type"] for e in gateway.events(session_id)]


@pytest.mark.parametrize(
    ("prompt", "instructions"),
    [
        ([text_block("/compact")], ""),
        ([text_block("  /compact keep the numbers\nand the names ")], "keep the numbers\nand the names"),
        ([text_block("/compact"), text_block("keep the numbers")], "keep the numbers"),
        ([text_block("/compacting is what I want to talk about")], None),
        ([text_block("please /compact")], None),
        ([text_block("/compact"), image_block("aGk=", "image/png")], None),
    ],
    ids=["bare", "instructions", "two-text-blocks", "another-word", "not-first", "with-an-image"],
)
def test_only_a_whole_text_prompt_beginning_with_compact_is_the_command(
    prompt: list[Any], instructions: str | None
) -> None:
    assert compact_instructions(prompt) == instructions
