"""The one event sink: allocates gap-free ``seq`` numbers, batches writes, and
publishes to live subscribers only what the store has committed.

Publishing after the commit is what makes "acknowledged" mean "durable": a client
can never have seen an event that a crash then loses. The same commits carry what an
event acknowledges — a turn's end rows, Claude Code's transcript lines queued before
it — so a turn costs the store thread no extra trips for them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import structlog

from ccapi.errors import Unavailable
from ccapi.events import DELTA_EVENTS, Event, EventBatch
from ccapi.ids import utcnow
from ccapi.store import Store
from ccapi.store.records import TranscriptLines, TurnEnd

log = structlog.get_logger(__name__)

#: A session with more followers than this gathers for proportionally longer after a commit of deltas.
FOLLOWERS_PER_WINDOW = 10
#: ``follow`` yields this when nothing happened for a keep-alive interval.
KEEPALIVE = None
#: Sessions whose numbering the log keeps at most, beyond those with events on the way to the store or followers:
#: past it, the longest-known of the others are dropped (their next event reads it from the store again, one read).
MAX_COUNTERS = 10_000


class Subscription:
    """A bounded live feed of committed batches for one session: at most ``maxsize`` events
    (or one batch, however large) wait for the follower. A subscriber that falls behind
    either catches up from the store (``lagged``) or, if it asked to be ``cut_off``, is ended
    (``overflowed``): a slow SSE client then reconnects with ``Last-Event-ID`` and the log
    replays what it missed, instead of its backlog costing the gateway memory or store reads
    while it lags.

    Whole batches are queued, not events, so a commit costs each subscriber one wake-up
    however many events it holds.

    ``on_end`` is called when the subscription is cut off or closed, from whoever ends it: the
    follower may be busy elsewhere then (an SSE writer waiting on a reader that stopped reading),
    and learn of it through the queue only once that is done."""

    def __init__(
        self,
        maxsize: int = 1024,
        cut_off: bool = False,
        max_bytes: int | None = None,
        on_end: Callable[[], object] | None = None,
    ) -> None:
        #: ``None`` wakes the follower to look at ``closed`` and ``lagged``.
        self.queue: asyncio.Queue[EventBatch | None] = asyncio.Queue()
        self.maxsize = maxsize
        self.queued = 0  # events in ``queue``
        self.cut_off = cut_off
        self.max_bytes = max_bytes
        """With ``cut_off``: the SSE bytes offered and not yet written out (queued, or taken and
        being sent) beyond which the follower is ended, so a reader that stopped reading holds
        at most about this much (and its connection's buffer) however large the events."""
        self.backlog_bytes = 0
        self.in_flight = 0  # bytes of ``backlog_bytes`` the follower has taken and is sending
        self.lagged = False
        self.overflowed = False
        self.closed = False
        self.on_end = on_end

    def offer(self, batch: EventBatch) -> None:
        if self.lagged:
            return  # the follower re-reads the store for this and all that follows
        size = len(batch.sse_frames) if self.max_bytes is not None else 0
        behind = self.queued and self.queued + len(batch) > self.maxsize  # one batch alone is never "behind"
        if behind or (self.backlog_bytes and self.backlog_bytes + size > (self.max_bytes or 0)):
            self.lagged = True
            self.overflowed = self.cut_off
            if self.overflowed:
                self._cut_off()
            self.queue.put_nowait(None)
            return
        self.queued += len(batch)
        self.backlog_bytes += size
        self.queue.put_nowait(batch)

    def sent(self) -> None:
        """What the follower took has been written out."""
        self.backlog_bytes -= self.in_flight
        self.in_flight = 0

    def _cut_off(self) -> None:
        """Drop the backlog at once, not when the follower next runs: a reader that stopped
        reading keeps its writer waiting, and would keep the batches alive with it."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queued = self.backlog_bytes = self.in_flight = 0
        self._ended()

    def refill(self) -> None:
        """The follower re-reads the store, which holds all that is queued: start the queue afresh."""
        self.lagged = self.overflowed = False
        self.queued = self.backlog_bytes = self.in_flight = 0
        while not self.queue.empty():
            self.queue.get_nowait()

    def nudge(self) -> None:
        """Events were written elsewhere (another host), or not as one run: catch up from the store. One wake-up
        does for any number of them: the follower re-reads the store once it takes it (``refill``), after them all.
        A follower busy meanwhile (its SSE client reads slowly) would otherwise find one per commit of the other
        hosts queued, for as long as it stays busy."""
        if self.lagged:
            return
        self.lagged = True
        self.queue.put_nowait(None)

    def close(self) -> None:
        """End the follower once it has taken what is already queued."""
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)
            self._ended()

    def _ended(self) -> None:
        if self.on_end is not None:
            try:
                self.on_end()
            except Exception:  # whoever ends a follow (the flusher, a delete) must go on
                log.exception("follower_end_callback_failed")


class EventLog:
    """Each session's pending events have a deadline, and a commit goes (for all of them) at
    the earliest. A followed session's events commit at once, except within ``batch_window``
    after a commit of its deltas (longer for a crowd of followers, up to ``unwatched_window``).
    Events nobody here follows (a default-reply turn, a background turn nobody streams) wait
    up to ``unwatched_window``: a short turn is then one commit with its end, not three. A
    follower that arrives meanwhile gets them at once; on a store several hosts share, another
    host may be following, so there every session is paced as if followed. A commit goes at
    once, too, when ``batch_size`` events wait or someone waits in ``flush()``."""

    def __init__(
        self,
        store: Store,
        batch_size: int = 1024,
        batch_window: float = 0.01,
        unwatched_window: float = 0.1,
        write_timeout: float = 30.0,
    ) -> None:
        self._store = store
        self._max_counters = MAX_COUNTERS
        self._write_timeout = write_timeout
        self._failing_since: float | None = None
        self.stalled: str | None = None
        """Why the store refuses this log's writes, once it has for ``write_timeout`` seconds (else ``None``)."""
        self._on_stall: list[Callable[[], None]] = []
        self._batch_size = batch_size
        self._batch_window = batch_window
        self._unwatched_window = unwatched_window
        self._pending_since: dict[str, float] = {}  # session -> loop time of its oldest pending event
        self._last_deltas: dict[str, float] = {}  # session -> loop time of its last commit with deltas
        self._longest_window = max(batch_window, unwatched_window)
        self._next_seq: dict[str, int] = {}
        self._stored_up_to: dict[str, int] = {}  # session -> its last event this process knows to be in the store
        self._seq_lock = asyncio.Lock()
        self._pending: list[Event] = []
        self._ends: list[TurnEnd] = []
        self._transcripts: list[TranscriptLines] = []
        self._emitted = 0  # writes queued: events, turn ends, transcript lines
        self._committed = 0
        self._wakeup = asyncio.Event()
        self._urgent = asyncio.Event()  # commit now: someone waits in flush(), or a batch is full
        self._recheck = asyncio.Event()  # a deadline may have moved: a new session pending, a new follower
        self._progress = asyncio.Condition()
        self._subscribers: dict[str, set[Subscription]] = {}
        self._closed = False
        self._flusher: asyncio.Task[None] | None = None
        self._on_commit: list[Callable[[list[Event]], None]] = []
        self._on_deleted: list[Callable[[str], None]] = []

    @property
    def follower_count(self) -> int:
        """Live ``follow``s of every session (SSE streams, compat replies in flight), for ``/metrics``."""
        return sum(len(subscriptions) for subscriptions in self._subscribers.values())

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_forever(), name="ccapi-event-flusher")

    def end_follows(self, session_id: str | None = None) -> None:
        """End the live ``follow``s of a deleted session (and tell ``on_deleted``); or, without one, every
        ``follow`` (and any started later), so SSE streams finish and the server can stop without waiting out
        its drain timeout for clients that never leave."""
        if session_id is None:
            self._closed = True
        for subscribed, subscriptions in self._subscribers.items():
            if session_id in (None, subscribed):
                for subscription in subscriptions:
                    subscription.close()
        if session_id is not None:
            for callback in self._on_deleted:
                try:
                    callback(session_id)
                except Exception:  # whoever deletes a session must go on
                    log.exception("session_deleted_callback_failed", session_id=session_id)

    async def stop(self) -> None:
        self.end_follows()
        await self.flush()
        if self._flusher:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    def on_stall(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when the store has refused writes for ``write_timeout`` seconds."""
        self._on_stall.append(callback)

    def stall_error(self, **details: str) -> Unavailable:
        """The 503 for a reply that waits on events the store will not take (``stalled``)."""
        return Unavailable(
            f"the session store has refused writes for {self._write_timeout:g} s or more ({self.stalled}); what is "
            "waiting to be written is kept and goes in once it accepts writes again: read the turn or its events later",
            details or None,
        )

    def on_deleted(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(session_id)`` when a session is deleted here (``end_follows`` of it): for what keeps
        something of every session in memory (the compat router's heads), which would otherwise keep it for ever."""
        self._on_deleted.append(callback)

    def on_commit(self, callback: Callable[[list[Event]], None]) -> None:
        """Call ``callback(batch)`` after each batch commits (the webhook worker wakes on it)."""
        self._on_commit.append(callback)

    # -- writing ---------------------------------------------------------------
    async def emit(self, session_id: str, turn_id: str | None, type_: str, data: dict[str, Any]) -> Event:
        """Queue one event; it is durable (and visible to subscribers) after the next batch commits."""
        seq = await self._allocate(session_id)
        event = Event(seq, str(type_), session_id, turn_id, utcnow(), data)
        if session_id not in self._pending_since:
            self._pending_since[session_id] = asyncio.get_running_loop().time()
            self._recheck.set()
        self._pending.append(event)
        self._queued()
        if len(self._pending) >= self._batch_size:
            self._commit_now()
        return event

    def end_turn(self, end: TurnEnd) -> None:
        """Queue a turn's end rows; call right after emitting its terminal event (with no await in
        between), and they commit in one transaction with it."""
        self._ends.append(end)
        self._queued()

    def mirror(self, lines: TranscriptLines) -> None:
        """Queue transcript lines for the next commit, which writes them before the events it
        carries: an event (``turn.completed``) is never acknowledged before what Claude Code
        wrote ahead of it, yet nobody waits for a commit of their own. Lines alone wait a batch
        window for events to ride with, so they never hold up a turn's first token."""
        self._transcripts.append(lines)
        self._emitted += 1
        asyncio.get_running_loop().call_later(self._batch_window, self._wakeup.set)

    def _queued(self) -> None:
        self._emitted += 1
        self._wakeup.set()

    def _commit_now(self) -> None:
        self._urgent.set()
        self._recheck.set()
        self._wakeup.set()

    async def flush(self, bounded: bool = False) -> None:
        """Wait until everything queued so far is committed, and its events published; ``bounded``: or
        raise ``stall_error`` once the store has refused writes for ``write_timeout`` (what is queued
        stays queued). The gateway's own work waits unbounded: it must not lose its place."""
        target = self._emitted
        if self._committed < target:
            self._commit_now()
        async with self._progress:
            await self._progress.wait_for(lambda: self._committed >= target or (bounded and self.stalled is not None))
        if self._committed < target:
            raise self.stall_error()

    async def _allocate(self, session_id: str) -> int:
        if session_id not in self._next_seq:
            async with self._seq_lock:
                if session_id not in self._next_seq:
                    self._number_after(session_id, await self._store.max_seq(session_id))
        seq = self._next_seq[session_id]
        self._next_seq[session_id] = seq + 1
        return seq

    def _number_after(self, session_id: str, last_seq: int) -> None:
        """Number the session's next event ``last_seq + 1``, its last stored event being ``last_seq``."""
        if session_id not in self._next_seq and len(self._next_seq) >= self._max_counters:
            self._shed_counters()
        self._next_seq[session_id] = last_seq + 1
        self._stored_up_to[session_id] = last_seq

    def _shed_counters(self) -> None:
        """Drop the numbering of sessions (the longest-known first) down to three quarters of ``MAX_COUNTERS``: of
        those whose every event is in the store (so the store's last seq is the next one's predecessor) and that
        nobody here follows. Without this, a gateway that keeps its sessions (``CC_API_SESSION_RETENTION`` off, the
        default) kept two entries for every session it ever wrote to, for as long as it ran."""
        excess = len(self._next_seq) - self._max_counters * 3 // 4
        for session_id in list(self._next_seq):
            if excess <= 0:
                return
            stored = self._stored_up_to.get(session_id)
            if stored is None or self._next_seq[session_id] != stored + 1 or session_id in self._subscribers:
                continue
            del self._next_seq[session_id]
            del self._stored_up_to[session_id]
            excess -= 1

    async def _flush_forever(self) -> None:
        """Commit what is queued at the earliest deadline of its sessions (see the class), so a
        streamed reply costs a handful of commits and a turn's first token is not held back:
        only a commit with deltas in it opens a session's window, not the commit of its
        ``turn.started`` a moment before."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            while not self._urgent.is_set():
                self._recheck.clear()
                gather = self._deadline() - loop.time()
                if gather <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(gather):
                        await self._recheck.wait()
            self._wakeup.clear()
            self._urgent.clear()
            batch, ends, transcripts = self._pending, self._ends, self._transcripts
            self._pending, self._ends, self._transcripts = [], [], []
            self._pending_since.clear()
            if not (batch or ends or transcripts):
                continue
            now = loop.time()
            self._last_deltas = {  # a window longer ago than the longest has closed
                session_id: at for session_id, at in self._last_deltas.items() if at > now - self._longest_window
            }
            for event in batch:
                if event.type in DELTA_EVENTS:
                    self._last_deltas[event.session_id] = now
            try:
                await self._store.append_events(batch, ends, transcripts)
            except Exception as exc:
                log.exception("event_batch_write_failed", events=len(batch))
                self._pending, self._ends = batch + self._pending, ends + self._ends
                self._transcripts = transcripts + self._transcripts
                for event in batch:
                    self._pending_since.setdefault(event.session_id, now)
                await self._failed(str(exc) or type(exc).__name__, loop.time())
                self._wakeup.set()
                await asyncio.sleep(0.5)
                continue
            self._failing_since = self.stalled = None
            if batch:
                for event in batch:  # in seq order within each session; not for one forgotten meanwhile (deleted)
                    if event.session_id in self._next_seq:
                        self._stored_up_to[event.session_id] = event.seq
                self._publish(batch)
                for callback in self._on_commit:
                    callback(batch)
            async with self._progress:
                self._committed += len(batch) + len(ends) + len(transcripts)
                self._progress.notify_all()

    async def _failed(self, error: str, now: float) -> None:
        """Note a refused write; past ``write_timeout`` of them, tell who waits (they answer 503)."""
        if self._failing_since is None:
            self._failing_since = now
        if self.stalled is None and now - self._failing_since >= self._write_timeout:
            self.stalled = error
            log.error("event_log_stalled", error=error, seconds=round(now - self._failing_since, 1))
            for callback in self._on_stall:
                callback()
            async with self._progress:
                self._progress.notify_all()

    def _deadline(self) -> float:
        """When what is pending must commit: the earliest of its sessions' deadlines (now, for
        transcript lines alone: they were already held back a window by ``mirror``)."""
        deadlines = [self._session_deadline(session_id, since) for session_id, since in self._pending_since.items()]
        return min(deadlines, default=0.0)

    def _session_deadline(self, session_id: str, since: float) -> float:
        followers = len(self._subscribers.get(session_id, ()))
        if not followers and not self._store.shared:
            return since + self._unwatched_window
        # each commit costs every follower a wake-up and a write: a crowd gets fewer, larger ones
        window = min(self._batch_window * max(1.0, followers / FOLLOWERS_PER_WINDOW), self._longest_window)
        return self._last_deltas.get(session_id, -window) + window

    # -- reading ---------------------------------------------------------------
    def _publish(self, events: list[Event]) -> None:
        """Offer each session's share of a commit to its subscribers as one shared batch."""
        by_session: dict[str, EventBatch] = {}
        for event in events:
            if event.session_id in self._subscribers:
                by_session.setdefault(event.session_id, EventBatch()).append(event)
        for session_id, batch in by_session.items():
            subscriptions = self._subscribers[session_id]
            if batch[-1].seq - batch[0].seq != len(batch) - 1:  # not one run: let the store order it
                for subscription in subscriptions:
                    subscription.nudge()
                continue
            for subscription in subscriptions:
                subscription.offer(batch)

    @contextlib.contextmanager
    def subscribe(  # type: ignore[no-untyped-def]
        self,
        session_id: str,
        buffer: int = 1024,
        cut_off: bool = False,
        max_bytes: int | None = None,
        on_end: Callable[[], object] | None = None,
    ):
        subscription = Subscription(buffer, cut_off, max_bytes, on_end)
        if self._closed:
            subscription.close()
        self._subscribers.setdefault(session_id, set()).add(subscription)
        if session_id in self._pending_since:
            self._recheck.set()  # its events may have been gathering for nobody
        try:
            yield subscription
        finally:
            subscribers = self._subscribers.get(session_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[session_id]

    async def follow(self, session_id: str, after: int, keepalive: float) -> AsyncIterator[Event | None]:
        """``follow_batches`` one event at a time, for readers in the gateway itself."""
        async for batch in self.follow_batches(session_id, after, keepalive):
            if batch is KEEPALIVE:
                yield KEEPALIVE
                continue
            for event in batch:
                yield event

    def followers(self, session_id: str | None = None) -> int:
        """How many follow this session (or, without one, any session) here."""
        if session_id is not None:
            return len(self._subscribers.get(session_id, ()))
        return sum(len(subscribers) for subscribers in self._subscribers.values())

    async def follow_batches(
        self,
        session_id: str,
        after: int,
        keepalive: float,
        buffer: int = 1024,
        cut_off: bool = False,
        max_bytes: int | None = None,
        on_end: Callable[[], object] | None = None,
    ) -> AsyncGenerator[EventBatch | None, None]:
        """Every event after ``after`` exactly once and in order, in batches of all that was
        ready at once: the stored log first, then the live tail. Yields ``KEEPALIVE`` after
        ``keepalive`` seconds of quiet, and ends after ``end_follows`` or once the session is
        gone (deleted, maybe by another host) — and, with ``cut_off``, once more than
        ``buffer`` events (or ``max_bytes`` of their SSE frames) wait for a reader too slow to
        take them. ``on_end`` is called the moment a cut-off or ``end_follows`` ends it (see
        ``Subscription``), whatever its reader is doing then.

        Subscribing before reading the store closes the gap between replay and live; any
        hole in the live feed (a lagged queue, a nudge from another host) is refilled from
        the store, which each keep-alive also re-reads in case a nudge was missed.
        """
        last = after
        with self.subscribe(session_id, buffer, cut_off, max_bytes, on_end) as subscription:
            replayed = self._stored_after(session_id, last)
            while not subscription.closed:
                subscription.refill()
                replay = EventBatch(
                    await self._store.list_events(session_id, after=last, limit=500) if replayed else ()
                )
                replayed = True
                if replay:
                    yield replay
                    last = replay[-1].seq
                if len(replay) == 500:
                    continue
                while not subscription.overflowed:
                    try:
                        item = subscription.queue.get_nowait()
                    except asyncio.QueueEmpty:
                        try:
                            async with asyncio.timeout(keepalive):  # no task per wait, unlike wait_for
                                item = await subscription.queue.get()
                        except TimeoutError:
                            if await self._store.get_session(session_id) is None:
                                return
                            yield KEEPALIVE
                            break
                    batch, gap = self._take(subscription, item, last)
                    if batch:
                        yield batch
                        last = batch[-1].seq
                    subscription.sent()
                    if gap:
                        break
                else:
                    return  # cut off: the reader reconnects from its last event

    def _stored_after(self, session_id: str, seq: int) -> bool:
        """Whether the store may hold events of the session after ``seq`` that a new follower must replay: not
        when all that this process has stored is at or before ``seq`` and no other host writes (a streamed turn
        follows from its own ``turn.started``, which is still pending). What commits later reaches the follower
        live, as it subscribed first; this saves its first read of the store, which ran beside the turn's
        start and competed with it for the machine's two cores."""
        stored = self._stored_up_to.get(session_id)
        return self._store.shared or stored is None or stored > seq

    @staticmethod
    def _take(subscription: Subscription, item: EventBatch | None, last: int) -> tuple[EventBatch, bool]:
        """``item`` and all else queued that continues ``last`` without a gap, as one batch (the
        very batch the log published, shared with other subscribers, when that is all there
        is); and whether a gap (or a wake-up) means the store must be read again."""
        parts: list[EventBatch] = []
        gap = False
        while True:
            if item is None:
                gap = True
                break
            subscription.queued -= len(item)
            if subscription.max_bytes is not None:
                subscription.in_flight += len(item.sse_frames)
            if item[-1].seq > last:
                if subscription.lagged or item[0].seq > last + 1:
                    gap = True
                    break
                if item[0].seq <= last:  # overlaps what the store replay already gave
                    item = EventBatch(item[last + 1 - item[0].seq :])
                parts.append(item)
                last = item[-1].seq
            try:
                item = subscription.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
        if len(parts) == 1:
            return parts[0], gap
        return EventBatch(event for part in parts for event in part), gap

    def nudge(self, session_id: str) -> None:
        """Another gateway host appended to this session's log: wake its followers here."""
        for subscription in self._subscribers.get(session_id, ()):
            subscription.nudge()

    def adopt(self, session_id: str, last_seq: int) -> None:
        """Continue numbering after ``last_seq``, the session's last committed event (which another
        host may have written); call with nothing of the session's pending."""
        self._number_after(session_id, last_seq)

    def forget(self, session_id: str) -> None:
        """Drop a deleted session's counter so a reused id could never continue old numbering."""
        self._next_seq.pop(session_id, None)
        self._stored_up_to.pop(session_id, None)
