"""The cap on deliveries in flight to one receiver counts the receiver (scheme, host and port), not each URL: a
receiver whose URLs carry a token per session is one receiver. The sender runs in-process on a JSON-directory
store against loopback receivers, as in ``test_webhooks``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ccapi.config import Settings
from ccapi.events import Event
from ccapi.ids import utcnow
from ccapi.store import JsonDirStore
from ccapi.webhook_rules import receiver
from ccapi.webhooks.sender import WebhookSender
from tests.test_webhooks import SECRET, _hooked
from tests.webhook_receiver import Receiver


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://hooks.example/x?token=A", "https://HOOKS.example:443/y?token=B"),
        ("http://127.0.0.1/hooks", "http://127.0.0.1:80/other#frag"),
        ("http://[::1]:9000/a", "http://[::1]:9000/b?c=d"),
    ],
)
def test_urls_differing_in_path_query_or_default_port_are_one_receiver(one: str, other: str) -> None:
    assert receiver(one) == receiver(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://hooks.example/x", "http://hooks.example/x"),
        ("http://127.0.0.1:9000/x", "http://127.0.0.1:9001/x"),
        ("https://a.hooks.example/x", "https://b.hooks.example/x"),
    ],
)
def test_another_scheme_host_or_port_is_another_receiver(one: str, other: str) -> None:
    assert receiver(one) != receiver(other)


def test_a_slow_receiver_with_a_url_per_session_does_not_delay_another(tmp_path: Path) -> None:
    """Ten sessions subscribed to one hanging receiver, each by its own ``?token=`` URL, took all eight delivery
    slots (the cap counted exact URLs) for the whole timeout: another receiver's delivery waited behind them.
    The cap counts the receiver: two at a time go to the hanging one, and the other's goes at once."""
    slow, fast = Receiver().start(), Receiver().start()
    slow.answers = [(200, {}, b"late", 3.0)] * 20
    settings = Settings(home=tmp_path, webhook_secret=SECRET, webhook_timeout=2.0, webhook_backoff=30)

    async def main() -> float:
        store = JsonDirStore(tmp_path / "store")
        await store.open()
        for n in range(10):
            await store.create_session(_hooked(f"sess_slow{n}", f"{slow.url}?token={n}"))
            await store.append_events([Event(1, "turn.failed", f"sess_slow{n}", "turn_s", utcnow(), {})])
        await store.create_session(_hooked("sess_fast", fast.url))
        sender = WebhookSender(settings, store)
        sender.start()
        try:
            deadline = time.monotonic() + 5
            while len(slow.deliveries) < 2:  # the slow receiver's deliveries are in flight
                assert time.monotonic() < deadline, "the slow receiver got nothing"
                await asyncio.sleep(0.02)
            fast_failed = Event(1, "turn.failed", "sess_fast", "turn_f", utcnow(), {})
            await store.append_events([fast_failed])
            sender.committed([fast_failed])
            started = time.monotonic()
            while (await store.list_webhooks("sess_fast", 0, 1))[0].state != "delivered":
                assert time.monotonic() - started < 10
                await asyncio.sleep(0.02)
            return time.monotonic() - started
        finally:
            await sender.stop()
            await store.close()

    try:
        took = asyncio.run(main())
    finally:
        slow.stop()
        fast.stop()
    assert took < 1.0, f"the fast receiver's delivery waited {took:.1f} s"
    assert slow.most_at_once <= 2, "at most two deliveries at a time go to one receiver, whatever its URLs"
