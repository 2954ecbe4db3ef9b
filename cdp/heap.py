"""Python's cyclic garbage collector in a worker whose tables hold a large heap.

The worker keeps its tables in memory: millions of dicts, lists and strings that
live as long as the process. CPython (3.11) runs a full collection, which visits
every tracked object, each time the objects that survived into the oldest
generation reach a quarter of it. A worker replaces its table values all the time
(each batch writes new ones), so full collections keep coming, and each costs in
proportion to the whole heap: the cost per event grows with the number of
profiles a worker holds (docs/benchmarks.md, "Garbage collection"). Table values
are plain JSON data, freed by reference counting when replaced and never part of
a reference cycle, so those scans find nothing.

:class:`HeapFreezer` moves what survives out of the collector's sight: every
``freeze_every_s`` it collects the young generations (cheap) and calls
:func:`gc.freeze`, so later collections visit only objects made since. Cyclic
garbage that reached the oldest generation since the last freeze would then be
kept for good, so every ``sweep_every_s`` the frozen objects are unfrozen and one
full collection runs (logged with its duration and what it freed). A sweep pauses
the worker for about 1.4 µs per tracked object (0.3 to 1.1 s for the 150,000 to 760,000
objects of a worker with 10,000 profiles); in the benchmark runs it never found
anything to free.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

SLOW_SWEEP_S = 1.0
"""A sweep at least this long is logged as a warning (it pauses the whole worker)."""


class Collector(Protocol):
    """The parts of the :mod:`gc` module the freezer uses."""

    def collect(self, generation: int = 2) -> int: ...

    def freeze(self) -> None: ...

    def unfreeze(self) -> None: ...

    def get_freeze_count(self) -> int: ...


class HeapFreezer:
    """Freezes the surviving heap at an interval, sweeps it in full at a longer one."""

    def __init__(
        self,
        freeze_every_s: float,
        sweep_every_s: float,
        *,
        collector: Collector = gc,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if freeze_every_s <= 0 or sweep_every_s <= 0:
            raise ValueError("HeapFreezer intervals must be positive")
        self.freeze_every_s = freeze_every_s
        self.sweep_every_s = sweep_every_s
        self._gc = collector
        self._clock = clock
        self._swept_at = clock()

    def tick(self) -> str:
        """Freeze (``"froze"``) or, once per sweep interval, sweep and freeze (``"swept"``)."""
        now = self._clock()
        if now - self._swept_at >= self.sweep_every_s:
            self._swept_at = now
            started = time.perf_counter()
            frozen = self._gc.get_freeze_count()
            self._gc.unfreeze()
            freed = self._gc.collect()
            self._gc.freeze()
            took = time.perf_counter() - started
            log.log(
                logging.WARNING if took >= SLOW_SWEEP_S else logging.INFO,
                "gc sweep: %d objects were frozen, %d unreachable found, %.2f s%s",
                frozen,
                freed,
                took,
                " (the worker did nothing else meanwhile)" if took >= SLOW_SWEEP_S else "",
            )
            return "swept"
        self._gc.collect(1)
        self._gc.freeze()
        return "froze"


def install(app: Any, freeze_every_s: float, sweep_every_s: float) -> HeapFreezer | None:
    """Run a :class:`HeapFreezer` on ``app``'s timer (``freeze_every_s`` 0: off)."""
    if freeze_every_s <= 0:
        return None
    freezer = HeapFreezer(freeze_every_s, sweep_every_s)

    async def freeze_heap() -> None:
        freezer.tick()

    app.timer(freeze_every_s, name="cdp.heap.freeze")(freeze_heap)
    return freezer
