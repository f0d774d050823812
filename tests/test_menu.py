"""The menu bar app's behaviour, through ``MenuController`` with a fake launcher and browser."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ccapi.config import ConfigError
from ccapi.daemon.console import render_status
from ccapi.daemon.launcher import GatewayState, GatewayStatus, StartResult, StopResult
from ccapi.daemon.menu import MenuController, main
from ccapi.paths import StatePaths

STATE = GatewayState(
    pid=42,
    pgid=42,
    process_started="1",
    url="http://127.0.0.1:8000",
    host="127.0.0.1",
    port=8000,
    started_at=0.0,
    version="0.1.0",
)


@dataclass
class FakeLauncher:
    paths: StatePaths
    current: GatewayStatus = field(default_factory=lambda: GatewayStatus(running=False))
    start_result: StartResult = field(
        default_factory=lambda: StartResult("started", "started at http://127.0.0.1:8000 (pid 42)", STATE)
    )
    calls: list[str] = field(default_factory=list)
    start_error: ConfigError | None = None

    def status(self) -> GatewayStatus:
        return self.current

    def start(self, *, cwd: Path | None = None) -> StartResult:
        self.calls.append(f"start in {cwd}")
        if self.start_error:
            raise self.start_error
        return self.start_result

    def stop(self) -> StopResult:
        self.calls.append("stop")
        return StopResult("stopped", "stopped (pid 42)", 42)

    def running_state(self) -> GatewayState | None:
        return self.current.state


@pytest.fixture
def launcher(tmp_path: Path) -> FakeLauncher:
    return FakeLauncher(StatePaths(tmp_path))


@pytest.fixture
def opened() -> list[str]:
    return []


@pytest.fixture
def controller(launcher: FakeLauncher, opened: list[str]) -> MenuController:
    return MenuController(launcher, open_url=opened.append)


def test_stopped_gateway_offers_start_only(controller: MenuController, opened: list[str]) -> None:
    state = controller.refresh()
    assert (state.title, state.detail) == ("CC ○", "Stopped")
    assert (state.can_start, state.can_stop, state.can_open) == (True, False, False)
    assert controller.open_in_browser() is False and opened == []


def test_running_gateway_shows_url_sessions_uptime(
    controller: MenuController, launcher: FakeLauncher, opened: list[str]
) -> None:
    launcher.current = GatewayStatus(
        True, STATE, healthy=True, uptime_seconds=3725, live_sessions=2, persisted_sessions=9
    )
    state = controller.refresh()
    assert state.title == "CC ●"
    assert state.detail == "http://127.0.0.1:8000 · 2 live · up 1h 02m 05s"
    assert (state.can_start, state.can_stop, state.can_open) == (False, True, True)
    assert controller.open_in_browser() is True
    assert opened == ["http://127.0.0.1:8000/"]


def test_subscription_windows_show_in_the_menu_and_status(controller: MenuController, launcher: FakeLauncher) -> None:
    launcher.current = GatewayStatus(
        True,
        STATE,
        healthy=True,
        uptime_seconds=60,
        live_sessions=0,
        limits="5-hour window 91% used (warning), resets 09:13 UTC",
    )
    assert controller.refresh().detail.endswith(" · 5-hour window 91% used (warning), resets 09:13 UTC")
    assert (
        "  limits    5-hour window 91% used (warning), resets 09:13 UTC"
        in render_status(launcher.current, launcher.paths).splitlines()
    )  # what `cc-api status` prints


def test_unhealthy_gateway_says_why(controller: MenuController, launcher: FakeLauncher) -> None:
    launcher.current = GatewayStatus(
        True, STATE, healthy=False, uptime_seconds=1, problem="http://127.0.0.1:8000 does not answer"
    )
    state = controller.refresh()
    assert state.title == "CC ◐" and state.detail == "Not healthy: http://127.0.0.1:8000 does not answer"
    assert state.can_stop and not state.can_start


def test_start_stop_and_open_log_use_the_launcher(
    controller: MenuController, launcher: FakeLauncher, opened: list[str]
) -> None:
    assert controller.start() == "Started at http://127.0.0.1:8000 (pid 42)"
    launcher.start_result = StartResult("failed", "the gateway exited with code 1", log_tail=("boom",))
    assert controller.start() == "Start failed: the gateway exited with code 1"
    launcher.start_error = ConfigError("CC_API_PORT='x' is not an integer")
    assert controller.start() == "Start failed: CC_API_PORT='x' is not an integer"
    assert controller.stop() == "Stopped (pid 42)"
    assert launcher.calls == [f"start in {Path.home()}"] * 3 + ["stop"]
    controller.open_log()
    assert opened == [launcher.paths.log_file.as_uri()]


def test_rumps_is_imported_by_main_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = "import sys, ccapi.daemon.cli, ccapi.daemon.menu, ccapi.app; print('rumps' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"
    sources = Path(__file__).parent.parent / "ccapi"
    importers = [p.name for p in sources.rglob("*.py") if "import rumps" in p.read_text()]
    assert importers == ["menu.py"]
    monkeypatch.setitem(sys.modules, "rumps", None)  # as on Linux: the import fails
    with pytest.raises(SystemExit, match=r"cc-api\[macos\]"):
        main()
