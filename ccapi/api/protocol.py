"""The HTTP/1.1 connection protocol, with a deadline on receiving a whole request head."""

from __future__ import annotations

from sanic.http import Stage
from sanic.server.protocols.http_protocol import HttpProtocol

_TICK = 1.0
"""Seconds between timeout checks of a connection. Sanic checks every half of its shortest
timeout (15 s for a 30 s one), so a deadline of 30 s cut a stalled head at 45 s."""


class HeadDeadlineProtocol(HttpProtocol):
    """Sanic measures ``REQUEST_TIMEOUT`` from the last packet received, so a head sent one
    byte at a time never times out — before authentication, so anyone who can connect could
    hold file descriptors for ever. Here the clock keeps running while the head arrives: the
    whole head must be in within ``REQUEST_TIMEOUT`` of its first byte (the body has its own
    deadline, ``DeadlineRequest``)."""

    def check_timeouts(self) -> None:
        super().check_timeouts()
        handle = self._callback_check_timeouts
        if handle is not None and not handle.cancelled() and handle.when() - self.loop.time() > _TICK:
            handle.cancel()
            self._callback_check_timeouts = self.loop.call_later(_TICK, self.check_timeouts)

    def data_received(self, data: bytes) -> None:
        if self.http is not None and self.http.stage is Stage.REQUEST:
            started = self._time
            super().data_received(data)
            self._time = started
        else:
            super().data_received(data)
