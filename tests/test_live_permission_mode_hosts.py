"""A permission mode change on hosts sharing PostgreSQL: the host that runs the session's Claude Code switches it
as it runs; a change made on another host reaches that process the way every other change does, by a restart at
its next turn there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway, eventually

pytestmark = pytest.mark.slow  # two gateways on one PostgreSQL database


def _write(path: Path, content: str) -> Reply:
    return Reply(tool_uses=(ToolUse("Write", {"file_path": str(path), "content": content}),))


def _starts(gateway: Gateway, session_id: str) -> int:
    return sum(
        f'"session_id":"{session_id}"' in line and '"event":"engine_started"' in line
        for line in gateway.log_text().splitlines()
    )


def test_the_host_running_the_process_switches_it_and_a_change_elsewhere_restarts_it(
    make_gateway: Any, postgres_server: Any, mock_model: MockModel, tmp_path: Path
) -> None:
    url = postgres_server.create_database()
    common = {"CC_API_DATABASE_URL": url, "CC_API_LEASE_TTL": "10"}
    a = make_gateway(CC_API_HOST_ID="host-a", **common)
    b = make_gateway(CC_API_HOST_ID="host-b", **common)
    first, second, third = tmp_path / "first.txt", tmp_path / "second.txt", tmp_path / "third.txt"
    session_id = a.create_session(builtin_tools=["Write"], permission_mode="default", cwd=str(tmp_path))["id"]
    path = f"/api/sessions/{session_id}"

    mock_model.script(_write(first, "one"), _write(second, "two"), Reply(text="both written"))
    paused = a.turn(session_id, "write both")
    assert paused["status"] == "requires_approval", paused
    elsewhere = b.client.patch(path, json={"permission_mode": "acceptEdits"})
    assert elsewhere.status_code == 409 and elsewhere.json()["error"]["details"] == {"owner": "host-a"}
    assert a.client.patch(path, json={"permission_mode": "acceptEdits"}).status_code == 200
    done = a.allow(session_id, paused)
    assert done["status"] == "completed" and second.read_text() == "two", done
    assert _starts(a, session_id) == 1

    changed: list[httpx.Response] = []  # the turn's host lets the session's lease go just after its end
    assert eventually(
        lambda: changed.append(b.client.patch(path, json={"permission_mode": "default"})) or changed[-1].is_success
    ), changed[-1].text
    mock_model.script(_write(third, "three"), Reply(text="written"))
    asked = a.turn(session_id, "one more")
    assert asked["status"] == "requires_approval" and not third.exists(), asked
    assert a.allow(session_id, asked)["status"] == "completed" and third.read_text() == "three"
    assert _starts(a, session_id) == 2
    requested = [e["data"]["tool_name"] for e in a.events(session_id) if e["type"] == "permission.requested"]
    assert requested == ["Write", "Write"]
