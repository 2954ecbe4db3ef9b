"""Keep a deep backlog from starving the identity stage: pause ingest while it lags.

The identity stage reads one partition (one identity graph), and a worker shares
one fetch loop among all its input partitions. With a backlog on all of them,
each fetch brings a little of every partition, so the identity partition gets a
small share while every later stage waits for its assignments (measured in
docs/benchmarks.md: on a 1.2M-event backlog the identity stage applied about 340
observations/s). In the worker that holds ``identity.observations``, a timer
compares the end of that topic as this process wrote it with the next offset the
identity stage will read. Above ``CDP_IDENTITY_MAX_LAG`` it pauses the worker's
channel partitions at the consumer (no new fetches for them; the ingest agent
finishes what it has), and resumes them below a quarter of it. The agent itself
never waits: a waiting agent's full buffer would stall Faust's delivery of every
partition, identity's included.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP

from cdp.in_order import next_offset
from cdp.outputs import Outputs
from cdp.topics import Topics

log = logging.getLogger(__name__)


@dataclass
class LagGate:
    """Pause above ``high``, resume at or below ``low`` (hysteresis)."""

    high: int
    low: int
    paused: bool = False

    def update(self, lag: int | None) -> bool | None:
        """True: pause now; False: resume now; None: stay as it is.

        An unknown lag (the partition is elsewhere, nothing written yet) resumes.
        """
        if lag is None or lag <= self.low:
            if self.paused:
                self.paused = False
                return False
            return None
        if lag > self.high and not self.paused:
            self.paused = True
            return True
        return None


def register_backpressure(
    app: faust.App, topics: Topics, outputs: Outputs, max_lag: int, interval: float = 0.5
) -> LagGate | None:
    """Attach the timer to ``app`` (nothing when ``max_lag`` is 0); return its gate."""
    if max_lag <= 0:
        return None
    gate = LagGate(high=max_lag, low=max_lag // 4)
    observations = TP(topics.observations, 0)
    channels = set(topics.channels)
    outputs.watch(topics.observations)

    def lag(consumer: Any, assigned: set[Any]) -> int | None:
        if observations not in assigned:
            return None
        end, reading = outputs.end(topics.observations), next_offset(consumer, observations)
        return None if end is None or reading is None else end - reading

    async def identity_backpressure() -> None:
        consumer = app.consumer
        try:
            assigned = consumer.assignment()
        except Exception:  # not started or rebalancing
            return
        current = lag(consumer, assigned)
        change = gate.update(current)
        inputs = {tp for tp in assigned if tp.topic in channels}
        if change is True:
            log.info("identity stage %d observations behind: pausing ingest", current)
        elif change is False:
            log.info("identity stage caught up (%s behind): resuming ingest", current)
            consumer.resume_partitions(inputs)
        if gate.paused:  # again each time: a rebalance or Faust's flow control resumes them
            consumer.pause_partitions(inputs)

    app.timer(interval=interval, name=f"{topics.namespace}.identity-backpressure")(
        identity_backpressure
    )
    return gate
