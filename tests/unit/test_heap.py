"""The worker's heap freezer (``cdp.heap``): freezes at an interval, sweeps in full at another."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from cdp.heap import HeapFreezer


class FakeCollector:
    """Records the calls the freezer makes to the ``gc`` module."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def collect(self, generation: int = 2) -> int:
        self.calls.append(f"collect({generation})")
        return 0

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")

    def get_freeze_count(self) -> int:
        return 0


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
