"""What a crash leaves for retention: a session whose turn the restarted gateway closes was in use until then."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable

from ccapi.ids import isoformat
from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway, eventually
from tests.test_tools import WEATHER


def test_a_session_whose_turn_a_crash_cut_short_is_not_expired_as_unused_on_restart(
    make_gateway: Callable[..., Gateway], mock_model: MockModel
) -> None:
    """A turn that waited for its client longer than the session retention, cut short by a crash: the restarted
    gateway closes it (turn.failed), and the session counts as used then, as at any turn's end, so the start-up
    sweep does not delete it under the client about to come back to it. An idle session as old goes."""
    gateway = make_gateway(CC_API_SESSION_RETENTION="3600", CC_API_COMPAT_RETENTION="0")
    idle = gateway.create_session()["id"]
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Lima"}),)))
    waiting = gateway.create_session(tools=[WEATHER])["id"]
    paused = gateway.turn(waiting, "weather in Lima?")
    assert paused["status"] == "requires_action"
    assert gateway.process is not None
    gateway.process.send_signal(signal.SIGKILL)
    gateway.stop()
    with sqlite3.connect(gateway.home / "cc-api" / "sessions.db") as db:  # as if it had waited two days
        db.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (isoformat(time.time() - 2 * 86400), waiting))
        db.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (isoformat(time.time() - 86400), idle))
    gateway.start()

    assert eventually(lambda: gateway.client.get(f"/api/sessions/{idle}").status_code == 404, 20)
    session = gateway.client.get(f"/api/sessions/{waiting}")  # the sweep that took the idle one passed it first
    assert session.status_code == 200, session.text
    turn = gateway.client.get(f"/api/sessions/{waiting}/turns/{paused['turn_id']}").json()
    assert turn["status"] == "failed" and turn["error"]["type"] == "gateway_restarted"
    assert session.json()["updated_at"] >= turn["completed_at"]
    assert gateway.turn(waiting, "and now?")["status"] == "completed"
