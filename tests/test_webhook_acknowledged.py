"""A receiver that acknowledges a delivery at once (its 2xx status and headers) and finishes its body later: the
delivery is done when the status comes, and its session's next one goes then."""

from __future__ import annotations

import time
from pathlib import Path

from ccapi.config import Settings
from ccapi.store.outbox import DELIVERED, PENDING
from tests.test_webhook_delivery import SECRET, _run_sender, _SlowBody


def test_a_2xx_whose_body_comes_late_is_delivered_when_its_status_comes(tmp_path: Path) -> None:
    """The sender read a 2xx's body (to the timeout) before recording it delivered: a receiver that acknowledges
    first and finishes later held a delivery slot, and its session's next delivery, for as long as its body took.
    The status decides, so the body is not waited for."""
    slow = _SlowBody(200, delay=6.0)
    settings = Settings(home=tmp_path, webhook_secret=SECRET, webhook_timeout=10, webhook_backoff=0.1)
    started = time.monotonic()
    try:
        [delivery] = _run_sender(tmp_path, settings, {"sess_s": slow.url}, lambda d: d[0].state != PENDING)
        took = time.monotonic() - started
    finally:
        slow.close()
    assert (delivery.state, delivery.attempts, delivery.last_status) == (DELIVERED, 1, 200)
    assert took < 4.0, f"recorded {took:.1f} s after it was sent: the 6 s body was waited for"
    assert len(slow.requests) == 1
