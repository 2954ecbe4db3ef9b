"""In-order delivery for the worker's Faust consumer: no record of an input is skipped.

Faust's fetch loop (``Consumer._drain_messages``) hands a record to the agents when
its offset is not below the highest offset read so far, and drops it otherwise. Records
go missing when a batch is cut short (a rebalance stops the flow, the generation
changes, a partition is paused while its records are in the batch) and the partition is
not sought back, or when records prefetched before a seek arrive after it: everything
below the highest offset delivered is then dropped for good, and with no committed
offset (Faust's read offset is unset at 0) the skip is not even noticed. The commit
logic then acknowledges past the hole (faust-streaming issues #221, #606).

:class:`InOrderDelivery` keeps, per input partition, the *next offset the agents must
see*. A record at that offset is delivered; one below it was delivered already and is
dropped; one above it means records were skipped: the partition is sought back to the
expected offset (in the consumer's own thread, so nothing fetched before the seek can
arrive after it) and later records are dropped until the expected one comes. If the
first record after a completed seek is still beyond the expected offset, the broker
has nothing in between (records deleted by retention or removed by compaction), so the
hole is accepted and recorded as a Faust "gap" for the commit, but only when a second
seek brings the same record first (a seek that did not take, such as a fetch position
left over from before a rebalance, brought a later record once and lost it). A partition whose
records stop arriving while its log holds more (a batch cut short at the end of the
input) is sought back by a watchdog.

Faust's table changelogs keep Faust's own logic: table recovery seeks them behind the
consumer's back. :func:`install` patches Faust's consumer class once per process;
:func:`reads_again_what_resuming_clears` reads again what Faust throws away from the
agents' queues when a rebalance ends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Coroutine, Hashable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

from prometheus_client import Counter

log = logging.getLogger(__name__)

RESTART_EXIT_CODE = 75
"""Exit code of a worker process that must start again from the committed offsets."""

RESEEKS = Counter(
    "cdp_consumer_reseeks",
    "Input partitions sought back to the next expected offset (records had been skipped)",
    ["topic", "reason"],
)


class Verdict(Enum):
    """What the fetch loop does with one record."""

    DELIVER = "deliver"
    """Hand it to the agents (and mark it read)."""
    DROP = "drop"
    """Already delivered, or a later record while a seek back is under way."""
    SEEK = "seek"
    """Records before it were skipped: seek back to :meth:`InOrderDelivery.expected`."""
    GAP = "gap"
    """The broker has nothing between the expected offset and this one: deliver it and
    record the hole as a Faust gap."""
    RESTART = "restart"
    """Seeking back did not bring the expected record: start the process again."""


@dataclass
class _Seek:
    offset: int
    batch: int
    at: float
    tries: int
    beyond: int | None = None
    """The later record that the previous completed seek brought first (None: none)."""


@dataclass
class InOrderDelivery:
    """The next offset to deliver per partition, and the seeks under way.

    ``retry_after`` seconds without the expected record after a seek (or without
    progress on a partition whose log holds more, for ``retry_after`` seconds and
    ``stall_batches`` fetches) lead to another seek; after
    ``max_tries`` seeks for the same offset the verdict is :attr:`Verdict.RESTART`.
    Partitions are any hashable (Faust's ``TP``); batches are numbered by the caller
    (:meth:`next_batch`), one per fetch.
    """

    retry_after: float = 10.0
    max_tries: int = 5
    stall_batches: int = 10
    batch: int = 0
    _next: dict[Hashable, int] = field(default_factory=dict)
    _seeks: dict[Hashable, _Seek] = field(default_factory=dict)
    _progress_at: dict[Hashable, float] = field(default_factory=dict)
    _progress_batch: dict[Hashable, int] = field(default_factory=dict)
    _positionings: dict[Hashable, int] = field(default_factory=dict)
    changelog_at: float = field(default_factory=time.monotonic)
    """When the fetch loop last delivered a table changelog record (recovery progress)."""
    loop_at: float = field(default_factory=time.monotonic)
    """When the fetch loop last delivered any record."""

    def next_batch(self) -> None:
        """A new fetch starts: seeks completed before it are reflected in its records."""
        self.batch += 1

    def expected(self, tp: Hashable) -> int | None:
        """The next offset the agents must see on ``tp`` (None: not known yet)."""
        return self._next.get(tp)

    def positioning(self, tp: Hashable) -> int:
        """How often ``tp`` was positioned (:meth:`reset`) or revoked (:meth:`forget`):
        taken before a delivery that can wait and handed to :meth:`delivered` after it."""
        return self._positionings.get(tp, 0)

    def reset(self, tp: Hashable, offset: int, *, sought: bool, now: float) -> None:
        """The consumer was positioned: ``offset`` is the next record to deliver.

        ``sought`` tells whether the fetcher really moved there (then the first record
        after it is the broker's word on what follows); a partition without a committed
        offset is left wherever the fetcher is, so its first record is checked.
        """
        self._next[tp] = offset
        self._positionings[tp] = self._positionings.get(tp, 0) + 1
        self._progressed(tp, now)
        if sought:
            self._seeks[tp] = _Seek(offset, self.batch, now, 0)
        else:
            self._seeks.pop(tp, None)

    def verdict(self, tp: Hashable, offset: int, now: float) -> Verdict:
        """What to do with the record at ``offset`` of ``tp``."""
        expected = self._next.get(tp)
        if expected is None or offset == expected:
            return Verdict.DELIVER
        if offset < expected:
            return Verdict.DROP
        seek = self._seeks.get(tp)
        if seek is not None and seek.offset == expected:
            if self.batch > seek.batch:  # the first record fetched after the seek
                if seek.beyond == offset:
                    return Verdict.GAP  # twice in a row: the broker has nothing between
                return self._seek_back(tp, expected, seek, now, beyond=offset)
            if now - seek.at < self.retry_after:
                return Verdict.DROP  # fetched before the seek completed
        return self._seek_back(tp, expected, seek, now)

    def _seek_back(
        self,
        tp: Hashable,
        expected: int,
        seek: _Seek | None,
        now: float,
        beyond: int | None = None,
    ) -> Verdict:
        tries = seek.tries + 1 if seek is not None and seek.offset == expected else 1
        if tries > self.max_tries:
            return Verdict.RESTART
        self._seeks[tp] = _Seek(expected, self.batch, now, tries, beyond)
        self._progressed(tp, now)
        return Verdict.SEEK

    def _progressed(self, tp: Hashable, now: float) -> None:
        self._progress_at[tp] = now
        self._progress_batch[tp] = self.batch

    def delivered(
        self, tp: Hashable, offset: int, now: float, positioning: int | None = None
    ) -> bool:
        """The record at ``offset`` went to the agents; whether that moved the partition on.

        With ``positioning`` (:meth:`positioning` taken before the delivery started) a
        partition positioned again while the delivery waited keeps its new expected
        offset: the queues were emptied in the meantime (the copy of this record an
        agent already had among them), and the records from there are read again.
        """
        if positioning is not None and positioning != self.positioning(tp):
            return False
        self._next[tp] = offset + 1
        self._progressed(tp, now)
        seek = self._seeks.get(tp)
        if seek is not None and seek.offset <= offset:
            del self._seeks[tp]
        return True

    def stalled(self, tp: Hashable, log_end: int | None, now: float) -> Verdict | None:
        """Whether ``tp`` must be sought back (:attr:`Verdict.SEEK`, recorded) or the
        process restarted: its log holds more than was delivered, and nothing arrived
        for ``retry_after`` seconds and ``stall_batches`` fetches."""
        expected = self._next.get(tp)
        if expected is None or log_end is None or log_end <= expected:
            return None
        since = self._progress_at.setdefault(tp, now)
        batch = self._progress_batch.setdefault(tp, self.batch)
        if now - since < self.retry_after or self.batch - batch < self.stall_batches:
            return None
        return self._seek_back(tp, expected, self._seeks.get(tp), now)

    def progress_age(self, tp: Hashable, now: float) -> float | None:
        """Seconds since ``tp`` last delivered a record (or was positioned); None: unknown."""
        since = self._progress_at.get(tp)
        return None if since is None else now - since

    def forget(self, tps: Any) -> None:
        """Partitions revoked from this consumer."""
        for tp in tps:
            self._positionings[tp] = self._positionings.get(tp, 0) + 1
            self._next.pop(tp, None)
            self._seeks.pop(tp, None)
            self._progress_at.pop(tp, None)
            self._progress_batch.pop(tp, None)


def _delivery(consumer: Any) -> InOrderDelivery:
    delivery = getattr(consumer, "_cdp_in_order", None)
    if delivery is None:
        delivery = InOrderDelivery()
        consumer._cdp_in_order = delivery
    return cast(InOrderDelivery, delivery)


async def _seek_in_consumer_thread(consumer: Any, tp: Any, offset: int) -> None:
    """Seek in the aiokafka consumer's own event loop: serialised with its fetches."""
    aiokafka_consumer = consumer._thread._ensure_consumer()

    async def seek() -> None:
        aiokafka_consumer.seek(tp, offset)

    await consumer._thread.call_thread(seek)


RESTART_LINE = "restarting to read it again from the committed offset"
"""Ends every log line of a restart by this module (a documented recovery)."""


def _restart(tp: Any, expected: int) -> None:
    exit_for_restart(
        "%s[%d]: offset %d does not arrive after %s seeks; %s",
        tp.topic,
        tp.partition,
        expected,
        InOrderDelivery.max_tries,
        RESTART_LINE,
    )


def exit_for_restart(message: str, *args: Any, exc_info: bool = False) -> None:
    """Log ``message`` and exit with :data:`RESTART_EXIT_CODE` at once (no cleanup that
    could acknowledge or commit anything): ``cdp worker`` starts the process again, and
    it reads on from the committed offsets."""
    log.error(message, *args, exc_info=exc_info)
    logging.shutdown()
    os._exit(RESTART_EXIT_CODE)


def log_end(consumer: Any, tp: Any) -> int | None:
    """The end offset of ``tp`` as the consumer last fetched it (None: not fetched yet, or
    revoked meanwhile)."""
    try:
        return cast(int | None, consumer.highwater(tp))
    except Exception:
        return None


async def _guarded(consumer: Any, tp: Any, offset: int, delivery: InOrderDelivery) -> bool:
    """Whether the record at ``offset`` of the (non-changelog) ``tp`` goes to the agents."""
    now = time.monotonic()
    verdict = delivery.verdict(tp, offset, now)
    if verdict is Verdict.DELIVER:
        return True
    if verdict is Verdict.DROP:
        return False
    expected = cast(int, delivery.expected(tp))
    if verdict is Verdict.GAP:
        log.warning(
            "%s[%d]: offsets %d..%d are not in the log (retention or compaction)",
            tp.topic,
            tp.partition,
            expected,
            offset - 1,
        )
        if consumer.app.topics.acks_enabled_for(tp.topic):
            await consumer._add_gap(tp, expected, offset)
        return True
    if verdict is Verdict.RESTART:
        _restart(tp, expected)
    log.warning(
        "%s[%d]: offset %d arrived before %d..%d; seeking back to %d",
        tp.topic,
        tp.partition,
        offset,
        expected,
        offset - 1,
        expected,
    )
    RESEEKS.labels(tp.topic, "skipped").inc()
    await _seek_in_consumer_thread(consumer, tp, expected)
    return False


async def _watch_stalled(consumer: Any, delivery: InOrderDelivery) -> None:
    """Seek back partitions whose records stopped arriving while their log holds more."""
    if not consumer.flow_active:
        return
    now = time.monotonic()
    for tp in list(consumer._get_active_partitions()):
        if consumer._is_changelog_tp(tp):
            continue
        end = log_end(consumer, tp)
        verdict = delivery.stalled(tp, end, now)
        if verdict is None:
            continue
        expected = cast(int, delivery.expected(tp))
        if verdict is Verdict.RESTART:
            _restart(tp, expected)
        log.warning(
            "%s[%d]: nothing delivered from offset %d for %.0f s while the log ends at %d;"
            " seeking back",
            tp.topic,
            tp.partition,
            expected,
            delivery.retry_after,
            end,
        )
        RESEEKS.labels(tp.topic, "stalled").inc()
        await _seek_in_consumer_thread(consumer, tp, expected)


class Blocked(Enum):
    """What the blocked-input watchdog does on one tick."""

    NOTHING = "nothing"
    WARN = "warn"
    """Log the worker's state (once per episode)."""
    RESTART = "restart"
    """Exit to be started again from the committed offsets."""


@dataclass
class BlockedInput:
    """Decides about input that stopped moving where the fetch loop cannot see it.

    The fetch loop seeks back partitions it fetches for that stopped delivering
    (:meth:`InOrderDelivery.stalled`). Input can also stop where that check does not
    run: a partition Faust paused or took out of its fetches (an agent's full buffer)
    and never put back, a flow left suspended after a rebalance, or a fetch loop
    stuck in a delivery, or an agent that stopped finishing what it was given (its
    partitions' committed offsets stay behind what was delivered). Given the
    longest time an input partition with records waiting went without delivering,
    or with delivered records not committed, this says when to log the worker's state and
    when to restart. A partition Faust did not pause counts only while the fetch
    loop delivers nothing at all: with a deep backlog one fetched batch can take
    minutes to deliver, and a partition whose records in it are used up waits for
    the next one. A table recovery that is still reading its changelogs, or a stage
    waiting for Redis to come back, is not restarted.
    """

    warn_after: float = 30.0
    restart_after: float = 120.0
    warned: bool = False

    def check(self, idle: float, *, recovering: bool, waiting_on_redis: bool) -> Blocked:
        """The action for a tick on which the longest-idle waiting partition is ``idle`` s."""
        if idle < self.warn_after:
            self.warned = False
            return Blocked.NOTHING
        if idle >= self.restart_after and not (recovering or waiting_on_redis):
            return Blocked.RESTART
        if self.warned:
            return Blocked.NOTHING
        self.warned = True
        return Blocked.WARN


def watch_blocked(app: Any, guard: BlockedInput | None = None, interval: float = 5.0) -> None:
    """Run :class:`BlockedInput` on ``app`` every ``interval`` seconds (a Faust timer).

    Before it comes to that, a partition whose delivered records stay unacknowledged
    for ``guard.warn_after`` seconds while no stage has a batch in progress (a message
    Faust lost track of in a rebalance) is read again from its committed offset, once
    per committed offset; the restart stays the last resort.
    """
    from cdp.diagnostics import snapshot
    from cdp.serve.outage import waiting_on_redis
    from cdp.streams import stages_busy

    guard = guard or BlockedInput()
    commits: dict[Any, tuple[int, float]] = {}  # per partition: committed offset, seen since
    reread_from: dict[Any, int] = {}  # per partition: the committed offset read again from

    def read_unfinished_again(
        delivery: InOrderDelivery, tp: Any, committed: int, expected: int, idle: float
    ) -> None:
        delivery.reset(tp, committed, sought=False, now=time.monotonic())
        reread_from[tp] = committed
        commits.pop(tp, None)
        log.warning(
            "%s[%d]: offsets %d..%d delivered but not acknowledged for %.0f s while no stage"
            " has a batch in progress; reading them again from %d",
            tp.topic,
            tp.partition,
            committed,
            expected - 1,
            idle,
            committed,
        )
        RESEEKS.labels(tp.topic, "unfinished").inc()

    def unfinished_for(tp: Any, expected: int | None, committed: int, now: float) -> float:
        """Seconds that records delivered to the agents stayed uncommitted (0: none)."""
        if expected is None or committed >= expected:
            commits.pop(tp, None)
            return 0.0
        seen = commits.get(tp)
        if seen is None or seen[0] != committed:
            commits[tp] = seen = (committed, now)
        return now - seen[1]

    async def watch_blocked_input() -> None:
        consumer = app.consumer
        delivery = getattr(consumer, "_cdp_in_order", None)
        if delivery is None:
            return
        now = time.monotonic()
        loop_idle = now - delivery.loop_at
        paused = consumer._paused_partitions
        idle: dict[Any, float] = {}
        why: dict[Any, str] = {}
        assigned = consumer.assignment()
        for tp in list(commits):
            if tp not in assigned:
                del commits[tp]
        for tp in assigned:
            if consumer._is_changelog_tp(tp):
                continue
            expected, age = delivery.expected(tp), delivery.progress_age(tp, now)
            committed = consumer._committed_offset.get(tp) or 0
            # delivered to an agent that never finishes them: the agent is stuck
            unfinished = unfinished_for(tp, expected, committed, now)
            if (
                unfinished >= guard.warn_after
                and reread_from.get(tp) != committed
                and consumer.flow_active
                and not getattr(app, "in_recovery", False)
                and not stages_busy()
            ):
                read_unfinished_again(delivery, tp, committed, cast(int, expected), unfinished)
                continue
            if unfinished:
                idle[tp] = unfinished
                why[tp] = f"offsets {committed}..{cast(int, expected) - 1} not finished"
            end = log_end(consumer, tp)
            if None not in (expected, age, end) and cast(int, end) > cast(int, expected):
                waiting = cast(float, age) if tp in paused else min(cast(float, age), loop_idle)
                if waiting > idle.get(tp, 0.0):
                    idle[tp] = waiting
                    why[tp] = f"nothing delivered from offset {expected} while records wait"
        if not idle:
            guard.check(0.0, recovering=False, waiting_on_redis=False)
            return
        tp, longest = max(idle.items(), key=lambda item: item[1])
        recovering = bool(getattr(app, "in_recovery", False)) and (
            now - delivery.changelog_at < guard.warn_after
        )
        action = guard.check(longest, recovering=recovering, waiting_on_redis=waiting_on_redis())
        if action is Blocked.NOTHING:
            return
        state = snapshot(app)
        if action is Blocked.WARN:
            log.warning(
                "%s[%d]: %s for %.0f s; worker state:\n%s",
                tp.topic,
                tp.partition,
                why[tp],
                longest,
                state,
            )
            return
        RESEEKS.labels(tp.topic, "blocked").inc()
        exit_for_restart(
            "%s[%d]: %s for %.0f s; %s. Worker state:\n%s",
            tp.topic,
            tp.partition,
            why[tp],
            longest,
            RESTART_LINE,
            state,
        )

    app.timer(interval, name="cdp.in_order.watch_blocked_input")(watch_blocked_input)


async def deliver(consumer: Any, callback: Coroutine[Any, Any, Any]) -> None:
    """Run Faust's per-record ``callback`` coroutine until the record is in its streams.

    Faust awaits every record's delivery with ``wait_first(callback,
    suspend_flow.wait())``, which starts four tasks per record (a fifth of a worker's
    CPU). The callback almost never waits (it puts the event into stream buffers
    that have room), so it is run here in place; only when it does wait (a full
    buffer, flow control) does the rest of it go through ``wait_first`` as before, so
    that a rebalance suspending the flow still cuts it short.
    """
    try:
        waiting_on = callback.send(None)
    except StopIteration:
        return
    await consumer.wait_first(_resume(callback, waiting_on), consumer.suspend_flow.wait())


ROOM_POLL_S = 0.005
"""How often :func:`wait_for_room` looks at a full stream buffer again."""


async def wait_for_room(consumer: Any, tp: Any) -> bool:
    """When a stream buffer of ``tp`` is full, wait until it is at most half full; whether
    it waited.

    Under a backlog the buffers are full most of the time. Faust's per-record callback
    then starts a task per full buffer, :func:`deliver` falls back to ``wait_first``,
    and every record costs a switch to the agent and back (each event the agent takes
    frees one slot): measured with ``bench/faust_floor.py``, about a third of what
    reading a record costs. Waiting here for half a buffer lets the next thousands of
    records go in place. A few milliseconds of polling cost nothing against the
    thousands of records still buffered. The wait ends early when the flow is
    suspended (a rebalance); :func:`deliver` then cuts the delivery short as before.
    """
    channels = consumer.app.topics._tp_index.get(tp)
    if not channels:
        return False
    waited = False
    for channel in channels:
        queue = channel.queue
        if not queue.full():
            continue
        half = queue.maxsize // 2
        while queue.qsize() > half and consumer.flow_active and not consumer.should_stop:
            waited = True
            await asyncio.sleep(ROOM_POLL_S)
    return waited


async def _resume(coroutine: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
    """Drive a coroutine that was started by hand and is waiting on ``waiting_on``, as a
    task would: wait for the future (or yield once for a bare ``yield``), resume it."""
    try:
        while True:
            if waiting_on is None:
                await asyncio.sleep(0)
            else:
                await asyncio.wait([waiting_on])
            try:
                waiting_on = coroutine.send(None)
            except StopIteration:
                return
    except asyncio.CancelledError:
        if waiting_on is not None:
            waiting_on.cancel()
        coroutine.close()
        raise


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - real stack
    """Faust's fetch loop (faust-streaming 0.11), with :func:`_guarded` per record and
    :func:`deliver` instead of Faust's ``wait_first`` per record."""
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    is_changelog = self._is_changelog_tp
    acks_enabled_for = self.app.topics.acks_enabled_for
    commit_every = self._commit_every
    delivery = _delivery(self)
    from faust.transport.consumer import CONSUMER_FETCHING

    yield_every = 100
    num_since_yield = 0
    watched_at = time.monotonic()
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            self.diag.set_flag(CONSUMER_FETCHING)
            delivery.next_batch()
            ait = getmany(timeout=1.0)
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > yield_every:
                        await asyncio.sleep(0)
                        num_since_yield = 0
                    offset = message.offset
                    changelog = is_changelog(tp)
                    if changelog:  # Faust's own logic: recovery seeks these itself
                        r_offset = get_read_offset(tp)
                        if r_offset is not None and offset < r_offset:
                            continue
                        gap = r_offset and offset - r_offset > 1
                        if gap and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                    elif not await _guarded(self, tp, offset, delivery):
                        continue
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    positioning = delivery.positioning(tp)
                    if await wait_for_room(self, tp) and positioning != delivery.positioning(tp):
                        continue  # positioned again while waiting: read again from there
                    await deliver(self, callback(message))
                    set_read_offset(tp, offset)
                    delivery.loop_at = now = time.monotonic()
                    if changelog:
                        delivery.changelog_at = now  # table recovery progresses
                    # A suspended flow may have cut the delivery short; the rebalance that
                    # suspended it seeks the partition back to the committed offset anyway.
                    if self.flow_active and not changelog:
                        delivery.delivered(tp, offset, now, positioning)
                self.diag.unset_flag(CONSUMER_FETCHING)
            if time.monotonic() - watched_at >= 1.0:
                watched_at = time.monotonic()
                await _watch_stalled(self, delivery)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        self.diag.unset_flag(CONSUMER_FETCHING)


def next_commit(acked: list[int], committed: int | None) -> tuple[int | None, int]:
    """The offset to commit after ``committed`` given the ``acked`` offsets, and how
    many leading entries of ``acked`` (sorted, distinct) that settles.

    Only an unbroken run of acknowledged offsets that starts exactly at the committed
    offset (the next record to read; None: nothing committed yet, reading from 0)
    moves the commit. Entries below it are stale (acknowledged again after a rebalance)
    and are settled without moving anything. Faust's own rule lets the run start one
    record later, and anywhere at all while nothing is committed, so an
    acknowledgement that arrives out of order (an event left over from before a
    rebalance) commits past a record no agent has finished: a crash then loses it.
    """
    base = committed or 0
    stale = 0
    while stale < len(acked) and acked[stale] < base:
        stale += 1
    expected = base
    end = stale
    while end < len(acked) and acked[end] == expected:
        end += 1
        expected += 1
    return (expected if end > stale else None), end


def _new_offset(self: Any, tp: Any) -> int | None:  # pragma: no cover - real stack
    """Faust's ``Consumer._new_offset`` (faust-streaming 0.11) with :func:`next_commit`'s
    rule: gaps (offsets the broker does not have) count as acknowledged, as in Faust."""
    acked = self._acked[tp]
    if not acked:
        return None
    gap_for_tp = self._gap[tp]
    if gap_for_tp:
        max_offset = max(acked)
        candidates = sorted(gap_for_tp.overlap(0, max_offset), key=lambda x: x.begin)
        if candidates:
            filled = [o for entry in candidates for o in range(entry.begin, entry.end)]
            acked.extend(filled)
            gap_for_tp.chop(0, max(filled[-1], max_offset + 1))
    acked[:] = sorted(set(acked))
    offset, settled = next_commit(acked, self._committed_offset[tp])
    self._acked_index[tp].difference_update(acked[:settled])
    del acked[:settled]
    return offset


_CHANNEL_PUTS = frozenset({"Channel.put", "Topic.put"})


def cancel_cut_short_deliveries() -> int:
    """Cancel Faust's tasks that still wait to put a record into a full agent queue;
    how many. Only called once a rebalance suspended the flow (see :func:`wait_empty`)."""
    cancelled = 0
    for task in asyncio.all_tasks():
        coroutine = task.get_coro()
        if getattr(coroutine, "__qualname__", "") in _CHANNEL_PUTS and not task.done():
            task.cancel()
            cancelled += 1
    return cancelled


@dataclass
class StuckMessages:
    """Decides when the messages a rebalance waits for will never be acknowledged.

    Once the flow is suspended no agent gets new records (Faust's streams skip what
    they take then, and its Cython stream iterator does not even acknowledge what it
    skips), so what is still unacknowledged is either in a batch a stage is processing
    or nobody's any more. The latter holds Faust's ``wait_empty`` forever. They are
    given up when no stage has a batch in progress and the unacknowledged set has not
    changed for ``settle`` seconds.
    """

    settle: float = 2.0
    _seen: frozenset[int] = frozenset()
    _since: float = 0.0

    def given_up(self, unacked: Iterable[Any], busy: frozenset[str], now: float) -> bool:
        """Whether to stop waiting for ``unacked`` (checked every fraction of a second)."""
        current = frozenset(id(message) for message in unacked)
        if busy or current != self._seen:
            self._seen, self._since = current, now
            return False
        return bool(current) and now - self._since >= self.settle


def waits_for_cut_short_deliveries(
    original: Callable[..., Any],
    busy: Callable[[], frozenset[str]],
    poll: float = 0.2,
    settle: float = 2.0,
) -> Callable[..., Any]:
    """Wrap Faust's ``Consumer.wait_empty`` (a rebalance waits there until every message
    handed to the agents is acknowledged) so that it cannot hang.

    First the deliveries the rebalance cut short are cancelled: a record whose agent
    queue was full goes into it through a task of Faust's own, which waits for room and,
    while a rebalance suspends the flow, for the flow to resume, holding the message
    that the rebalance waits for. Then the messages no stage will ever acknowledge
    (:class:`StuckMessages`) are given up. With Faust alone a rebalance in the middle
    of a load hung there until the blocked-input watchdog restarted the worker.
    Nothing is lost: what is not acknowledged is not committed (:func:`next_commit`),
    and the rebalance seeks every input partition to its committed offset. ``busy``
    names the stages with a batch in progress; ``poll`` and ``settle`` are seconds.
    """

    async def wait_empty(self: Any) -> None:
        if not self.flow_active:
            cancelled = cancel_cut_short_deliveries()
            if cancelled:
                log.info("rebalance: cancelled %d deliveries waiting for a full queue", cancelled)
            stuck = StuckMessages(settle)
            while self._unacked_messages and not self.should_stop:
                if stuck.given_up(self._unacked_messages, busy(), time.monotonic()):
                    unacked = sorted(
                        f"{m.tp.topic}[{m.tp.partition}]@{m.offset}" for m in self._unacked_messages
                    )
                    log.warning(
                        "rebalance: %d messages no stage will acknowledge (%s); not waiting"
                        " for them, they are read again from the committed offsets",
                        len(unacked),
                        ", ".join(unacked[:10]) + (" ..." if len(unacked) > 10 else ""),
                    )
                    self._unacked_messages.clear()
                    break
                await asyncio.sleep(poll)
        await original(self)

    wait_empty._cdp_patched = True  # type: ignore[attr-defined]
    return wait_empty


def queued_offsets(queues: Iterable[Any]) -> dict[Any, int]:
    """The lowest offset per partition among the events waiting in Faust's agent
    ``queues`` (items without a message are not records and are left out)."""
    lowest: dict[Any, int] = {}
    for queue in queues:
        for item in list(getattr(queue, "_queue", ())):
            message = getattr(item, "message", None)
            if message is None:
                continue
            tp, offset = message.tp, message.offset
            if offset < lowest.get(tp, offset + 1):
                lowest[tp] = offset
    return lowest


def read_again(consumer: Any, lowest: dict[Any, int], now: float) -> list[tuple[Any, int]]:
    """Expect the assigned input partitions of ``lowest`` at those offsets again (the
    records there were thrown away unprocessed); which ones moved back.

    The next record fetched is then later than expected, and :func:`_guarded` seeks
    back (or the stall watchdog does, when nothing more is fetched). A queued record
    at the expected offset itself is one whose delivery is still under way (one agent's
    queue had it, another's was full): it is read again as well, and the fetch loop
    does not move past it when that delivery ends (:meth:`InOrderDelivery.delivered`).
    """
    delivery = _delivery(consumer)
    assigned = consumer.assignment()
    moved: list[tuple[Any, int]] = []
    for tp, offset in lowest.items():
        if tp not in assigned or consumer._is_changelog_tp(tp):
            continue
        expected = delivery.expected(tp)
        if expected is not None and offset > expected:
            continue
        delivery.reset(tp, offset, sought=False, now=now)
        moved.append((tp, offset))
    return moved


def reads_again_what_resuming_clears(app: Any) -> None:
    """Make ``app.flow_control.clear()`` read again the records it throws away when the
    flow resumes after a rebalance.

    At the end of a rebalance Faust seeks the stream partitions to the committed
    offsets (a broker round trip), then ``flow_control.resume()`` *empties every
    agent's input queue* and resumes the flow. But the flow is active from reading the
    changelogs, so the fetch loop goes on delivering stream records into those queues
    after the seek; whatever is still queued when they are emptied counted as
    delivered and was never read again (a mid-run rebalance threw away thousands of
    records, the few events CI runs lost with nothing logged). Only the records that
    were thrown away are read again: nothing that an agent took arrives twice. The
    clearing at the start of a rebalance (flow suspended) is left alone: that rebalance
    seeks to the committed offsets anyway.
    """
    flow_control = app.flow_control
    if getattr(flow_control, "_cdp_reads_again", False):
        return
    original = flow_control.clear

    def clear() -> None:
        resuming = flow_control.is_active()
        lowest = queued_offsets(flow_control._queues) if resuming else {}
        original()
        if not lowest:
            return
        for tp, offset in read_again(app.consumer, lowest, time.monotonic()):
            log.info(
                "%s[%d]: records from offset %d were thrown away when the flow resumed;"
                " reading them again",
                tp.topic,
                tp.partition,
                offset,
            )
            RESEEKS.labels(tp.topic, "cleared").inc()

    flow_control.clear = clear
    flow_control._cdp_reads_again = True


def install() -> None:
    """Patch Faust's consumer class (idempotent): in-order delivery for agent inputs.
    Per app, :func:`reads_again_what_resuming_clears` completes it."""
    from faust.transport.consumer import Consumer

    from cdp.streams import stages_busy

    if getattr(Consumer._drain_messages, "_cdp_patched", False):
        return
    original_seek = Consumer.seek
    original_perform_seek = Consumer.perform_seek
    original_revoked = Consumer.on_partitions_revoked

    async def seek(self: Consumer, partition: Any, offset: int) -> None:
        await original_seek(self, partition, offset)
        if not self._is_changelog_tp(partition):
            _delivery(self).reset(partition, offset, sought=True, now=time.monotonic())

    async def perform_seek(self: Consumer) -> None:
        await original_perform_seek(self)
        delivery, now = _delivery(self), time.monotonic()
        for tp in self.assignment():
            if not self._is_changelog_tp(tp):
                committed = self._committed_offset.get(tp) or 0
                # aiokafka seeks only to a committed offset above 0; elsewhere the fetcher
                # stays where it is, and the first record it brings is checked against 0.
                delivery.reset(tp, committed, sought=committed > 0, now=now)

    async def on_partitions_revoked(self: Consumer, revoked: Any) -> None:
        _delivery(self).forget(revoked)
        await original_revoked(self, revoked)

    patches: dict[str, Callable[..., Any]] = {
        "seek": seek,
        "perform_seek": perform_seek,
        "on_partitions_revoked": on_partitions_revoked,
        "_drain_messages": _drain_messages,
        "_new_offset": _new_offset,
        "wait_empty": waits_for_cut_short_deliveries(Consumer.wait_empty, stages_busy),
    }
    for name, patch in patches.items():
        patch._cdp_patched = True  # type: ignore[attr-defined]
        setattr(Consumer, name, patch)
