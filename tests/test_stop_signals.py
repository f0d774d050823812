"""A stop signal during start-up is kept: the gateway finishes starting, then stops cleanly (never killed outright,
never left running because the signal was swallowed)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ccapi.testing import MockModel
from tests.daemon import Cli
from tests.stop_signal_app import PHASES

EXIT_WITHIN = 10.0


@pytest.mark.parametrize(
    ("phase", "signum"),
    [*((phase, signal.SIGTERM) for phase in PHASES), ("bound", signal.SIGINT), ("after_start", signal.SIGHUP)],
)
def test_a_stop_signal_in_each_start_up_phase_stops_the_server_once_it_serves(
    phase: str, signum: signal.Signals
) -> None:
    """Before the fix: ``bound`` and ``before_start`` died of the SIGTERM (no after-stop listener ran), a SIGINT there
    printed a KeyboardInterrupt traceback, and ``after_start`` ran on as if nothing had been sent."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.stop_signal_app", phase, signum.name],
        capture_output=True,
        text=True,
        timeout=EXIT_WITHIN + 20,  # start-up included: importing Sanic
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "stopped cleanly" in done.stdout, output
    assert "Traceback" not in output


@pytest.mark.slow  # a real gateway's start (~3 CPU-seconds of imports)
def test_sigterm_the_moment_the_port_accepts_stops_the_gateway_cleanly(
    mock_model: MockModel, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """``cc-api run`` binds its port before it has started; a supervisor that signals it as soon as the port
    answers gets a clean stop (state file removed, ``stopped`` logged), not a killed process."""
    cli = Cli(tmp_path, mock_model.url)
    request.addfinalizer(cli.cleanup)
    gateway = cli.popen("run", "--no-console-log")
    port = int(cli.env["CC_API_PORT"])
    deadline = time.monotonic() + 60
    while True:
        assert gateway.poll() is None, "the gateway exited before it listened"
        assert time.monotonic() < deadline, "the gateway never listened"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.002)
    gateway.send_signal(signal.SIGTERM)
    try:
        code = gateway.wait(EXIT_WITHIN)
    except subprocess.TimeoutExpired:
        gateway.kill()
        gateway.wait()
        raise AssertionError("the SIGTERM was lost: the gateway still ran 10 s later") from None
    assert code == 0
    assert not cli.paths.state_file.exists()
    events = [json.loads(line)["event"] for line in cli.paths.log_file.read_text().splitlines()]
    assert "stopped" in events[events.index("started") :]  # the app's own stop: turns, events, Claude Code
    assert cli.leftovers() == []
