"""A webhook receiver on loopback for tests: a tiny threaded HTTP server that records deliveries."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson

from tests.gateway import free_port


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    @property
    def event(self) -> dict[str, Any]:
        return orjson.loads(self.body)


class Answer(NamedTuple):
    status: int = 200
    headers: Mapping[str, str] = MappingProxyType({})
    body: bytes = b"ok"
    delay: float = 0.0
    """Seconds to wait before answering (a receiver that hangs)."""
    hold: threading.Event | None = None
    """Answer only once this is set (at most 30 s on): the test decides when the answer goes."""


class Receiver:
    """A webhook receiver on loopback: records every POST and answers with the scripted
    ``answers`` (``Answer`` fields, as tuples), then with 200."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.deliveries: list[Delivery] = []
        self.answers: list[tuple[Any, ...]] = []
        self.most_at_once = 0
        """The most POSTs it held unanswered at one time (a sender that waits for each answer: 1)."""
        self._unanswered = 0
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.deliveries.append(Delivery(dict(self.headers.items()), body))
                    answer = Answer(*receiver.answers.pop(0)) if receiver.answers else Answer()
                    receiver._unanswered += 1
                    receiver.most_at_once = max(receiver.most_at_once, receiver._unanswered)
                time.sleep(answer.delay)
                if answer.hold is not None:
                    answer.hold.wait(30)
                with receiver._lock:
                    receiver._unanswered -= 1
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the sender may have given up and gone
                    self.wfile.write(answer.body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, condition: Callable[[list[Delivery]], bool], timeout: float = 30) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                seen = list(self.deliveries)
            if condition(seen):
                return seen
            time.sleep(0.05)
        raise AssertionError(f"the receiver got {[d.event['type'] for d in seen]} only")

    def of_type(self, type_: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.deliveries if d.event["type"] == type_]
