"""A stop signal (SIGTERM, SIGINT, SIGHUP) that arrives while the gateway starts is kept until it can stop cleanly.

``cc-api run`` binds its port before Sanic starts, so a supervisor (systemd, ``cc-api stop``, a test that saw the
port answer) may signal it at any moment of a start that takes ~0.4 s. Left to the defaults, a SIGTERM before
Sanic's own handlers killed the process outright (its state file left behind, its log silent); one during Sanic's
after-start listeners stopped the loop in the middle of a ``run_until_complete``, which swallowed the stop, and the
gateway ran on. Here a signal only records the request, from before the bind; once the server loop runs, the gateway
stops the way it does on any SIGTERM (turns interrupted, events flushed, Claude Code closed).
"""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

from sanic import Sanic

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""SIGHUP too: a foreground ``cc-api run`` whose terminal closed (or whose ssh dropped) stops cleanly, its turns
interrupted and recorded so, instead of dying on the spot."""
_FIRST = 1_000_000  # before any other after-start listener: Sanic's own handlers are in place by then


class StopOnSignal:
    """``install`` before the port is bound, ``attach`` the app once it is made: ``cc-api run`` binds first (the
    app is told the port it got, ``--port 0``), so a signal may come before there is an app to stop."""

    def __init__(self) -> None:
        self._stop = asyncio.Event()
        self._app: Sanic | None = None

    def install(self) -> None:
        """Call before the port is bound (in the main thread): from then on a stop signal is never lost."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._record)

    def attach(self, app: Sanic) -> None:
        """The app a signal stops, once it serves."""
        self._app = app
        app.after_server_start(self._take_over, priority=_FIRST)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()  # nothing waits on it yet: this only sets the flag

    def _take_over(self, app: Sanic) -> None:
        """Replace Sanic's handlers (which stop the loop at once) with ours, and wait for a request."""
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._stop.set)
        app.add_task(self._stop_when_serving(), name="ccapi-stop-on-signal")

    async def _stop_when_serving(self) -> None:
        await self._stop.wait()  # at once if the signal came before the loop's handlers were ours
        assert self._app is not None  # attached: its after-start listener started this
        # Until the last after-start listener has run the loop is inside a run_until_complete, which a stop would
        # end early (or not at all); Sanic marks the app running just before it enters run_forever.
        while not self._app.state.is_running:  # noqa: ASYNC110 - a plain flag of Sanic's, no event to await
            await asyncio.sleep(0.01)
        self._app.stop(terminate=False)
