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
the worker for about 1 to 2 µs per tracked object: 0.3 to 1.1 s for the 150,000 to
760,000 objects of a worker with 10,000 profiles, 4 s for 3.8 million. A pause longer
than the consumer's session timeout costs a rebalance, so a sweep whose expected
pause (frozen objects times the highest cost per object a sweep of at least
100,000 objects measured, and at least 1.5 µs; the cost per object grows with the
heap, 0.96 µs at 2.2 million and 1.75 µs at 6.4 million) exceeds ``max_pause_s``
is skipped with a warning: the frozen cyclic garbage then stays until the process
restarts. In the benchmark runs sweeps found at most 232 unreachable objects.
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

SWEEP_COST_PER_OBJECT_S = 1.5e-6
"""Expected pause per frozen object before a sweep has been measured (1.05 to 2 µs seen)."""

MEASURED_SWEEP_MIN_OBJECTS = 100_000
"""A sweep of at least this many objects can raise the cost per object of the next
estimates (smaller ones are dominated by fixed costs)."""


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
        max_pause_s: float = 5.0,
        collector: Collector = gc,
        clock: Callable[[], float] = time.monotonic,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        if freeze_every_s <= 0 or sweep_every_s <= 0 or max_pause_s <= 0:
            raise ValueError("HeapFreezer intervals and max_pause_s must be positive")
        self.freeze_every_s = freeze_every_s
        self.sweep_every_s = sweep_every_s
        self.max_pause_s = max_pause_s
        self.cost_per_object_s = SWEEP_COST_PER_OBJECT_S
        """Expected sweep pause per frozen object: the highest measured, at least the default."""
        self._gc = collector
        self._clock = clock
        self._timer = timer
        self._swept_at = clock()

    def tick(self) -> str:
        """Freeze (``"froze"``) or, once per sweep interval, sweep and freeze (``"swept"``).

        A due sweep whose expected pause exceeds ``max_pause_s`` only freezes
        (``"skipped"``) and logs a warning.
        """
        now = self._clock()
        if now - self._swept_at >= self.sweep_every_s:
            self._swept_at = now
            frozen = self._gc.get_freeze_count()
            expected = frozen * self.cost_per_object_s
            if expected > self.max_pause_s:
                log.warning(
                    "gc sweep skipped: %d frozen objects would pause the worker about %.1f s,"
                    " more than CDP_WORKER_GC_SWEEP_MAX_PAUSE_S=%.1f s; frozen cyclic garbage"
                    " stays until the worker restarts (spread the load over more workers)",
                    frozen,
                    expected,
                    self.max_pause_s,
                )
                self._freeze()
                return "skipped"
            started = self._timer()
            self._gc.unfreeze()
            freed = self._gc.collect()
            self._gc.freeze()
            took = self._timer() - started
            if frozen >= MEASURED_SWEEP_MIN_OBJECTS:  # the cost per object grows with the heap
                self.cost_per_object_s = max(self.cost_per_object_s, took / frozen)
            log.log(
                logging.WARNING if took >= SLOW_SWEEP_S else logging.INFO,
                "gc sweep: %d objects were frozen, %d unreachable found, %.2f s%s",
                frozen,
                freed,
                took,
                " (the worker did nothing else meanwhile)" if took >= SLOW_SWEEP_S else "",
            )
            return "swept"
        self._freeze()
        return "froze"

    def _freeze(self) -> None:
        self._gc.collect(1)
        self._gc.freeze()


def install(
    app: Any, freeze_every_s: float, sweep_every_s: float, max_pause_s: float
) -> HeapFreezer | None:
    """Run a :class:`HeapFreezer` on ``app``'s timer (``freeze_every_s`` 0: off)."""
    if freeze_every_s <= 0:
        return None
    freezer = HeapFreezer(freeze_every_s, sweep_every_s, max_pause_s=max_pause_s)

    async def freeze_heap() -> None:
        freezer.tick()

    app.timer(freeze_every_s, name="cdp.heap.freeze")(freeze_heap)
    return freezer
