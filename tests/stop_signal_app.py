"""A minimal Sanic app run as ``cc-api run`` runs the gateway (its own socket, one process, ``StopOnSignal``), which
signals itself at one moment of its start: ``python -m tests.stop_signal_app PHASE SIGNAL``
(tests/test_stop_signals.py). It prints ``stopped cleanly`` from its after-stop listener."""

from __future__ import annotations

import os
import signal
import sys
import time

from sanic import Sanic
from sanic.server.socket import bind_socket

from ccapi.daemon.signals import StopOnSignal

PHASES = ("bound", "before_start", "after_start")


def main(phase: str, signum: int) -> None:
    app = Sanic("stop_signal_app")

    def signal_self(*_: object) -> None:
        os.kill(os.getpid(), signum)
        time.sleep(0.05)  # the signal arrives while this phase is still running

    if phase == "before_start":
        app.before_server_start(signal_self)
    elif phase == "after_start":
        app.after_server_start(signal_self)
    app.after_server_stop(lambda *_: print("stopped cleanly", flush=True))
    stop = StopOnSignal()
    stop.install()
    sock = bind_socket("127.0.0.1", 0)
    if phase == "bound":
        signal_self()
    stop.attach(app)  # as `cc-api run`: the app is made once the port is bound
    app.run(sock=sock, single_process=True, motd=False, access_log=False)


if __name__ == "__main__":
    main(sys.argv[1], signal.Signals[sys.argv[2]])
