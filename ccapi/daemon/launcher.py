"""Start, stop and inspect the background gateway: one implementation behind ``cc-api`` and the menu app.

A running gateway — however it was started: ``cc-api start``, systemd, launchd or a terminal —
records itself in ``$CC_API_HOME/cc-api.json`` (pid, process start time, URL). Every other command
trusts that file only after checking that the pid is still that very process, so a stale file
(crash, reboot, pid reused) never blocks a start and never gets an unrelated process killed.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from ccapi import __version__
from ccapi.config import ConfigError, Settings
from ccapi.daemon.envfile import with_env_file
from ccapi.daemon.logfile import lines_since, size
from ccapi.daemon.process import ProcessInfo, current_process, inspect_process
from ccapi.paths import home_from_env
from ccapi.privacy import private_umask

if TYPE_CHECKING:
    from ccapi.observability.headline import Headline

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
_POLL = 0.1
_SESSION_PAGES = 10  # status counts up to 1000 sessions, then says "1000+"
LOG_TAIL_LINES = 20
MOCK_NOTE = "on the MOCK MODEL: replies are scripted, not from Claude"
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy


@dataclass(frozen=True)
class GatewayState:
    """What the running gateway wrote about itself."""

    pid: int
    pgid: int
    process_started: str
    url: str
    host: str
    port: int
    started_at: float
    version: str
    sid: int | None = None
    """The gateway's session: its process group is its own to kill only when it leads its session (``start``,
    systemd, launchd); a ``cc-api run`` in a terminal leads a shell job, whose group holds the rest of its
    pipeline (``cc-api run | tee log``). 0 when the session's leader is outside the gateway's PID namespace (a
    container's, CI's): it leads no session then. ``None`` in a record of an older version, which killed the group
    whenever ``pgid == pid``."""

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes) -> GatewayState | None:
        """The record, or ``None`` for one that is not. Fields it does not know are left out: a gateway of another
        version wrote it, and ``stop`` must still find that gateway after an upgrade (a field added later needs a
        default for the same reason)."""
        try:
            raw = orjson.loads(data)
            state = cls(**{name: raw[name] for name in cls.__dataclass_fields__ if name in raw})
        except (orjson.JSONDecodeError, TypeError):
            return None
        # A record with a field of the wrong type (edited by hand, written by something else) is no record: every
        # command that reads it (`status`, `stop`, `start`, `run`) was a traceback.
        for name, kinds in _STATE_TYPES.items():
            value = getattr(state, name)
            if isinstance(value, bool) or not isinstance(value, kinds):
                return None
        return state if state.pid > 0 else None


_STATE_TYPES: dict[str, type | tuple[type, ...]] = {
    "pid": int,
    "pgid": int,
    "process_started": str,
    "url": str,
    "host": str,
    "port": int,
    "started_at": (int, float),
    "version": str,
    "sid": (int, type(None)),
}
_EXIT_HOME_TAKEN = 4
"""``cc-api run``'s exit code when another gateway runs, or is starting, for its home (``cli.EXIT_RUNNING``)."""


@dataclass(frozen=True)
class StartResult:
    outcome: Literal["started", "already_running", "failed"]
    message: str
    state: GatewayState | None = None
    log_tail: tuple[str, ...] = ()


@dataclass(frozen=True)
class StopResult:
    outcome: Literal["stopped", "killed", "not_running", "failed"]
    message: str
    pid: int | None = None


@dataclass(frozen=True)
class GatewayStatus:
    running: bool
    state: GatewayState | None = None
    healthy: bool = False
    uptime_seconds: float | None = None
    live_sessions: int | None = None
    persisted_sessions: int | None = None
    persisted_sessions_more: bool = False
    problem: str | None = None
    #: Subscription windows as ``/healthz`` summarises them (``5-hour window 91% used, resets 09:13 UTC``).
    limits: str | None = None
    #: Serving from the bundled mock model (``--mock-model``), not Claude.
    mock_model: bool = False
    #: Turns, tokens and compat figures from ``/metrics`` (``None`` when it could not be read).
    figures: Headline | None = None
    #: Not running yet: the pid of a gateway that holds this home but does not serve yet (``cc-api run`` claims the
    #: home, then loads for a second or more before it records itself and answers).
    starting_pid: int | None = None


class Launcher:
    """Process control for the gateway of one ``CC_API_HOME``."""

    def __init__(
        self, settings: Settings, env: Mapping[str, str], python: str = sys.executable, problem: str | None = None
    ) -> None:
        self.settings = settings
        self.paths = settings.paths
        self.env = env
        self.python = python
        self.problem = problem
        """A bad setting the next start will refuse (``for_running`` goes on without it)."""
        self._home_lock: int | None = None

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Launcher:
        """Settings from ``env`` (default: this process's) over the home's env file; raises ``ConfigError``."""
        merged = with_env_file(env)
        return cls(Settings.from_env(merged), merged)

    @classmethod
    def for_running(cls, env: Mapping[str, str] | None = None) -> Launcher:
        """As ``from_environment``, for what acts on the gateway already running (``stop``, ``status``): they need
        only its home and key, so a bad setting the running gateway never read (a typo just written into the
        env file, even a line that is no setting at all, before the restart that would read it) does not keep them
        from stopping it."""
        merged = dict(os.environ if env is None else env)  # the environment alone if the env file cannot be read
        try:
            merged = with_env_file(merged)
            return cls(Settings.from_env(merged), merged)
        except ConfigError as exc:
            # its home and key as they are, unchecked: a home now refused (the user's own, `CC_API_HOME=~`) still
            # names where an older version's gateway runs
            settings = Settings(home=home_from_env(merged), api_key=merged.get("CC_API_KEY") or None)
            return cls(settings, merged, problem=str(exc))

    # -- the state file ------------------------------------------------------------------
    def read_state(self) -> GatewayState | None:
        try:
            return GatewayState.from_json(self.paths.state_file.read_bytes())
        except (FileNotFoundError, NotADirectoryError):  # none yet, or a home that cannot be one (under a file)
            return None

    def running_state(self) -> GatewayState | None:
        """The recorded gateway if it is still that process; a stale record is removed."""
        state = self.read_state()
        if state is not None and _is_alive(state):
            return state
        if self.paths.state_file.exists():
            self._forget(state)
        return None

    def claim_home(self) -> int | None:
        """Lock this home for one gateway, as long as the returned descriptor stays open (the process's life, for
        ``run``); ``None`` while another gateway holds it. The state file names a gateway only once it serves: two
        started together (``start`` beside the service starting at login, ``--port 0`` twice) both found none and ran
        on one database."""
        with _private_state(self.paths.home):
            self.paths.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.paths.run_dir / "gateway.lock", os.O_RDWR | os.O_CREAT, 0o600)  # not inherited
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # Who holds it, for `status`, `stop` and a second `start` until the state file names it (see starting_pid).
        me = current_process()
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps({"pid": me.pid, "process_started": me.started}), 0)
        self._home_lock = fd
        return fd

    def starting_pid(self) -> int | None:
        """The gateway that has claimed this home (``claim_home``) but has not recorded itself yet: it is loading,
        binding, opening its store. ``None`` when there is none; check ``running_state`` first, since the record
        stays while the gateway serves. Read without taking the lock: a ``status`` holding it even for a moment
        would make a gateway starting just then give up with exit code 4."""
        info = self._home_holder()
        return None if info is None else info.pid

    def _home_holder(self) -> ProcessInfo | None:
        try:
            raw = orjson.loads((self.paths.run_dir / "gateway.lock").read_bytes())
            pid, started = raw["pid"], raw["process_started"]
        except (OSError, orjson.JSONDecodeError, TypeError, KeyError):
            return None
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or not isinstance(started, str):
            return None
        info = inspect_process(pid)
        if info is None or info.started != started or not _looks_like_gateway(info.argv):
            return None
        return info

    @property
    def url(self) -> str:
        """The gateway this machine's ``cc-api start`` runs (its state file), else where the settings put it."""
        state = self.running_state()
        return state.url if state is not None else self.settings.base_url

    @contextmanager
    def recorded(self, port: int | None = None) -> Iterator[GatewayState]:
        """Record this process as the running gateway for as long as the block runs, at ``port``: the one it bound,
        not the settings' 0 (any free port), which no other command could reach."""
        me = current_process()
        settings = self.settings if port is None else self.settings.with_overrides(port=port)
        state = GatewayState(
            pid=me.pid,
            pgid=os.getpgrp(),
            process_started=me.started,
            url=settings.base_url,
            host=settings.host,
            port=settings.port,
            started_at=time.time(),
            version=__version__,
            sid=os.getsid(0),
        )
        self.paths.home.mkdir(parents=True, exist_ok=True)
        temporary = self.paths.state_file.with_suffix(".tmp")
        temporary.write_bytes(state.to_json())
        temporary.replace(self.paths.state_file)
        try:
            yield state
        finally:
            self._forget(state)
            if self._home_lock is not None:  # still held to the end, but no longer a gateway that is starting
                os.ftruncate(self._home_lock, 0)

    def _forget(self, state: GatewayState | None) -> None:
        """Remove the state file if it still describes ``state`` (a newer gateway may own it)."""
        if self.read_state() == state:
            self.paths.state_file.unlink(missing_ok=True)

    # -- start / stop / status -------------------------------------------------------------
    def start(
        self,
        host: str | None = None,
        port: int | None = None,
        mock_model: bool = False,
        timeout: float = START_TIMEOUT,
        cwd: Path | None = None,
    ) -> StartResult:
        """Run ``cc-api run`` detached (own session, stdin from /dev/null, output to the log file)
        and wait until it answers ``/healthz``. ``cwd`` (default: ours) is where Claude Code's tools
        act unless ``CC_API_CWD`` says otherwise."""
        overrides = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
        settings = self.settings.with_overrides(**overrides)  # port 0: the gateway records the port it got
        running = self.running_state()
        if running is not None:
            return self._already_running(running, settings)
        if (other := self.starting_pid()) is not None:  # as `systemctl start` joins the start under way
            return self._join_start(other, settings, timeout)
        command = [
            self.python,
            "-m",
            "ccapi",
            "run",
            "--host",
            settings.host,
            "--port",
            str(settings.port),
            "--no-console-log",
            *(["--mock-model"] if mock_model else []),
        ]
        with _private_state(self.paths.home):  # the gateway tightens older state itself once it runs
            self.paths.log_dir.mkdir(parents=True, exist_ok=True)
            log = self.paths.log_file.open("ab")
        offset = size(self.paths.log_file)
        with log:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**self.env, "CC_API_HOME": str(self.paths.home)},
                cwd=cwd,
            )
        try:
            state = self.wait_healthy(lambda s: s.pid == child.pid, timeout, gone=lambda: child.poll() is not None)
        except KeyboardInterrupt:  # Ctrl-C cancels the start, as the timeout does: no gateway is left half started
            _kill_group(child.pid)
            child.wait()
            raise
        if state is not None:
            return StartResult("started", f"started at {state.url} (pid {state.pid}){_mock_note(mock_model)}", state)
        code = child.poll()
        if code == _EXIT_HOME_TAKEN:  # another start (the service at login, a second `start`) claimed the home first
            if (running := self.running_state()) is not None:
                return self._already_running(running, settings)
            if (other := self.starting_pid()) is not None:
                return self._join_start(other, settings, timeout)
        if code is not None and code < 0:  # a signal: `cc-api stop` (or a supervisor) beside this start, the OOM killer
            return self._start_failed(f"the gateway was ended by {_signal_name(-code)} before it was healthy", offset)
        if code is not None:
            return self._start_failed(f"the gateway exited with code {code} before it was healthy", offset)
        _kill_group(child.pid)
        child.wait()
        where = f"{settings.base_url}/healthz" if settings.port else "/healthz"
        return self._start_failed(f"the gateway did not answer {where} within {timeout:g} s", offset)

    def _already_running(self, running: GatewayState, wanted: Settings, note: str = "") -> StartResult:
        """Done already, as ``systemctl start`` says (exit code 0); but a ``--host`` or ``--port`` the running gateway
        does not listen on is pointed out, rather than leaving a script to find nothing there."""
        message = f"already running at {running.url} (pid {running.pid}{note})"
        if (wanted.port and wanted.port != running.port) or wanted.host != running.host:
            message += f", not at {wanted.base_url}: `cc-api stop` it first to move it"
        return StartResult("already_running", message, running)

    def _join_start(self, pid: int, wanted: Settings, timeout: float) -> StartResult:
        """Wait for the gateway ``pid`` that is starting for this home (never ours to kill) to answer."""
        offset = size(self.paths.log_file)
        state = self.wait_healthy(lambda s: s.pid == pid, timeout, gone=lambda: self.starting_pid() != pid)
        if state is not None:
            return self._already_running(state, wanted, "; it was starting")
        if (running := self.running_state()) is not None and running.pid == pid:
            why = f"did not answer {running.url}/healthz within {timeout:g} s"
        elif self.starting_pid() == pid:
            why = f"did not answer /healthz within {timeout:g} s"
        else:
            why = "exited before it was healthy"
        return self._start_failed(f"another gateway (pid {pid}) was starting for {self.paths.home}, and {why}", offset)

    def wait_healthy(
        self, accept: Callable[[GatewayState], bool], timeout: float, gone: Callable[[], bool] = lambda: False
    ) -> GatewayState | None:
        """The recorded gateway once ``accept`` takes it and it answers ``/healthz``; ``None`` after ``timeout``
        seconds, or once ``gone()`` says it never will. How ``start`` and ``install-service`` know it came up."""
        deadline = time.monotonic() + timeout
        while not gone():
            state = self.read_state()
            if state is not None and accept(state) and _get(f"{state.url}/healthz")[0] == 200:
                return state
            if time.monotonic() > deadline:
                return None
            time.sleep(_POLL)
        return None

    def _start_failed(self, message: str, offset: int) -> StartResult:
        return StartResult(
            "failed",
            f"{message}; see {self.paths.log_file}",
            log_tail=lines_since(self.paths.log_file, offset, LOG_TAIL_LINES),
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> StopResult:
        """SIGTERM (the gateway interrupts turns, flushes events, closes Claude Code), then
        SIGKILL of its process group as the backstop for anything left."""
        state = self.running_state()
        if state is None:
            if (starting := self._home_holder()) is not None:
                return self._stop_starting(starting, timeout)
            return StopResult("not_running", "not running")
        own_group = state.pgid == state.pid and state.sid in (None, state.pid)
        result = _terminate(state.pid, lambda: _is_alive(state), own_group, timeout)
        if result.outcome == "not_running":  # it ended between the record's read and the signal
            result = StopResult("stopped", f"stopped (pid {state.pid})", state.pid)
        if result.outcome != "failed":
            self._forget(state)
        return result

    def _stop_starting(self, holder: ProcessInfo, timeout: float) -> StopResult:
        """Stop a gateway that is still starting, as ``systemctl stop`` cancels a start: it keeps a SIGTERM until
        it serves, then stops as always (one still loading, before it handles signals, just ends)."""
        pid = holder.pid
        try:
            own_group = os.getsid(pid) == pid == os.getpgid(pid)  # as `stop` judges a running gateway's (its sid)
        except OSError:  # gone, or (some systems) in a session another than ours: not ours to judge
            own_group = False

        def alive() -> bool:
            return (info := inspect_process(pid)) is not None and info.started == holder.started

        result = _terminate(pid, alive, own_group, timeout)
        self.running_state()  # a record it wrote just before the signal went with it: removed
        if result.outcome == "stopped":
            return replace(result, message=f"{result.message} as it was starting")
        return result

    def status(self) -> GatewayStatus:
        state = self.running_state()
        if state is None:
            return GatewayStatus(running=False, starting_pid=self.starting_pid())
        uptime = max(0.0, time.time() - state.started_at)
        code, health = _get(f"{state.url}/healthz", self.settings.api_key)  # the key shows the limits too
        if code == 0:
            return GatewayStatus(True, state, uptime_seconds=uptime, problem=f"{state.url} does not answer")
        live = health.get("live_engines") if isinstance(health, dict) else None
        limits = (health.get("limits") or {}).get("summary") if isinstance(health, dict) else None
        persisted, more, problem = self._count_sessions(state.url)
        from ccapi.observability.headline import headline  # prometheus_client: only `status` pays for it

        metrics_code, text = _fetch(f"{state.url}/metrics", self.settings.api_key)
        return GatewayStatus(
            True,
            state,
            healthy=code == 200,
            uptime_seconds=uptime,
            live_sessions=live,
            persisted_sessions=persisted,
            persisted_sessions_more=more,
            problem=problem if code == 200 else f"/healthz answered {code}",
            limits=limits,
            mock_model=isinstance(health, dict) and health.get("mock_model") is True,
            figures=headline(text.decode()) if metrics_code == 200 else None,
        )

    def _count_sessions(self, url: str) -> tuple[int | None, bool, str | None]:
        count, cursor = 0, ""
        for _ in range(_SESSION_PAGES):
            code, page = _get(f"{url}/api/sessions?limit=100{cursor}", self.settings.api_key)
            if code == 401:
                return None, False, "/api/sessions needs CC_API_KEY (missing or different here)"
            if code != 200 or not isinstance(page, dict):
                return None, False, f"/api/sessions answered {code}"
            count += len(page.get("data", []))
            if not page.get("has_more"):
                return count, False, None
            cursor = f"&after={page.get('next_after')}"
        return count, True, None


@contextmanager
def _private_state(home: Path) -> Iterator[None]:
    """Create state in ``home`` private; a home that cannot hold it (under a file, not writable) is a setting to fix,
    told in one line: it was a traceback."""
    try:
        with private_umask():
            yield
    except OSError as exc:
        raise ConfigError(f"cannot use {home} (CC_API_HOME): {exc.strerror} ({exc.filename})") from exc


def _mock_note(mock_model: bool) -> str:
    return f" {MOCK_NOTE}" if mock_model else ""


def _is_alive(state: GatewayState) -> bool:
    info = inspect_process(state.pid)
    return info is not None and info.started == state.process_started and _looks_like_gateway(info.argv)


def _looks_like_gateway(argv: tuple[str, ...]) -> bool:
    """``cc-api run …`` (the script, seen as ``python …/cc-api run``) or ``python -m ccapi run …``."""
    return "run" in argv and any(Path(arg).name in ("cc-api", "ccapi") for arg in argv)


def _terminate(pid: int, alive: Callable[[], bool], own_group: bool, timeout: float) -> StopResult:
    """SIGTERM, up to ``timeout`` seconds for the process to end, then SIGKILL: of its whole group when the group
    is its own (what is left of it is the gateway's children), else of the process alone if it is still there."""
    try:
        os.kill(pid, signal.SIGTERM)
    except PermissionError:
        return StopResult("failed", f"not allowed to signal pid {pid}", pid)
    except ProcessLookupError:
        return StopResult("not_running", "not running")
    exited = _wait_until_gone(alive, timeout)
    if own_group:
        _kill_group(pid)
    elif not exited:
        _kill(pid)
    if not exited and not _wait_until_gone(alive, 5):
        return StopResult("failed", f"pid {pid} survived SIGKILL", pid)
    if exited:
        return StopResult("stopped", f"stopped (pid {pid})", pid)
    return StopResult("killed", f"pid {pid} did not exit within {timeout:g} s and was killed", pid)


def _wait_until_gone(alive: Callable[[], bool], timeout: float) -> bool:
    """Whether the process ``alive`` looks at ended within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while alive():
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL)
    return True


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _get(url: str, api_key: str | None = None, timeout: float = 2.0) -> tuple[int, Any]:
    """``(status, JSON body)``; status 0 when nothing answered."""
    code, body = _fetch(url, api_key, timeout)
    if not 200 <= code < 300:
        return code, None
    try:
        return code, orjson.loads(body)
    except ValueError:
        return 0, None


def _fetch(url: str, api_key: str | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    """``(status, body)``; status 0 when nothing answered."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with _direct.open(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""
    except OSError:
        return 0, b""
