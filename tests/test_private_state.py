"""The gateway's state (sessions, transcripts, tool output, logs) is private to its user, under
the common umask 022 too; what an older version left readable is tightened at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccapi.config import Settings
from ccapi.paths import StatePaths
from ccapi.privacy import tighten
from ccapi.testing import MockModel, Reply, ToolUse
from tests.conftest import BACKENDS
from tests.gateway import readable_by_others

pytestmark = pytest.mark.slow  # a gateway per backend and a Bash turn


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """This suite runs on every store backend."""
    return request.param


def test_state_is_private_and_claude_code_keeps_the_users_umask(
    make_gateway, mock_model: MockModel, tmp_path: Path, backend: str, user_umask: int
) -> None:
    paths = StatePaths(tmp_path / "gw0" / "cc-api")
    paths.log_dir.mkdir(parents=True)  # as an older version left them: 0755 folders, 0644 files
    paths.log_file.write_text("")
    old_state = paths.database if backend == "sqlite" else paths.home / "sessions-json" / "sessions"
    if backend == "sqlite":
        old_state.write_bytes(b"")  # an empty file is an empty SQLite database
    else:
        old_state.mkdir(parents=True)
    assert readable_by_others(paths.home)

    gw = make_gateway()
    mock_model.script(
        Reply(tool_uses=(ToolUse("Bash", {"command": "umask", "description": "umask"}),)), Reply(text="done")
    )
    session = gw.create_session()
    assert gw.allow(session["id"], gw.turn(session["id"], "what is your umask?"))["status"] == "completed"

    expected = {"cc-api.json", "logs/cc-api.log", "run"}
    expected |= (
        {"sessions.db", "sessions.db-wal", "sessions.db-shm"}
        if backend == "sqlite"
        else {f"sessions-json/sessions/{session['id']}/session.json", "sessions-json/transcripts"}
    )
    present = {str(p.relative_to(paths.home)) for p in paths.home.rglob("*")}
    assert expected <= present, present
    assert readable_by_others(paths.home) == {}

    [result] = [
        block
        for request in mock_model.message_requests(include_side=False)
        for message in request.body["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    text = result["content"] if isinstance(result["content"], str) else result["content"][0]["text"]
    assert text.strip().startswith(f"{user_umask:04o}"), "files the model writes are the user's ordinary files"


def test_a_home_that_is_a_link_to_elsewhere_is_made_private_too(tmp_path: Path) -> None:
    """``~/.cc-api`` a link to a folder kept elsewhere: its files (the env file with the key) are tightened as a
    plain folder's are; they stayed readable by everyone."""
    real = tmp_path / "elsewhere"
    (real / "logs").mkdir(parents=True)
    (real / "cc-api.env").write_text("CC_API_KEY=secret\n")
    real.chmod(0o755)
    (real / "cc-api.env").chmod(0o644)
    (tmp_path / "home").symlink_to(real)
    changes = tighten(Settings.from_env({"CC_API_HOME": str(tmp_path / "home")}))
    assert readable_by_others(real) == {}, changes
