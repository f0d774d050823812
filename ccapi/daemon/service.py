"""``cc-api install-service`` / ``uninstall-service``: the templates in ``service/`` rendered for this
user and handed to systemd (``--user``) or launchd.

Rendering is pure (a ``ServicePlan``), so ``--dry-run`` and the tests see exactly what would be
written and run, for either platform, on any machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal
from xml.sax.saxutils import escape

from ccapi.config import ConfigError
from ccapi.daemon.envfile import ensure_env_value, home_setting_line, read_env_file, write_example_env_file
from ccapi.daemon.launcher import LOG_TAIL_LINES, START_TIMEOUT, Launcher
from ccapi.daemon.logfile import lines_since, size
from ccapi.paths import HOME_VARIABLE, StatePaths, launch_agents_dir, systemd_user_unit_dir
from ccapi.privacy import private_umask
from ccapi.webhook_rules import new_secret

Platform = Literal["linux", "macos"]
PLATFORMS: tuple[Platform, ...] = ("linux", "macos")
UNIT_NAME = "cc-api.service"
LABEL = "com.cc-api.gateway"
_TEMPLATES = {"linux": UNIT_NAME, "macos": f"{LABEL}.plist"}

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


class ServiceError(Exception):
    """Installing or removing the service failed; the message says why and what to do."""


@dataclass(frozen=True)
class Step:
    argv: tuple[str, ...]
    may_fail: bool = False
    """``True`` for steps that clear a previous install and fail harmlessly when there is none."""

    def __str__(self) -> str:
        return " ".join(self.argv)


@dataclass(frozen=True)
class ServicePlan:
    platform: Platform
    destination: Path
    content: str
    env_file: Path
    log_dir: Path
    install_steps: tuple[Step, ...]
    stop_steps: tuple[Step, ...]
    """Run by uninstall before the file is removed; ``reload_steps`` run after."""
    reload_steps: tuple[Step, ...]
    failed_check: Step | None = None
    """Succeeds once the service manager has given up on the service (systemd: a gateway that exits 2 or 4 is not
    restarted); launchd has no such state, it restarts on."""


@dataclass(frozen=True)
class ServiceResult:
    message: str
    ran: tuple[str, ...]
    outcome: Literal["installed", "uninstalled", "failed"]
    url: str | None = None
    """Where the service's gateway answers, once it does."""
    log_tail: tuple[str, ...] = ()


def current_platform() -> Platform:
    if sys.platform == "darwin":
        return "macos"
    if sys.platform.startswith("linux"):
        return "linux"
    raise ServiceError(f"no user service support on {sys.platform}: run `cc-api start` instead")


def gateway_command() -> tuple[str, ...]:
    """How the service should start this installation of CC API, as absolute paths."""
    beside_python = Path(sys.executable).parent / "cc-api"
    invoked = Path(sys.argv[0])
    for candidate in (beside_python, invoked if invoked.name == "cc-api" else None, shutil.which("cc-api")):
        if candidate and os.access(candidate, os.X_OK):
            return (str(Path(candidate).absolute()),)
    return (sys.executable, "-m", "ccapi")


def load_template(platform: Platform) -> str:
    """From the wheel (``ccapi/service_templates``), or the repo's ``service/`` in an editable install."""
    name = _TEMPLATES[platform]
    packaged = resources.files("ccapi") / "service_templates" / name
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parents[2] / "service" / name).read_text(encoding="utf-8")


def plan_service(platform: Platform, paths: StatePaths, command: Sequence[str], path_env: str) -> ServicePlan:
    if platform == "linux":
        return _systemd_plan(paths, command, path_env)
    return _launchd_plan(paths, command, path_env)


def _fill(template: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", value)
    return template


def _systemd_plan(paths: StatePaths, command: Sequence[str], path_env: str) -> ServicePlan:
    for what, value in (
        ("CC_API_HOME", str(paths.home)),
        ("PATH", path_env),
        ("the cc-api command", " ".join(command)),
    ):
        if any(c in value for c in "\n\r\0"):  # a unit is one setting a line: the rest would become settings of its own
            raise ServiceError(f"{what} holds a line break, which a systemd unit cannot carry: {value!r}")
    content = _fill(
        load_template("linux"),
        {
            "EXEC_START": " ".join(_systemd_word(arg) for arg in command),
            "CC_API_HOME": _systemd_value(str(paths.home)),
            "PATH": _systemd_value(path_env),
            "ENV_FILE": _systemd_specifiers(str(paths.env_file)),  # a path as it is: no quotes to escape
        },
    )
    systemctl = ("systemctl", "--user")
    return ServicePlan(
        platform="linux",
        destination=systemd_user_unit_dir() / UNIT_NAME,
        content=content,
        env_file=paths.env_file,
        log_dir=paths.log_dir,
        install_steps=(
            Step((*systemctl, "daemon-reload")),
            Step((*systemctl, "enable", UNIT_NAME)),
            Step((*systemctl, "restart", UNIT_NAME)),
        ),
        stop_steps=(Step((*systemctl, "disable", "--now", UNIT_NAME), may_fail=True),),
        reload_steps=(Step((*systemctl, "daemon-reload")),),
        failed_check=Step((*systemctl, "is-failed", "--quiet", UNIT_NAME)),
    )


def _launchd_plan(paths: StatePaths, command: Sequence[str], path_env: str) -> ServicePlan:
    destination = launch_agents_dir() / f"{LABEL}.plist"
    content = _fill(
        load_template("macos"),
        {
            "PROGRAM_ARGUMENTS": "\n".join(f"\t\t<string>{escape(arg)}</string>" for arg in command),
            "USER_HOME": escape(str(Path.home())),
            "CC_API_HOME": escape(str(paths.home)),
            "PATH": escape(path_env),
            "ENV_FILE": escape(str(paths.env_file)),
            "LOG_FILE": escape(str(paths.log_file)),
        },
    )
    domain = f"gui/{os.getuid()}"
    bootout = Step(("launchctl", "bootout", f"{domain}/{LABEL}"), may_fail=True)
    return ServicePlan(
        platform="macos",
        destination=destination,
        content=content,
        env_file=paths.env_file,
        log_dir=paths.log_dir,
        install_steps=(bootout, Step(("launchctl", "bootstrap", domain, str(destination)))),
        stop_steps=(bootout,),
        reload_steps=(),
    )


def _systemd_value(value: str) -> str:
    """Escape specifiers (``%``) and quotes inside a double-quoted systemd setting."""
    return _systemd_specifiers(value.replace("\\", "\\\\").replace('"', '\\"'))


def _systemd_specifiers(value: str) -> str:
    """Escape specifiers (``%h``: the user's home), which systemd expands in every setting."""
    return value.replace("%", "%%")


def _systemd_word(arg: str) -> str:
    """One ``ExecStart=`` argument: ``$`` would expand a variable, whitespace would split it."""
    value = _systemd_value(arg).replace("$", "$$")
    return f'"{value}"' if any(c.isspace() for c in arg) or value != arg else value


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60)


def _preflight(plan: ServicePlan, run: Runner) -> None:
    """Fail before touching any file if the service manager cannot be used."""
    tool = "systemctl" if plan.platform == "linux" else "launchctl"
    if shutil.which(tool) is None:
        raise ServiceError(
            f"{tool} not found: install-service needs "
            f"{'systemd' if plan.platform == 'linux' else 'launchd'}. "
            "Run the gateway with `cc-api start` instead, or see the file with --dry-run."
        )
    if plan.platform == "linux":
        probe = run(("systemctl", "--user", "show-environment"))
        if probe.returncode != 0:
            reason = (probe.stderr or probe.stdout).strip() or f"exit code {probe.returncode}"
            raise ServiceError(
                f"systemctl cannot reach your user service manager ({reason}). "
                "Is a systemd user session running? On a headless machine, "
                "`loginctl enable-linger $USER` starts one. Or use `cc-api start`."
            )


def _run_steps(steps: Sequence[Step], run: Runner) -> list[str]:
    ran = []
    for step in steps:
        result = run(step.argv)
        ran.append(str(step))
        if result.returncode != 0 and not step.may_fail:
            reason = (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
            raise ServiceError(f"`{step}` failed: {reason}")
    return ran


def _status_command(platform: Platform) -> str:
    """What shows the service manager's view of the gateway (and, for systemd, its last journal lines)."""
    if platform == "linux":
        return f"systemctl --user status {UNIT_NAME}"
    return f"launchctl print gui/{os.getuid()}/{LABEL}"


def check_env_file(plan: ServicePlan) -> None:
    """What ``install`` (and ``--dry-run``, which writes nothing) finds wrong with the env file before it writes the
    unit, as a bad setting (``ConfigError``, exit code 2): a line that is none, not UTF-8, ``CC_API_HOME`` set there."""
    read_env_file(plan.env_file)
    if (line := home_setting_line(plan.env_file)) is not None:
        effect = (
            "systemd would apply it to the service, whose gateway would then keep its state where no cc-api"
            " command looks"
            if plan.platform == "linux"
            else "it does nothing"
        )
        raise ConfigError(
            f"{plan.env_file}, line {line} sets {HOME_VARIABLE}: cc-api commands ignore it there (the file lives in"
            f" that home), and {effect}. Remove the line; for another home, run install-service with"
            f" {HOME_VARIABLE} set in its environment"
        )


def install(plan: ServicePlan, launcher: Launcher, timeout: float = START_TIMEOUT, run: Runner = _run) -> ServiceResult:
    """Write the unit, start it, and wait (as ``cc-api start`` does) until the gateway it runs answers
    ``/healthz``: the service manager accepts a unit whose gateway then fails at once."""
    _preflight(plan, run)
    with private_umask():  # the home as the gateway keeps it (else its first start tightens it, with a warning)
        plan.log_dir.mkdir(parents=True, exist_ok=True)
        created = write_example_env_file(plan.env_file)
    check_env_file(plan)
    secret = ensure_env_value(plan.env_file, "CC_API_WEBHOOK_SECRET", new_secret)  # reads it: a bad line stops here
    plan.destination.parent.mkdir(parents=True, exist_ok=True)
    plan.destination.write_text(plan.content, encoding="utf-8")
    before = launcher.running_state()  # the service's gateway from an earlier install, or another one
    offset = size(launcher.paths.log_file)
    ran = tuple(_run_steps(plan.install_steps, run))
    env_note = f"created {plan.env_file} (mode 0600)" if created else f"kept {plan.env_file}"
    if secret:
        env_note += ", with a new CC_API_WEBHOOK_SECRET"
    failed = _Failed(plan.failed_check, run)
    state = launcher.wait_healthy(lambda recorded: recorded != before, timeout, gone=failed)
    if state is not None:
        message = f"installed {plan.destination} and started it at {state.url} (pid {state.pid}); {env_note}"
        return ServiceResult(message, ran, "installed", url=state.url)
    why = f"its gateway did not answer /healthz within {timeout:g} s"
    if failed(at_once=True):
        why = "its gateway exited as it started, and the service manager gave up on it"
    if before is not None and launcher.running_state() == before:
        why += (
            f": another gateway (pid {before.pid}, {before.url}) still runs for {launcher.paths.home}, and the"
            " service's will not run beside it; `cc-api stop` it, then install again"
        )
    return ServiceResult(
        f"installed {plan.destination}, but {why}; see `cc-api logs` and `{_status_command(plan.platform)}`",
        ran,
        "failed",
        log_tail=lines_since(launcher.paths.log_file, offset, LOG_TAIL_LINES),
    )


class _Failed:
    """Whether the service manager has given up on the service, asked at most every ``every`` seconds (each ask
    starts ``systemctl``); always ``False`` where it cannot say (launchd)."""

    def __init__(self, check: Step | None, run: Runner, every: float = 0.5) -> None:
        self._check, self._run, self._every, self._next = check, run, every, 0.0

    def __call__(self, at_once: bool = False) -> bool:
        if self._check is None or (time.monotonic() < self._next and not at_once):
            return False
        self._next = time.monotonic() + self._every
        return self._run(self._check.argv).returncode == 0


def uninstall(plan: ServicePlan, run: Runner = _run) -> ServiceResult:
    _preflight(plan, run)
    ran = _run_steps(plan.stop_steps, run)
    existed = plan.destination.exists()
    plan.destination.unlink(missing_ok=True)
    ran += _run_steps(plan.reload_steps, run)
    removed = f"removed {plan.destination}" if existed else f"{plan.destination} was not installed"
    message = f"stopped the service; {removed}; kept {plan.env_file} and the logs"
    return ServiceResult(message, tuple(ran), "uninstalled")
