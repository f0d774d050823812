"""A TCP proxy on loopback between PostgreSQL clients and a test server, that fails the way networks do.

``freeze`` makes every connection open now go silent, both ways, without a reset: what a host that vanished, or a
NAT that dropped the flow, looks like to both ends (new connections go through). ``cut_after_commit`` lets the next
``COMMIT`` of a transaction that ran ``pg_notify`` (an event batch) reach the server and take effect, waits for the
server's answer, drops it, and closes the client's side: the client never learns that its commit went through.

Clients must connect with ``sslmode=disable&gssencmode=disable`` (``url``): the proxy reads the client's messages, so
they must be plain. No other traffic than to the loopback server."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator

from tests.gateway import free_port


class _Link:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self.frozen = False
        self.dropping = False  # the server's answers are swallowed (a commit cut)
        self.answered = threading.Event()  # the server said something since ``dropping`` began
        self.notified = False  # the transaction in progress ran pg_notify

    def close(self) -> None:
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class PgProxy:
    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._cuts = 0
        self.cut = 0
        """Commits cut so far (each took effect on the server)."""
        self._stopped = False
        threading.Thread(target=self._accept, name="pgproxy-accept", daemon=True).start()

    def url(self, database_url: str) -> str:
        """``database_url`` (a ``tests.postgres`` one) through this proxy."""
        prefix, _, database = database_url.rpartition("/")
        host = prefix.rpartition("@")[0]
        return f"{host}@127.0.0.1:{self.port}/{database}?sslmode=disable&gssencmode=disable"

    def freeze(self) -> None:
        with self._lock:
            for link in self._links:
                link.frozen = True

    def cut_after_commit(self, times: int = 1) -> None:
        with self._lock:
            self._cuts += times

    def close(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for link in self._links:
                link.close()

    # -- the pumps ----------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.server_port))
            link = _Link(client, server)
            with self._lock:
                self._links.append(link)
            threading.Thread(target=self._from_client, args=(link,), daemon=True).start()
            threading.Thread(target=self._from_server, args=(link,), daemon=True).start()

    def _from_server(self, link: _Link) -> None:
        with contextlib.suppress(OSError):
            while data := link.server.recv(65536):
                if link.dropping:
                    link.answered.set()
                    continue
                if not link.frozen:
                    link.client.sendall(data)
        if not link.frozen:
            link.close()

    def _from_client(self, link: _Link) -> None:
        with contextlib.suppress(OSError):
            startup = _read(link.client, 4)
            (length,) = struct.unpack("!i", startup)
            link.server.sendall(startup + _read(link.client, length - 4))
            for kind, body in _messages(link.client):
                if link.frozen:
                    continue
                if kind == b"Q":
                    text = body.rstrip(b"\0").strip().upper()
                    if b"PG_NOTIFY" in text:
                        link.notified = True
                    if text == b"COMMIT" and link.notified and self._take_cut():
                        link.dropping = True
                        link.server.sendall(kind + struct.pack("!i", len(body) + 4) + body)
                        link.answered.wait(10)  # the server committed, and said so: nobody hears it
                        self.cut += 1
                        link.close()
                        return
                    if text in (b"COMMIT", b"ROLLBACK"):
                        link.notified = False
                link.server.sendall(kind + struct.pack("!i", len(body) + 4) + body)
        if not link.frozen:
            link.close()

    def _take_cut(self) -> bool:
        with self._lock:
            if self._cuts <= 0:
                return False
            self._cuts -= 1
            return True


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data


def _messages(sock: socket.socket) -> Iterator[tuple[bytes, bytes]]:
    while True:
        head = _read(sock, 5)
        (length,) = struct.unpack("!i", head[1:])
        yield head[:1], _read(sock, length - 4)
