"""``cc-api acp`` on the wire, as an editor sees it: raw JSON-RPC on the agent's stdio, against a real gateway on the
mock model. Every line the agent writes is read as a JSON-RPC 2.0 message (nothing else may reach stdout), and its
stderr must hold no traceback."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from acp import PROTOCOL_VERSION

from ccapi.acp.updates import UpdateMapper, merged, tool_started
from ccapi.events import Event, EventType
from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway


class Wire:
    """``cc-api acp --url <gateway>`` driven line by line: every message it writes is kept (``seen``); its requests
    to the client are left for the test to answer (``send``)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.seen: list[dict[str, Any]] = []
        self.stderr = ""
        self._next = 100
        self._replies: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._changed = asyncio.Event()

    async def __aenter__(self) -> Wire:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CC_API_")}
        command = (sys.executable, "-m", "ccapi", "acp", "--url", self.gateway.base_url)
        pipe = asyncio.subprocess.PIPE
        self.process = await asyncio.create_subprocess_exec(
            *command, stdin=pipe, stdout=pipe, stderr=pipe, env=env, limit=2**24
        )
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *_: Any) -> None:
        assert self.process.stdin is not None and self.process.stderr is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 20)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
        await self._reader
        self.stderr = (await self.process.stderr.read()).decode()
        assert "Traceback" not in self.stderr, self.stderr[-2000:]

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            message = orjson.loads(line)  # stdout carries JSON-RPC and nothing else
            assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", line
            self.seen.append(message)
            self._changed.set()
            if "method" not in message and message.get("id") in self._replies:
                self._replies.pop(message["id"]).set_result(message)

    def send(self, **message: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(orjson.dumps({"jsonrpc": "2.0", **message}) + b"\n")

    def request(self, method: str, **params: Any) -> asyncio.Future[dict[str, Any]]:
        self._next += 1
        future = self._replies[self._next] = asyncio.get_running_loop().create_future()
        self.send(id=self._next, method=method, params=params)
        return future

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """The request's result (its error fails the test)."""
        answer = await asyncio.wait_for(self.request(method, **params), 60)
        assert "result" in answer, answer
        return answer["result"]

    async def until(self, check: Callable[[], Any]) -> Any:
        """``check()`` once it is true (within 30 s), as the agent's messages come in."""

        async def wait() -> Any:
            while not (found := check()):
                self._changed.clear()
                await self._changed.wait()
            return found

        return await asyncio.wait_for(wait(), 30)

    def updates(self, kind: str) -> list[dict[str, Any]]:
        return [
            m["params"]["update"]
            for m in self.seen
            if m.get("method") == "session/update" and m["params"]["update"]["sessionUpdate"] == kind
        ]

    def text(self, kind: str = "agent_message_chunk") -> str:
        return "".join(update["content"]["text"] for update in self.updates(kind))

    def requests(self, method: str) -> list[dict[str, Any]]:
        return [m for m in self.seen if m.get("method") == method and "id" in m]

    async def initialize(self) -> None:
        await self.call("initialize", protocolVersion=PROTOCOL_VERSION, clientCapabilities={})

    async def new_session(self, cwd: Path) -> str:
        await self.initialize()
        return (await self.call("session/new", cwd=str(cwd), mcpServers=[]))["sessionId"]


def _run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 120))


def _text(text: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": text}]


def test_a_reply_claude_code_asked_for_again_is_told_once_in_a_replay_and_on_a_paragraph_of_its_own_live(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The model's stream is cut mid-message and Claude Code asks again (``turn.retrying`` with
    ``discarded_message_id``), streaming the message from its start. ``session/load`` showed the cut fragment
    followed by the whole reply ("Alpha beta gamma Alpha beta gamma delta …"), thinking too; now it shows the reply
    once. Live, what streamed cannot be taken back: the reply starts again on a new paragraph, not mid-sentence."""
    text = "Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma"
    thinking = "Weighing the matter up very carefully first, then the other side of it, then deciding"
    mock_model.script(
        Reply(text=text, drop_after_chunks=5, chunk_delay=0.05),
        Reply(text=text),
        Reply(thinking=thinking, text="Done.", drop_after_chunks=5, chunk_delay=0.05),
        Reply(thinking=thinking, text="Done."),
    )

    async def run() -> tuple[str, list[tuple[str, str]], Wire]:
        live = []
        async with Wire(gateway) as wire:
            session_id = await wire.new_session(tmp_path)
            for prompt in ("say it", "think first"):
                await wire.call("session/prompt", sessionId=session_id, prompt=_text(prompt))
                live.append((wire.text(), wire.text("agent_thought_chunk")))
                wire.seen.clear()
        async with Wire(gateway) as replay:
            await replay.initialize()
            await replay.call("session/load", sessionId=session_id, cwd=str(tmp_path), mcpServers=[])
        return session_id, live, replay

    session_id, live, replay = _run(run())

    types = [e["type"] for e in gateway.events(session_id)]
    retried = [types[n - 1] for n, kind in enumerate(types) if kind == "turn.retrying"]
    assert retried == ["message.delta", "thinking.delta"], types  # each cut came after part of a message streamed
    assert (replay.text(), replay.text("agent_thought_chunk")) == (text + "Done.", thinking)
    (said, _), (done, thought) = live
    cut, again = said.split("\n\n")
    assert again == text and text.startswith(cut.rstrip()) and cut
    cut, again = thought.split("\n\n")
    assert again == thinking and thinking.startswith(cut.rstrip()) and cut and done == "Done."


def _event(type_: str, **data: Any) -> Event:
    return Event(seq=1, type=type_, session_id="sess_x", turn_id="turn_x", created_at="2026-01-01T00:00:00Z", data=data)


def test_a_replay_keeps_what_a_running_turn_streamed_and_drops_only_a_discarded_message() -> None:
    """A retry takes back the chunks of the message it drops, and only those: not what a turn that ended
    mid-message (interrupted) said, nor what a turn still running has streamed when the log ends."""
    mapper = UpdateMapper(replay=True)
    events = [
        _event(EventType.MESSAGE_DELTA, index=0, text="cut "),
        _event(EventType.RATE_LIMIT, status="allowed"),
        _event(EventType.TURN_RETRYING, attempt=1, discarded_message_id="msg_1"),
        _event(EventType.MESSAGE_DELTA, index=0, text="kept"),
        _event(EventType.TURN_INTERRUPTED),
        _event(EventType.MESSAGE_DELTA, index=0, text=" and still streaming"),
    ]
    updates = merged(u for event in events for u in mapper(event))
    assert [u.content.text for u in updates] == ["kept and still streaming"]


def test_the_plan_claude_code_asks_to_go_ahead_with_is_the_tool_calls_content() -> None:
    """In plan mode Claude Code ends with ``ExitPlanMode``, whose permission request the editor shows on the tool
    call: the plan was only in ``rawInput``, so the user was asked to approve a plan they could not read."""
    plan = "1. Read the failing test\n2. Fix the parser"
    call = tool_started("toolu_1", "ExitPlanMode", {"plan": plan})
    assert (call.kind, call.status) == ("switch_mode", "pending")
    assert [(c.type, c.content.text) for c in call.content] == [("content", plan)]
    assert tool_started("toolu_2", "ExitPlanMode", {}).content is None


def test_session_list_of_a_directory_reads_past_other_directories_sessions(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The editor lists its project's sessions (``cwd``) while other clients made many since, elsewhere (a compat
    client's conversations, the console's): the first page was empty, with a cursor, and an editor that shows the
    first page showed no history at all. A session its maker named (``metadata.title``) is listed by that name."""
    project = tmp_path / "project"
    project.mkdir()
    own = gateway.create_session(cwd=str(project), metadata={"title": "Refactor the parser"})["id"]
    for _ in range(120):  # newer, in the gateway's own directory
        gateway.create_session(builtin_tools="none")

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        async with Wire(gateway) as wire:
            await wire.initialize()
            mine = await wire.call("session/list", cwd=str(project))
            everything = await wire.call("session/list")
        return mine, everything

    mine, everything = _run(run())

    assert [(s["sessionId"], s["cwd"]) for s in mine["sessions"]] == [(own, str(project))]
    assert mine["sessions"][0]["title"] == "Refactor the parser"  # as the session's maker named it
    assert mine.get("nextCursor") is None  # nothing more of it to page through
    assert len(everything["sessions"]) == 100 and everything["nextCursor"]  # unfiltered: one gateway page


def test_cancel_while_a_permission_request_is_open_ends_the_prompt_cancelled(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The user stops the prompt from the permission dialog: the editor sends ``session/cancel``, then answers the
    open ``session/request_permission`` ``cancelled`` (as ACP asks). The call never runs, the agent says it ended
    (``failed``), and the prompt answers ``cancelled``; the session takes the next prompt."""
    target = tmp_path / "out.txt"
    mock_model.script(Reply(tool_uses=(ToolUse("Bash", {"command": f"touch {target}"}),)), Reply(text="next"))

    async def run() -> tuple[str, dict[str, Any], dict[str, Any], Wire]:
        async with Wire(gateway) as wire:
            session_id = await wire.new_session(tmp_path)
            prompt = wire.request("session/prompt", sessionId=session_id, prompt=_text("go"))
            [asked] = await wire.until(lambda: wire.requests("session/request_permission"))
            wire.send(method="session/cancel", params={"sessionId": session_id})
            wire.send(id=asked["id"], result={"outcome": {"outcome": "cancelled"}})
            answered = await asyncio.wait_for(prompt, 30)
            after = await wire.call("session/prompt", sessionId=session_id, prompt=_text("again"))
        return session_id, answered, after, wire

    session_id, answered, after, wire = _run(run())

    assert answered["result"]["stopReason"] == "cancelled" and after["stopReason"] == "end_turn"
    [asked] = wire.requests("session/request_permission")
    assert {o["kind"] for o in asked["params"]["options"]} == {"allow_once", "reject_once"}
    call = asked["params"]["toolCall"]["toolCallId"]
    [started] = wire.updates("tool_call")
    assert (started["toolCallId"], started["kind"], started["status"]) == (call, "execute", "pending")
    assert [u["status"] for u in wire.updates("tool_call_update") if u["toolCallId"] == call] == ["failed"]
    assert not target.exists()
    types = [e["type"] for e in gateway.events(session_id)]
    assert types.count("turn.interrupted") == 1 and types[-1] == "turn.completed"
