"""The worker that empties the webhook outbox.

It claims due deliveries (a lease in the store, so several hosts on one database never
send one delivery at once), POSTs each signed, and records the outcome: ``delivered`` on a
2xx; on a connection error, a timeout, a 5xx, a 408 or a 429 another attempt after an exponential
backoff with jitter (or the receiver's ``Retry-After``, if longer) until
``CC_API_WEBHOOK_RETRY_FOR`` has passed since the event (the last attempt made when it has), then ``failed``.
The status decides, once it came within the timeout, however late the rest of the answer. Any other answer
(a redirect, which is never followed, or a 4xx) is final; a ``410 Gone`` also ends the session's
subscription to that URL (``Store.end_webhook``), with the deliveries it still owes there, and says so in
the session's log (``session.updated``). A host that only ``*`` admits is resolved here and connected to
at an address the allow-list admits (``Route``), never wherever the name points at connection time.
Delivery is at least once: a host that dies mid-attempt leaves a lease that expires, and the delivery is sent again.
A session's deliveries go one at a time, in event order: the store hands out only the first
it still owes, so a later one waits behind an earlier one's retries until that is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import random
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import structlog

from ccapi import __version__
from ccapi.config import Settings
from ccapi.events import WEBHOOK_EVENT_TYPES, Event
from ccapi.ids import parse_time, utcnow
from ccapi.observability.metrics import Metrics
from ccapi.store import Store
from ccapi.store.outbox import DELIVERED, FAILED, WebhookDelivery
from ccapi.webhook_rules import AllowList, name_error, receiver, shown_url
from ccapi.webhooks.signing import sign

log = structlog.get_logger(__name__)

#: Deliveries in flight at once on one host.
CONCURRENCY = 8
#: Deliveries in flight at once to one receiver (an origin: scheme, host and port, ``webhook_rules.receiver``): a
#: receiver that never answers in time holds this many slots, not all of them, so it cannot delay another's
#: deliveries, however many URLs it has (a token per session in the query, say).
PER_RECEIVER = 2
#: How often the outbox is read when nothing woke the worker (other hosts' rows, expired leases).
POLL_SECONDS = 1.0
#: Without a secret: how often the store is asked for deliveries a session subscribed before the secret was taken
#: away still owes (each then fails, saying why).
UNSIGNED_POLL_SECONDS = 30.0
#: The longest pause between two attempts that backoff alone chooses.
MAX_BACKOFF = 600.0
#: Bytes of a receiver's answer read (into ``last_error``) before the connection is dropped.
MAX_RESPONSE_BYTES = 1024
#: Doublings of ``CC_API_WEBHOOK_BACKOFF`` past which the pause is ``MAX_BACKOFF`` anyway (and 2.0 ** 1024
#: would overflow a float after some thousand attempts of a long ``CC_API_WEBHOOK_RETRY_FOR``).
MAX_DOUBLINGS = 64
#: The receiver's "this endpoint is gone: stop sending" (as Stripe, GitHub, Slack and Svix read it).
GONE = 410
#: ``last_error`` of the deliveries a 410 leaves unsent.
NOT_SENT = "not sent: the receiver answered 410 Gone to an earlier delivery, which ended the session's webhook"

#: Told ``(session_id, subscription)`` when a ``410 Gone`` has ended a session's subscription (the session layer
#: records it in the session's log; it may wait for the session's lease).
OnGone = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    """One attempt: delivered, worth retrying (after at least ``retry_after`` s), or final."""

    delivered: bool
    retryable: bool
    status: int | None = None
    error: str | None = None
    retry_after: float = 0.0


@dataclass(frozen=True)
class Route:
    """One way to reach a receiver: its URL, or for a pinned name the URL of one address it resolved to, with
    the name kept as the ``Host`` and the TLS server name (so the certificate is checked against the name)."""

    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, Any]


class WebhookSender:
    def __init__(
        self, settings: Settings, store: Store, metrics: Metrics | None = None, on_gone: OnGone | None = None
    ) -> None:
        self._secrets = settings.webhook_secrets  # none: every delivery fails at once, saying why (``_post``)
        self._settings = settings
        self._store = store
        self._owner = settings.owner_id
        self._allow = settings.webhook_allow_list
        self._lease = settings.webhook_timeout + 5.0
        self._http = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(settings.webhook_timeout),
            headers={"user-agent": f"cc-api-webhooks/{__version__}"},
        )
        self._wakeup = asyncio.Event()
        self._next_due = float("inf")  # the earliest retry this host scheduled
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._receivers: Counter[str] = Counter()  # deliveries in flight per receiver (origin)
        # the URLs seen of each receiver with deliveries in flight: the store skips them while it is full (it
        # knows URLs, not receivers), so a full receiver's other URLs are not claimed only to be handed back
        self._urls: dict[str, set[str]] = {}
        self._loop: asyncio.Task[None] | None = None
        self._metrics = metrics or Metrics(process=False)
        self._on_gone = on_gone
        self._notices: set[asyncio.Task[None]] = set()  # ``on_gone`` calls, maybe waiting for a session's lease
        self._records: set[asyncio.Task[None]] = set()  # outcomes heard, being stored: ``stop`` waits for them

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name="ccapi-webhook-sender")

    def committed(self, events: list[Event]) -> None:
        """The event log committed a batch: deliveries it owes are due now (without a secret, at the next poll:
        none can be owed but by a session subscribed before the secret was taken away)."""
        if self._secrets and any(event.type in WEBHOOK_EVENT_TYPES for event in events):
            self._wakeup.set()

    async def stop(self) -> None:
        """Abandon attempts in flight and hand their deliveries back at once (they are sent
        again by whichever host claims them next: at least once), and the ``session.updated`` still waiting
        for a session's lease. An attempt whose answer came is recorded first: abandoned, a delivered one was sent
        again after the restart, a ``410`` ended nothing, and a refused one was retried at once, its backoff and
        ``Retry-After`` lost."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        abandoned = list(self._inflight)
        for task in self._inflight.values():
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        await asyncio.gather(*self._records, return_exceptions=True)
        for notice in self._notices:
            notice.cancel()
        await asyncio.gather(*self._notices, return_exceptions=True)
        for delivery_id in abandoned:  # those recorded are no longer held: their hand back changes nothing
            await self._hand_back(delivery_id)
        await self._http.aclose()

    # -- the loop --------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            free = CONCURRENCY - len(self._inflight)
            claimed: list[WebhookDelivery] = []
            if free > 0:
                busy = [
                    url
                    for key, count in self._receivers.items()
                    if count >= PER_RECEIVER
                    for url in self._urls.get(key, ())
                ]
                try:
                    claimed = await self._store.claim_webhooks(self._owner, free, self._lease, busy)
                except Exception:  # a database hiccup must not end the worker
                    log.exception("webhook_claim_failed")
            for delivery in claimed:
                key = receiver(delivery.url)
                self._urls.setdefault(key, set()).add(delivery.url)
                if self._receivers[key] >= PER_RECEIVER:  # another URL of a full receiver, or claimed with its others
                    await self._hand_back(delivery.id)
                    continue
                self._receivers[key] += 1
                task = asyncio.create_task(self._attempt(delivery), name=f"ccapi-webhook-{delivery.id}")
                self._inflight[delivery.id] = task
                task.add_done_callback(functools.partial(self._done, delivery.id, key))
            # a full claim: more may be due. Each delivery claimed was started or handed back with its URL known (the
            # next claim skips it while its receiver is full), so claiming again gets further, never round in circles
            if claimed and len(claimed) == free:
                continue
            poll = POLL_SECONDS if self._secrets else UNSIGNED_POLL_SECONDS
            wait = max(0.0, min(poll, self._next_due - time.time()))
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that arrives as the
            # wakeup fires (an attempt ending just as ``stop`` cancels this loop), and the loop would run on
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wakeup.wait()
            if time.time() >= self._next_due:
                self._next_due = float("inf")

    async def _hand_back(self, delivery_id: str) -> None:
        """Let go of a claimed delivery with nothing recorded: due again at once. Should the store fail here (a
        database hiccup), its lease runs out instead; the worker goes on (raised, it ended the worker's loop, and
        the host sent no webhook any more until it restarted)."""
        try:
            await self._store.finish_webhook_attempt(delivery_id, self._owner, {})
        except Exception:
            log.exception("webhook_hand_back_failed", delivery_id=delivery_id)

    def _done(self, delivery_id: str, key: str, _task: asyncio.Task[None]) -> None:
        self._inflight.pop(delivery_id, None)
        self._receivers[key] -= 1
        if self._receivers[key] <= 0:
            del self._receivers[key]
            self._urls.pop(key, None)
        self._wakeup.set()  # a slot came free

    async def _attempt(self, delivery: WebhookDelivery) -> None:
        try:
            outcome = await self._post(delivery)
        except Exception as exc:  # recorded and retried: raised, the attempt was never recorded and the delivery,
            # claimed again at the end of each lease for ever, held back every later one of its session
            log.exception("webhook_attempt_crashed", delivery_id=delivery.id, url=shown_url(delivery.url))
            outcome = Outcome(False, True, error=f"the gateway failed to send it ({type(exc).__name__}: see its log)")
        now = time.time()
        attempts = delivery.attempts + 1
        fields: dict[str, object] = {
            "attempts": attempts,
            "last_attempt_at": utcnow(),
            "last_status": outcome.status,
            "last_error": _printable(outcome.error),
        }
        if outcome.delivered:
            fields.update(state=DELIVERED, completed_at=utcnow())
        else:
            # the backoff's next attempt, but the last one when the retry window ends (not one backoff, up to 10
            # minutes, before it); a receiver's Retry-After past the window's end is not sent to again
            deadline = parse_time(delivery.created_at) + self._settings.webhook_retry_for
            retry_at = max(min(now + self._backoff(attempts), deadline), now + outcome.retry_after)
            if outcome.retryable and now < deadline and retry_at <= deadline:
                fields["next_attempt_at"] = retry_at
                self._next_due = min(self._next_due, retry_at)
            else:
                fields.update(state=FAILED, completed_at=utcnow())
        state = fields.get("state")
        self._metrics.webhook_delivery("delivered" if state == DELIVERED else "failed" if state == FAILED else "retry")
        log.info(
            "webhook_attempt",
            delivery_id=delivery.id,
            url=shown_url(delivery.url),
            attempt=attempts,
            status=outcome.status,
            error=outcome.error,
            state=fields.get("state", "pending"),
        )
        # the answer came: its record is not abandoned with the attempt (``stop``), even cancelled mid-way
        record = asyncio.create_task(self._record(delivery, outcome.status, fields))
        self._records.add(record)
        record.add_done_callback(self._records.discard)
        await asyncio.shield(record)

    async def _record(self, delivery: WebhookDelivery, status: int | None, fields: dict[str, object]) -> None:
        """Store the attempt's outcome; with a ``410 Gone`` the session's subscription ends in the same
        transaction, with what it still owes that URL, so no host sends another there meanwhile."""
        try:
            if status != GONE:
                await self._store.finish_webhook_attempt(delivery.id, self._owner, fields)
            elif (ended := await self._store.end_webhook(delivery.id, self._owner, fields, NOT_SENT)) is not None:
                self._gone(delivery, ended)
        except Exception:  # unless the outcome was recorded, the lease expires and the delivery is tried again
            log.exception("webhook_record_failed", delivery_id=delivery.id)

    def _gone(self, delivery: WebhookDelivery, ended: dict[str, Any]) -> None:
        """The receiver asked to hear no more and the session's ``ended`` subscription is gone: say so in the
        gateway's log, and in the session's as a ``PATCH`` would. Only the 410 that ended it does: later ones
        (another host's, or one sent before the end was committed) find nothing to end."""
        log.warning(
            "webhook_subscription_ended",
            session_id=delivery.session_id,
            url=shown_url(delivery.url),
            status=GONE,
            delivery_id=delivery.id,
        )
        if self._on_gone is not None:
            notice = asyncio.create_task(self._tell_gone(self._on_gone, delivery.session_id, ended))
            self._notices.add(notice)
            notice.add_done_callback(self._notices.discard)

    @staticmethod
    async def _tell_gone(on_gone: OnGone, session_id: str, ended: dict[str, Any]) -> None:
        try:
            await on_gone(session_id, ended)
        except Exception:  # the webhook has ended all the same: only its mention in the session's log is lost
            log.exception("webhook_end_not_recorded", session_id=session_id)

    def _backoff(self, attempts: int) -> float:
        """Exponential, with "equal jitter": half fixed, half random, so receivers that
        failed together are not hit again together."""
        ceiling = min(MAX_BACKOFF, self._settings.webhook_backoff * 2 ** min(attempts - 1, MAX_DOUBLINGS))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # jitter, not a secret

    async def _post(self, delivery: WebhookDelivery) -> Outcome:
        if not self._secrets:  # the secret was taken away after the session subscribed: nothing can be signed
            return Outcome(False, False, error="the gateway has no CC_API_WEBHOOK_SECRET to sign it with")
        host = urlsplit(delivery.url).hostname or ""  # as the subscription's check read it (``check_url``)
        if (why := name_error(host)) is not None:  # a URL stored before ``check_url`` refused such names
            return Outcome(False, False, error=f"the URL cannot be sent to: its host is not a host name ({why})")
        if not self._allow.allows(host):
            return Outcome(False, False, error="the URL's host is no longer allowed by CC_API_WEBHOOK_ALLOW")
        try:
            url = httpx.URL(delivery.url)
        except httpx.InvalidURL as exc:
            return Outcome(False, False, error=f"the URL cannot be sent to: {exc}"[:300])
        body = orjson.dumps(delivery.payload)
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(sign(secret, delivery.id, timestamp, body) for secret in self._secrets),
        }
        deadline = asyncio.get_running_loop().time() + self._settings.webhook_timeout
        try:
            async with contextlib.AsyncExitStack() as stack:
                async with asyncio.timeout_at(deadline):
                    routes = await _routes(url, host, self._allow)
                    if not routes:
                        error = f"{host} resolves to no address CC_API_WEBHOOK_ALLOW admits (* admits public ones)"
                        return Outcome(False, False, error=error)
                    response = await self._exchange(stack, routes, body, headers)
                # the status came in time, and decides: the rest of a refusal only fills ``last_error``, and a 2xx's
                # is not waited for (a receiver that acknowledges at once and finishes its body later held the slot,
                # and its session's next delivery, until that body ended or the timeout came)
                head = b"" if response.is_success else await _read_head(response, deadline)
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(False, True, error=f"no answer within {self._settings.webhook_timeout:g} s")
        except socket.gaierror as exc:
            return Outcome(False, True, error=f"cannot resolve {host}: {exc.strerror}"[:300])
        except httpx.HTTPError as exc:
            return Outcome(False, True, error=f"{type(exc).__name__}: {exc}"[:300])
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(True, False, status)
        error = f"HTTP {status}: {head.decode(errors='replace')[:200]}".rstrip(": ")
        if 300 <= status < 400:
            target = _shown_location(url, response.headers.get("location", ""))
            error = f"HTTP {status}: redirects are not followed (to {target})"
        retryable = status in (408, 429) or status >= 500  # 408: the receiver timed out reading it
        return Outcome(False, retryable, status, error, _retry_after(response.headers.get("retry-after")))

    async def _exchange(
        self, stack: contextlib.AsyncExitStack, routes: list[Route], body: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        """POST by the first route that connects: the answer, its body unread (``stack`` closes it)."""
        refused: httpx.ConnectError | None = None
        for route in routes:
            try:
                request = self._http.stream(
                    "POST", route.url, content=body, headers={**headers, **route.headers}, extensions=route.extensions
                )
                return await stack.enter_async_context(request)
            except httpx.ConnectError as exc:  # another address of the name may answer (IPv6 without a route)
                refused = exc
        assert refused is not None
        raise refused


async def _routes(url: httpx.URL, host: str, allow: AllowList) -> list[Route]:
    """Where an attempt may connect, in order. A name (``host``, as written) only ``*`` admits is resolved once,
    here, and connected to at the addresses the allow-list admits: it can aim the gateway neither at a private or
    loopback address nor, by answering this lookup and the connection's differently, past the check (DNS
    rebinding)."""
    if not allow.pins(host):
        return [Route(url, {}, {})]
    name = url.raw_host.decode("ascii")  # the name the request would have looked up (internationalised: encoded)
    found = await asyncio.get_running_loop().getaddrinfo(name, url.port, type=socket.SOCK_STREAM)
    addresses = dict.fromkeys(ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in found)
    # the pool knows a connection by its address only: closed after the answer, it never carries another name's
    # request (a shared address's server might refuse one whose Host is not the name its TLS was set up for)
    named = {"host": url.netloc.decode("ascii"), "connection": "close"}
    sni = {"sni_hostname": name}
    return [Route(url.copy_with(host=str(address)), named, sni) for address in addresses if allow.admits(address)]


def _shown_location(url: httpx.URL, location: str) -> str:
    """Where a redirect pointed, shown as the log shows a receiver's URL: its path or query may hold a token."""
    try:
        return shown_url(str(url.join(location)))
    except (httpx.InvalidURL, ValueError):
        return "an unreadable Location"


async def _read_head(response: httpx.Response, deadline: float) -> bytes:
    """The first ``MAX_RESPONSE_BYTES`` of the answer, or what of them came by ``deadline`` (the loop's clock) or
    before the receiver went; the rest is never read."""
    head = b""
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout_at(deadline):
            async for chunk in response.aiter_raw():
                head += chunk
                if len(head) >= MAX_RESPONSE_BYTES:
                    break
    return head[:MAX_RESPONSE_BYTES]


def _printable(error: str | None) -> str | None:
    """``last_error`` without control characters: the receiver writes part of it (its answer's first line), and a
    NUL is no text PostgreSQL stores. Its attempt could not be recorded: the delivery, its lease run out, was sent
    again every lease for ever (past ``CC_API_WEBHOOK_RETRY_FOR``), and its session's later ones waited behind it."""
    if error is None:
        return None
    return "".join(char if char.isprintable() else " " for char in error)


def _retry_after(value: str | None) -> float:
    """``Retry-After`` in seconds (a number or an HTTP date); 0 when absent or unreadable."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return 0.0
