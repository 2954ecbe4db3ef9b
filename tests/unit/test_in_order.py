"""In-order delivery: whatever the fetcher does, the agents see every offset once, in order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp import in_order, streams
from cdp.in_order import Blocked, BlockedInput, InOrderDelivery, Verdict, deliver

TP = "topic-0"


def _delivery() -> InOrderDelivery:
    d = InOrderDelivery(retry_after=10.0, max_tries=3, stall_batches=2)
    d.next_batch()
    return d


def test_in_order_records_go_through_and_duplicates_are_dropped() -> None:
    d = _delivery()
    d.reset(TP, 5, sought=True, now=0)
    for offset in (5, 6, 7):
        assert d.verdict(TP, offset, 0) is Verdict.DELIVER
        d.delivered(TP, offset, 0)
    assert d.verdict(TP, 6, 0) is Verdict.DROP
    assert d.expected(TP) == 8


def test_a_skip_seeks_back_and_drops_what_follows_until_the_expected_record() -> None:
    d = _delivery()
    d.reset(TP, 0, sought=False, now=0)
    d.delivered(TP, 0, 0)
    assert d.verdict(TP, 40, 1) is Verdict.SEEK  # 1..39 were skipped
    assert d.verdict(TP, 41, 1) is Verdict.DROP  # same batch: fetched before the seek
    d.next_batch()
    assert d.verdict(TP, 1, 2) is Verdict.DELIVER
    d.delivered(TP, 1, 2)
    assert d.verdict(TP, 2, 2) is Verdict.DELIVER


def test_an_uncommitted_partition_is_checked_from_offset_zero() -> None:
    d = _delivery()
    d.reset(TP, 0, sought=False, now=0)  # the fetcher stayed at the end of the partition
    assert d.verdict(TP, 900, 0) is Verdict.SEEK


def test_a_hole_in_the_log_is_accepted_when_two_seeks_in_a_row_confirm_it() -> None:
    d = _delivery()
    d.reset(TP, 0, sought=False, now=0)
    assert d.verdict(TP, 900, 0) is Verdict.SEEK
    d.next_batch()
    # Retention deleted 0..499: the broker's first record after the seek is 500.
    assert d.verdict(TP, 500, 1) is Verdict.SEEK  # once could be a seek that did not take
    d.next_batch()
    assert d.verdict(TP, 500, 2) is Verdict.GAP
    d.delivered(TP, 500, 2)
    assert d.verdict(TP, 501, 2) is Verdict.DELIVER


def test_a_seek_that_did_not_take_is_not_taken_for_a_hole() -> None:
    """After a rebalance the fetcher once went on from its old position (offsets 101..484
    were accepted as a hole and lost in a CI run)."""
    d = _delivery()
    d.reset(TP, 101, sought=True, now=0)  # Faust's seek to the committed offset
    d.next_batch()
    assert d.verdict(TP, 485, 1) is Verdict.SEEK  # the old position: seek again
    d.next_batch()
    assert d.verdict(TP, 101, 2) is Verdict.DELIVER


def test_records_of_the_batch_that_raced_a_committed_seek_are_not_taken_for_a_hole() -> None:
    d = _delivery()
    d.reset(TP, 100, sought=True, now=0)
    assert d.verdict(TP, 250, 0) is Verdict.DROP  # prefetched before the seek
    d.next_batch()
    assert d.verdict(TP, 100, 1) is Verdict.DELIVER


def test_a_seek_that_never_brings_the_record_ends_in_a_restart() -> None:
    d = _delivery()
    d.reset(TP, 0, sought=False, now=0)
    verdicts = []
    for second in range(0, 60, 11):  # same batch each time: the seek never takes effect
        verdicts.append(d.verdict(TP, 7, second))
    assert verdicts[:3] == [Verdict.SEEK] * 3
    assert verdicts[3] is Verdict.RESTART


def test_a_partition_whose_records_stopped_arriving_is_sought_back() -> None:
    d = _delivery()
    d.reset(TP, 10, sought=True, now=0)
    d.delivered(TP, 10, 0)
    assert d.stalled(TP, 20, 30) is None  # no fetch since: could still be in flight
    d.next_batch()
    d.next_batch()
    assert d.stalled(TP, 11, 30) is None  # nothing more in the log
    assert d.stalled(TP, 20, 5) is None  # not long enough
    assert d.stalled(TP, 20, 30) is Verdict.SEEK
    assert d.stalled(TP, 20, 31) is None  # the seek counts as progress


def test_revoked_partitions_are_forgotten() -> None:
    d = _delivery()
    d.reset(TP, 10, sought=True, now=0)
    d.forget([TP])
    assert d.expected(TP) is None
    assert d.verdict(TP, 3, 0) is Verdict.DELIVER


@dataclass
class _Fetcher:
    """A partition of ``size`` records read by a misbehaving fetcher.

    What it may do, as Faust over aiokafka does: cut a batch short while its position
    moved past it, deliver records prefetched earlier, sit anywhere at start-up. What it
    does not do (aiokafka's guarantee): after a seek, the next fetch starts at the
    sought offset, with nothing fetched before the seek.
    """

    size: int
    position: int = 0
    prefetched: list[int] = field(default_factory=list)
    sought: bool = False

    def seek(self, offset: int) -> None:
        self.position, self.prefetched, self.sought = offset, [], True

    def fetch(self, fault: str, n: int) -> list[int]:
        if self.sought:
            fault, self.sought = "ok", False
        batch = list(range(self.position, min(self.position + n, self.size)))
        self.position += len(batch)
        if fault == "cut":  # a rebalance cuts the batch: the rest is lost, position kept
            batch = batch[: len(batch) // 2]
        elif fault == "stale":  # records prefetched before an earlier seek arrive now
            batch = self.prefetched + batch
        elif fault == "jump":  # the fetcher sits elsewhere (uncommitted, reset)
            self.position = min(self.size, self.position + n)
        self.prefetched = batch[-3:]
        return batch


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(1, 300),
    faults=st.lists(st.sampled_from(["ok", "ok", "cut", "stale", "jump"]), max_size=80),
    n=st.integers(1, 40),
)
def test_every_offset_reaches_the_agents_once_in_order(
    size: int, faults: list[str], n: int
) -> None:
    d = InOrderDelivery(retry_after=3.0, max_tries=10_000, stall_batches=2)
    fetcher = _Fetcher(size, position=size // 2)  # uncommitted: the fetcher sits mid-way
    d.reset(TP, 0, sought=False, now=0)
    seen: list[int] = []
    now = 0.0
    plan = faults + ["ok"] * (size * 4 + 200)
    for fault in plan:
        d.next_batch()
        now += 1
        for offset in fetcher.fetch(fault, n):
            verdict = d.verdict(TP, offset, now)
            assert verdict is not Verdict.RESTART
            assert verdict is not Verdict.GAP  # the log has no holes
            if verdict is Verdict.SEEK:
                fetcher.seek(d.expected(TP) or 0)
            elif verdict is Verdict.DELIVER:
                seen.append(offset)
                d.delivered(TP, offset, now)
        if d.stalled(TP, size, now) is Verdict.SEEK:
            fetcher.seek(d.expected(TP) or 0)
        if len(seen) == size:
            break
    assert seen == list(range(size))


class _Consumer:
    """What :func:`cdp.in_order.deliver` uses of Faust's consumer: a mode service's
    ``wait_first`` and the flow's suspend event."""

    def __init__(self) -> None:
        from mode import Service

        self.service = Service()
        self.suspend_flow = asyncio.Event()
        self.waited = 0

    async def wait_first(self, *coros: Any) -> Any:
        self.waited += 1
        return await self.service.wait_first(*coros)


def test_the_commit_moves_only_over_a_run_that_starts_at_the_committed_offset() -> None:
    assert in_order.next_commit([100, 101, 103], 100) == (102, 2)
    assert in_order.next_commit([0, 1, 2], None) == (3, 3)


def test_an_acknowledgement_one_past_the_committed_offset_does_not_move_the_commit() -> None:
    """Faust's own rule commits 103 here, past record 100 that no agent finished."""
    assert in_order.next_commit([101, 102], 100) == (None, 0)


def test_with_nothing_committed_an_acknowledgement_out_of_order_does_not_move_the_commit() -> None:
    """Faust's own rule commits 7 here while records 0..4 are still being processed."""
    assert in_order.next_commit([5, 6], None) == (None, 0)


def test_stale_acknowledgements_below_the_committed_offset_are_settled() -> None:
    assert in_order.next_commit([90, 95, 100, 101], 100) == (102, 4)
    assert in_order.next_commit([90, 95, 102], 100) == (None, 2)


@settings(max_examples=300, deadline=None)
@given(
    committed=st.integers(0, 20),
    acked=st.sets(st.integers(0, 40), max_size=30),
)
def test_the_commit_never_passes_an_offset_that_was_not_acknowledged(
    committed: int, acked: set[int]
) -> None:
    ordered = sorted(acked)
    offset, settled = in_order.next_commit(ordered, committed)
    if offset is not None:
        assert set(range(committed, offset)) <= acked
        assert offset not in acked
    assert all(
        o < committed or o in range(committed, offset or committed) for o in ordered[:settled]
    )


@dataclass(frozen=True)
class _Tp:
    topic: str
    partition: int = 0


@dataclass
class _Message:
    tp: _Tp
    offset: int


@dataclass
class _Event:
    message: _Message


IN_A, IN_B, CHANGELOG, REVOKED = _Tp("in-a"), _Tp("in-b"), _Tp("changelog"), _Tp("revoked")


class _QueueConsumer:
    """What :func:`in_order.read_again` uses of Faust's consumer."""

    def assignment(self) -> set[_Tp]:
        return {IN_A, IN_B, CHANGELOG}

    def _is_changelog_tp(self, tp: _Tp) -> bool:
        return tp == CHANGELOG


def _app_with_queued(*offsets: tuple[_Tp, int]) -> tuple[Any, _QueueConsumer, Any]:
    from mode.utils.queues import FlowControlEvent, FlowControlQueue

    consumer = _QueueConsumer()
    flow_control = FlowControlEvent()
    queue: FlowControlQueue[Any] = FlowControlQueue(flow_control=flow_control, clear_on_resume=True)
    for tp, offset in offsets:
        queue.put_nowait(_Event(_Message(tp, offset)))
    queue.put_nowait("not a record")
    app = type("App", (), {"flow_control": flow_control, "consumer": consumer})()
    delivery = in_order._delivery(consumer)
    for tp in (IN_A, IN_B, CHANGELOG, REVOKED):
        delivery.reset(tp, 50, sought=False, now=0)  # offsets below 50 were delivered
    return app, consumer, queue


def test_records_thrown_away_when_the_flow_resumes_are_read_again() -> None:
    """Faust empties the agents' queues when a rebalance ends, while the fetch loop
    already delivers records again: those records were lost."""
    app, consumer, queue = _app_with_queued(
        (IN_A, 47), (IN_A, 45), (IN_A, 49), (IN_B, 51), (CHANGELOG, 3), (REVOKED, 40)
    )
    in_order.reads_again_what_resuming_clears(app)
    in_order.reads_again_what_resuming_clears(app)  # idempotent
    app.flow_control.resume()
    assert queue.empty()  # Faust's clearing still happens
    delivery = in_order._delivery(consumer)
    assert delivery.expected(IN_A) == 45  # read again from the lowest one thrown away
    assert delivery.verdict(IN_A, 50, now=1) is Verdict.SEEK
    assert delivery.expected(IN_B) == 50  # queued before the tracker moved back: left alone
    assert delivery.expected(CHANGELOG) == 50  # table recovery's business
    assert delivery.expected(REVOKED) == 50  # not ours any more


@pytest.mark.parametrize("also_queued", [(), ((IN_A, 48), (IN_A, 49))])
def test_a_record_whose_delivery_waits_when_the_queues_are_emptied_is_read_again(
    also_queued: tuple[tuple[_Tp, int], ...],
) -> None:
    """Record 50 went into one agent's queue and waits for room in another's when the
    flow resumes: the copy in the first queue is thrown away, so the fetch loop must
    not move past 50 when the waiting delivery ends (one CI run: offset 66 never
    acknowledged, the commit stuck there)."""
    app, consumer, _ = _app_with_queued((IN_A, 50), *also_queued)
    delivery = in_order._delivery(consumer)
    before = delivery.positioning(IN_A)  # the fetch loop starts delivering 50
    in_order.reads_again_what_resuming_clears(app)
    app.flow_control.resume()  # empties the queues while the delivery waits
    assert not delivery.delivered(IN_A, 50, now=1, positioning=before)
    lowest = also_queued[0][1] if also_queued else 50
    assert delivery.expected(IN_A) == lowest
    assert delivery.verdict(IN_A, 51, now=1) is Verdict.SEEK


def test_a_delivery_moves_the_partition_on_unless_it_was_positioned_meanwhile() -> None:
    delivery = InOrderDelivery()
    delivery.reset(IN_A, 10, sought=False, now=0)
    before = delivery.positioning(IN_A)
    assert delivery.delivered(IN_A, 10, now=0, positioning=before)
    assert delivery.expected(IN_A) == 11
    waiting = delivery.positioning(IN_A)  # the delivery of 11 starts and waits
    delivery.forget([IN_A])  # revoked while the next delivery waited
    delivery.reset(IN_A, 7, sought=True, now=1)  # assigned again, sought to the commit
    assert not delivery.delivered(IN_A, 11, now=1, positioning=waiting)
    assert delivery.expected(IN_A) == 7


def test_clearing_at_the_start_of_a_rebalance_is_left_to_its_seek() -> None:
    app, consumer, queue = _app_with_queued((IN_A, 45))
    in_order.reads_again_what_resuming_clears(app)
    app.flow_control.resume()
    app.flow_control.suspend()
    queue.put_nowait(_Event(_Message(IN_A, 46)))
    in_order._delivery(consumer).reset(IN_A, 50, sought=False, now=0)
    app.flow_control.clear()  # Faust's on_partitions_revoked: flow suspended
    assert queue.empty()
    assert in_order._delivery(consumer).expected(IN_A) == 50


def test_queued_offsets_names_the_lowest_offset_per_partition() -> None:
    queues = [
        type("Q", (), {"_queue": [_Event(_Message(IN_A, 9)), _Event(_Message(IN_B, 2))]})(),
        type("Q", (), {"_queue": [_Event(_Message(IN_A, 4)), object()]})(),
    ]
    assert in_order.queued_offsets(queues) == {IN_A: 4, IN_B: 2}


def test_a_callback_that_does_not_wait_runs_in_place() -> None:
    async def scenario() -> tuple[list[str], int]:
        consumer, seen = _Consumer(), []

        async def callback() -> None:
            seen.append("delivered")

        await deliver(consumer, callback())
        return seen, consumer.waited

    assert asyncio.run(scenario()) == (["delivered"], 0)


def test_a_callback_that_waits_is_resumed_with_what_it_waited_for() -> None:
    async def scenario() -> tuple[list[Any], int]:
        consumer, seen = _Consumer(), []
        room: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def callback() -> None:
            await asyncio.sleep(0)
            seen.append(await room)

        asyncio.get_running_loop().call_later(0.01, room.set_result, "room in the buffer")
        await deliver(consumer, callback())
        return seen, consumer.waited

    assert asyncio.run(scenario()) == (["room in the buffer"], 1)


def test_an_error_after_waiting_reaches_the_fetch_loop() -> None:
    async def scenario() -> None:
        failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def callback() -> None:
            await failed

        asyncio.get_running_loop().call_later(0.01, failed.set_exception, KeyError("decode"))
        await deliver(_Consumer(), callback())

    with pytest.raises(KeyError):
        asyncio.run(scenario())


def test_a_suspended_flow_cuts_a_waiting_delivery_short() -> None:
    async def scenario() -> list[str]:
        consumer, seen = _Consumer(), []
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def callback() -> None:
            try:
                await never
                seen.append("delivered")
            finally:
                seen.append("cleaned up")

        asyncio.get_running_loop().call_later(0.01, consumer.suspend_flow.set)
        await asyncio.wait_for(deliver(consumer, callback()), 5)
        assert never.cancelled()
        return seen

    assert asyncio.run(scenario()) == ["cleaned up"]


class _Buffered:
    """What :func:`cdp.in_order.wait_for_room` uses of Faust's consumer: the partition's
    channels (``app.topics._tp_index``) with their queues, and the flow state."""

    def __init__(self, *queues: asyncio.Queue[int]) -> None:
        channels = [SimpleNamespace(queue=queue) for queue in queues]
        self.app = SimpleNamespace(topics=SimpleNamespace(_tp_index={IN_A: channels}))
        self.flow_active = True
        self.should_stop = False


def _full_queue(size: int) -> asyncio.Queue[int]:
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=size)
    for n in range(size):
        queue.put_nowait(n)
    return queue


def test_a_full_stream_buffer_is_waited_for_until_half_of_it_is_free() -> None:
    """Not one record at a time: the agent takes half of the buffer before the next record."""

    async def scenario() -> tuple[bool, int]:
        queue = _full_queue(8)

        async def agent() -> None:
            while True:
                await asyncio.sleep(0.002)
                queue.get_nowait()

        taking = asyncio.create_task(agent())
        waited = await asyncio.wait_for(in_order.wait_for_room(_Buffered(queue), IN_A), 5)
        size_after = queue.qsize()
        taking.cancel()
        return waited, size_after

    waited, size_after = asyncio.run(scenario())
    assert waited
    assert size_after <= 4


def test_a_buffer_with_room_or_an_unknown_partition_is_not_waited_for() -> None:
    async def scenario() -> tuple[bool, bool]:
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=8)
        queue.put_nowait(1)
        room = await in_order.wait_for_room(_Buffered(queue), IN_A)
        unknown = await in_order.wait_for_room(_Buffered(_full_queue(8)), IN_B)
        return room, unknown

    assert asyncio.run(scenario()) == (False, False)


def test_a_suspended_flow_ends_the_wait_for_room() -> None:
    """A rebalance empties the buffers itself; the delivery is then cut short as before."""

    async def scenario() -> int:
        queue = _full_queue(8)
        consumer = _Buffered(queue)
        asyncio.get_running_loop().call_later(0.02, setattr, consumer, "flow_active", False)
        await asyncio.wait_for(in_order.wait_for_room(consumer, IN_A), 5)
        return queue.qsize()

    assert asyncio.run(scenario()) == 8


# ------------------------------------------------- input that stops where the loop can't see


def test_blocked_input_is_reported_once_then_restarted() -> None:
    guard = BlockedInput(warn_after=60, restart_after=180)
    calm = {"recovering": False, "waiting_on_redis": False}
    assert guard.check(59, **calm) is Blocked.NOTHING
    assert guard.check(60, **calm) is Blocked.WARN
    assert guard.check(120, **calm) is Blocked.NOTHING  # reported already
    assert guard.check(180, **calm) is Blocked.RESTART
    assert guard.check(5, **calm) is Blocked.NOTHING  # moving again: a new episode
    assert guard.check(61, **calm) is Blocked.WARN


def test_a_recovery_in_progress_or_a_redis_outage_is_not_restarted() -> None:
    guard = BlockedInput(warn_after=60, restart_after=180)
    assert guard.check(200, recovering=True, waiting_on_redis=False) is Blocked.WARN
    assert guard.check(400, recovering=True, waiting_on_redis=False) is Blocked.NOTHING
    assert guard.check(400, recovering=False, waiting_on_redis=True) is Blocked.NOTHING
    assert guard.check(400, recovering=False, waiting_on_redis=False) is Blocked.RESTART


@dataclass(frozen=True, order=True)
class _TP:
    topic: str
    partition: int


class _FaustConsumer:
    """What the watchdog and the state snapshot read of Faust's consumer."""

    def __init__(self, ends: dict[_TP, int], delivery: InOrderDelivery) -> None:
        self.ends = ends
        self._cdp_in_order = delivery
        self._active_partitions: set[_TP] = set()
        self._paused_partitions = set(ends)
        self._buffered_partitions: set[_TP] = set()
        self._committed_offset = {tp: 0 for tp in ends}
        self.flow_active = True

    def assignment(self) -> set[_TP]:
        return set(self.ends) | {_TP("app-table-changelog", 0)}

    def _is_changelog_tp(self, tp: _TP) -> bool:
        return tp.topic.endswith("-changelog")

    def highwater(self, tp: _TP) -> int:
        return self.ends[tp]


class _App:
    def __init__(self, consumer: _FaustConsumer) -> None:
        self.consumer = self._consumer = consumer
        self.in_recovery = False
        self.agents: dict[str, Any] = {}
        self.timers: list[Any] = []

    def timer(self, interval: float, name: str) -> Any:
        return self.timers.append


@dataclass
class _Watch:
    """A patched clock (``clock[0]``) and the restarts the watchdog asked for."""

    clock: list[float] = field(default_factory=lambda: [1000.0])
    exits: list[str] = field(default_factory=list)


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> _Watch:
    w = _Watch()
    monkeypatch.setattr(in_order.time, "monotonic", lambda: w.clock[0])
    monkeypatch.setattr(in_order, "exit_for_restart", lambda msg, *args: w.exits.append(msg % args))
    return w


def test_the_watchdog_restarts_a_worker_whose_paused_input_never_moves(
    watch: _Watch, caplog: pytest.LogCaptureFixture
) -> None:
    clock, exits = watch.clock, watch.exits
    delivery = InOrderDelivery()
    stuck, done = _TP("channel", 3), _TP("channel", 0)
    delivery.reset(stuck, 228, sought=True, now=1000.0)
    delivery.reset(done, 50, sought=True, now=1000.0)
    app = _App(_FaustConsumer({stuck: 627, done: 50}, delivery))  # paused by Faust, never resumed
    app.consumer._committed_offset = {stuck: 228, done: 50}
    in_order.watch_blocked(app, BlockedInput(warn_after=60, restart_after=180))
    (tick,) = app.timers

    for clock[0] in (1030.0, 1061.0, 1100.0):
        asyncio.run(tick())
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "channel[3]: nothing delivered from offset 228" in warnings[0]
    assert "channel[3] paused next=228 log_end=627" in warnings[0]  # the state says why
    assert exits == []

    clock[0] = 1181.0
    asyncio.run(tick())
    assert len(exits) == 1 and in_order.RESTART_LINE in exits[0]


@dataclass
class _Tick:
    """One run of the watchdog timer on a fake consumer."""

    timer: Any
    consumer: _FaustConsumer

    def __call__(self) -> Any:
        return self.timer()


def _watch_active(tp: _TP, delivery: InOrderDelivery, *, log_end: int, committed: int) -> _Tick:
    """The watchdog (warn after 60 s, restart after 180 s) over one active partition."""
    consumer = _FaustConsumer({tp: log_end}, delivery)
    consumer._paused_partitions, consumer._active_partitions = set(), {tp}
    consumer._committed_offset = {tp: committed}
    app = _App(consumer)
    in_order.watch_blocked(app, BlockedInput(warn_after=60, restart_after=180))
    (timer,) = app.timers
    return _Tick(timer, consumer)


def test_an_active_partition_waits_without_a_restart_while_the_loop_delivers(
    watch: _Watch,
) -> None:
    """A deep backlog: one fetched batch takes minutes, partitions used up in it wait."""
    clock, exits = watch.clock, watch.exits
    delivery = InOrderDelivery()
    waiting = _TP("identity.observations", 0)
    delivery.reset(waiting, 100, sought=True, now=1000.0)
    tick = _watch_active(waiting, delivery, log_end=5000, committed=100)
    for clock[0] in (1100.0, 1200.0, 1300.0):
        delivery.loop_at = clock[0] - 1  # other partitions' records are being delivered
        asyncio.run(tick())
    assert exits == []
    clock[0] = 1490.0  # the loop delivered nothing for 190 s
    asyncio.run(tick())
    assert len(exits) == 1 and "identity.observations[0]" in exits[0]


def test_an_agent_that_stops_finishing_its_records_is_restarted(
    watch: _Watch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every record was delivered, but the agent never finished (committed) the last ones."""
    monkeypatch.setattr(streams, "_busy", {"facts"})  # stuck inside its batch
    clock, exits = watch.clock, watch.exits
    delivery = InOrderDelivery()
    tp = _TP("events.canonical", 2)
    delivery.reset(tp, 0, sought=False, now=1000.0)
    delivery.delivered(tp, 999, 1000.0)  # offsets up to 999 went to the agent; the log ends there
    tick = _watch_active(tp, delivery, log_end=1000, committed=600)
    for clock[0], committed in ((1000.0, 600), (1100.0, 900), (1200.0, 997), (1300.0, 997)):
        tick.consumer._committed_offset[tp] = committed
        delivery.loop_at = clock[0]  # the fetch loop is busy with other partitions
        asyncio.run(tick())
    assert exits == []  # commits moved until 1200 s
    clock[0] = 1381.0
    asyncio.run(tick())
    assert len(exits) == 1 and "offsets 997..999 not finished" in exits[0]


def test_records_nobody_acknowledges_are_read_again_once_before_a_restart(
    watch: _Watch, caplog: pytest.LogCaptureFixture
) -> None:
    """After a rebalance a delivered record can stay unacknowledged with every stage idle:
    it is read again from the committed offset; if that does not help, the worker restarts."""
    clock, exits = watch.clock, watch.exits
    delivery = InOrderDelivery()
    tp = _TP("events.canonical", 3)
    delivery.reset(tp, 66, sought=False, now=1000.0)
    delivery.delivered(tp, 918, 1000.0)
    tick = _watch_active(tp, delivery, log_end=919, committed=66)
    for clock[0] in (1000.0, 1030.0):
        delivery.loop_at = clock[0]
        asyncio.run(tick())
    assert delivery.expected(tp) == 919
    clock[0] = delivery.loop_at = 1061.0
    asyncio.run(tick())
    assert delivery.expected(tp) == 66  # the fetch loop seeks back when it sees a later one
    assert delivery.verdict(tp, 919, now=1062.0) is Verdict.SEEK
    assert "offsets 66..918 delivered but not acknowledged for 61 s" in caplog.text
    delivery.reset(tp, 66, sought=False, now=1070.0)
    delivery.delivered(tp, 918, 1070.0)  # read again, and again nobody acknowledges 66
    for clock[0] in (1070.0, 1140.0, 1200.0):
        delivery.loop_at = clock[0]
        asyncio.run(tick())
    assert delivery.expected(tp) == 919 and exits == []  # read again once per offset only
    clock[0] = delivery.loop_at = 1251.0
    asyncio.run(tick())
    assert len(exits) == 1 and "offsets 66..918 not finished" in exits[0]


class Channel:
    """Stands in for Faust's channel: its ``put`` waits for room in a full queue."""

    def __init__(self) -> None:
        self.room = asyncio.Event()

    async def put(self, value: object) -> None:
        await self.room.wait()


def test_a_rebalance_does_not_wait_for_deliveries_it_cut_short() -> None:
    """A delivery waiting for room in a full agent queue held its message until the flow
    resumed, and the rebalance waited for that message: the worker hung."""

    async def scenario(flow_active: bool) -> tuple[bool, bool]:
        channel = Channel()
        put = asyncio.ensure_future(channel.put("record"))
        await asyncio.sleep(0)

        async def original(consumer: Any) -> None:  # Faust waits for unacked messages
            await asyncio.wait([put])

        consumer = type("Consumer", (), {"flow_active": flow_active, "_unacked_messages": set()})()
        wait_empty = in_order.waits_for_cut_short_deliveries(original, frozenset)
        try:
            await asyncio.wait_for(wait_empty(consumer), timeout=0.5)
            finished = True
        except TimeoutError:
            finished = False
        cancelled = put.cancelled()
        put.cancel()
        return finished, cancelled

    assert asyncio.run(scenario(flow_active=False)) == (True, True)
    assert asyncio.run(scenario(flow_active=True)) == (False, False)  # not a rebalance


def test_messages_no_stage_will_acknowledge_are_given_up_once_nothing_moves() -> None:
    stuck = in_order.StuckMessages(settle=2.0)
    a, b = object(), object()
    assert not stuck.given_up([a, b], frozenset(), now=0.0)
    assert not stuck.given_up([a, b], frozenset(), now=1.9)
    assert not stuck.given_up([a], frozenset(), now=2.5)  # one was acknowledged: wait on
    assert not stuck.given_up([a], frozenset({"profiles"}), now=5.0)  # a batch in progress
    assert not stuck.given_up([a], frozenset(), now=6.9)
    assert stuck.given_up([a], frozenset(), now=7.0)
    assert not in_order.StuckMessages(settle=0).given_up([], frozenset(), now=9.0)


def test_a_rebalance_gives_up_messages_nobody_acknowledges_but_waits_for_busy_stages() -> None:
    @dataclass(frozen=True)
    class _Msg:
        tp: _Tp
        offset: int

    async def scenario(busy_for: float) -> tuple[float, set[Any], list[str]]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        consumer = type(
            "Consumer",
            (),
            {"flow_active": False, "should_stop": False, "_unacked_messages": {_Msg(IN_A, 7)}},
        )()
        calls: list[str] = []

        async def original(consumer: Any) -> None:
            calls.append(f"faust waits for {len(consumer._unacked_messages)}")

        def busy() -> frozenset[str]:
            return frozenset({"profiles"}) if loop.time() - started < busy_for else frozenset()

        wait_empty = in_order.waits_for_cut_short_deliveries(original, busy, 0.05, 0.3)
        await asyncio.wait_for(wait_empty(consumer), timeout=5)
        return loop.time() - started, consumer._unacked_messages, calls

    waited, unacked, calls = asyncio.run(scenario(busy_for=0.0))
    assert 0.3 <= waited < 1.0 and unacked == set() and calls == ["faust waits for 0"]
    waited, _, _ = asyncio.run(scenario(busy_for=1.0))
    assert waited >= 1.2  # not while a stage processes a batch (then it settles 0.3 s)


def test_install_patches_faust_once() -> None:
    from faust.transport.consumer import Consumer

    in_order.install()
    wait_empty = Consumer.wait_empty
    in_order.install()
    assert Consumer.wait_empty is wait_empty
    assert getattr(wait_empty, "_cdp_patched", False)
    assert getattr(Consumer._new_offset, "_cdp_patched", False)
