"""No process a Claude Code started outlives it: Claude Code runs each Bash command in a session of its own, so a
command it was running when it died (killed, or stopped with its gateway) would go on, unsupervised."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway, eventually, program_name

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="the gateway reaps through /proc (Linux)")


def _commands(gateway: Gateway) -> list[int]:
    """The ``sleep`` commands Claude Code started for this gateway's sessions, still running."""
    return [pid for pid in gateway.leftover_processes() if program_name(pid) == "sleep"]


def _running_a_command(gateway: Gateway, mock_model: MockModel, cwd: str) -> str:
    mock_model.script(Reply(tool_uses=(ToolUse("Bash", {"command": "sleep 60"}),)), Reply(text="never"))
    session = gateway.create_session(cwd=cwd)
    started = gateway.client.post(f"/api/sessions/{session['id']}/turns", json={"input": "wait", "background": True})
    assert started.status_code == 202, started.text
    assert eventually(lambda: bool(_commands(gateway)), 20), "Claude Code never ran the command"
    return session["id"]


def test_a_command_of_a_claude_code_that_died_is_killed(
    make_gateway: Callable[..., Gateway], mock_model: MockModel, tmp_path
) -> None:
    gateway = make_gateway()
    session_id = _running_a_command(gateway, mock_model, str(tmp_path))

    for pid in gateway.claude_processes():
        os.kill(pid, signal.SIGKILL)

    assert eventually(lambda: gateway.events(session_id)[-1]["type"] == "turn.failed", 20)
    assert eventually(lambda: not _commands(gateway), 10), "its command outlived the Claude Code that ran it"


@pytest.mark.slow  # kills a gateway mid-turn and starts it again
def test_a_command_left_by_a_gateway_killed_with_its_claude_code_is_killed_when_the_next_one_starts(
    make_gateway: Callable[..., Gateway], mock_model: MockModel, tmp_path
) -> None:
    gateway = make_gateway()
    _running_a_command(gateway, mock_model, str(tmp_path))
    assert gateway.process is not None
    claude_codes = gateway.claude_processes()
    os.killpg(gateway.process.pid, signal.SIGKILL)  # as a kill of its process group does: the command is not in it
    for pid in claude_codes:  # the OOM killer, say: no time to stop its commands either
        os.kill(pid, signal.SIGKILL)
    gateway.process.wait(10)
    time.sleep(1)
    assert _commands(gateway), "the command outlived its gateway and its Claude Code (what this is about)"

    gateway.start()

    assert eventually(lambda: not _commands(gateway), 10), "the next gateway left the command running"
    assert "reaped_leftover_processes" in gateway.log_text()


def test_a_claude_code_stopped_early_leaves_no_start_up_probe_behind(gateway: Gateway, mock_model: MockModel) -> None:
    """Each Claude Code makes an ``fswatch-probe-*`` folder in ``$TMPDIR/claude-<uid>`` as it starts and removes it
    ~1.5 s later: one stopped sooner (a compat one-off parked as it answers, a session deleted after one turn) left
    it, a long day's thousands, which every idle Claude Code walks. A closing engine clears the stale ones; a fresh
    one (a Claude Code starting now) stays."""
    probes = Path(gateway.env["TMPDIR"]) / f"claude-{os.getuid()}"
    probes.mkdir(exist_ok=True)
    stale, fresh = probes / "fswatch-probe-Old123", probes / "fswatch-probe-New456"
    for probe in (stale, fresh):
        probe.mkdir()
        (probe / "probe").write_text("x")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    mock_model.script(Reply(text="done"))
    session = gateway.create_session()
    assert gateway.turn(session["id"], "hello")["status"] == "completed"
    assert gateway.client.delete(f"/api/sessions/{session['id']}").status_code == 200
    assert eventually(lambda: not stale.exists()), "a stale start-up probe outlived the Claude Code that closed"
    assert fresh.exists()
