"""No other Claude Code of the host can write into a session's conversation: every Claude Code listens for messages
from its peers (the user's own interactive Claude Code's ``SendMessage``, any process of the user that reads its
key) and runs a model turn on each by itself, between the gateway's turns, unread; the gateway's do not."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage, query

from ccapi.testing import MockModel, Reply, ToolUse

pytestmark = pytest.mark.slow  # a gateway and a Claude Code of its own

MESSAGE = "peer-message-5817"


def listening_sockets(pid: int) -> list[str]:
    """The Unix sockets a process listens on, by path (``/proc/net/unix``: flag ``__SO_ACCEPTCON``)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and int(fields[3], 16) & 0x10000 and fields[6] in inodes:
            found.append(fields[7])
    return found


async def users_own_claude_code(options: ClaudeAgentOptions) -> str:
    """Run one prompt to its end in a Claude Code started as the user starts theirs; its session id."""
    results = [m async for m in query(prompt="tell the other session", options=options) if isinstance(m, ResultMessage)]
    assert len(results) == 1, results
    return results[0].session_id


def test_the_users_own_claude_code_cannot_message_a_session(
    make_gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The user's own Claude Code, on the gateway's config directory with the peer tools, finds no session of the
    gateway to message (it listens on no socket), and its ``SendMessage`` to one by name reaches nothing: the session's
    Claude Code asks the model nothing about it, and the session's next turn is an ordinary one."""
    gw = make_gateway()
    (tmp_path / "session").mkdir()
    session = gw.create_session(cwd=str(tmp_path / "session"))
    assert gw.turn(session["id"], "hello")["status"] == "completed"
    config = Path(gw.env["CLAUDE_CONFIG_DIR"])
    [running] = config.glob("sessions/*.json")
    registered = json.loads(running.read_text())
    [claude] = gw.claude_processes()
    assert registered["pid"] == claude and listening_sockets(claude) == [], listening_sockets(claude)

    mock_model.clear()
    send = ToolUse("SendMessage", {"to": registered["name"], "message": MESSAGE})
    mock_model.script(Reply(tool_uses=(ToolUse("ListAgents", {}),)), Reply(tool_uses=(send,)), Reply(text="sent"))
    (tmp_path / "user").mkdir()
    options = ClaudeAgentOptions(
        cwd=str(tmp_path / "user"),
        env={
            **{name: gw.env[name] for name in ("HOME", "TMPDIR", "CLAUDE_CONFIG_DIR", "ANTHROPIC_API_KEY")},
            "ANTHROPIC_BASE_URL": mock_model.url,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        },
        allowed_tools=["ListAgents", "SendMessage"],
        setting_sources=[],
    )
    users = asyncio.run(asyncio.wait_for(users_own_claude_code(options), 60))
    sent = [
        r for r in mock_model.message_requests(include_side=False) if r.headers.get("x-claude-code-session-id") == users
    ]
    assert len(sent) == 3 and mock_model.pending == 0, sent  # it did list its peers, then send

    mock_model.script(Reply(text="an ordinary answer"))
    reply = gw.turn(session["id"], "and now?")
    assert reply["status"] == "completed" and "an ordinary answer" in json.dumps(reply), reply
    received = [
        request
        for request in mock_model.message_requests(include_side=True)
        if request.headers.get("x-claude-code-session-id") == registered["sessionId"]
    ]
    shown = json.dumps([request.body["messages"] for request in received])
    assert MESSAGE not in shown and "cross-session-message" not in shown, shown
    assert len(received) == 1 and "and now?" in json.dumps(received[0].body["messages"][-1]), shown
