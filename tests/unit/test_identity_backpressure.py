"""The identity back-pressure: when to pause and resume ingest, and what it measures."""

from __future__ import annotations

from cdp.identity.backpressure import LagGate
from cdp.in_order import InOrderDelivery, Verdict
from cdp.outputs import Outputs
from cdp.settings import load_settings


def test_ingest_pauses_above_the_bound_and_resumes_at_a_quarter_of_it() -> None:
    gate = LagGate(high=20_000, low=5_000)
    assert [gate.update(lag) for lag in (100, 20_000, 20_001, 30_000, 9_000, 5_000, 6_000)] == [
        None,
        None,
        True,  # pause
        None,
        None,  # still paused between the bounds
        False,  # resume
        None,
    ]


def test_an_unknown_lag_never_keeps_ingest_paused() -> None:
    gate = LagGate(high=10, low=2)
    assert gate.update(50) is True
    assert gate.update(None) is False  # the partition moved to another worker
    assert gate.update(None) is None


class _Report:
    def __init__(self, topic: str, offset: int) -> None:
        self._topic, self._offset = topic, offset

    def topic(self) -> str:
        return self._topic

    def offset(self) -> int:
        return self._offset


def test_outputs_know_the_end_of_a_watched_topic_from_their_acks() -> None:
    outputs = Outputs(load_settings(kafka_bootstrap="127.0.0.1:1"))
    outputs.watch("obs")
    assert outputs.end("obs") is None  # nothing written yet
    batch = outputs.batch()
    batch.pending = 3
    for topic, offset in (("obs", 41), ("other", 900), ("obs", 40)):
        batch._on_delivery(None, _Report(topic, offset))
    assert outputs.end("obs") == 42
    assert outputs.end("other") is None
    assert batch.pending == 0


def test_a_resumed_partition_starts_its_stall_clock_afresh() -> None:
    d = InOrderDelivery(retry_after=10.0, stall_batches=0)
    d.reset("tp", 5, sought=True, now=0)
    d.activated({"tp"}, 0)
    d.activated(set(), 5)  # paused by the back-pressure
    d.activated({"tp"}, 100)  # resumed 95 s later: no stall yet
    assert d.stalled("tp", 50, 105) is None
    assert d.stalled("tp", 50, 111) is Verdict.SEEK
