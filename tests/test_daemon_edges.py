"""The daemon side as a demanding user drives it: a gateway still starting, a stop that must not reach past the
gateway, a status a script can trust, closed standard streams, a hand-edited state file, log rotation, the home in
the env file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import orjson
import pytest

from ccapi.config import ConfigError, Settings
from ccapi.daemon import logfile
from ccapi.daemon.cli import EXIT_FAILED, EXIT_NOT_RUNNING, main
from ccapi.daemon.console import render_status
from ccapi.daemon.launcher import GatewayState, Launcher
from ccapi.daemon.process import ProcessInfo, inspect_process
from ccapi.daemon.service import ServiceError, install, plan_service
from ccapi.paths import StatePaths
from ccapi.testing import MockModel
from tests.daemon import CC_API, Cli
from tests.gateway import eventually, free_port

# A process whose command line looks like a gateway's (`... ccapi run`): SIGTERM ends it, after it started a child
# of its own (in its process group) when asked to.
_LOOKALIKE = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    if sys.argv[1] == "child":
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    time.sleep(60)
    """
)


@pytest.fixture
def launcher(tmp_path: Path) -> Launcher:
    return Launcher(Settings(home=tmp_path / "home", port=free_port()), {})


def _lookalike(with_child: bool = False, **popen: object) -> tuple[subprocess.Popen[bytes], ProcessInfo]:
    argv = (sys.executable, "-c", _LOOKALIKE, "child" if with_child else "alone", "ccapi", "run")
    process = subprocess.Popen(argv, **popen)  # type: ignore[call-overload]
    deadline = time.monotonic() + 10
    while (info := inspect_process(process.pid)) is None or info.argv != argv:
        assert time.monotonic() < deadline, "the lookalike never showed its command line"
        time.sleep(0.01)
    return process, info


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def _record(launcher: Launcher, info: ProcessInfo, **fields: object) -> GatewayState:
    with launcher.recorded() as template:
        pass
    state = replace(template, pid=info.pid, pgid=info.pid, process_started=info.started, **fields)  # type: ignore[arg-type]
    launcher.paths.state_file.write_bytes(state.to_json())
    return state


def _children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


# -- the state file -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [
        {"pid": "1"},
        {"pid": 1.5},
        {"pid": True},
        {"pid": 0},
        {"pid": -5},
        {"process_started": 7},
        {"port": "80"},
        {"url": None},
        {"started_at": "yesterday"},
        {"sid": "x"},
    ],
)
def test_a_state_file_with_a_field_of_the_wrong_type_is_no_record(
    launcher: Launcher, change: dict[str, object], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``{"pid": "1", ...}`` was a TypeError traceback from ``status``, ``stop``, ``start`` and ``run`` alike."""
    with launcher.recorded() as state:
        pass
    launcher.paths.state_file.write_bytes(orjson.dumps({**asdict(state), **change}))
    assert launcher.read_state() is None
    assert launcher.running_state() is None and not launcher.paths.state_file.exists()
    launcher.paths.state_file.write_bytes(orjson.dumps({**asdict(state), **change}))
    monkeypatch.setenv("CC_API_HOME", str(launcher.paths.home))
    assert main(["status"]) == EXIT_NOT_RUNNING
    assert main(["stop"]) == 0
    assert "not running" in capsys.readouterr().out


def test_a_record_without_the_session_field_is_still_read(launcher: Launcher) -> None:
    """A gateway of the version before records no ``sid``: ``stop`` must still find it after an upgrade."""
    with launcher.recorded() as state:
        pass
    old = {name: value for name, value in asdict(state).items() if name != "sid"}
    launcher.paths.state_file.write_bytes(orjson.dumps(old))
    assert launcher.read_state() == replace(state, sid=None)
    assert state.sid == os.getsid(0)


# -- stop reaches the gateway's group only when it is the gateway's own ------------------------------------------------
@pytest.mark.parametrize("session_seen", ["here", "outside the PID namespace"])
def test_stop_leaves_the_rest_of_a_shell_job_alone(
    launcher: Launcher, processes: list[subprocess.Popen[bytes]], session_seen: str
) -> None:
    """``cc-api run | tee log`` in a terminal: the gateway leads the job's process group, the reader is in it too.
    ``stop`` killed the group once the gateway had exited, and with it the user's reader (and the gateway's last
    log lines still in the pipe). In a container (CI's too) whose shell's session began outside its PID namespace,
    ``getsid`` says 0, which ``stop`` took for a record without the field, and killed the group."""
    gateway, info = _lookalike(process_group=0)  # a job leader in this session, as a shell with job control makes it
    reader = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], process_group=gateway.pid)
    processes += [gateway, reader]
    state = _record(launcher, info, sid=os.getsid(gateway.pid) if session_seen == "here" else 0)
    assert state.pgid == state.pid != state.sid

    result = launcher.stop(timeout=10)
    assert (result.outcome, result.pid) == ("stopped", gateway.pid), result
    gateway.wait(5)  # ended by SIGTERM (its handler or, before the handler is set, the default)
    time.sleep(0.2)
    assert reader.poll() is None, "`cc-api stop` killed a process of the user's that shared the gateway's group"


def test_stop_still_clears_the_group_of_a_gateway_that_leads_its_session(
    launcher: Launcher, processes: list[subprocess.Popen[bytes]]
) -> None:
    """``cc-api start``, systemd and launchd run the gateway in a session of its own: what is left of its group once
    it exits is its own, and goes."""
    gateway, info = _lookalike(with_child=True, start_new_session=True)
    processes.append(gateway)
    assert eventually(lambda: len(_children_of(gateway.pid)) == 1)
    (child,) = _children_of(gateway.pid)
    _record(launcher, info, sid=gateway.pid)
    assert launcher.stop(timeout=10).outcome == "stopped"
    assert eventually(lambda: inspect_process(child) is None), "the gateway's own group outlived `cc-api stop`"


# -- a gateway that is starting ---------------------------------------------------------------------------------------
def _claimed_by(launcher: Launcher, info: ProcessInfo) -> None:
    """The home's lock file as ``claim_home`` leaves it for a gateway that has not recorded itself yet."""
    launcher.paths.run_dir.mkdir(parents=True, exist_ok=True)
    payload = {"pid": info.pid, "process_started": info.started}
    (launcher.paths.run_dir / "gateway.lock").write_bytes(orjson.dumps(payload))


def test_status_and_stop_see_a_gateway_that_is_still_starting(
    launcher: Launcher,
    processes: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Between ``run`` claiming the home and recording itself (a second or more: imports, the bind, the store),
    ``status`` said "not running" and ``stop`` "not running", exit 0, and the gateway came up after both; ``run``'s
    own refusal sends the user to ``status`` for it."""
    gateway, info = _lookalike(start_new_session=True)
    processes.append(gateway)
    _claimed_by(launcher, info)
    monkeypatch.setenv("CC_API_HOME", str(launcher.paths.home))

    status = launcher.status()
    assert (status.running, status.starting_pid) == (False, gateway.pid)
    assert f"cc-api is starting (pid {gateway.pid}" in render_status(status, launcher.paths)
    assert main(["status"]) == EXIT_NOT_RUNNING  # not serving yet; a script waiting for it keeps waiting
    capsys.readouterr()
    assert main(["status", "--json"]) == EXIT_NOT_RUNNING
    assert json.loads(capsys.readouterr().out)["starting_pid"] == gateway.pid

    stopped = launcher.stop(timeout=10)
    assert (stopped.outcome, stopped.pid) == ("stopped", gateway.pid), stopped
    assert "as it was starting" in stopped.message
    gateway.wait(5)  # ended by SIGTERM (its handler or, before the handler is set, the default)
    assert launcher.status().starting_pid is None  # the lock file still names it, but it is gone
    assert launcher.stop().outcome == "not_running"


def test_a_lock_file_naming_another_process_is_nobody_starting(
    launcher: Launcher, processes: list[subprocess.Popen[bytes]]
) -> None:
    """A pid reused since, a process that is no gateway, a lock file of an older version (empty) or garbage: nothing
    is starting, and nothing is signalled."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    processes.append(bystander)
    info = inspect_process(bystander.pid)
    assert info is not None
    lock = launcher.paths.run_dir / "gateway.lock"
    launcher.paths.run_dir.mkdir(parents=True)
    for content in (
        orjson.dumps({"pid": info.pid, "process_started": info.started}),  # alive, but not a gateway
        orjson.dumps({"pid": os.getpid(), "process_started": "1"}),  # another start time: a reused pid
        b"",
        b"[1]",
        b'{"pid": "12"}',
    ):
        lock.write_bytes(content)
        assert launcher.starting_pid() is None
        assert launcher.stop().outcome == "not_running"
    assert bystander.poll() is None


def test_claim_home_names_its_holder_until_it_serves(launcher: Launcher) -> None:
    fd = launcher.claim_home()
    assert fd is not None
    try:
        lock = launcher.paths.run_dir / "gateway.lock"
        assert orjson.loads(lock.read_bytes())["pid"] == os.getpid()
        assert Launcher(launcher.settings, {}).claim_home() is None  # held: a second gateway is refused
        with launcher.recorded():
            pass
        assert lock.read_bytes() == b""  # serving, then stopping: no longer one that is starting
    finally:
        os.close(fd)


# -- status for scripts ---------------------------------------------------------------------------------------------
def test_status_of_a_gateway_that_does_not_answer_is_not_success(
    launcher: Launcher,
    processes: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A hung gateway (or one whose database is gone: ``/healthz`` 503) is "running (NOT healthy)": exit code 0 told a
    check script all was well."""
    gateway, info = _lookalike(start_new_session=True)
    processes.append(gateway)
    port = free_port()  # nothing listens there
    _record(launcher, info, url=f"http://127.0.0.1:{port}", port=port)
    monkeypatch.setenv("CC_API_HOME", str(launcher.paths.home))
    assert main(["status"]) == EXIT_FAILED
    assert "cc-api is running (NOT healthy)" in capsys.readouterr().out


# -- the command line -------------------------------------------------------------------------------------------------
def test_logs_takes_a_count_of_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["logs", "-n", "-3"])
    assert exited.value.code == 2
    assert "is not a number of lines" in capsys.readouterr().err


def test_closed_standard_streams_are_reopened_on_dev_null(tmp_path: Path) -> None:
    """``cc-api run <&- >&- 2>&-``: the home's lock became the gateway's stdin, its log file its stdout and a socket
    its stderr, inherited so by every child that inherits its standard streams."""
    script = textwrap.dedent(
        f"""
        import os, sys
        closed = (sys.stdin, sys.stdout, sys.stderr)  # None: Python found them closed
        from ccapi.daemon.cli import _standard_streams
        _standard_streams()
        null = os.stat(os.devnull)
        report = {{fd: (os.fstat(fd).st_rdev == null.st_rdev, os.get_inheritable(fd)) for fd in (0, 1, 2)}}
        opened = os.open({str(tmp_path / "file")!r}, os.O_CREAT | os.O_RDWR)
        print("said to nowhere", file=sys.stderr)
        print("said to nowhere")
        with open({str(tmp_path / "report")!r}, "w") as out:
            out.write(repr((closed, report, opened, None not in (sys.stdin, sys.stdout, sys.stderr))))
        """
    )
    done = subprocess.run(["sh", "-c", 'exec "$0" -c "$1" <&- >&- 2>&-', sys.executable, script], timeout=30)
    assert done.returncode == 0
    closed, report, opened, streams = eval((tmp_path / "report").read_text())  # our own repr
    assert closed == (None, None, None)
    assert report == {0: (True, True), 1: (True, True), 2: (True, True)}
    assert opened >= 3 and streams
    assert (tmp_path / "file").read_bytes() == b""


# -- logs -f across rotation ------------------------------------------------------------------------------------------
def test_follow_reads_what_was_written_just_before_the_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line written to the old file between ``follow``'s last read and its check for a rotation was lost; a partial
    last line of the old file was glued to the new file's first."""
    log = tmp_path / "cc-api.log"
    log.write_text("one\n")
    real = logfile._replaced
    rotated = threading.Event()

    def rotate_in_the_gap(path: Path, file: object) -> bool:
        if not rotated.is_set():
            rotated.set()
            with path.open("a") as old:
                old.write("two\nthree-without-newline")
            path.rename(tmp_path / "cc-api.log.1")
            path.write_text("four\n")
        return real(path, file)  # type: ignore[arg-type]

    monkeypatch.setattr(logfile, "_replaced", rotate_in_the_gap)
    lines = logfile.follow(log, 0, poll=0.01)
    assert [next(lines) for _ in range(4)] == ["one", "two", "three-without-newline", "four"]
    lines.close()


def test_logs_shows_the_lines_before_a_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Just after a rotation ``cc-api logs -n 50`` showed the new file's one or two lines, and nothing before them."""
    paths = StatePaths(tmp_path)
    paths.log_dir.mkdir()
    for suffix, events in ((".2", ["a", "b"]), (".1", ["c", "d", "e"]), ("", ["f"])):
        lines = "".join(json.dumps({"event": event}) + "\n" for event in events)
        paths.log_file.with_name(paths.log_file.name + suffix).write_text(lines)
    monkeypatch.setenv("CC_API_HOME", str(tmp_path))
    assert main(["logs", "-n", "5", "--json"]) == 0
    assert [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()] == ["b", "c", "d", "e", "f"]
    assert main(["logs", "-n", "1", "--json"]) == 0
    assert capsys.readouterr().out.splitlines() == ['{"event": "f"}']
    paths.log_file.unlink()  # rotated, the new file not written yet
    assert main(["logs", "-n", "2", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


# -- install-service --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("platform", ["linux", "macos"])
def test_install_refuses_an_env_file_that_sets_the_home(
    tmp_path: Path, platform: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd's ``EnvironmentFile=`` overrides the unit's ``Environment=``: a ``CC_API_HOME`` line, which every
    ``cc-api`` command ignores, moved the service's state where no command looks (and install-service then waited
    for a gateway that never showed up in its home)."""
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    paths = StatePaths(tmp_path / "state")
    paths.home.mkdir()
    paths.env_file.write_text("CC_API_PORT=8123\n CC_API_HOME = /elsewhere\n")
    plan = plan_service(platform, paths, ("/bin/cc-api",), "/usr/bin")  # type: ignore[arg-type]
    ran: list[tuple[str, ...]] = []

    def runner(argv: object) -> subprocess.CompletedProcess[str]:
        ran.append(tuple(argv))  # type: ignore[arg-type]
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    with pytest.raises(ConfigError, match="line 2 sets CC_API_HOME"):
        install(plan, Launcher(Settings(home=paths.home), {}), timeout=0, run=runner)
    assert not plan.destination.exists()
    assert "CC_API_WEBHOOK_SECRET" not in paths.env_file.read_text()  # stopped before the env file was touched
    assert all(step.argv not in ran for step in plan.install_steps)
    dry = subprocess.run(
        [*CC_API, "install-service", "--dry-run", "--platform", platform],
        env={**os.environ, "CC_API_HOME": str(paths.home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dry.returncode == 2 and "line 2 sets CC_API_HOME" in dry.stderr, dry.stderr  # told before, too
    assert "# would run:" in dry.stdout


# -- real gateways --------------------------------------------------------------------------------------------------
@pytest.mark.slow  # two starts of real gateways, one stopped while it starts
def test_two_starts_at_once_both_succeed_and_a_start_can_be_stopped(
    mock_model: MockModel, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """``cc-api start`` twice at once (a script and the menu, a start beside the service's): the second lost the race
    for the home and failed ("the gateway exited with code 4"), pointing at a ``status`` that said "not running". Now
    it waits for the first, as ``systemctl start`` joins a start under way. And ``stop`` while a gateway starts
    stops it, rather than saying "not running" and letting it come up after."""
    cli = Cli(tmp_path, mock_model.url)
    request.addfinalizer(cli.cleanup)
    both = [cli.popen("start") for _ in range(2)]
    outputs = [process.communicate(timeout=60)[0].decode() for process in both]
    assert [process.returncode for process in both] == [0, 0], outputs
    pid = json.loads(cli.paths.state_file.read_text())["pid"]
    assert all(f"at {cli.url} (pid {pid}" in output for output in outputs), outputs
    elsewhere = cli("start", "--port", str(free_port()))
    assert elsewhere.returncode == 0 and f"already running at {cli.url}" in elsewhere.stdout
    assert "`cc-api stop` it first to move it" in elsewhere.stdout
    assert cli("stop").returncode == 0

    launcher = Launcher.for_running(cli.env)
    starting = cli.popen("start")
    try:
        assert eventually(lambda: launcher.status().starting_pid is not None or starting.poll() is not None, 30)
        assert launcher.status().starting_pid is not None, "the start came and went unseen"
        stopped = cli("stop")
        assert stopped.returncode == 0 and "stopped (pid" in stopped.stdout, stopped.stdout + stopped.stderr
    finally:
        starting.communicate(timeout=60)
    assert launcher.running_state() is None and launcher.starting_pid() is None
    assert cli("status").returncode == EXIT_NOT_RUNNING
    assert eventually(lambda: cli.leftovers() == []), "a gateway or Claude Code outlived the stop of a start"


@pytest.mark.slow  # a real gateway in a shell job, stopped
def test_stop_of_a_gateway_piped_to_a_reader_keeps_the_reader_and_its_last_lines(
    mock_model: MockModel, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    cli = Cli(tmp_path, mock_model.url)
    request.addfinalizer(cli.cleanup)
    gateway = subprocess.Popen(
        [*CC_API, "run"], env=cli.env, cwd=cli.cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, process_group=0
    )
    reader = subprocess.Popen(  # `| tee`, in the gateway's group as a shell puts a pipeline; it outlives the gateway
        [sys.executable, "-c", "import sys, time\nfor line in sys.stdin:\n    print(line, end='')\ntime.sleep(1)"],
        stdin=gateway.stdout,
        stdout=subprocess.PIPE,
        process_group=gateway.pid,
    )
    assert gateway.stdout is not None
    gateway.stdout.close()
    try:
        assert eventually(lambda: Launcher.for_running(cli.env).status().healthy, 60)
        assert cli("stop").returncode == 0
        out, _ = reader.communicate(timeout=30)
    finally:
        for process in (gateway, reader):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
    assert reader.returncode == 0, "`cc-api stop` killed the reader of the gateway's output"
    assert b'"event":"stopped"' in out


def test_a_unit_cannot_be_given_a_line_break(tmp_path: Path) -> None:
    """A ``CC_API_HOME`` (or PATH) with a line break wrote the rest of it into the unit as a setting of its own."""
    paths = StatePaths(tmp_path / "state\nExecStartPre=/bin/true")
    with pytest.raises(ServiceError, match="line break"):
        plan_service("linux", paths, ("/bin/cc-api",), "/usr/bin")
    with pytest.raises(ServiceError, match="line break"):
        plan_service("linux", StatePaths(tmp_path), ("/bin/cc-api",), "/usr/bin\nExecStartPre=/bin/true")
    spaced = plan_service("linux", StatePaths(tmp_path / "my state %h"), ("/opt/my tools/cc-api",), "/usr/bin")
    assert 'ExecStart="/opt/my tools/cc-api" run' in spaced.content
    assert f'Environment="CC_API_HOME={tmp_path}/my state %%h"' in spaced.content


@pytest.mark.slow  # a real gateway started, and its start ended by SIGTERM
def test_a_start_ended_by_sigterm_leaves_no_gateway_behind(
    mock_model: MockModel, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """``timeout 5 cc-api start`` (SIGTERM) or a closed terminal (SIGHUP) ended the start and left its gateway coming
    up, unwatched; now either cancels it as Ctrl-C does: the gateway it started is stopped, and the exit code is the
    signal's."""
    cli = Cli(tmp_path, mock_model.url)
    request.addfinalizer(cli.cleanup)
    launcher = Launcher.for_running(cli.env)
    starting = cli.popen("start")
    try:
        assert eventually(lambda: launcher.status().starting_pid is not None or starting.poll() is not None, 30)
        assert starting.poll() is None, "the start ended before it could be signalled"
        starting.send_signal(signal.SIGTERM)
        assert starting.wait(30) == 128 + signal.SIGTERM
    finally:
        if starting.poll() is None:
            starting.kill()
    assert eventually(lambda: cli.leftovers() == []), "the gateway it started came up anyway"
    assert cli("status").returncode == EXIT_NOT_RUNNING
