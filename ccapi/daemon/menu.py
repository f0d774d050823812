"""``cc-api-menu``: a macOS menu bar item to start, stop and open the gateway.

``MenuController`` holds all the behaviour and talks to the same launcher and state as the CLI,
so it is tested on any platform with fakes; the rumps UI below is only wiring. rumps is imported
inside ``main`` alone: it exists only on macOS (the ``[macos]`` extra).
"""

from __future__ import annotations

import sys
import threading
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ccapi.config import ConfigError
from ccapi.daemon.console import duration
from ccapi.daemon.launcher import GatewayState, GatewayStatus, StartResult, StopResult
from ccapi.paths import StatePaths

REFRESH_SECONDS = 5


class GatewayControl(Protocol):
    """The part of ``ccapi.daemon.launcher.Launcher`` the menu uses."""

    paths: StatePaths

    def status(self) -> GatewayStatus: ...
    def start(self, *, cwd: Path | None = None) -> StartResult: ...
    def stop(self) -> StopResult: ...
    def running_state(self) -> GatewayState | None: ...


@dataclass(frozen=True)
class MenuState:
    title: str
    detail: str
    can_start: bool
    can_stop: bool
    can_open: bool


class MenuController:
    def __init__(self, launcher: GatewayControl, open_url: Callable[[str], Any] = webbrowser.open) -> None:
        self.launcher = launcher
        self.open_url = open_url

    def refresh(self) -> MenuState:
        status = self.launcher.status()
        if status.starting_pid is not None and not status.running:
            detail = f"Starting (pid {status.starting_pid})"
            return MenuState("CC ◌", detail, can_start=False, can_stop=True, can_open=False)
        if not status.running or status.state is None:
            return MenuState("CC ○", "Stopped", can_start=True, can_stop=False, can_open=False)
        sessions = f"{status.live_sessions if status.live_sessions is not None else '?'} live"
        detail = f"{status.state.url} · {sessions} · up {duration(status.uptime_seconds or 0)}"
        if status.limits:
            detail += f" · {status.limits}"
        if not status.healthy:
            return MenuState(
                "CC ◐", f"Not healthy: {status.problem or detail}", can_start=False, can_stop=True, can_open=True
            )
        return MenuState("CC ●", detail, can_start=False, can_stop=True, can_open=True)

    def start(self) -> str:
        """In the home directory: an app opened from Finder has ``/`` as its working directory, and
        Claude Code's tools act there unless ``CC_API_CWD`` says otherwise."""
        try:
            result = self.launcher.start(cwd=Path.home())
        except ConfigError as exc:
            return f"Start failed: {exc}"
        if result.outcome == "failed":
            return f"Start failed: {result.message}"
        return result.message[0].upper() + result.message[1:]

    def stop(self) -> str:
        result = self.launcher.stop()
        return result.message[0].upper() + result.message[1:]

    def open_in_browser(self) -> bool:
        """The console page of the running gateway; ``False`` if none runs."""
        state = self.launcher.running_state()
        if state is None:
            return False
        self.open_url(f"{state.url}/")
        return True

    def open_log(self) -> None:
        self.open_url(self.launcher.paths.log_file.as_uri())


def main() -> None:
    try:
        import rumps
    except ImportError:
        sys.exit("cc-api-menu needs macOS and the menu extra: pip install 'cc-api[macos]'")
    from ccapi.daemon.launcher import Launcher

    _menu_app(rumps, MenuController(Launcher.from_environment())).run()


def _menu_app(rumps: Any, controller: MenuController) -> Any:
    """The rumps app; start and stop run on a worker thread so the menu never freezes, and their
    outcome is shown by the main-thread timer."""

    class CCAPIMenu(rumps.App):
        def __init__(self) -> None:
            super().__init__("CC API", title="CC ○", quit_button="Quit")
            self.detail = rumps.MenuItem("…")
            self.start_item = rumps.MenuItem("Start")
            self.stop_item = rumps.MenuItem("Stop")
            self.open_item = rumps.MenuItem("Open in Browser")
            self.menu = [
                self.detail,
                None,
                self.start_item,
                self.stop_item,
                None,
                self.open_item,
                rumps.MenuItem("Open Log", callback=lambda _: controller.open_log()),
            ]
            self.outcome: str | None = None
            self.busy = False
            rumps.Timer(self.tick, REFRESH_SECONDS).start()
            self.tick(None)

        def tick(self, _: Any) -> None:
            if self.outcome:
                rumps.notification("CC API", "", self.outcome)
                self.outcome = None
            state = controller.refresh()
            self.title, self.detail.title = state.title, state.detail
            self.start_item.set_callback(self.on_start if state.can_start and not self.busy else None)
            self.stop_item.set_callback(self.on_stop if state.can_stop and not self.busy else None)
            self.open_item.set_callback((lambda _: controller.open_in_browser()) if state.can_open else None)

        def in_background(self, action: Callable[[], str]) -> None:
            def work() -> None:
                self.outcome = action()
                self.busy = False

            self.busy = True
            threading.Thread(target=work, daemon=True).start()

        def on_start(self, _: Any) -> None:
            self.in_background(controller.start)

        def on_stop(self, _: Any) -> None:
            self.in_background(controller.stop)

    return CCAPIMenu()
