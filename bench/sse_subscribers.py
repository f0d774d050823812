"""The client side of ``bench.stream``: N concurrent SSE subscribers of one session, in a process of their own so
parsing a million frames never competes with the gateway for its interpreter.

    python -m bench.sse_subscribers BASE_URL SESSION_ID AFTER_SEQ N

Each stream starts one event before ``AFTER_SEQ``: that replayed event proves the subscription is live (the gateway
subscribes before it replays), so ``ready`` is printed once every stream has it. Then one JSON line: per subscriber,
the seqs it received after ``AFTER_SEQ`` and when (``time.monotonic()``: CLOCK_MONOTONIC, system-wide on Linux, so
comparable with the gateway's commit times), and over all of them the lag from each event's ``created_at`` (wall
clock, same machine) to its receipt.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from bench.common import created_at_epoch

END_TYPE = "turn.completed"
TIMEOUT = 300.0


@dataclass
class Received:
    seqs: list[int] = field(default_factory=list)
    monotonic: list[float] = field(default_factory=list)
    created_lag: list[float] = field(default_factory=list)

    def add(self, event: dict[str, Any], now: float, wall: float) -> None:
        self.seqs.append(event["seq"])
        self.monotonic.append(now)
        self.created_lag.append(wall - created_at_epoch(event["created_at"]))


async def subscribe(client: httpx.AsyncClient, url: str, after: int, connected: asyncio.Semaphore) -> Received:
    """Follow the stream until ``turn.completed``, splitting raw bytes into SSE frames."""
    received = Received()
    async with client.stream("GET", url, params={"after": after - 1}) as response:
        response.raise_for_status()
        buffer = b""
        async for chunk in response.aiter_raw():
            *frames, buffer = (buffer + chunk).split(b"\n\n")
            for frame in frames:
                if frame.startswith(b":"):
                    continue
                now, wall = time.monotonic(), time.time()
                event = orjson.loads(frame[frame.index(b"data: ") + 6 :])
                if event["seq"] == after:
                    connected.release()
                    continue
                received.add(event, now, wall)
                if event["type"] == END_TYPE:
                    return received
    raise RuntimeError("the stream ended before the turn completed")


async def main(base_url: str, session_id: str, after: int, count: int) -> None:
    connected = asyncio.Semaphore(0)
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT, limits=limits) as client:
        url = f"/api/sessions/{session_id}/events/stream"
        tasks = [asyncio.create_task(subscribe(client, url, after, connected)) for _ in range(count)]
        for _ in range(count):
            await asyncio.wait_for(connected.acquire(), TIMEOUT)
        print("ready", flush=True)
        results = await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
    sys.stdout.buffer.write(
        orjson.dumps(
            {
                "subscribers": [{"seqs": r.seqs, "monotonic": r.monotonic} for r in results],
                "created_lag": [lag for r in results for lag in r.created_lag],
            }
        )
        + b"\n"
    )


if __name__ == "__main__":
    url, session, after_seq, subscribers = sys.argv[1:5]
    asyncio.run(main(url, session, int(after_seq), int(subscribers)))
