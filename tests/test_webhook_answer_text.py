"""A receiver's answer ends up, in part, in a delivery's ``last_error``: whatever bytes it holds, the attempt is
recorded on every store, PostgreSQL's too (which takes no NUL in text)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ccapi.config import Settings
from ccapi.store import Store
from ccapi.store.outbox import FAILED, PENDING, WebhookDelivery
from ccapi.webhooks.sender import WebhookSender
from tests import test_webhooks
from tests.test_webhooks import SECRET, _failed, _hooked
from tests.webhook_receiver import Receiver

make_store = test_webhooks.make_store  # every backend, as the outbox tests open them


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def test_an_answer_with_nul_and_control_bytes_is_recorded_and_the_session_goes_on(
    tmp_path: Path, make_store: Callable[[], Store], receiver: Receiver
) -> None:
    """A 400 whose body held a NUL could not be recorded on PostgreSQL (``last_error`` keeps its first line): the
    delivery stayed ``pending`` with no attempt, was sent again each time its lease ran out, for ever, and the
    session's next delivery waited behind it. The error keeps the text, control characters blanked."""
    receiver.answers = [(400, {}, b"bad\x00request\x1b[31m\r\nmore")]
    settings = Settings(home=tmp_path, webhook_secret=SECRET, webhook_timeout=1.0, webhook_backoff=0.1)

    async def main() -> list[WebhookDelivery]:
        store = make_store()
        await store.open()
        await store.create_session(_hooked("sess_s", receiver.url))
        await store.append_events([_failed("sess_s", 1), _failed("sess_s", 2)])
        sender = WebhookSender(settings, store)
        sender.start()
        try:
            deadline = time.monotonic() + 5
            while True:
                listed = await store.list_webhooks("sess_s", 0, 10)
                if all(d.state != PENDING for d in listed):
                    break
                assert time.monotonic() < deadline, listed
                await asyncio.sleep(0.05)
        finally:
            await sender.stop()
            await store.close()
        return listed

    first, second = asyncio.run(main())
    assert (first.state, first.attempts, first.last_status) == (FAILED, 1, 400)
    assert first.last_error == "HTTP 400: bad request [31m  more"
    assert second.state == "delivered" and len(receiver.deliveries) == 2
