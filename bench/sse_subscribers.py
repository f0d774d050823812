"""The client side of ``bench.stream``: N concurrent SSE subscribers of one session, in a process of their own, and
optionally one more that stops reading.

    python -m bench.sse_subscribers BASE_URL SESSION_ID AFTER_SEQ N [--stalled]

Each stream starts one event before ``AFTER_SEQ``: that replayed event proves the subscription is live (the gateway
subscribes before it replays), so ``ready`` is printed once every stream has it. Then one JSON line: per subscriber,
the seqs it received after ``AFTER_SEQ`` as runs ``[first seq, count, time.monotonic()]``, one per read from the
socket (CLOCK_MONOTONIC is system-wide on Linux, so comparable with the gateway's commit times); this process's CPU
seconds from ``ready`` to the end; and, with ``--stalled``, what the stalled subscriber got.

Parsing is kept cheap so that this process, which shares the machine's cores with the gateway, measures the gateway
rather than itself: each read is scanned for its complete frames' ``id:`` lines with one regex, not decoded event by
event. The ids alone show whether every event arrived exactly once and in order.

The stalled subscriber connects with a tiny receive window, reads up to its first event and then nothing while the
others stream the turn. Afterwards it reads what the gateway had sent it before cutting it off, and reconnects with
``Last-Event-ID`` for the rest.
"""

from __future__ import annotations

import asyncio
import re
import resource
import socket
import sys
import time
from urllib.parse import urlsplit

import httpx
import orjson

TIMEOUT = 300.0
FRAME_END = b"\n\n"
#: Each starts with the newline that ends the frame before (or the stream's first keep-alive), which lets the regex
#: engine jump between candidates instead of trying every position.
IDS = re.compile(rb"\nid: (\d+)\n")
END = re.compile(rb"\nevent: turn\.completed\n")


class Ids:
    """The ``id:`` of each complete frame in a byte stream read in arbitrary pieces, as runs of consecutive seqs."""

    def __init__(self, marker: int | None = None) -> None:
        self.marker = marker  # an event to note (``live``) but not count
        self.runs: list[list[float]] = []
        self.last = 0
        self.live = False
        self.ended = False
        self._carry = b"\n"  # as if after a frame: the patterns start with a newline

    def feed(self, chunk: bytes, now: float) -> None:
        data = self._carry + chunk
        end = data.rfind(FRAME_END)
        if end < 0:  # inside one long frame (a whole message's text): wait for its end
            self._carry = data
            return
        cut = end + len(FRAME_END)
        self._carry = data[cut - 1 :]
        seqs = [int(seq) for seq in IDS.findall(data, 0, cut)]
        if seqs and seqs[0] == self.marker:
            seqs.pop(0)
            self.live = True
        if not seqs:
            return
        if seqs == list(range(seqs[0], seqs[0] + len(seqs))):
            self.runs.append([seqs[0], len(seqs), now])
        else:  # not one run: keep every seq so the verdict can see what went wrong
            self.runs.extend([seq, 1, now] for seq in seqs)
        self.last = seqs[-1]
        self.ended = self.ended or END.search(data, 0, cut) is not None


async def subscribe(client: httpx.AsyncClient, url: str, after: int, connected: asyncio.Semaphore) -> Ids:
    """Follow the stream until ``turn.completed``."""
    ids = Ids(marker=after)
    async with client.stream("GET", url, params={"after": after - 1}) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            live = ids.live
            ids.feed(chunk, time.monotonic())
            if ids.live and not live:
                connected.release()
            if ids.ended:
                return ids
    raise RuntimeError("the stream ended before the turn completed")


def stall(base_url: str, path: str, after: int) -> socket.socket:
    """Open a stream that reads up to its first event and then stops reading."""
    address = urlsplit(base_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connect: a tiny window
    sock.settimeout(TIMEOUT)
    sock.connect((address.hostname, address.port))
    sock.sendall(f"GET {path}?after={after - 1} HTTP/1.1\r\nHost: {address.netloc}\r\n\r\n".encode())
    head = b""
    while f"\nid: {after}\n".encode() not in head:
        head += sock.recv(4096)
    return sock


async def resume(client: httpx.AsyncClient, url: str, sock: socket.socket, after: int) -> dict[str, object]:
    """Read what the stalled stream holds, then pick up from its last event with ``Last-Event-ID``."""
    sock.settimeout(30)
    first, rest = Ids(), Ids()
    tail = b""
    while not first.ended and (chunk := await asyncio.to_thread(sock.recv, 1 << 20)):
        first.feed(chunk, time.monotonic())
        tail = (tail + chunk)[-16:]
        if tail.endswith(b"\r\n0\r\n\r\n"):
            break  # the gateway ended the stream: cut off
    sock.close()
    if first.ended:  # never cut off: the socket buffers held the whole turn
        return {"cut_off": False, "before_cut_off": first.runs, "after_resume": []}
    async with client.stream("GET", url, headers={"Last-Event-ID": str(first.last or after)}) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            rest.feed(chunk, time.monotonic())
            if rest.ended:
                break
    return {
        "cut_off": True,
        "before_cut_off": first.runs,
        "after_resume": rest.runs,
    }


async def main(base_url: str, session_id: str, after: int, count: int, stalled: bool) -> None:
    connected = asyncio.Semaphore(0)
    limits = httpx.Limits(max_connections=count + 1, max_keepalive_connections=count + 1)
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT, limits=limits) as client:
        url = f"/api/sessions/{session_id}/events/stream"
        sock = stall(base_url, url, after) if stalled else None
        tasks = [asyncio.create_task(subscribe(client, url, after, connected)) for _ in range(count)]
        for _ in range(count):
            await asyncio.wait_for(connected.acquire(), TIMEOUT)
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        print("ready", flush=True)
        results = await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
        used = resource.getrusage(resource.RUSAGE_SELF)
        out: dict[str, object] = {
            "subscribers": [r.runs for r in results],
            "cpu_seconds": used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime,
        }
        if sock is not None:
            out["stalled"] = await resume(client, url, sock, after)
    sys.stdout.buffer.write(orjson.dumps(out) + b"\n")


if __name__ == "__main__":
    url, session, after_seq, subscribers = sys.argv[1:5]
    asyncio.run(main(url, session, int(after_seq), int(subscribers), "--stalled" in sys.argv[5:]))
