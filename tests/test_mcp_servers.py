"""A session's own MCP servers (``mcp_servers``): Claude Code starts them and the model can call their
tools; bad definitions are a clear 400 that creates nothing. Also what ``PATCH`` may change between turns
(model, permission mode), which ``cc-api acp`` relies on for ``session/set_mode`` and the model option."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from ccapi.store import SqlStore
from ccapi.store.databases import sqlite_database
from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway, free_port, gateway_processes, pids_with_env
from tests.test_store_backends import _session

NOTE_SERVER = str(Path(__file__).with_name("mcp_note_server.py"))


def _notes(tmp_path: Path) -> dict[str, Any]:
    return {"type": "stdio", "command": sys.executable, "args": [NOTE_SERVER], "env": {"NOTE_FILE": str(tmp_path)}}


def test_a_stdio_mcp_server_tool_runs_when_the_model_calls_it(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    server = {**_notes(tmp_path), "env": {"NOTE_FILE": str(notes), "NOTE_TOKEN": "secret-value"}}
    session = gateway.create_session(builtin_tools=["Read"], mcp_servers={"notes": server})
    shown = session["mcp_servers"]["notes"]
    assert shown["command"] == sys.executable and shown["env"] == ["NOTE_FILE", "NOTE_TOKEN"]
    mock_model.script(Reply(tool_uses=(ToolUse("note", {"text": "buy milk"}),)), Reply(text="noted it"))

    reply = gateway.allow(session["id"], gateway.turn(session["id"], "note: buy milk"))

    assert reply["status"] == "completed", reply
    assert notes.read_text() == "buy milk\n"
    first, second = mock_model.message_requests(include_side=False)[-2:]
    assert "mcp__notes__note" in {tool["name"] for tool in first.body["tools"]}
    results = [b for m in second.body["messages"] for b in m["content"] if isinstance(b, dict)]
    assert any(b.get("type") == "tool_result" and "noted: buy milk" in str(b.get("content")) for b in results)
    assert "secret-value" not in gateway.client.get(f"/api/sessions/{session['id']}").text


def _cmdlines() -> dict[int, list[str]]:
    """Every live process's command line, as any local user may read it."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            found[int(entry.name)] = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (ValueError, OSError):
            continue
    return found


def test_mcp_server_secrets_stay_off_every_command_line(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """Env values and headers (tokens) reach Claude Code in a private file, removed once read, not in
    ``ps``; the servers still run, next to the session's client tools (Claude Code merges both configs)."""
    marker = "MCP-SECRET-MARKER-5c1e"
    notes = tmp_path / "notes.txt"
    servers = {
        "notes": {**_notes(tmp_path), "env": {"NOTE_FILE": str(notes), "NOTE_TOKEN": marker}},
        "remote": {"type": "http", "url": f"http://127.0.0.1:{free_port()}/mcp", "headers": {"Authorization": marker}},
    }
    tool = {"name": "lookup", "description": "Look it up", "input_schema": {"type": "object", "properties": {}}}
    session = gateway.create_session(builtin_tools=["Read"], mcp_servers=servers, tools=[tool])
    mock_model.script(Reply(tool_uses=(ToolUse("note", {"text": "call Bob"}),)), Reply(text="noted it"))

    reply = gateway.turn(session["id"], "note: call Bob")  # Claude Code runs (and stays, pooled) from here

    children = [pid for pid in gateway_processes(gateway.env["CC_API_HOME"], gateway.pids) if pid not in gateway.pids]
    assert children, "no Claude Code process to look at"
    cmdlines = _cmdlines()
    assert [pid for pid, argv in cmdlines.items() if any(marker in arg for arg in argv)] == []
    assert pids_with_env("NOTE_TOKEN", marker), "the stdio server did not get its environment"
    claude = next(argv for pid in children if "--mcp-config" in (argv := cmdlines.get(pid, [])))
    files = [arg for arg in claude if "ccapi-private-mcp-config-" in arg]
    assert files and not any(Path(file).exists() for file in files), claude
    assert gateway.allow(session["id"], reply)["status"] == "completed"
    assert notes.read_text() == "call Bob\n"
    offered = {t["name"] for t in mock_model.message_requests(include_side=False)[-2].body["tools"]}
    assert {"mcp__notes__note", "mcp__client__lookup"} <= offered, offered


def test_a_fork_keeps_the_sessions_mcp_servers(gateway: Gateway) -> None:
    servers = {"remote": {"type": "http", "url": f"http://127.0.0.1:{free_port()}/mcp", "headers": {"X-Key": "k"}}}
    session = gateway.create_session(builtin_tools="none", mcp_servers=servers)
    assert gateway.turn(session["id"], "hello")["status"] == "completed"

    forked = gateway.client.post(f"/api/sessions/{session['id']}/fork", json={})

    assert forked.status_code == 201, forked.text
    shown = gateway.client.get(f"/api/sessions/{forked.json()['id']}").json()["mcp_servers"]
    assert shown == {"remote": {"type": "http", "url": servers["remote"]["url"], "headers": ["X-Key"]}}


@pytest.mark.parametrize(
    ("servers", "message"),
    [
        ([], "mcp_servers must be an object"),
        ({"client": {"command": "x"}}, "the gateway's own"),
        ({"bad name": {"command": "x"}}, "must match"),
        ({"a": {"type": "sse", "url": "http://127.0.0.1:1/"}}, 'type must be "stdio" or "http"'),
        ({"a": {"type": "stdio"}}, "command must be a non-empty string"),
        ({"a": {"command": "x", "args": "-v"}}, "args must be a list of strings"),
        ({"a": {"command": "x", "env": {"K": 1}}}, "env must be an object of strings"),
        ({"a": {"type": "http", "url": "ftp://host/"}}, "url must be an http(s) URL"),
        ({"a": {"type": "http", "url": "http://[::1/"}}, "url must be an http(s) URL"),
        ({"a": {"type": ["stdio"], "command": "x"}}, 'type must be "stdio" or "http"'),
        ({"a": {"type": "http", "url": "http://h/", "command": "x"}}, "unknown field(s) for type http: command"),
    ],
)
def test_bad_mcp_servers_are_a_400_that_creates_nothing(gateway: Gateway, servers: Any, message: str) -> None:
    before = len(gateway.client.get("/api/sessions", params={"limit": 100}).json()["data"])
    response = gateway.client.post("/api/sessions", json={"mcp_servers": servers})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request"
    assert message in response.json()["error"]["message"]
    assert len(gateway.client.get("/api/sessions", params={"limit": 100}).json()["data"]) == before


def test_patch_changes_the_model_and_permission_mode_for_the_next_turn(gateway: Gateway, mock_model: MockModel) -> None:
    session = gateway.create_session(builtin_tools="none")
    gateway.turn(session["id"], "one")
    url = f"/api/sessions/{session['id']}"
    changed = gateway.client.patch(url, json={"model": "haiku", "permission_mode": "plan"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["permission_mode"] == "plan" and "haiku" in changed.json()["model"]
    [updated] = [e for e in gateway.events(session["id"]) if e["type"] == "session.updated"]  # watchers learn of it
    assert updated.get("turn_id") is None and updated["data"]["by"] == "request"
    assert updated["data"]["changed"] == ["model", "permission_mode"] and updated["data"]["permission_mode"] == "plan"
    assert updated["data"]["previous"] == {"model": session["model"], "permission_mode": session["permission_mode"]}

    gateway.turn(session["id"], "two")

    last = mock_model.message_requests(include_side=False)[-1].body
    assert "haiku" in last["model"] and "one" in str(last["messages"])
    for bad in ({"model": "gpt-nothing"}, {"permission_mode": "yolo"}, {}, {"cwd": "/"}):
        response = gateway.client.patch(url, json=bad)
        assert response.status_code == 400, (bad, response.text)
    assert gateway.client.get(url).json()["permission_mode"] == "plan"
    assert len([e for e in gateway.events(session["id"]) if e["type"] == "session.updated"]) == 1, "refused: nothing"


def test_a_database_from_before_mcp_servers_is_migrated_in_place(tmp_path: Path) -> None:
    """A sessions table without the mcp_servers column (schema 4) gains it at the next open; its sessions stay."""

    async def main() -> None:
        store = SqlStore(sqlite_database(tmp_path / "sessions.db"))
        await store.open()
        await store.create_session(_session("sess_old", "2026-01-01T00:00:00.000Z"))
        await store.close()
        with sqlite3.connect(tmp_path / "sessions.db") as db:
            db.execute("ALTER TABLE sessions DROP COLUMN mcp_servers")
            db.execute("DELETE FROM schema_version WHERE version > 4")

        store = SqlStore(sqlite_database(tmp_path / "sessions.db"))
        await store.open()
        assert (await store.get_session("sess_old")).mcp_servers is None
        servers = {"notes": {"type": "http", "url": "http://127.0.0.1:9/mcp", "headers": {}}}
        await store.update_session("sess_old", mcp_servers=servers)
        assert (await store.get_session("sess_old")).mcp_servers == servers
        await store.close()

    asyncio.run(main())
