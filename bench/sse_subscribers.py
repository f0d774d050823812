"""The client side of ``bench.stream``: N concurrent SSE subscribers of one session, in a process of their own, and
optionally one more that stops reading.

    python -m bench.sse_subscribers BASE_URL SESSION_ID AFTER_SEQ N [--stalled]

Each stream starts one event before ``AFTER_SEQ``: that replayed event proves the subscription is live (the gateway
subscribes before it replays), so ``ready`` is printed once every stream has it. Then one JSON line: per subscriber,
the seqs it received after ``AFTER_SEQ`` as runs ``[first seq, count, time.monotonic()]``, one per read from the
socket (CLOCK_MONOTONIC is system-wide on Linux, so comparable with the gateway's commit times); this process's CPU
seconds from ``ready`` to the last ``turn.completed`` (``cpu_seconds``) and for checking the ids afterwards
(``verify_cpu_seconds``); and, with ``--stalled``, what the stalled subscriber got.

This process shares the machine's cores with the gateway, so while the turn streams it does as little as a client
can: each stream is a raw asyncio connection (the GET written by hand, the chunked body decoded by its size lines),
and each read is kept with its arrival time and byte offset, only its tail looked at for ``turn.completed``. Once
every stream has ended, each one's bytes are parsed in full: every frame's ``id:``, and which read completed it.
The ids show whether every event arrived exactly once and in order; the reads give each event's receipt time.

The stalled subscriber connects with a tiny receive window, reads up to its first event and then nothing while the
others stream the turn. Afterwards it reads what the gateway had sent it before cutting it off, and reconnects with
``Last-Event-ID`` for the rest.
"""

from __future__ import annotations

import asyncio
import bisect
import re
import resource
import socket
import sys
import time
from urllib.parse import urlsplit

import orjson

TIMEOUT = 300.0
#: A frame's ``id:`` line, with the newline that ends the frame before (or the stream's first keep-alive).
IDS = re.compile(rb"\nid: (\d+)\n")
FRAME_END = b"\n\n"
TURN_END = b"\nevent: turn.completed\n"
TAIL = 4096  # enough for the turn.completed frame


def cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


class Stream(asyncio.Protocol):
    """One SSE response over a raw connection, kept as read: its body's bytes and, per read, where it ended and when.

    Ends (``done``) once the frame of ``turn.completed`` is complete, or when the gateway ends the response."""

    def __init__(self, request: bytes, marker: int | None = None) -> None:
        self.request = request
        self.marker = b"\nid: %d\n" % marker if marker is not None else None  # the replayed event: live
        loop = asyncio.get_running_loop()
        self.live, self.done = loop.create_future(), loop.create_future()
        if marker is None:
            self.live.set_result(None)
        self.transport: asyncio.Transport | None = None
        self.pieces: list[bytes] = [b"\n"]  # as if after a frame: ``IDS`` starts with a newline
        self.size = 1
        self.reads: list[tuple[int, float]] = []  # (body bytes so far, time.monotonic()) per read
        self.turn_ended = False
        self.cut_off = False
        self._head: bytes | None = b""  # until the response head is complete
        self._chunked = False
        self._left = 0  # payload bytes of the current chunk still to come
        self._crlf = 0  # bytes of the CRLF after a chunk's payload still to come
        self._line = b""  # a chunk-size line read in part
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self._head is not None:
            head = self._head + data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                self._head = head
                return
            self._head = None
            status, _, headers = head[:end].partition(b"\r\n")
            if status.split()[1] != b"200":
                self._fail(RuntimeError(f"stream refused: {status.decode()}"))
                return
            self._chunked = b"transfer-encoding: chunked" in headers.lower()
            data = head[end + 4 :]
        if self._chunked:
            self._dechunk(data)
        else:
            self._keep(data)
        self.reads.append((self.size, now))
        if not self.live.done() and self.marker is not None and self.marker in b"".join(self.pieces[:8]):
            self.live.set_result(None)
        if self.turn_ended and not self.done.done():
            self.done.set_result(None)

    def _dechunk(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            if self._left:
                j = min(n, i + self._left)
                self._keep(data[i:j])  # the whole read, uncopied, when it is all payload
                self._left -= j - i
                self._crlf = 0 if self._left else 2
                i = j
            elif self._crlf:
                take = min(self._crlf, n - i)
                if data[i : i + take] != b"\r\n"[2 - self._crlf : 2 - self._crlf + take]:
                    self._fail(RuntimeError("malformed chunked encoding"))
                    return
                self._crlf -= take
                i += take
            else:
                k = data.find(b"\n", i)
                if k < 0:
                    self._line += data[i:]
                    return
                line, self._line, i = self._line + data[i:k], b"", k + 1
                self._left = int(line.split(b";")[0].strip(), 16)
                if not self._left:  # the last chunk: the gateway ended the response
                    self.cut_off = True
                    if not self.done.done():
                        self.done.set_result(None)
                    return

    def _keep(self, piece: bytes) -> None:
        if not piece:
            return
        self.pieces.append(piece)
        self.size += len(piece)
        self._tail = (self._tail + piece)[-TAIL:] if len(piece) < TAIL else piece[-TAIL:]
        if self._tail.endswith(FRAME_END):
            last = self._tail.rfind(b"\nid: ")
            self.turn_ended = last >= 0 and self._tail.find(TURN_END, last, last + 64) >= 0

    def _fail(self, error: Exception) -> None:
        for future in (self.live, self.done):
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RuntimeError("the stream ended before the turn completed"))

    def runs(self, skip: int | None = None) -> tuple[list[list[float]], int]:
        """Every frame's seq, as runs of consecutive seqs completed by the same read: ``[first, count, time]``
        (a seq out of order starts a run of its own, so the verdict sees it); and the last seq. ``skip``: the
        replayed marker event, not counted."""
        data = b"".join(self.pieces)
        self.pieces = []
        ends = [size for size, _ in self.reads]
        runs: list[list[float]] = []
        last = 0
        for match in IDS.finditer(data):
            seq = int(match[1])
            end = data.find(FRAME_END, match.end() - 1)
            if end < 0:  # an incomplete last frame (the stalled stream, cut off)
                break
            if seq == skip:
                continue
            read = bisect.bisect_right(ends, end + 1)
            at = self.reads[read][1]
            if runs and runs[-1][2] == at and runs[-1][0] + runs[-1][1] == seq:
                runs[-1][1] += 1
            else:
                runs.append([seq, 1, at])
            last = seq
        return runs, last


def get(base_url: str, path: str, headers: dict[str, str]) -> bytes:
    address = urlsplit(base_url)
    lines = [f"GET {path} HTTP/1.1", f"Host: {address.netloc}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def open_stream(
    base_url: str, path: str, marker: int | None = None, headers: dict[str, str] | None = None
) -> Stream:
    address = urlsplit(base_url)
    stream = Stream(get(base_url, path, headers or {}), marker)
    await asyncio.get_running_loop().create_connection(
        lambda: stream, address.hostname or "127.0.0.1", address.port or 80
    )
    return stream


def stall(base_url: str, path: str, after: int) -> tuple[socket.socket, bytes]:
    """Open a stream that reads up to its first event and then stops reading; and what it read."""
    address = urlsplit(base_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connect: a tiny window
    sock.settimeout(TIMEOUT)
    sock.connect((address.hostname, address.port))
    sock.sendall(get(base_url, f"{path}?after={after - 1}", {}))
    head = b""
    while f"\nid: {after}\n".encode() not in head:
        head += sock.recv(4096)
    return sock, head


async def resume(base_url: str, path: str, stalled: tuple[socket.socket, bytes], after: int) -> dict[str, object]:
    """Read what the stalled stream holds, then pick up from its last event with ``Last-Event-ID``."""
    sock, head = stalled
    sock.settimeout(30)
    first = Stream(b"")
    first.data_received(head)
    while not first.done.done() and (chunk := await asyncio.to_thread(sock.recv, 1 << 20)):
        first.data_received(chunk)
    sock.close()
    if first.turn_ended:  # never cut off: the socket buffers held the whole turn
        return {"cut_off": False, "before_cut_off": first.runs(skip=after)[0], "after_resume": []}
    before, last = first.runs(skip=after)
    rest = await open_stream(base_url, path, headers={"Last-Event-ID": str(last or after)})
    await asyncio.wait_for(rest.done, TIMEOUT)
    assert rest.transport is not None
    rest.transport.close()
    return {"cut_off": True, "before_cut_off": before, "after_resume": rest.runs()[0]}


async def main(base_url: str, session_id: str, after: int, count: int, stalled: bool) -> None:
    path = f"/api/sessions/{session_id}/events/stream"
    stuck = stall(base_url, path, after) if stalled else None
    streams = [await open_stream(base_url, f"{path}?after={after - 1}", after) for _ in range(count)]
    await asyncio.wait_for(asyncio.gather(*(s.live for s in streams)), TIMEOUT)
    cpu = cpu_seconds()
    print("ready", flush=True)
    await asyncio.wait_for(asyncio.gather(*(s.done for s in streams)), TIMEOUT)
    streaming = cpu_seconds() - cpu
    for stream in streams:
        if not stream.turn_ended:
            raise RuntimeError("a stream ended before the turn completed")
        assert stream.transport is not None
        stream.transport.close()
    cpu = cpu_seconds()
    subscribers = [stream.runs(skip=after)[0] for stream in streams]
    out: dict[str, object] = {
        "subscribers": subscribers,
        "cpu_seconds": streaming,
        "verify_cpu_seconds": cpu_seconds() - cpu,
    }
    if stuck is not None:
        out["stalled"] = await resume(base_url, path, stuck, after)
    sys.stdout.buffer.write(orjson.dumps(out) + b"\n")


if __name__ == "__main__":
    url, session, after_seq, subscribers = sys.argv[1:5]
    asyncio.run(main(url, session, int(after_seq), int(subscribers), "--stalled" in sys.argv[5:]))
