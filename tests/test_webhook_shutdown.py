"""Stopping the gateway while the webhook sender is busy: an answer already heard is recorded, an attempt still
waiting for one is handed back. The sender runs in-process on a JSON-directory store whose writes the test can
hold (stopping at that very moment cannot be timed through a real gateway), against a loopback receiver."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from ccapi.config import Settings
from ccapi.store import JsonDirStore
from ccapi.store.outbox import DELIVERED, FAILED, PENDING, WebhookDelivery
from ccapi.webhooks.sender import WebhookSender
from tests.test_webhooks import SECRET, _failed, _hooked
from tests.webhook_receiver import Receiver


class _SlowToRecord(JsonDirStore):
    """A store that takes a while to record an attempt's outcome (a busy database): ``recording`` is set as it
    starts."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.recording = asyncio.Event()

    async def finish_webhook_attempt(self, delivery_id: str, owner: str, fields: dict[str, Any]) -> None:
        if fields:  # an outcome, not a hand back
            self.recording.set()
            await asyncio.sleep(0.5)
        await super().finish_webhook_attempt(delivery_id, owner, fields)

    async def end_webhook(
        self, delivery_id: str, owner: str, fields: dict[str, Any], why: str
    ) -> dict[str, Any] | None:
        self.recording.set()
        await asyncio.sleep(0.5)
        return await super().end_webhook(delivery_id, owner, fields, why)


@pytest.mark.parametrize(
    ("answer", "state", "due_in"),
    [((200, {}), DELIVERED, None), ((503, {"Retry-After": "60"}), PENDING, 60), ((410, {}), FAILED, None)],
)
def test_an_answer_heard_as_the_gateway_stops_is_recorded(
    tmp_path: Path, answer: tuple[Any, ...], state: str, due_in: float | None
) -> None:
    """Stopped while it stored an answer, the sender dropped it and handed the delivery back as never tried: a
    delivered event was sent again after the restart, a 503's ``Retry-After`` was lost (the next host sent it at
    once) and a 410 ended no subscription. The answer is recorded before the sender stops."""
    receiver = Receiver().start()
    receiver.answers = [answer]
    settings = Settings(home=tmp_path, webhook_secret=SECRET, webhook_backoff=30)

    async def main() -> tuple[WebhookDelivery, dict[str, Any] | None]:
        store = _SlowToRecord(tmp_path / "store")
        await store.open()
        await store.create_session(_hooked("sess_s", receiver.url))
        await store.append_events([_failed("sess_s", 1)])
        sender = WebhookSender(settings, store)
        sender.start()
        try:
            async with asyncio.timeout(10):
                await store.recording.wait()
        finally:
            await sender.stop()
        (delivery,) = await store.list_webhooks("sess_s", 0, 10)
        session = await store.get_session("sess_s")
        await store.close()
        assert session is not None
        return delivery, session.webhook

    try:
        delivery, webhook = asyncio.run(main())
    finally:
        receiver.stop()
    assert (delivery.state, delivery.attempts, delivery.last_status) == (state, 1, answer[0])
    if due_in is not None:
        assert delivery.next_attempt_at > time.time() + due_in - 10
    assert (webhook is None) == (answer[0] == 410)
    assert len(receiver.deliveries) == 1
