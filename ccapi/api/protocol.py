"""The HTTP/1.1 connection protocol, with a deadline on receiving a whole request head."""

from __future__ import annotations

from sanic.http import Stage
from sanic.server.protocols.http_protocol import HttpProtocol


class HeadDeadlineProtocol(HttpProtocol):
    """Sanic measures ``REQUEST_TIMEOUT`` from the last packet received, so a head sent one
    byte at a time never times out — before authentication, so anyone who can connect could
    hold file descriptors for ever. Here the clock keeps running while the head arrives: the
    whole head must be in within ``REQUEST_TIMEOUT`` of its first byte (the body has its own
    deadline, ``DeadlineRequest``)."""

    def data_received(self, data: bytes) -> None:
        if self.http is not None and self.http.stage is Stage.REQUEST:
            started = self._time
            super().data_received(data)
            self._time = started
        else:
            super().data_received(data)
