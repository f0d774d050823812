"""A minimal keep-alive HTTP/1.1 client on asyncio streams, for timing the gateway rather than a client library.

httpx spends ~1.5 ms of the bench process's CPU on each request and its reply on this 2-core machine: more than the
gateway's own HTTP handling. The overhead benchmark times CC API through this client (one connection, JSON bodies,
``Content-Length`` or chunked replies) so that the ratio it reports is the gateway's cost, and times a turn through
httpx beside it to show what a typical client library adds on top.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes

    def json(self) -> dict:  # type: ignore[type-arg]
        return orjson.loads(self.body)


class Http1:
    """One persistent connection to ``host:port``; requests go one at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Http1:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    async def post(self, path: str, body: dict) -> Reply:  # type: ignore[type-arg]
        """POST ``body`` as JSON; the whole reply."""
        status, chunked, length = await self._send(path, body)
        return Reply(status, b"".join([piece async for piece in self._body(chunked, length)]))

    async def stream_lines(self, path: str, body: dict) -> AsyncIterator[str]:  # type: ignore[type-arg]
        """POST ``body`` as JSON; the reply's lines as they arrive (for an event stream)."""
        status, chunked, length = await self._send(path, body)
        if status != 200:
            raise RuntimeError(f"{path}: {status} {b''.join([p async for p in self._body(chunked, length)])!r}")
        pending = b""
        async for piece in self._body(chunked, length):
            pending += piece
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode()
        if pending:
            yield pending.decode()

    async def _send(self, path: str, body: dict) -> tuple[int, bool, int]:  # type: ignore[type-arg]
        assert self._reader is not None and self._writer is not None, "use it as an async context manager"
        payload = orjson.dumps(body)
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\n\r\n"
        )
        self._writer.write(head.encode() + payload)
        lines = (await self._reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = dict(line.split(":", 1) for line in lines[1:] if line)
        fields = {name.strip().lower(): value.strip().lower() for name, value in headers.items()}
        return status, fields.get("transfer-encoding") == "chunked", int(fields.get("content-length", 0))

    async def _body(self, chunked: bool, length: int) -> AsyncIterator[bytes]:
        assert self._reader is not None
        if not chunked:
            yield await self._reader.readexactly(length)
            return
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")  # the empty trailer
                return
            yield await self._reader.readexactly(size)
            await self._reader.readexactly(2)
