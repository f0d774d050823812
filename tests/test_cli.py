"""The real ``cc-api`` command driving a real background gateway on the mock model."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ccapi.daemon.cli import EXIT_NOT_RUNNING, build_parser, main
from ccapi.daemon.process import inspect_process
from ccapi.paths import StatePaths
from ccapi.testing import MockModel
from tests.daemon import CC_API, Cli
from tests.gateway import eventually, free_port, readable_by_others


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _write_state(paths: StatePaths, pid: int, started: str = "1") -> None:
    paths.home.mkdir(parents=True, exist_ok=True)
    paths.state_file.write_text(
        json.dumps(
            {
                "pid": pid,
                "pgid": pid,
                "process_started": started,
                "url": "http://127.0.0.1:9",
                "host": "127.0.0.1",
                "port": 9,
                "started_at": 0.0,
                "version": "0.0.0",
            }
        )
    )


def _read_until(process: subprocess.Popen[bytes], wanted: str, timeout: float = 15) -> list[str]:
    """Lines from a running process's stdout until one contains ``wanted`` (unbuffered, so
    ``select`` sees every byte)."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            data += os.read(process.stdout.fileno(), 65536)
            lines = data.decode().splitlines()
            if any(wanted in line for line in lines):
                return lines
    raise AssertionError(f"{wanted!r} never appeared in: {data!r}")


@pytest.mark.slow
def test_start_status_turn_stop(
    mock_model: MockModel, tmp_path: Path, request: pytest.FixtureRequest, user_umask: int
) -> None:
    cli = Cli(tmp_path, mock_model.url)
    request.addfinalizer(cli.cleanup)
    _write_state(cli.paths, _dead_pid())  # a crash left a pid file behind
    assert cli("status").returncode == EXIT_NOT_RUNNING
    assert not cli.paths.state_file.exists()
    me = inspect_process(os.getpid())
    _write_state(cli.paths, me.pid, me.started)  # the pid now belongs to something that is not a gateway

    started = cli("start")
    assert started.returncode == 0, started.stderr
    assert f"started at {cli.url}" in started.stdout
    again = cli("start")  # done already: exit code 0, as `systemctl start` (and an LSB init script) says; it was 1
    assert again.returncode == 0 and f"already running at {cli.url}" in again.stdout, again.stdout + again.stderr
    beside = cli("run")  # as a service would, beside it: refused at once, with its own exit code
    assert beside.returncode == 4 and "already runs" in beside.stderr, beside.stderr

    status = cli("status")
    assert status.returncode == 0
    state = json.loads(cli.paths.state_file.read_text())
    for expected in (cli.url, str(state["pid"]), "0.1.0", "healthy"):
        assert expected in status.stdout

    follower = cli.popen("logs", "-f", "-n", "0", "--json")
    try:
        with httpx.Client(base_url=cli.url, timeout=60) as client:
            session = client.post("/api/sessions", json={}).json()
            reply = client.post(f"/api/sessions/{session['id']}/turns", json={"input": "hello"}).json()
        assert reply["status"] == "completed"
        followed = [json.loads(line) for line in _read_until(follower, '"event":"turn"')]
        assert [e["turn_id"] for e in followed if e["event"] == "turn"] == [reply["turn_id"]]
    finally:
        follower.terminate()
        follower.wait(5)

    report = json.loads(cli("status", "--json").stdout)
    assert report["running"] and report["healthy"]
    assert report["state"]["url"] == cli.url and report["state"]["pid"] == state["pid"]
    assert (report["live_sessions"], report["persisted_sessions"]) == (1, 1)
    figures = report["figures"]  # the headline figures, from /metrics
    assert (figures["turns_last_hour"], figures["failed_last_hour"], figures["max_live"]) == (1, 0, 8)
    assert figures["tokens"]["output"] == reply["usage"]["output_tokens"] > 0
    assert figures["compat_warm_share"] is None  # no compat request yet
    shown = cli("status").stdout
    assert "1 live (max 8), 1 stored" in shown and "1 since start, 0 failed" in shown
    assert readable_by_others(cli.paths.home) == {}, "state other users could read (umask 022)"

    stopped = cli("stop", "--json")
    assert stopped.returncode == 0, stopped.stdout
    assert json.loads(stopped.stdout)["outcome"] == "stopped"
    assert not cli.paths.state_file.exists()
    assert cli.leftovers() == [], "a gateway or Claude Code process outlived `cc-api stop`"
    assert cli("status").returncode == EXIT_NOT_RUNNING
    assert cli("stop").returncode == 0  # stopping a stopped gateway is not an error

    rendered = cli("logs", "-n", "200").stdout
    assert f"path=/api/sessions/{session['id']}/turns status=200" in rendered
    assert f"turn session_id={session['id']} turn_id={reply['turn_id']}" in rendered

    # the turn and its events survived the stop; a start on the mock model says so, as does status
    mocked = cli("start", "--mock-model")
    assert mocked.returncode == 0 and "on the MOCK MODEL" in mocked.stdout
    try:
        assert "model     the bundled MOCK MODEL (--mock-model): replies are scripted" in cli("status").stdout
        with httpx.Client(base_url=cli.url, timeout=60) as client:
            events = client.get(f"/api/sessions/{session['id']}/events").json()["data"]
            turn = client.get(f"/api/sessions/{session['id']}/turns/{reply['turn_id']}").json()
        # a bad setting written for the next start: status and stop still reach the gateway that runs
        cli.paths.env_file.write_text("CC_API_MAX_LIVE=lots\n")
        assert cli("status").returncode == 0
        cli.paths.env_file.write_text("export CC_API_MAX_LIVE=4\n")  # a line that is no setting: the same
        warned = cli("status")
        assert warned.returncode == 0 and "line 1: expected KEY=VALUE" in warned.stderr, warned.stderr
    finally:
        stopped = cli("stop")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
        assert cli("start").returncode == 2  # the start does read it, and says so
    assert [e["seq"] for e in events] == list(range(1, reply["last_event_seq"] + 1))
    assert events[-1]["type"] == "turn.completed" and turn["output"] == reply["output"]
    assert cli.leftovers() == []


@pytest.mark.slow  # two cc-api start runs, each a launcher and a gateway that fails to bind
def test_start_fails_loudly_when_the_port_is_taken(
    mock_model: MockModel, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    cli = Cli(tmp_path, mock_model.url)
    request.addfinalizer(cli.cleanup)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(cli.env["CC_API_PORT"])))
        holder.listen()
        result = cli("start", "--json")
        human = cli("start")
    assert result.returncode == 1 and human.returncode == 1
    report = json.loads(result.stdout)
    assert report["outcome"] == "failed"
    assert any("Address already in use" in line for line in report["log_tail"])
    assert "start failed" in human.stderr and "last lines of the log" in human.stderr
    assert "cannot_listen" in human.stderr and "Address already in use" in human.stderr
    assert "Traceback" not in human.stderr
    assert not cli.paths.state_file.exists()
    assert cli.leftovers() == []


def test_a_host_that_does_not_resolve_is_one_line_not_a_traceback(mock_model: MockModel, tmp_path: Path) -> None:
    """Any bind failure is ``cannot_listen`` with its reason (exit code 1); a host name that does not resolve was a
    traceback."""
    cli = Cli(tmp_path, mock_model.url, CC_API_KEY="k")  # a host that is not loopback needs a key
    done = cli("run", "--host", "no-such-host.invalid")
    assert done.returncode == 1, done.stderr
    assert "cannot_listen" in done.stderr and "no-such-host.invalid" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.slow  # two gateways' start-up
def test_two_gateways_started_together_for_one_home_do_not_both_run(
    mock_model: MockModel, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The state file names a gateway only once it serves (~2 s after its start): two started at once (``start``
    beside the service starting at login; ``--port 0`` twice) both found none, and both ran on one database, one of
    them known to no ``stop``. The second now exits with code 4 (the service does not retry it)."""
    cli = Cli(tmp_path, mock_model.url)
    request.addfinalizer(cli.cleanup)
    both = [cli.popen("run", "--port", "0", "--no-console-log", stderr=subprocess.PIPE) for _ in range(2)]
    try:
        refused = None
        deadline = time.monotonic() + 60
        while refused is None:
            assert time.monotonic() < deadline, "both gateways run for one home"
            refused = next((gateway for gateway in both if gateway.poll() is not None), None)
            time.sleep(0.1)
        assert refused.wait() == 4
        assert b"another gateway is starting for" in refused.stderr.read()  # type: ignore[union-attr]
        kept = next(gateway for gateway in both if gateway is not refused)
        while not cli.paths.state_file.exists():
            assert kept.poll() is None and time.monotonic() < deadline, "the other gateway never recorded itself"
            time.sleep(0.1)
        assert json.loads(cli.paths.state_file.read_text())["pid"] == kept.pid
        assert cli("stop").returncode == 0 and kept.wait(30) == 0
    finally:
        for gateway in both:
            if gateway.poll() is None:
                gateway.kill()
            gateway.wait()
            gateway.stdout.close()  # type: ignore[union-attr]
            gateway.stderr.close()  # type: ignore[union-attr]
    assert cli.leftovers() == []


@pytest.mark.slow  # a gateway's start-up, cancelled
def test_ctrl_c_while_start_waits_cancels_the_start_without_a_traceback(
    mock_model: MockModel, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Ctrl-C while ``start`` waits for ``/healthz`` stops the gateway it started, as its timeout does, and exits 130
    quietly: it printed a KeyboardInterrupt traceback, and the gateway came up behind the user's back."""
    cli = Cli(tmp_path, mock_model.url)
    request.addfinalizer(cli.cleanup)
    as_a_terminal = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    )
    start = subprocess.Popen(
        [sys.executable, "-c", as_a_terminal, *CC_API, "start"],  # Ctrl-C not ignored, whatever the runner's is
        env=cli.env,
        cwd=cli.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while len(cli.leftovers()) < 2:  # `start` itself and the gateway it started
        assert start.poll() is None and time.monotonic() < deadline, "start never started a gateway"
        time.sleep(0.05)
    start.send_signal(signal.SIGINT)
    out, err = start.communicate(timeout=30)
    assert start.returncode == 130 and "Traceback" not in out + err, out + err
    # the killed gateway is reaped, and a start-up probe it ran (the sandbox's, a process of its own) ends
    assert eventually(lambda: cli.leftovers() == [], 10), cli.leftovers()
    assert cli("status").returncode == EXIT_NOT_RUNNING


def test_a_store_that_cannot_open_is_one_line_not_a_traceback(mock_model: MockModel, tmp_path: Path) -> None:
    """A database path that cannot be (under a file): one ``cannot_open_store`` line naming it, exit code 2 (a setting
    to fix: the service does not retry it); it was a 57-line traceback and exit code 1."""
    (tmp_path / "a-file").write_text("")
    cli = Cli(tmp_path, mock_model.url, CC_API_SESSION_DB=str(tmp_path / "a-file" / "sessions.db"))
    done = cli("run")
    assert done.returncode == 2, done.stderr
    assert "cannot_open_store" in done.stderr and str(tmp_path / "a-file") in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_usage_errors_and_help(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CC_API_HOME", str(tmp_path))
    assert main(["logs"]) == 1
    assert "no log yet" in capsys.readouterr().err
    monkeypatch.setenv("CC_API_PORT", "not-a-port")
    assert main(["status"]) == 3  # not running: a bad setting is for the next start, which will refuse it
    assert "CC_API_PORT" in capsys.readouterr().err
    assert main(["start"]) == 2
    assert "CC_API_PORT" in capsys.readouterr().err
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(commands) == {
        "run",
        "start",
        "stop",
        "status",
        "logs",
        "install-service",
        "uninstall-service",
        "acp",
        "version",
    }
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
    for port in ("65536", "-1", "８０"):  # refused at once, as CC_API_PORT is; 65536 was a traceback after the wait
        with pytest.raises(SystemExit) as exit_info:
            main(["start", "--port", port])
        assert exit_info.value.code == 2 and "is not a port number (0-65535)" in capsys.readouterr().err
    version = json.loads(subprocess.run([*CC_API, "version", "--json"], capture_output=True, text=True).stdout)
    assert version["version"] == "0.1.0" and version["sdk_version"]


@pytest.mark.slow
def test_start_on_port_0_reports_the_port_it_got(
    mock_model: MockModel, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`cc-api start --port 0` (it was refused: "needs a fixed port") waits for the gateway on the port the OS chose and
    says where; `status` and `stop` find it there."""
    cli = Cli(tmp_path, mock_model.url)
    request.addfinalizer(cli.cleanup)
    started = cli("start", "--port", "0")
    assert started.returncode == 0, started.stdout + started.stderr
    url = json.loads(cli.paths.state_file.read_text())["url"]
    assert not url.endswith(":0") and f"started at {url} (pid " in started.stdout
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    assert url in cli("status").stdout
    assert cli("stop").returncode == 0 and cli.leftovers() == []


@pytest.mark.slow
def test_run_on_port_0_records_the_port_it_bound(
    mock_model: MockModel, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`cc-api run --port 0` listens where the OS chose: the state file (read by `status`, `stop`, the menu) and the
    start-up log line name that port; they said 0, which nothing could reach."""
    cli = Cli(tmp_path, mock_model.url)
    request.addfinalizer(cli.cleanup)
    told = tmp_path / "stderr.txt"
    with told.open("wb") as stderr:
        gateway = cli.popen("run", "--port", "0", stderr=stderr.fileno())  # in the foreground, as a person runs it
    try:
        deadline = time.monotonic() + 30
        while not cli.paths.state_file.exists():
            assert gateway.poll() is None and time.monotonic() < deadline, "the gateway never recorded itself"
            time.sleep(0.1)
        state = json.loads(cli.paths.state_file.read_text())
        assert state["port"] != 0 and state["url"] == f"http://127.0.0.1:{state['port']}"
        status = cli("status", "--json")
        assert status.returncode == 0, status.stdout
        report = json.loads(status.stdout)
        assert report["healthy"] and report["state"]["url"] == state["url"]
        assert httpx.get(f"{state['url']}/healthz", timeout=10).status_code == 200
        logged = [json.loads(line) for line in cli.paths.log_file.read_text().splitlines() if '"started"' in line]
        assert [line["port"] for line in logged if line["event"] == "started"] == [state["port"]]
        assert f"cc-api: ready at {state['url']} " in told.read_text()  # where to point a browser, in words

        stopped = cli("stop")
        assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
        assert gateway.wait(10) == 0
    finally:
        if gateway.poll() is None:  # a failed assertion: the finalizer's `stop` cannot reach a gateway it cannot find
            gateway.kill()
        gateway.wait()
        gateway.stdout.close()  # type: ignore[union-attr]
    assert not cli.paths.state_file.exists()
    assert cli.leftovers() == [], "a gateway or Claude Code process outlived `cc-api stop`"


def test_acp_reaches_the_running_gateway_whatever_setting_it_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cc-api acp` only talks to a gateway: a setting now refused (a `CC_API_CWD` removed since the gateway
    started) kept it from trying (exit 2), as it once kept `stop` and `status` from stopping it."""
    monkeypatch.setenv("CC_API_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CC_API_PORT", str(free_port()))
    monkeypatch.setenv("CC_API_CWD", str(tmp_path / "removed"))
    assert main(["acp"]) == 1  # no gateway answers there: told so, as without the bad setting
    err = capsys.readouterr().err
    assert "no CC API gateway answers at http://127.0.0.1:" in err and "CC_API_CWD" in err
