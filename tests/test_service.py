"""``cc-api install-service`` / ``uninstall-service``: rendered files, and the systemctl/launchctl calls
(against fake tools on PATH: no service manager runs here)."""

from __future__ import annotations

import json
import os
import plistlib
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from ccapi.daemon.envfile import read_env_file
from ccapi.daemon.service import plan_service
from ccapi.paths import StatePaths
from tests.daemon import CC_API

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


def fake_tool(env: dict[str, str], name: str, exit_code: int = 0, stderr: str = "") -> Path:
    """A ``systemctl``/``launchctl`` on PATH that records its arguments."""
    calls = Path(env["PATH"]).parent / f"{name}.calls"
    tool = Path(env["PATH"]) / name
    tool.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho "{stderr}" >&2\nexit {exit_code}\n')
    tool.chmod(0o755)
    return calls


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


def test_install_and_uninstall_with_systemd(user: dict[str, str]) -> None:
    calls = fake_tool(user, "systemctl")
    state = StatePaths(Path(user["CC_API_HOME"]))
    unit = Path(user["XDG_CONFIG_HOME"]) / "systemd" / "user" / "cc-api.service"

    result = cc_api(user, "install-service")
    assert result.returncode == 0, result.stderr
    assert unit.read_text() == json.loads(cc_api(user, "install-service", "--dry-run", "--json").stdout)["content"]
    assert stat.S_IMODE(state.env_file.stat().st_mode) == 0o600
    assert "# CC_API_KEY=" in state.env_file.read_text() and state.log_dir.is_dir()
    assert calls.read_text().splitlines() == [
        "--user show-environment",
        "--user daemon-reload",
        "--user enable cc-api.service",
        "--user restart cc-api.service",
    ]

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


def test_install_and_uninstall_with_launchd(user: dict[str, str]) -> None:
    calls = fake_tool(user, "launchctl")
    plist = Path(user["HOME"]) / "Library" / "LaunchAgents" / "com.cc-api.gateway.plist"
    assert cc_api(user, "install-service", "--platform", "macos").returncode == 0
    assert plistlib.loads(plist.read_bytes())["Label"] == "com.cc-api.gateway"
    domain = f"gui/{os.getuid()}"
    assert calls.read_text().splitlines() == [f"bootout {domain}/com.cc-api.gateway", f"bootstrap {domain} {plist}"]
    assert cc_api(user, "uninstall-service", "--platform", "macos").returncode == 0
    assert not plist.exists()
