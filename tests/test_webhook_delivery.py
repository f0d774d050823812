"""Webhook delivery as a demanding integrator sees it: a receiver that answers oddly, a URL that cannot be sent to,
a store that hiccups. The sender runs in-process on a JSON-directory store against loopback receivers; signatures
are checked from the Standard Webhooks text, not with CC API's own code."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ccapi.catalog import ModelCatalog
from ccapi.config import Settings
from ccapi.errors import InvalidRequest
from ccapi.ids import parse_time
from ccapi.sessions import NewSession
from ccapi.store import JsonDirStore, Store
from ccapi.store.outbox import DELIVERED, FAILED, PENDING, WebhookDelivery
from ccapi.webhook_rules import AllowList, BadTarget, new_secret, subscription
from ccapi.webhooks.sender import WebhookSender
from ccapi.webhooks.targets import WebhookPolicy
from tests.test_webhooks import _failed, _hooked
from tests.webhook_receiver import Receiver

SECRET = new_secret()


def _standard_signature_ok(headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks from its text: ``v1,`` + base64 HMAC-SHA256, keyed by the base64 bytes after ``whsec_``,
    of ``{webhook-id}.{webhook-timestamp}.{body}``; the timestamp within five minutes."""
    lowered = {name.lower(): value for name, value in headers.items()}
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{lowered['webhook-id']}.{lowered['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return (
        abs(time.time() - int(lowered["webhook-timestamp"])) < 300 and expected in lowered["webhook-signature"].split()
    )


def _run_sender(
    tmp_path: Path,
    settings: Settings,
    sessions: dict[str, str],
    done: Callable[[list[WebhookDelivery]], bool],
    wrap: Callable[[Store], Store] = lambda store: store,
    timeout: float = 15,
) -> list[WebhookDelivery]:
    """Each of ``sessions`` (id: URL) owes one ``turn.failed`` delivery; a sender in-process sends until ``done``
    holds for all of them (listed by session, in ``sessions``' order), or the test fails with what it saw."""

    async def listed(store: Store) -> list[WebhookDelivery]:
        return [d for session_id in sessions for d in await store.list_webhooks(session_id, 0, 10)]

    async def main() -> list[WebhookDelivery]:
        store = JsonDirStore(tmp_path / "store")
        await store.open()
        for session_id, url in sessions.items():
            await store.create_session(_hooked(session_id, url))
            await store.append_events([_failed(session_id, 1)])
        sender = WebhookSender(settings, wrap(store))
        sender.start()
        try:
            deadline = time.monotonic() + timeout
            while not done(deliveries := await listed(store)):
                assert time.monotonic() < deadline, deliveries
                await asyncio.sleep(0.05)
        finally:
            await sender.stop()
            await store.close()
        return deliveries

    return asyncio.run(main())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


class _SlowBody:
    """A receiver that sends its status line and headers at once and its body ``delay`` seconds later: the
    "acknowledge first, then finish" receivers (and a proxy in front of a busy one) answer this way."""

    def __init__(self, status: int, delay: float) -> None:
        self.status, self.delay = status, delay
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # closed by ``close``
            while True:
                connection, _ = self._server.accept()
                threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")[1:]
            headers = {
                name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)
            }
            while len(body) < int(headers["content-length"]):
                body += connection.recv(65536)
            self.requests.append((headers, body))
            connection.sendall(f"HTTP/1.1 {self.status} X\r\ncontent-length: 4\r\n\r\n".encode())
            time.sleep(self.delay)
            connection.sendall(b"done")

    def close(self) -> None:
        self._server.close()


@pytest.mark.parametrize(("status", "state"), [(200, DELIVERED), (204, DELIVERED), (404, FAILED)])
def test_an_answer_whose_body_comes_after_the_timeout_counts_by_its_status(
    tmp_path: Path, status: int, state: str
) -> None:
    """A receiver that answered 2xx and is slow to finish its body was taken for one that never answered: its
    delivery was sent again after each backoff (the same event, over and over, for CC_API_WEBHOOK_RETRY_FOR) and
    ended ``failed`` with "no answer". A status that came in time decides: a 2xx delivers, a 404 fails at once."""
    slow = _SlowBody(status, delay=2.5)
    settings = Settings(
        home=tmp_path, webhook_secret=SECRET, webhook_timeout=1, webhook_backoff=0.1, webhook_retry_for=4
    )
    try:
        [delivery] = _run_sender(tmp_path, settings, {"sess_s": slow.url}, lambda d: d[0].state != PENDING)
    finally:
        slow.close()
    assert (delivery.state, delivery.attempts, delivery.last_status) == (state, 1, status)
    assert len(slow.requests) == 1
    assert _standard_signature_ok(*slow.requests[0])


@pytest.mark.parametrize("url", ["https://a..b.example/h", "https://xn--.example/h", f"https://{'a' * 64}.example/h"])
def test_a_url_that_cannot_be_sent_to_fails_its_delivery_instead_of_holding_the_session_for_ever(
    tmp_path: Path, url: str
) -> None:
    """A host name no resolver encodes (an empty label, a label over 63 characters, a malformed ``xn--`` one)
    raised out of the attempt: the delivery was never recorded, its lease ran out and it was claimed again, every
    ~15 s for ever (past CC_API_WEBHOOK_RETRY_FOR), ``pending`` with 0 attempts, and every later delivery of its
    session waited behind it. Such a URL is a 400 now; one stored before fails at its first attempt, saying why,
    without a packet sent (no DNS query either: the name is refused before any lookup)."""
    settings = Settings(home=tmp_path, webhook_secret=SECRET, webhook_allow=("*",), webhook_retry_for=60)
    [delivery] = _run_sender(tmp_path, settings, {"sess_s": url}, lambda d: d[0].state != PENDING, timeout=8)
    assert (delivery.state, delivery.attempts, delivery.last_status) == (FAILED, 1, None)
    assert "cannot be sent to" in (delivery.last_error or "")


@pytest.mark.parametrize(
    "url",
    [
        "https://a..b.example/h",
        "https://xn--.example/h",
        f"https://{'a' * 64}.example/h",
        "https://ex\u2024ample.example/h",
        "https://.example/h",
    ],
)
@pytest.mark.parametrize("allowed", [("*",), (".example",)])
def test_a_host_name_no_resolver_can_encode_is_refused_when_subscribing(url: str, allowed: tuple[str, ...]) -> None:
    with pytest.raises(BadTarget, match="not a host name"):
        subscription(url, None, AllowList.parse(allowed))
    policy = WebhookPolicy(AllowList.parse(allowed), None, signing=True)
    with pytest.raises(InvalidRequest, match="not a host name"):
        NewSession.from_json({"webhook": {"url": url}}, ModelCatalog.from_setting(None), "sonnet", webhooks=policy)
    for fine in ("https://hooks.example/h", "https://xn--bcher-kva.example/h", "https://b\u00fccher.example/h"):
        assert subscription(fine, None, AllowList.parse(allowed))["url"] == fine


def test_a_redirects_credentials_are_neither_logged_nor_listed(
    tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """A redirect is never followed, and ``last_error`` (which the deliveries API lists) and the log say where to
    by scheme and host: not the path or query, and not the user and password a ``Location`` may carry either."""
    receiver.answers = [(307, {"Location": "https://hook-user:sekrit@192.0.2.7:8443/next?token=also"})]
    settings = Settings(home=tmp_path, webhook_secret=SECRET)
    [delivery] = _run_sender(tmp_path, settings, {"sess_s": receiver.url}, lambda d: d[0].state != PENDING)
    assert (delivery.state, delivery.attempts, delivery.last_status) == (FAILED, 1, 307)
    assert "to https://192.0.2.7:8443/…" in (delivery.last_error or "")
    logged = capsys.readouterr()
    for secret in ("sekrit", "hook-user", "also"):
        assert secret not in (delivery.last_error or "") + logged.out + logged.err


class _HiccupOnHandBack:
    """A store whose first hand-back (an attempt's lease let go with nothing recorded) fails, as a database
    that is briefly unreachable does."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def finish_webhook_attempt(self, delivery_id: str, owner: str, fields: dict[str, Any]) -> None:
        if not fields and not self.failed:
            self.failed = True
            raise OSError("database unreachable")
        await self._store.finish_webhook_attempt(delivery_id, owner, fields)


def test_a_store_hiccup_while_handing_a_delivery_back_does_not_stop_every_delivery(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Three sessions owe one receiver a delivery each: the sender claims all three, sends two (at most two at
    a time to one URL) and hands the third back. A failure of the store there ended the sender's loop: nothing
    more was sent by that gateway, to any receiver, until it restarted. Now the third goes when its lease ends."""
    hiccups: list[_HiccupOnHandBack] = []

    def wrap(store: Store) -> Store:
        hiccups.append(_HiccupOnHandBack(store))
        return hiccups[-1]  # type: ignore[return-value]

    settings = Settings(home=tmp_path, webhook_secret=SECRET, webhook_backoff=0.1, webhook_timeout=1)  # 6 s leases
    sessions = {f"sess_{n}": receiver.url for n in range(3)}
    listed = _run_sender(tmp_path, settings, sessions, lambda d: all(x.state == DELIVERED for x in d), wrap=wrap)
    assert hiccups[0].failed and [d.attempts for d in listed] == [1, 1, 1]
    assert sorted(d.headers["webhook-id"] for d in receiver.deliveries) == [f"{s}_1" for s in sessions]


def test_retries_go_on_until_the_retry_window_ends_not_one_backoff_before(tmp_path: Path, receiver: Receiver) -> None:
    """Documented: retried "until CC_API_WEBHOOK_RETRY_FOR after the event, then failed". A delivery whose next
    backoff would land past that point was failed at once instead, up to a whole backoff (10 minutes at the cap,
    half the window of a short one) before it: a receiver back within the window never heard of the event. The
    last attempt is made when the window ends."""
    receiver.answers = [(503, {})]
    settings = Settings(
        home=tmp_path, webhook_secret=SECRET, webhook_backoff=30, webhook_retry_for=1.5, webhook_timeout=1
    )
    [delivery] = _run_sender(tmp_path, settings, {"sess_s": receiver.url}, lambda d: d[0].state != PENDING)
    assert (delivery.state, delivery.attempts, delivery.last_status) == (DELIVERED, 2, 200)
    assert delivery.last_attempt_at is not None
    assert parse_time(delivery.last_attempt_at) >= parse_time(delivery.created_at) + 1.5 - 0.01  # at the window's end
    first, last = receiver.deliveries
    assert first.headers["webhook-id"] == last.headers["webhook-id"]
    assert all(_standard_signature_ok(d.headers, d.body) for d in receiver.deliveries)


def test_a_retry_after_past_the_retry_window_fails_the_delivery_at_once(tmp_path: Path, receiver: Receiver) -> None:
    """The receiver asked not to be sent to before the window ends: it is not, and the delivery is ``failed``."""
    receiver.answers = [(503, {"Retry-After": "120"})]
    settings = Settings(home=tmp_path, webhook_secret=SECRET, webhook_backoff=0.1, webhook_retry_for=60)
    [delivery] = _run_sender(tmp_path, settings, {"sess_s": receiver.url}, lambda d: d[0].state != PENDING)
    assert (delivery.state, delivery.attempts, delivery.last_status) == (FAILED, 1, 503)
    assert len(receiver.deliveries) == 1


def test_without_a_secret_a_delivery_owed_from_before_fails_saying_why(tmp_path: Path, receiver: Receiver) -> None:
    """A session subscribed while the gateway had ``CC_API_WEBHOOK_SECRET``; the secret was then taken away (or the
    gateway started without its env file). Its deliveries stayed ``pending`` for ever, listed as due: nothing sent or
    failed them. They fail now, each saying why, and nothing unsigned reaches the receiver."""
    settings = Settings(home=tmp_path, webhook_secret=None, webhook_retry_for=60)
    [delivery] = _run_sender(tmp_path, settings, {"sess_u": receiver.url}, lambda d: d[0].state != PENDING)
    assert (delivery.state, delivery.attempts) == (FAILED, 1)
    assert delivery.last_error == "the gateway has no CC_API_WEBHOOK_SECRET to sign it with"
    assert receiver.deliveries == []
