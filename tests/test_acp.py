"""``cc-api acp`` end to end: the ACP library's own client drives ``cc-api acp`` over stdio, against a real gateway
(root, default settings: built-in tool calls wait for approval), the SDK, the CLI and the mock model."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from acp import PROTOCOL_VERSION, RequestError, spawn_agent_process, text_block
from acp.client.connection import ClientSideConnection
from acp.schema import (
    AgentMessageChunk,
    AllowedOutcome,
    CurrentModeUpdate,
    DeniedOutcome,
    EnvVariable,
    McpServerStdio,
    RequestPermissionResponse,
    ToolCallProgress,
    ToolCallStart,
    UserMessageChunk,
)

from ccapi.daemon.cli import main
from ccapi.testing import MockModel, Reply, ToolUse
from tests.compat_support import result_text, tool_results_sent
from tests.gateway import Gateway, free_port
from tests.test_mcp_servers import NOTE_SERVER


class RecordingClient:
    """An ACP client that records every update and answers permission requests with ``answer``."""

    def __init__(self, answer: str = "allow") -> None:
        self.answer = answer
        self.updates: list[Any] = []
        self.permissions: list[Any] = []

    async def session_update(self, session_id: str, update: Any, **_: Any) -> None:
        self.updates.append(update)

    async def request_permission(
        self, options: list[Any], session_id: str, tool_call: Any, **_: Any
    ) -> RequestPermissionResponse:
        self.permissions.append(tool_call)
        return RequestPermissionResponse(outcome=AllowedOutcome(outcome="selected", option_id=self.answer))

    def on_connect(self, conn: Any) -> None:
        pass

    def text(self, kind: type = AgentMessageChunk) -> str:
        return "".join(u.content.text for u in self.updates if isinstance(u, kind))


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CC_API_")}


@asynccontextmanager
async def acp_agent(gateway: Gateway, client: RecordingClient) -> AsyncIterator[ClientSideConnection]:
    """``cc-api acp --url <gateway>`` as a child process, initialized; ended when the block ends."""
    command = (sys.executable, "-m", "ccapi", "acp", "--url", gateway.base_url)
    async with spawn_agent_process(client, *command, env=_env()) as (conn, process):
        init = await conn.initialize(protocol_version=PROTOCOL_VERSION)
        capabilities = init.agent_capabilities
        assert capabilities.load_session and capabilities.prompt_capabilities.image
        assert capabilities.prompt_capabilities.embedded_context and capabilities.mcp_capabilities.http
        yield conn
    assert process.returncode is not None, "the agent process ended with its client"


def _run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 120))


@pytest.mark.slow
def test_two_prompts_with_the_agent_and_gateway_restarted_between_stay_on_one_session(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    mock_model.script(Reply(text="the first answer"), Reply(text="the second answer"))
    notes = EnvVariable(name="NOTE_FILE", value=str(tmp_path / "notes.txt"))
    server = McpServerStdio(name="my notes", command=sys.executable, args=[NOTE_SERVER], env=[notes])

    async def first() -> str:
        client = RecordingClient()
        async with acp_agent(gateway, client) as conn:
            session = await conn.new_session(cwd=str(tmp_path), mcp_servers=[server])
            reply = await conn.prompt(session_id=session.session_id, prompt=[text_block("the first question")])
        assert reply.stop_reason == "end_turn" and client.text() == "the first answer"
        return session.session_id

    async def second(session_id: str) -> RecordingClient:
        client = RecordingClient()
        async with acp_agent(gateway, client) as conn:
            listed = await conn.list_sessions(cwd=str(tmp_path))
            assert [s.session_id for s in listed.sessions] == [session_id]
            await conn.load_session(cwd=str(tmp_path), session_id=session_id)
            replayed = client.text(UserMessageChunk), client.text()
            client.updates.clear()
            reply = await conn.prompt(session_id=session_id, prompt=[text_block("the second question")])
        assert replayed == ("the first question", "the first answer")
        assert reply.stop_reason == "end_turn"
        return client

    session_id = _run(first())
    gateway.restart()  # the conversation lives in the gateway's store, not in any process
    client = _run(second(session_id))

    assert client.text() == "the second answer"
    session = gateway.client.get(f"/api/sessions/{session_id}").json()
    assert session["turn_count"] == 2 and session["cwd"] == str(tmp_path)
    assert session["mcp_servers"]["my_notes"]["args"] == [NOTE_SERVER]
    last = mock_model.message_requests(include_side=False)[-1].body
    texts = str(last["messages"])
    assert texts.index("the first question") < texts.index("the first answer") < texts.index("the second question")


@pytest.mark.slow
def test_a_bash_call_is_approved_by_the_acp_client_then_runs(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    target = tmp_path / "out.txt"
    command = f"echo approved > {target}"
    mock_model.script(Reply(tool_uses=(ToolUse("Bash", {"command": command}),)), Reply(text="done"))
    client = RecordingClient()

    async def run() -> tuple[str, Any]:
        async with acp_agent(gateway, client) as conn:
            session = await conn.new_session(cwd=str(tmp_path))
            reply = await conn.prompt(session_id=session.session_id, prompt=[text_block("write the file")])
        return session.session_id, reply

    session_id, reply = _run(run())

    assert reply.stop_reason == "end_turn" and client.text() == "done"
    [asked] = client.permissions
    assert asked.raw_input["command"] == command and asked.kind == "execute"
    assert target.read_text() == "approved\n"
    [started] = [u for u in client.updates if isinstance(u, ToolCallStart)]
    assert started.tool_call_id == asked.tool_call_id and started.raw_input["command"] == command
    running, finished = [u for u in client.updates if isinstance(u, ToolCallProgress)]  # once approved, it runs
    assert (running.tool_call_id, running.status) == (asked.tool_call_id, "in_progress")
    assert finished.tool_call_id == asked.tool_call_id and finished.status == "completed"
    resolved = [e for e in gateway.events(session_id) if e["type"] == "permission.resolved"]
    assert [e["data"]["behavior"] for e in resolved] == ["allow"]


def test_a_prompt_answers_its_turns_token_usage(gateway: Gateway, mock_model: MockModel, tmp_path: Path) -> None:
    """The prompt's ``usage`` is its turn's tokens as the gateway counts them (acpx prints it under the reply)."""
    mock_model.script(Reply(text="counted"))
    client = RecordingClient()

    async def run() -> tuple[str, Any]:
        async with acp_agent(gateway, client) as conn:
            session = await conn.new_session(cwd=str(tmp_path))
            return session.session_id, await conn.prompt(session_id=session.session_id, prompt=[text_block("hi")])

    session_id, reply = _run(run())

    [turn] = [e["data"]["usage"] for e in gateway.events(session_id) if e["type"] == "turn.completed"]
    cache = turn["cache_read_input_tokens"], turn["cache_creation_input_tokens"]
    assert reply.usage is not None and reply.usage.output_tokens == turn["output_tokens"] > 0
    assert (reply.usage.input_tokens, reply.usage.cached_read_tokens, reply.usage.cached_write_tokens) == (
        turn["input_tokens"],
        *cache,
    )
    assert reply.usage.total_tokens == turn["input_tokens"] + turn["output_tokens"] + sum(cache)


def test_load_replays_a_session_made_over_http_and_switches_mode_and_model(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    session = gateway.create_session(builtin_tools="none")
    mock_model.script(Reply(text="general kenobi", thinking="a famous line"))
    gateway.turn(session["id"], "hello there")
    client = RecordingClient()

    async def run() -> Any:
        async with acp_agent(gateway, client) as conn:
            loaded = await conn.load_session(cwd=str(tmp_path), session_id=session["id"])
            await conn.set_session_mode(session_id=session["id"], mode_id="plan")
            await conn.set_config_option(config_id="model", session_id=session["id"], value="haiku")
        return loaded

    loaded = _run(run())

    assert client.text(UserMessageChunk) == "hello there" and client.text() == "general kenobi"
    assert loaded.modes.current_mode_id == "default"
    assert {o.id for o in loaded.config_options} == {"model"}
    changed = gateway.client.get(f"/api/sessions/{session['id']}").json()
    assert changed["permission_mode"] == "plan" and "haiku" in changed["model"]


@pytest.mark.slow
def test_an_approved_plan_moves_the_mode_picker_out_of_plan(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The editor approves the plan (``ExitPlanMode``): Claude Code goes on in ``default``, the editor hears of it
    (``current_mode_update``), and the session keeps it."""
    mock_model.script(Reply(tool_uses=(ToolUse("ExitPlanMode", {"plan": "1. write it"}),)), Reply(text="on it"))
    client = RecordingClient()

    async def run() -> tuple[str, Any]:
        async with acp_agent(gateway, client) as conn:
            session = await conn.new_session(cwd=str(tmp_path))
            await conn.set_session_mode(session_id=session.session_id, mode_id="plan")
            reply = await conn.prompt(session_id=session.session_id, prompt=[text_block("plan it")])
        return session.session_id, reply

    session_id, reply = _run(run())

    assert reply.stop_reason == "end_turn" and client.text() == "on it"
    assert [u.current_mode_id for u in client.updates if isinstance(u, CurrentModeUpdate)] == ["default"]
    assert gateway.client.get(f"/api/sessions/{session_id}").json()["permission_mode"] == "default"


def test_without_a_gateway_it_says_how_to_start_one(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["acp", "--url", url]) == 1
    out, err = capsys.readouterr()
    assert out == "" and f"no CC API gateway answers at {url}" in err and "cc-api start" in err


def test_a_gateway_that_takes_no_connection_is_given_up_on_in_seconds() -> None:
    """A gateway that takes no connection (a firewall dropping them, a wedged host: here a full accept queue) is
    said like one that refuses them, after the client's connect timeout: the editor's agent hung for the
    kernel's two minutes of retries (the whole 600 s read timeout was the connect timeout too)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        with socket.create_connection(listener.getsockname()):  # the queue is full: the next connect hangs
            url = "http://{}:{}".format(*listener.getsockname())
            command = [sys.executable, "-m", "ccapi", "acp", "--url", url]
            done = subprocess.run(command, capture_output=True, env=_env(), timeout=30, check=False, text=True)
    assert done.returncode == 1 and f"no CC API gateway answers at {url} (ConnectTimeout)" in done.stderr


@pytest.mark.parametrize("at_once", [False, True], ids=["while-the-model-answers", "while-claude-code-starts"])
def test_cancel_interrupts_the_running_turn(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path, at_once: bool
) -> None:
    """Also a cancel sent right after the prompt, while a new session's Claude Code is still starting (its input
    never goes)."""
    mock_model.script(Reply(text="too late", first_byte_delay=30))
    client = RecordingClient()

    async def run() -> Any:
        async with acp_agent(gateway, client) as conn:
            session = await conn.new_session(cwd=str(tmp_path))
            prompt = asyncio.ensure_future(conn.prompt(session_id=session.session_id, prompt=[text_block("hi")]))
            await asyncio.sleep(0.05)
            while not at_once and not mock_model.message_requests(include_side=False):  # noqa: ASYNC110 - the mock records in its thread
                await asyncio.sleep(0.1)
            await conn.cancel(session_id=session.session_id)
            return session.session_id, await prompt

    session_id, reply = _run(run())

    assert reply.stop_reason == "cancelled" and "too late" not in client.text()
    assert [e["type"] for e in gateway.events(session_id)][-1] == "turn.interrupted"


def test_a_cancel_request_of_the_prompt_cancels_it_and_other_notifications_are_ignored(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """ACP's ``$/cancel_request`` of a running ``session/prompt`` (what an SDK sends when its caller drops the
    request) is that prompt's ``session/cancel``: it answers ``cancelled``. It went unheard, the prompt ran on, and
    it and every notification the agent has no handler for logged a traceback on stderr; those are ignored."""
    mock_model.script(Reply(text="too late", first_byte_delay=30))

    async def run() -> tuple[str, dict[str, Any], bytes]:
        command = (sys.executable, "-m", "ccapi", "acp", "--url", gateway.base_url)
        pipe = asyncio.subprocess.PIPE
        process = await asyncio.create_subprocess_exec(*command, stdin=pipe, stdout=pipe, stderr=pipe, env=_env())
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        stdin, stdout = process.stdin, process.stdout

        def send(**message: Any) -> None:
            stdin.write(orjson.dumps({"jsonrpc": "2.0", **message}) + b"\n")

        async def reply(request_id: int) -> dict[str, Any]:  # the answer to a request, past the notifications
            while "method" in (message := orjson.loads(await stdout.readline())) or message["id"] != request_id:
                pass
            return message

        try:
            send(id=1, method="initialize", params={"protocolVersion": PROTOCOL_VERSION})
            await reply(1)
            send(id=2, method="session/new", params={"cwd": str(tmp_path), "mcpServers": []})
            session_id = (await reply(2))["result"]["sessionId"]
            send(method="editor/focused", params={"sessionId": session_id})  # a notification nobody here knows
            send(method="$/cancel_request", params={"requestId": 2})  # a request answered already
            send(
                id=3,
                method="session/prompt",
                params={"sessionId": session_id, "prompt": [{"type": "text", "text": "hi"}]},
            )
            while not mock_model.message_requests(include_side=False):  # noqa: ASYNC110 - the mock records in its thread
                await asyncio.sleep(0.1)
            send(method="$/cancel_request", params={"requestId": 3})
            answered = await asyncio.wait_for(reply(3), 20)
            stdin.close()
            await asyncio.wait_for(process.wait(), 20)
            return session_id, answered, await process.stderr.read()
        finally:
            if process.returncode is None:
                process.kill()

    session_id, answered, stderr = _run(run())

    assert answered["result"]["stopReason"] == "cancelled", answered
    assert [e["type"] for e in gateway.events(session_id)][-1] == "turn.interrupted"
    assert b"Traceback" not in stderr, stderr.decode()[-2000:]


@pytest.mark.slow  # an agent process of its own and a 3 s reply waited out; the cancel above stays fast
def test_a_tool_call_open_when_its_turn_fails_ends_failed(
    make_gateway: Any, mock_model: MockModel, tmp_path: Path
) -> None:
    """Claude Code dies while its Bash call runs: the turn fails with no result for the call (the prompt's error),
    and the client is told the call failed, rather than showing it running for ever; a replay says the same."""
    gateway = make_gateway()
    mock_model.script(Reply(tool_uses=(ToolUse("Bash", {"command": "sleep 30"}),)), Reply(text="never"))
    client = RecordingClient()

    def started() -> list[Any]:
        return [u for u in client.updates if isinstance(u, ToolCallStart)]

    async def run() -> tuple[Any, Any]:
        async with acp_agent(gateway, client) as conn:
            session = await conn.new_session(cwd=str(tmp_path))
            prompt = asyncio.ensure_future(conn.prompt(session_id=session.session_id, prompt=[text_block("wait")]))
            while not started():  # noqa: ASYNC110 - the updates come in on the connection's task
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)  # Claude Code runs it (a command that only reads needs no approval)
            for pid in gateway.claude_processes():
                os.kill(pid, signal.SIGKILL)
            with pytest.raises(RequestError) as failed:  # a failed turn is the prompt's error
                await prompt
            replay = RecordingClient()
            async with acp_agent(gateway, replay) as again:
                await again.load_session(cwd=str(tmp_path), session_id=session.session_id)
        return failed.value, replay

    error, replay = _run(run())

    [call] = started()
    last = [u for u in client.updates if isinstance(u, ToolCallProgress | ToolCallStart)][-1]
    assert (type(last), last.tool_call_id, last.status) == (ToolCallProgress, call.tool_call_id, "failed")
    assert error.data["type"] == "engine_error"
    replayed = [u for u in replay.updates if isinstance(u, ToolCallProgress | ToolCallStart)]
    assert (replayed[-1].tool_call_id, replayed[-1].status) == (call.tool_call_id, "failed")


def test_cancel_leaves_another_clients_turn_alone(gateway: Gateway, mock_model: MockModel, tmp_path: Path) -> None:
    """A cancel stops the ACP client's own prompt only, never an HTTP client's turn running in the session."""
    mock_model.script(Reply(text="http reply", first_byte_delay=3))
    client = RecordingClient()

    async def run() -> tuple[str, str]:
        async with acp_agent(gateway, client) as conn:
            session_id = (await conn.new_session(cwd=str(tmp_path))).session_id
            started = gateway.client.post(f"/api/sessions/{session_id}/turns", json={"input": "hi", "background": True})
            assert started.status_code == 202, started.text
            while not mock_model.message_requests(include_side=False):  # noqa: ASYNC110 - the mock records in its thread
                await asyncio.sleep(0.1)
            with pytest.raises(RequestError):  # busy: the session runs the HTTP client's turn
                await conn.prompt(session_id=session_id, prompt=[text_block("me too")])
            await conn.cancel(session_id=session_id)
            await asyncio.sleep(0.5)  # a notification: give the agent time to act on it
            return session_id, started.json()["turn_id"]

    session_id, turn_id = _run(run())

    deadline = time.monotonic() + 60
    while (turn := gateway.client.get(f"/api/sessions/{session_id}/turns/{turn_id}").json())["status"] in (
        "running",
        "queued",
    ) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert turn["status"] == "completed", turn
    assert [e["type"] for e in gateway.events(session_id)][-1] == "turn.completed"


class SilentClient(RecordingClient):
    """An editor whose permission dialog stays open (or fails, with ``fails``; or answers ``cancelled`` on its own,
    with ``cancels``, as acpx does when no option fits its policy)."""

    def __init__(self, fails: bool = False, cancels: bool = False) -> None:
        super().__init__()
        self.fails, self.cancels = fails, cancels

    async def request_permission(
        self, options: list[Any], session_id: str, tool_call: Any, **_: Any
    ) -> RequestPermissionResponse:
        self.permissions.append(tool_call)
        if self.fails:
            raise RequestError.internal_error({"details": "no dialog here"})
        if self.cancels:
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        await asyncio.Event().wait()
        raise AssertionError("never answered")


def _approval_prompt(gateway: Gateway, client: RecordingClient, tmp_path: Path, elsewhere: Any = None) -> Any:
    async def run() -> Any:
        async with acp_agent(gateway, client) as conn:
            session = await conn.new_session(cwd=str(tmp_path))
            prompt = asyncio.ensure_future(conn.prompt(session_id=session.session_id, prompt=[text_block("go")]))
            if elsewhere is not None:
                while not client.permissions:  # noqa: ASYNC110 - the agent asks in its own process
                    await asyncio.sleep(0.05)
                elsewhere(session.session_id)
            return session.session_id, await prompt

    return _run(run())


def test_a_permission_the_editor_cannot_ask_refuses_the_call(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """An editor that answers the permission request with an error refuses the call, and the turn goes on; it
    waited for the approval timeout (5 minutes), every prompt of the session refused meanwhile."""
    target = tmp_path / "out.txt"
    mock_model.script(Reply(tool_uses=(ToolUse("Bash", {"command": f"touch {target}"}),)), Reply(text="went on"))
    client = SilentClient(fails=True)
    session_id, reply = _approval_prompt(gateway, client, tmp_path)
    assert reply.stop_reason == "end_turn" and client.text() == "went on" and not target.exists()
    resolved = [e["data"] for e in gateway.events(session_id) if e["type"] == "permission.resolved"]
    assert [r["behavior"] for r in resolved] == ["deny"] and "could not ask" in resolved[0]["message"]


def test_a_permission_request_the_editor_cancels_without_cancelling_the_prompt_refuses_the_call(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """A ``cancelled`` outcome with no ``session/cancel`` (acpx answers so when no option fits its permission policy)
    refuses the call, and the turn goes on; it was left to an interrupt that never came, and the prompt waited for
    the approval timeout (5 minutes)."""
    target = tmp_path / "out.txt"
    mock_model.script(Reply(tool_uses=(ToolUse("Bash", {"command": f"touch {target}"}),)), Reply(text="went on"))
    client = SilentClient(cancels=True)

    async def run() -> tuple[str, Any]:
        async with acp_agent(gateway, client) as conn:
            session = await conn.new_session(cwd=str(tmp_path))
            prompt = conn.prompt(session_id=session.session_id, prompt=[text_block("go")])
            return session.session_id, await asyncio.wait_for(prompt, 30)

    session_id, reply = _run(run())

    assert reply.stop_reason == "end_turn" and client.text() == "went on" and not target.exists()
    resolved = [e["data"] for e in gateway.events(session_id) if e["type"] == "permission.resolved"]
    assert [r["behavior"] for r in resolved] == ["deny"] and "cancelled" in resolved[0]["message"]


def test_a_permission_decided_elsewhere_does_not_hold_the_prompt(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The console (or another client) approves while the editor's dialog is still open: the prompt follows the
    turn to its end instead of waiting for the dialog."""
    target = tmp_path / "out.txt"
    mock_model.script(Reply(tool_uses=(ToolUse("Bash", {"command": f"touch {target}"}),)), Reply(text="done"))

    def approve(session_id: str) -> None:
        [event] = [e for e in gateway.events(session_id) if e["type"] == "permission.requested"]
        decision = {"request_id": event["data"]["request_id"], "behavior": "allow"}
        answered = gateway.client.post(f"/api/sessions/{session_id}/permissions", json={"decisions": [decision]})
        assert answered.status_code == 200, answered.text

    _, reply = _approval_prompt(gateway, SilentClient(), tmp_path, approve)
    assert reply.stop_reason == "end_turn" and target.exists()


def test_an_interrupt_from_elsewhere_is_an_error_not_the_clients_cancel(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """``cancelled`` means the client's own ``session/cancel``: an interrupt from the console is an error that
    says so. An unknown protocol version is answered with the agent's own."""
    mock_model.script(Reply(text="too late", first_byte_delay=30))
    client = RecordingClient()

    async def run() -> tuple[int, Any]:
        command = (sys.executable, "-m", "ccapi", "acp", "--url", gateway.base_url)
        async with spawn_agent_process(client, *command, env=_env()) as (conn, _):
            version = (await conn.initialize(protocol_version=0)).protocol_version
            session = await conn.new_session(cwd=str(tmp_path))
            prompt = asyncio.ensure_future(conn.prompt(session_id=session.session_id, prompt=[text_block("hi")]))
            while not mock_model.message_requests(include_side=False):  # noqa: ASYNC110 - the mock records in its thread
                await asyncio.sleep(0.1)
            stopped = gateway.client.post(f"/api/sessions/{session.session_id}/interrupt")
            assert stopped.status_code == 200, stopped.text
            with pytest.raises(RequestError) as failed:
                await prompt
            return version, failed.value

    version, error = _run(run())
    assert version == PROTOCOL_VERSION
    assert "interrupted" in str(error.data)


def test_a_line_that_is_not_a_json_object_is_answered_and_the_agent_reads_on(gateway: Gateway) -> None:
    """``5``, ``null``, a broken line or an object with no method get their JSON-RPC errors; the agent (and its
    turns) go on. The first stopped it with a traceback, ``null`` read as the end of input, a broken line and an
    object with only an id were never answered, and a number for a method was "method not found"."""
    command = [sys.executable, "-m", "ccapi", "acp", "--url", gateway.base_url]
    lines = [b"5", b"null", b"[]", b'{"jsonrpc": "2.0", "id": 1, "method": "initi', b""]
    no_method = [{"jsonrpc": "2.0", "id": 3}, {"jsonrpc": "2.0", "id": "4", "method": 5}]  # not even a response
    initialize = {"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {"protocolVersion": PROTOCOL_VERSION}}
    stdin = b"\n".join(lines) + b"".join(orjson.dumps(m) + b"\n" for m in [*no_method, initialize])
    done = subprocess.run(command, input=stdin, capture_output=True, env=_env(), timeout=60, check=False)
    replies = [orjson.loads(line) for line in done.stdout.splitlines()]
    codes = [-32600, -32600, -32600, -32700, -32600, -32600, None]
    assert [r.get("error", {}).get("code") for r in replies] == codes, replies
    assert [r["id"] for r in replies] == [None, None, None, None, 3, "4", 2]
    assert replies[6]["result"]["protocolVersion"] == PROTOCOL_VERSION
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr.decode()[-2000:]


@pytest.mark.parametrize("reason", ["max_tokens", "refusal"])
def test_a_reply_cut_at_max_tokens_or_refused_is_its_stop_reason_not_an_error(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path, reason: str
) -> None:
    """Claude Code ends both as a failed turn (its "API Error: …" text): the client gets ACP's own stop reason, as
    the docs say, not an internal error."""
    mock_model.script(*[Reply(text="cut short", stop_reason=reason)] * 4)  # and for Claude Code's own retries
    client = RecordingClient()

    async def run() -> Any:
        async with acp_agent(gateway, client) as conn:
            session = await conn.new_session(cwd=str(tmp_path))
            return await conn.prompt(session_id=session.session_id, prompt=[text_block("hi")])

    assert _run(run()).stop_reason == reason


def test_a_client_tool_of_a_session_made_over_http_is_refused_not_waited_for(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """ACP has no client tools: a call to one (a session made over HTTP with ``tools``, loaded in the editor) gets
    an error result Claude can read at once, and the prompt goes on; it waited for CC_API_TOOL_TIMEOUT (5 min)."""
    weather = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}
    session = gateway.create_session(tools=[weather], builtin_tools="none")
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)), Reply(text="no weather here"))
    client = RecordingClient()

    async def run() -> Any:
        async with acp_agent(gateway, client) as conn:
            await conn.load_session(cwd=str(tmp_path), session_id=session["id"])
            return await asyncio.wait_for(conn.prompt(session_id=session["id"], prompt=[text_block("go")]), 30)

    reply = _run(run())

    assert reply.stop_reason == "end_turn" and client.text() == "no weather here"
    [result] = tool_results_sent(mock_model)
    assert result["is_error"] and "get_weather" in result_text(result) and "ACP" in result_text(result)


def test_a_cancel_while_the_gateway_is_gone_is_no_traceback(
    make_gateway: Any, mock_model: MockModel, tmp_path: Path
) -> None:
    """The gateway died under a running prompt (killed: no interrupt recorded) and the user pressed stop: the
    cancel, a notification, found no gateway to interrupt, and the agent logged its traceback on stderr. The
    prompt still ends as an error that says the gateway is gone."""
    gateway = make_gateway()
    mock_model.script(Reply(text="never", first_byte_delay=30))
    client = RecordingClient()

    async def run() -> tuple[RequestError, str]:
        command = (sys.executable, "-m", "ccapi", "acp", "--url", gateway.base_url)
        async with spawn_agent_process(client, *command, env=_env()) as (conn, process):
            await conn.initialize(protocol_version=PROTOCOL_VERSION)
            session = await conn.new_session(cwd=str(tmp_path))
            prompt = asyncio.ensure_future(conn.prompt(session_id=session.session_id, prompt=[text_block("hi")]))
            while not mock_model.message_requests(include_side=False):  # noqa: ASYNC110 - the mock records in its thread
                await asyncio.sleep(0.1)
            gateway.process.kill()
            gateway.process.wait(10)
            await conn.cancel(session_id=session.session_id)
            with pytest.raises(RequestError) as failed:
                await prompt
        assert process.stderr is not None
        return failed.value, (await process.stderr.read()).decode()

    error, stderr = _run(run())
    assert "no CC API gateway answers" in str(error.data), error
    assert "Traceback" not in stderr, stderr[-2000:]
    deadline = time.monotonic() + 10  # the killed gateway's Claude Code notices and exits
    while gateway.leftover_processes() and time.monotonic() < deadline:
        time.sleep(0.2)


def test_a_gateway_gone_mid_session_is_said_plainly_without_a_traceback(make_gateway: Any, tmp_path: Path) -> None:
    """The gateway stopped under an open editor: each call answers that no gateway answers and how to start one,
    instead of "Internal error" with httpx's text and a traceback on stderr for every call."""
    gateway = make_gateway()
    client = RecordingClient()

    async def run() -> tuple[list[RequestError], str]:
        errors = []
        command = (sys.executable, "-m", "ccapi", "acp", "--url", gateway.base_url)
        async with spawn_agent_process(client, *command, env=_env()) as (conn, process):
            await conn.initialize(protocol_version=PROTOCOL_VERSION)
            session = await conn.new_session(cwd=str(tmp_path))
            gateway.stop()
            for call in (
                conn.prompt(session_id=session.session_id, prompt=[text_block("hi")]),
                conn.new_session(cwd=str(tmp_path)),
            ):
                with pytest.raises(RequestError) as failed:
                    await call
                errors.append(failed.value)
        assert process.stderr is not None
        return errors, (await process.stderr.read()).decode()

    errors, stderr = _run(run())
    assert all("no CC API gateway answers" in str(e.data) and "cc-api start" in str(e.data) for e in errors), errors
    assert "Traceback" not in stderr, stderr[-2000:]
