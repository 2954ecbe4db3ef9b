"""The worker's heap freezer (``cdp.heap``): freezes at an interval, sweeps in full at another."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from cdp.heap import HeapFreezer


class FakeCollector:
    """Records the calls the freezer makes to the ``gc`` module."""

    def __init__(self, frozen: int = 0) -> None:
        self.calls: list[str] = []
        self.frozen = frozen

    def collect(self, generation: int = 2) -> int:
        self.calls.append(f"collect({generation})")
        return 0

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")

    def get_freeze_count(self) -> int:
        return self.frozen


def test_it_freezes_after_a_young_collection_and_sweeps_in_full_once_per_interval() -> None:
    now = [100.0]
    fake = FakeCollector()
    freezer = HeapFreezer(10.0, 60.0, collector=fake, clock=lambda: now[0])
    assert freezer.tick() == "froze"
    assert fake.calls == ["collect(1)", "freeze"]
    now[0] = 160.0
    fake.calls.clear()
    assert freezer.tick() == "swept"
    assert fake.calls == ["unfreeze", "collect(2)", "freeze"]
    now[0] = 170.0
    assert freezer.tick() == "froze"  # the next sweep is due at 220
    with pytest.raises(ValueError, match="positive"):
        HeapFreezer(0, 60.0)
    with pytest.raises(ValueError, match="positive"):
        HeapFreezer(10.0, 60.0, max_pause_s=0)


def test_a_sweep_expected_to_pause_longer_than_the_limit_only_freezes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    fake = FakeCollector(frozen=4_000_000)  # 6 s at the default 1.5 µs per object
    freezer = HeapFreezer(10.0, 60.0, max_pause_s=5.0, collector=fake, clock=lambda: now[0])
    now[0] = 60.0
    assert freezer.tick() == "skipped"
    assert fake.calls == ["collect(1)", "freeze"]  # never unfrozen
    assert "gc sweep skipped: 4000000 frozen objects" in caplog.text
    assert "CDP_WORKER_GC_SWEEP_MAX_PAUSE_S=5.0" in caplog.text
    fake.frozen = 3_000_000  # 4.5 s: within the limit
    now[0] = 120.0
    assert freezer.tick() == "swept"


def test_the_expected_pause_uses_the_highest_cost_per_object_measured() -> None:
    now = [0.0]
    elapsed = iter([0.0, 8.0, 10.0, 10.5])  # two sweeps: 8.0 s, then 0.5 s
    fake = FakeCollector(frozen=4_000_000)
    freezer = HeapFreezer(
        10.0,
        60.0,
        max_pause_s=9.0,
        collector=fake,
        clock=lambda: now[0],
        timer=lambda: next(elapsed),
    )
    now[0] = 60.0
    assert freezer.tick() == "swept"  # 6 s expected at 1.5 µs, 8 s taken: 2 µs
    assert freezer.cost_per_object_s == pytest.approx(2e-6)
    fake.frozen = 1_000_000  # 0.5 s: 0.5 µs per object does not lower the estimate
    now[0] = 120.0
    assert freezer.tick() == "swept"
    assert freezer.cost_per_object_s == pytest.approx(2e-6)
    fake.frozen = 4_600_000  # 9.2 s at 2 µs (6.9 s at the default)
    now[0] = 180.0
    assert freezer.tick() == "skipped"


def test_a_small_sweep_does_not_set_the_cost_per_object() -> None:
    now = [0.0]
    elapsed = iter([0.0, 1.0])  # 20 µs per object: fixed costs
    fake = FakeCollector(frozen=50_000)
    freezer = HeapFreezer(
        10.0, 60.0, collector=fake, clock=lambda: now[0], timer=lambda: next(elapsed)
    )
    now[0] = 60.0
    assert freezer.tick() == "swept"
    assert freezer.cost_per_object_s == pytest.approx(1.5e-6)


@pytest.fixture()
def real_gc() -> Iterator[None]:
    yield
    gc.unfreeze()


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.mark.usefixtures("real_gc")
def test_a_sweep_frees_cycles_that_a_freeze_kept() -> None:
    now = [0.0]
    freezer = HeapFreezer(10.0, 60.0, clock=lambda: now[0])
    kept = [{"facts": {"e1": {"t": "2026-01-01"}}} for _ in range(1000)]  # a table's values
    a, b = Node(), Node()
    a.other, b.other = b, a
    cycle = weakref.ref(a)
    gc.collect()  # a and b now in the oldest generation
    del a, b  # cyclic garbage: only the collector frees it
    assert freezer.tick() == "froze"
    assert gc.get_freeze_count() >= len(kept)  # out of the collector's sight
    gc.collect()
    assert cycle() is not None  # frozen, so a full collection does not free it
    now[0] = 60.0
    assert freezer.tick() == "swept"
    assert cycle() is None
    assert kept[0]["facts"]["e1"]["t"] == "2026-01-01"
