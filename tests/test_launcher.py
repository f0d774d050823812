"""Launcher building blocks without a gateway: state-file trust, the env file, log reading, rendering."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import orjson
import pytest

from ccapi.config import ConfigError, Settings
from ccapi.daemon.console import render_log_line
from ccapi.daemon.envfile import EXAMPLE_ENV_FILE, parse_env_file, with_env_file, write_example_env_file
from ccapi.daemon.launcher import Launcher
from ccapi.daemon.logfile import follow, lines_since, tail
from ccapi.daemon.process import ProcessInfo, _from_ps, inspect_process


@pytest.fixture
def launcher(tmp_path: Path) -> Launcher:
    return Launcher(Settings(home=tmp_path, port=8123), {})


def test_recorded_state_names_this_process_until_the_block_ends(launcher: Launcher) -> None:
    with launcher.recorded() as state:
        assert launcher.read_state() == state
        assert (state.pid, state.url) == (os.getpid(), "http://127.0.0.1:8123")
        # the test runner is alive but is not a gateway: the record is not trusted, and is removed
        assert launcher.running_state() is None
        assert not launcher.paths.state_file.exists()
    assert not launcher.paths.state_file.exists()


def test_a_newer_record_is_not_removed_by_an_older_gateway(launcher: Launcher) -> None:
    with launcher.recorded() as state:
        newer = replace(state, pid=state.pid + 1)
        launcher.paths.state_file.write_bytes(newer.to_json())
    assert launcher.read_state() == newer


def test_a_record_written_by_another_version_is_read(launcher: Launcher) -> None:
    """After an upgrade the running gateway is the old version: ``stop`` must still find it by its record."""
    with launcher.recorded() as state:
        pass
    launcher.paths.state_file.write_bytes(orjson.dumps({**asdict(state), "workers": 1}))  # a field this one lacks
    assert launcher.read_state() == state
    launcher.paths.state_file.write_bytes(b"[1, 2]")
    assert launcher.read_state() is None


def _wait_for_exec(pid: int, argv: tuple[str, ...]) -> ProcessInfo:
    for _ in range(100):
        info = inspect_process(pid)
        if info is not None and info.argv == argv:
            return info
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} never showed {argv}")


def test_a_record_is_trusted_only_for_the_same_gateway_process(launcher: Launcher, tmp_path: Path) -> None:
    argv = (sys.executable, "-c", "import time; time.sleep(30)", "ccapi", "run")  # looks like a gateway
    lookalike = subprocess.Popen(argv, cwd=tmp_path)
    try:
        info = _wait_for_exec(lookalike.pid, argv)
        assert inspect_process(lookalike.pid) == info  # the start-time token is stable
        with launcher.recorded() as mine:
            pass
        record = replace(mine, pid=info.pid, pgid=info.pid, process_started=info.started)
        launcher.paths.state_file.write_bytes(record.to_json())
        assert launcher.running_state() == record
        reused = replace(record, process_started="1")  # same pid, another process: a reused pid
        launcher.paths.state_file.write_bytes(reused.to_json())
        assert launcher.running_state() is None and not launcher.paths.state_file.exists()
    finally:
        lookalike.kill()
        lookalike.wait()
    assert inspect_process(lookalike.pid) is None
    launcher.paths.state_file.write_bytes(record.to_json())
    assert launcher.running_state() is None  # the process is gone
    launcher.paths.state_file.write_text("not json")
    assert launcher.running_state() is None and not launcher.paths.state_file.exists()


def test_env_file_syntax_and_precedence(tmp_path: Path) -> None:
    values = parse_env_file("# comment\n; also\n\nA=1\nexport_ok = \"two words\"\nC='x=y'\nCC_API_HOME=/elsewhere\n")
    assert values == {"A": "1", "export_ok": "two words", "C": "x=y"}
    with pytest.raises(ConfigError, match="line 1"):
        parse_env_file("export A=1")
    assert parse_env_file(EXAMPLE_ENV_FILE) == {}  # every example is commented out
    # systemd reads a backslash outside single quotes as an escape ("a\\b" is a\b to it): the service and the
    # cc-api command would run with different keys
    for line in ('KEY="a\\b"', "KEY=a\\b", 'KEY="a\\"b"'):
        with pytest.raises(ConfigError, match="line 1: KEY's value holds a backslash"):
            parse_env_file(line)
    assert parse_env_file("KEY='a\\b'") == {"KEY": "a\\b"}

    env_file = tmp_path / "cc-api.env"
    assert write_example_env_file(env_file) is True
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    env_file.write_text("CC_API_PORT=9000\nCC_API_MODEL=opus\n")
    assert write_example_env_file(env_file) is False and "9000" in env_file.read_text()
    merged = with_env_file({"CC_API_HOME": str(tmp_path), "CC_API_PORT": "9100"})
    assert (merged["CC_API_PORT"], merged["CC_API_MODEL"]) == ("9100", "opus")  # the environment wins


@pytest.mark.parametrize(
    ("content", "told"),
    [
        (b"export CC_API_PORT=9000\n", "line 1: expected KEY=VALUE (no `export`"),
        (b"CC_API_PORT=9000\ngarbage\n", "line 2: expected KEY=VALUE, got 'garbage'"),
        (b"CC_API_MODEL=caf\xe9\n", "is not UTF-8 text (byte 0xe9 at offset 16)"),
    ],
)
def test_an_env_file_that_cannot_be_read_is_a_setting_to_fix_not_a_lockout(
    tmp_path: Path, content: bytes, told: str
) -> None:
    """``start`` refuses it with one line (a file not in UTF-8 was a traceback); ``stop`` and ``status``
    (``for_running``) still find the gateway of this home and warn: a malformed line kept them from stopping it."""
    env = {"CC_API_HOME": str(tmp_path), "CC_API_KEY": "from-the-environment"}
    (tmp_path / "cc-api.env").write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(told)):
        Launcher.from_environment(env)
    launcher = Launcher.for_running(env)
    assert launcher.paths.home == tmp_path and launcher.settings.api_key == "from-the-environment"
    assert launcher.problem is not None and told in launcher.problem


def test_stop_and_status_still_find_a_gateway_whose_home_is_now_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway an older version started with ``CC_API_HOME=~`` (now refused: the start-up would make the whole home
    private): ``stop`` and ``status`` must still find it, not exit 2 on the setting."""
    monkeypatch.setenv("HOME", str(tmp_path))
    env = {"HOME": str(tmp_path), "CC_API_HOME": str(tmp_path), "CC_API_KEY": "k"}
    with pytest.raises(ConfigError, match="holds your home folder"):
        Launcher.from_environment(env)
    launcher = Launcher.for_running(env)
    assert (launcher.paths.home, launcher.settings.api_key) == (tmp_path, "k")
    assert launcher.problem is not None and "holds your home folder" in launcher.problem


def test_an_env_file_saved_with_a_byte_order_mark_reads_as_written(tmp_path: Path) -> None:
    """Editors on Windows save UTF-8 with a BOM: its first setting was refused as a malformed line."""
    (tmp_path / "cc-api.env").write_bytes(b"\xef\xbb\xbfCC_API_PORT=9000\r\nCC_API_MODEL='opus'\r\n")
    assert Launcher.from_environment({"CC_API_HOME": str(tmp_path)}).settings.port == 9000


def test_one_gateway_claims_a_home_at_a_time(launcher: Launcher) -> None:
    """What keeps two gateways started together off one database (see test_cli for the real race)."""
    held = launcher.claim_home()
    assert held is not None and stat.S_IMODE(launcher.paths.run_dir.stat().st_mode) == 0o700
    try:
        assert launcher.claim_home() is None  # another open file description: refused, not shared
    finally:
        os.close(held)
    again = launcher.claim_home()
    assert again is not None
    os.close(again)


def test_a_home_that_cannot_hold_state_is_a_setting_to_fix(tmp_path: Path) -> None:
    """``start`` under a file (or where it may not write): one line naming the home (exit code 2), not a traceback."""
    (tmp_path / "a-file").write_text("")
    launcher = Launcher(Settings(home=tmp_path / "a-file" / "home"), {})
    for attempt in (launcher.start, launcher.claim_home):
        with pytest.raises(
            ConfigError, match=f"cannot use {re.escape(str(launcher.paths.home))} \\(CC_API_HOME\\): Not a directory"
        ):
            attempt()


def test_tail_lines_since_and_follow_across_rotation(tmp_path: Path) -> None:
    log = tmp_path / "cc-api.log"
    assert tail(log, 5).lines == ()
    log.write_text("".join(f"line {n}\n" for n in range(1, 5001)))
    last = tail(log, 3)
    assert last.lines == ("line 4998", "line 4999", "line 5000") and last.end == log.stat().st_size
    assert tail(log, 0).lines == ()

    lines = follow(log, last.end, poll=0.01)
    with log.open("a") as file:
        file.write("line 5001\nhalf")
    assert next(lines) == "line 5001"
    with log.open("a") as file:
        file.write(" done\n")
    assert next(lines) == "half done"
    log.rename(tmp_path / "cc-api.log.1")  # what RotatingFileHandler does
    log.write_text("fresh 1\nfresh 2\n")
    assert [next(lines), next(lines)] == ["fresh 1", "fresh 2"]
    lines.close()
    assert lines_since(log, 8, 10) == ("fresh 2",)
    assert lines_since(log, 10_000, 10) == ("fresh 1", "fresh 2")  # rotated since: all of it


def test_log_lines_render_for_humans() -> None:
    line = (
        '{"request_id":"r1","method":"GET","path":"/healthz","status":200,"duration_ms":0.7,'
        '"event":"request","level":"info","timestamp":"2026-01-02T03:04:05.678Z"}'
    )
    assert render_log_line(line) == (
        "2026-01-02 03:04:05 INFO    request request_id=r1 method=GET path=/healthz status=200 duration_ms=0.7"
    )
    foreign = (
        '{"event":"Starting worker [7]","logger":"sanic.server","level":"info","timestamp":"2026-01-02T03:04:05Z"}'
    )
    assert render_log_line(foreign) == "2026-01-02 03:04:05 INFO    [sanic.server] Starting worker [7]"
    failed = '{"event":"unhandled_error","level":"error","exception":"Traceback ...\\nValueError: x","path":"/a b"}'
    assert render_log_line(failed) == 'ERROR   unhandled_error path="/a b"\nTraceback ...\nValueError: x'
    assert render_log_line("cc-api: MOCK MODEL at ...") == "cc-api: MOCK MODEL at ..."


@pytest.mark.skipif(shutil.which("ps") is None, reason="no ps")
def test_ps_fallback_agrees_with_proc(tmp_path: Path) -> None:
    """macOS has no /proc; its path (``ps``) is checked here against Linux's."""
    sleeper = subprocess.Popen(["sleep", "30"], cwd=tmp_path)
    try:
        info = _wait_for_exec(sleeper.pid, ("sleep", "30"))
        from_ps = _from_ps(sleeper.pid)
        assert from_ps is not None and from_ps.argv == info.argv and from_ps.started
        assert _from_ps(sleeper.pid) == from_ps
    finally:
        sleeper.kill()
        sleeper.wait()
    assert _from_ps(sleeper.pid) is None
