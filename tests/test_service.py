"""``cc-api install-service`` / ``uninstall-service``: rendered files, and the systemctl/launchctl calls
(against fake tools on PATH: no service manager runs here)."""

from __future__ import annotations

import json
import os
import plistlib
import re
import shlex
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ccapi.daemon.envfile import read_env_file
from ccapi.daemon.process import inspect_process
from ccapi.daemon.service import plan_service
from ccapi.paths import StatePaths
from ccapi.testing import MockModel
from tests.daemon import CC_API, Cli
from tests.gateway import readable_by_others

PLACEHOLDER = re.compile(r"\{\{[A-Z_]+\}\}")


@pytest.fixture
def user(tmp_path: Path) -> dict[str, str]:
    """An environment whose home, config dir and CC_API_HOME are all inside ``tmp_path``."""
    (tmp_path / "bin").mkdir()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("CC_API_", "XDG_"))}
    return {
        **inherited,
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "CC_API_HOME": str(tmp_path / "state"),
        "PATH": str(tmp_path / "bin"),
    }


def cc_api(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CC_API, *args], env=env, capture_output=True, text=True, timeout=30)


def fake_tool(
    env: dict[str, str], name: str, exit_code: int = 0, stderr: str = "", on: Mapping[str, str] | None = None
) -> Path:
    """A ``systemctl``/``launchctl`` first on PATH that records its arguments, and runs the shell ``on[word]`` when
    called with ``word`` (``restart``, ``bootstrap``: what starts the service)."""
    bin_dir = Path(env["PATH"].split(os.pathsep)[0])
    calls = bin_dir.parent / f"{name}.calls"
    # is-failed: "no" unless told otherwise (its exit code 0 would say the service manager gave up on it)
    actions = {"is-failed": "exit 1", **(on or {})}
    cases = "".join(f"  *' {word} '*) {action} ;;\n" for word, action in actions.items())
    (bin_dir / name).write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\ncase " $* " in\n{cases}esac\necho "{stderr}" >&2\nexit {exit_code}\n'
    )
    (bin_dir / name).chmod(0o755)
    return calls


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway_starts(user: dict[str, str]) -> Iterator[str]:
    """The shell a fake service manager runs to "start the gateway": it records one, as ``cc-api run`` does, whose
    ``/healthz`` (a server in this test process) answers."""
    with ThreadingHTTPServer(("127.0.0.1", 0), _Healthy) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        record = Path(user["PATH"]).parent / "gateway.json"
        record.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),  # not a gateway process: the next install finds no gateway from before
                    "pgid": os.getpgrp(),
                    "process_started": "1",
                    "url": f"http://127.0.0.1:{port}",
                    "host": "127.0.0.1",
                    "port": port,
                    "started_at": time.time(),
                    "version": "0.1.0",
                }
            )
        )
        cp = shutil.which("cp")  # by its path: the user's PATH holds only the fake tools
        yield f"{cp} {record} {StatePaths(Path(user['CC_API_HOME'])).state_file}"
        server.shutdown()


def unit_settings(content: str) -> dict[str, list[tuple[str, str]]]:
    """The unit's ``[Section]`` → ``(key, value)`` pairs, keeping repeated keys as systemd does."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in content.splitlines():
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"not a unit line: {line!r}"
        current.append((key, value))
    return sections


def test_dry_run_renders_a_valid_systemd_unit(user: dict[str, str], tmp_path: Path) -> None:
    result = cc_api(user, "install-service", "--dry-run", "--platform", "linux", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    state = StatePaths(Path(user["CC_API_HOME"]))
    assert plan["destination"] == f"{user['XDG_CONFIG_HOME']}/systemd/user/cc-api.service"
    content = plan["content"]
    assert not PLACEHOLDER.search(content)
    sections = unit_settings(content)
    service = sections["Service"]
    assert ("Type", "simple") in service and ("Restart", "on-failure") in service
    assert ("RestartPreventExitStatus", "2 4") in service  # a bad setting, a gateway already running: not retried
    assert ("ExecStart", f"{CC_API[0]} run") in service and os.path.isabs(CC_API[0])
    assert ("EnvironmentFile", f"-{state.env_file}") in service
    assert ("Environment", f'"CC_API_HOME={state.home}"') in service
    assert ("NoNewPrivileges", "yes") in service and ("PrivateTmp", "yes") in service
    assert ("KillMode", "mixed") in service and not any(key == "ProtectHome" for key, _ in service)
    assert sections["Install"] == [("WantedBy", "default.target")]
    unit = sections["Unit"]  # restarts every ~3.5 s never reached systemd's default limit (5 in 10 s)
    assert ("StartLimitIntervalSec", "60") in unit and ("StartLimitBurst", "5") in unit
    assert [s["argv"] for s in plan["install_steps"]] == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "cc-api.service"],
        ["systemctl", "--user", "restart", "cc-api.service"],
    ]
    assert not Path(plan["destination"]).exists() and not state.env_file.exists()  # a dry run writes nothing

    human = cc_api(user, "install-service", "--dry-run", "--platform", "linux").stdout
    assert f"# would write {plan['destination']}:" in human and "systemctl --user enable cc-api.service" in human

    analyze = shutil.which("systemd-analyze")
    if analyze:  # the real parser, where installed: unknown keys and bad values are reported on stderr
        unit = tmp_path / "cc-api.service"
        unit.write_text(content)
        verified = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
        assert verified.returncode == 0 and verified.stderr == "", verified.stderr


def test_dry_run_renders_a_valid_launchd_plist(user: dict[str, str]) -> None:
    plan = json.loads(cc_api(user, "install-service", "--dry-run", "--platform", "macos", "--json").stdout)
    state = StatePaths(Path(user["CC_API_HOME"]))
    assert plan["destination"] == f"{user['HOME']}/Library/LaunchAgents/com.cc-api.gateway.plist"
    assert not PLACEHOLDER.search(plan["content"])
    agent = plistlib.loads(plan["content"].encode())
    assert agent["Label"] == "com.cc-api.gateway"
    assert agent["ProgramArguments"] == [*CC_API, "run", "--no-console-log"]
    assert agent["RunAtLoad"] is True and agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["StandardOutPath"] == agent["StandardErrorPath"] == str(state.log_file)
    assert agent["EnvironmentVariables"]["CC_API_HOME"] == str(state.home)
    assert agent["EnvironmentVariables"]["PATH"] == user["PATH"]
    assert agent["WorkingDirectory"] == user["HOME"]
    assert [s["argv"][:2] for s in plan["install_steps"]] == [["launchctl", "bootout"], ["launchctl", "bootstrap"]]


def test_a_relative_home_is_written_as_the_absolute_one(user: dict[str, str], tmp_path: Path) -> None:
    """systemd ignores a relative ``EnvironmentFile=``, and the service starts in another folder: the home the
    install created (with its env file and webhook secret) must be the one the service uses."""
    plan = json.loads(
        subprocess.run(
            [*CC_API, "install-service", "--dry-run", "--platform", "linux", "--json"],
            env={**user, "CC_API_HOME": "rel/state"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    )
    service = dict(unit_settings(plan["content"])["Service"])
    assert service["EnvironmentFile"] == f"-{tmp_path / 'rel' / 'state' / 'cc-api.env'}"


def test_awkward_paths_survive_rendering(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path / '50% of & <my> "state"')
    command = (str(tmp_path / "my tools" / "cc-api$x"),)
    agent = plistlib.loads(plan_service("macos", paths, command, "/bin").content.encode())
    assert agent["ProgramArguments"][0] == command[0]
    assert agent["EnvironmentVariables"]["CC_API_HOME"] == str(paths.home)
    exec_start = dict(unit_settings(plan_service("linux", paths, command, "/bin").content)["Service"])["ExecStart"]
    assert exec_start == '"' + command[0].replace("$", "$$") + '" run'
    home_line = next(
        v
        for k, v in unit_settings(plan_service("linux", paths, command, "/bin").content)["Service"]
        if v.startswith('"CC_API_HOME=')
    )
    assert '50%% of & <my> \\"state\\"' in home_line
    env_file = dict(unit_settings(plan_service("linux", paths, command, "/bin").content)["Service"])["EnvironmentFile"]
    assert env_file == "-" + str(paths.env_file).replace("%", "%%")  # a bare path: a quote escaped there was kept


def test_without_systemctl_install_is_a_clear_error(user: dict[str, str]) -> None:
    result = cc_api(user, "install-service", "--platform", "linux")
    assert result.returncode == 1
    assert "systemctl not found" in result.stderr and "cc-api start" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (Path(user["XDG_CONFIG_HOME"]) / "systemd").exists()


def test_unreachable_user_bus_is_a_clear_error(user: dict[str, str]) -> None:
    fake_tool(user, "systemctl", exit_code=1, stderr="Failed to connect to bus: No medium found")
    result = cc_api(user, "install-service", "--platform", "linux")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot reach your user service manager (Failed to connect to bus" in result.stderr
    assert not (Path(user["XDG_CONFIG_HOME"]) / "systemd").exists()


def test_install_and_uninstall_with_systemd(user: dict[str, str], gateway_starts: str, user_umask: int) -> None:
    calls = fake_tool(user, "systemctl", on={"restart": gateway_starts})
    state = StatePaths(Path(user["CC_API_HOME"]))
    unit = Path(user["XDG_CONFIG_HOME"]) / "systemd" / "user" / "cc-api.service"

    result = cc_api(user, "install-service")
    assert result.returncode == 0, result.stderr
    # the home it creates is private from the start (it was 0755 until the gateway's first start tightened it);
    # the state file is the fake gateway's `cp`
    assert readable_by_others(state.home).keys() == {state.state_file.name}
    url = json.loads(state.state_file.read_text())["url"]
    assert f"started it at {url} (pid " in result.stdout
    assert unit.read_text() == json.loads(cc_api(user, "install-service", "--dry-run", "--json").stdout)["content"]
    assert stat.S_IMODE(state.env_file.stat().st_mode) == 0o600
    assert "# CC_API_KEY=" in state.env_file.read_text() and state.log_dir.is_dir()
    made = calls.read_text().splitlines()
    assert [call for call in made if "is-failed" not in call] == [
        "--user show-environment",
        "--user daemon-reload",
        "--user enable cc-api.service",
        "--user restart cc-api.service",
    ]
    assert made[4:] and set(made[4:]) == {"--user is-failed --quiet cc-api.service"}  # asked while it waited

    secret = read_env_file(state.env_file)["CC_API_WEBHOOK_SECRET"]
    assert secret.startswith("whsec_") and "webhook" in result.stdout.lower()

    state.env_file.write_text("CC_API_KEY=mine")
    assert cc_api(user, "install-service").returncode == 0
    written = state.env_file.read_text()  # a reinstall never overwrites settings; it adds a missing secret
    assert written.startswith("CC_API_KEY=mine\nCC_API_WEBHOOK_SECRET=whsec_")
    assert read_env_file(state.env_file)["CC_API_WEBHOOK_SECRET"] != secret
    assert cc_api(user, "install-service").returncode == 0
    assert state.env_file.read_text() == written  # and keeps the one receivers already hold

    calls.unlink()
    result = cc_api(user, "uninstall-service", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ran"] == [
        "systemctl --user disable --now cc-api.service",
        "systemctl --user daemon-reload",
    ]
    assert not unit.exists() and state.env_file.exists()


def test_install_and_uninstall_with_launchd(user: dict[str, str], gateway_starts: str) -> None:
    calls = fake_tool(user, "launchctl", on={"bootstrap": gateway_starts})
    plist = Path(user["HOME"]) / "Library" / "LaunchAgents" / "com.cc-api.gateway.plist"
    assert cc_api(user, "install-service", "--platform", "macos").returncode == 0
    assert plistlib.loads(plist.read_bytes())["Label"] == "com.cc-api.gateway"
    domain = f"gui/{os.getuid()}"
    assert calls.read_text().splitlines() == [f"bootout {domain}/com.cc-api.gateway", f"bootstrap {domain} {plist}"]
    assert cc_api(user, "uninstall-service", "--platform", "macos").returncode == 0
    assert not plist.exists()


def test_install_says_so_when_the_gateway_does_not_come_up(user: dict[str, str]) -> None:
    """systemctl took the unit but nothing answers /healthz: install-service waits (--timeout), then fails (exit 1)
    saying where to look, with the log's last lines, as `cc-api start` does; it said "installed ... and started it"."""
    state = StatePaths(Path(user["CC_API_HOME"]))
    line = {"timestamp": "2025-01-01T00:00:00Z", "level": "error", "event": "cannot_listen", "port": 8000,
            "error": "Address already in use"}  # fmt: skip
    fake_tool(user, "systemctl", on={"restart": f"echo {shlex.quote(json.dumps(line))} >> {state.log_file}"})
    began = time.monotonic()
    result = cc_api(user, "install-service", "--timeout", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert 1 <= time.monotonic() - began < 15
    assert "but its gateway did not answer /healthz within 1 s" in result.stderr
    assert "see `cc-api logs` and `systemctl --user status cc-api.service`" in result.stderr
    assert "--- last lines of the log ---" in result.stderr and "Address already in use" in result.stderr
    assert "started it" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    assert (Path(user["XDG_CONFIG_HOME"]) / "systemd" / "user" / "cc-api.service").exists()  # fix, then restart it

    report = json.loads(cc_api(user, "install-service", "--timeout", "0", "--json").stdout)
    assert report["outcome"] == "failed" and report["url"] is None
    assert [json.loads(line)["event"] for line in report["log_tail"]] == ["cannot_listen"]


def test_install_stops_waiting_once_systemd_gives_up_on_the_service(user: dict[str, str]) -> None:
    """The unit's gateway exits at once with a setting to fix (code 2, which systemd does not restart): install-service
    says so as soon as systemd reports the unit failed, not after the whole --timeout."""
    fake_tool(user, "systemctl", on={"is-failed": "exit 0"})
    began = time.monotonic()
    result = cc_api(user, "install-service", "--timeout", "20")
    assert result.returncode == 1, result.stdout + result.stderr
    assert time.monotonic() - began < 10, "it waited out the timeout"
    assert "its gateway exited as it started, and the service manager gave up on it" in result.stderr
    assert "systemctl --user status cc-api.service" in result.stderr


def test_a_malformed_env_file_stops_the_install_before_anything_is_written(user: dict[str, str]) -> None:
    """A line that is no setting is told (exit code 2) before the unit is written or systemd asked to run it."""
    calls = fake_tool(user, "systemctl")
    state = StatePaths(Path(user["CC_API_HOME"]))
    state.home.mkdir(parents=True)
    state.env_file.write_text("export CC_API_KEY=k\n")
    result = cc_api(user, "install-service")
    assert result.returncode == 2 and "line 1: expected KEY=VALUE (no `export`" in result.stderr, result.stderr
    assert not (Path(user["XDG_CONFIG_HOME"]) / "systemd" / "user" / "cc-api.service").exists()
    assert calls.read_text().splitlines() == ["--user show-environment"]


def test_install_names_a_gateway_that_keeps_the_service_from_running(user: dict[str, str]) -> None:
    """A gateway started before (`cc-api start`) still runs for this home: the service's exits at once (code 4), and
    install-service says which one to stop."""
    argv = (sys.executable, "-c", "import time; time.sleep(30)", "ccapi", "run")  # looks like a gateway
    other = subprocess.Popen(argv)
    try:
        deadline = time.monotonic() + 10
        while (info := inspect_process(other.pid)) is None or info.argv != argv:
            assert time.monotonic() < deadline, "the lookalike never showed its command line"
            time.sleep(0.01)
        state = StatePaths(Path(user["CC_API_HOME"]))
        state.home.mkdir(parents=True)
        record = {"pid": other.pid, "pgid": other.pid, "process_started": info.started, "url": "http://127.0.0.1:9",
                  "host": "127.0.0.1", "port": 9, "started_at": 0.0, "version": "0.1.0"}  # fmt: skip
        state.state_file.write_text(json.dumps(record))
        fake_tool(user, "systemctl")
        result = cc_api(user, "install-service", "--timeout", "0.5")
    finally:
        other.kill()
        other.wait()
    assert result.returncode == 1
    assert f"another gateway (pid {other.pid}, http://127.0.0.1:9) still runs for {state.home}" in result.stderr
    assert "`cc-api stop` it, then install again" in result.stderr


@pytest.mark.slow
def test_install_waits_until_the_services_gateway_answers(
    mock_model: MockModel, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """End to end: a fake systemctl runs what the unit runs (`cc-api run`, in the background, as systemd does);
    install-service returns once that gateway answers, so `status` finds it healthy at once."""
    (tmp_path / "bin").mkdir()
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    cli = Cli(tmp_path, mock_model.url, PATH=path, XDG_CONFIG_HOME=str(tmp_path / "config"))
    request.addfinalizer(cli.cleanup)
    command = shlex.join(CC_API)
    starts, stops = f"{command} run </dev/null >/dev/null 2>&1 &", f"{command} stop >/dev/null"
    fake_tool(cli.env, "systemctl", on={"restart": starts, "disable": stops})

    installed = cli("install-service")
    status = cli("status", "--json")
    assert installed.returncode == 0, installed.stderr
    assert status.returncode == 0 and json.loads(status.stdout)["healthy"], status.stdout
    assert f"started it at {cli.url} (pid " in installed.stdout

    assert cli("uninstall-service").returncode == 0
    assert cli("status").returncode == 3
    assert cli.leftovers() == [], "a gateway outlived uninstall-service"
