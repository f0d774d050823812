"""kill -9 in the middle of a streamed turn: nothing acknowledged is lost, the session goes on."""

from __future__ import annotations

import os
import signal
import time

import orjson
import pytest

from ccapi.testing import MockModel, Reply
from tests.conftest import BACKENDS
from tests.gateway import CHILD_MARK, eventually, pids_with_env, sse_events
from tests.metrics_support import scrape, value

pytestmark = pytest.mark.slow  # kills a gateway mid-turn and starts it again


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """This suite runs on every store backend."""
    return request.param


def test_kill_9_mid_turn_then_restart(make_gateway, mock_model: MockModel) -> None:
    gw = make_gateway()
    session = gw.create_session()
    gw.turn(session["id"], "the launch code is tangerine")

    mock_model.script(Reply(text=" ".join(f"tok{n}" for n in range(300)), chunk_delay=0.05))
    acknowledged: list[dict] = []
    with gw.client.stream(
        "POST", f"/api/sessions/{session['id']}/turns", json={"input": "recite slowly", "stream": True}
    ) as response:
        for frame in sse_events(response.iter_lines()):
            if "event" in frame:
                acknowledged.append(frame["data"])
            if sum(e["type"] == "message.delta" for e in acknowledged) == 5:
                gw.process.send_signal(signal.SIGKILL)  # the gateway only, not its children
                break
    killed_turn = acknowledged[0]["turn_id"]
    gw.process.wait(10)

    deadline = time.monotonic() + 10  # orphaned Claude CLIs notice their parent is gone and exit
    while gw.leftover_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gw.leftover_processes() == [], "a Claude CLI outlived its killed gateway"

    gw.start()
    after = gw.client.get(f"/api/sessions/{session['id']}").json()
    assert after["status"] == "idle" and after["running_turn_id"] is None
    turn = gw.client.get(f"/api/sessions/{session['id']}/turns/{killed_turn}").json()
    assert turn["status"] == "failed" and turn["error"]["type"] == "gateway_restarted"
    metrics = scrape(gw)  # the new process counts the turn it closed: an alert on failed turns sees the crash
    assert value(metrics, "cc_api_turns_total", kind="input", status="failed") == 1
    assert value(metrics, "cc_api_turn_duration_seconds_count") == 0, "it never ran here"

    events = gw.events(session["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    by_seq = {e["seq"]: e for e in events}
    for seen in acknowledged:
        assert by_seq[seen["seq"]] == seen, "an acknowledged event was lost or changed"
    assert events[-1]["type"] == "turn.failed" and events[-1]["turn_id"] == killed_turn

    mock_model.clear()
    reply = gw.turn(session["id"], "what is the launch code?")
    assert reply["status"] == "completed"
    sent = orjson.dumps(mock_model.message_requests(include_side=False)[-1].body["messages"]).decode()
    assert "the launch code is tangerine" in sent


def test_a_claude_code_killed_while_idle_is_replaced_by_its_next_turn(make_gateway, mock_model: MockModel) -> None:
    """A session's Claude Code dies between turns (the OOM killer, a `kill` by hand): the gateway stops counting it
    live, and the session's next turn resumes its conversation in a new one instead of failing on the dead one."""
    gw = make_gateway()
    session = gw.create_session()
    assert gw.turn(session["id"], "the launch code is tangerine")["status"] == "completed"
    engines = [pid for pid in pids_with_env(CHILD_MARK, gw.env["CC_API_HOME"]) if pid != gw.process.pid]
    assert engines and value(scrape(gw), "cc_api_live_sessions") == 1
    for pid in engines:
        os.kill(pid, signal.SIGKILL)
    assert eventually(lambda: value(scrape(gw), "cc_api_live_sessions") == 0, timeout=10), "still counted live"

    mock_model.clear()
    reply = gw.turn(session["id"], "what is the launch code?")
    assert reply["status"] == "completed", reply
    sent = orjson.dumps(mock_model.message_requests(include_side=False)[-1].body["messages"]).decode()
    assert "the launch code is tangerine" in sent
    assert value(scrape(gw), "cc_api_engine_starts_total", reason="resume") == 1
