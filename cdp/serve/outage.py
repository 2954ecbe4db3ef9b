"""Read-model writes from the stream processors that wait out a Redis outage.

A stage must not lose a write because Redis is briefly away (restart, failover,
``LOADING`` after a restart), and must not crash either: Faust would restart the
agent without re-reading the records of the failed batch. So the stages apply
their writes through :func:`apply_waiting`, which retries with capped
exponential backoff, asynchronously (the consumer keeps heart-beating, the
batch stays unacknowledged), until Redis answers again. Writes are
version-guarded, so a retry of a partly applied batch is harmless.

A Redis that comes back *empty* is then filled again by new writes; what no
later event touches is repaired by ``cdp rebuild`` (see ``docs/operations.md``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import redis

from cdp.serve.store import ReadModelStore
from cdp.serve.writes import Write

log = logging.getLogger(__name__)

_waiting = 0
"""How many :func:`apply_waiting` calls are retrying right now."""


def waiting_on_redis() -> bool:
    """Whether a stage of this process is holding writes until Redis answers again."""
    return _waiting > 0


FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0

RETRIED_ERRORS = (redis.ConnectionError, redis.TimeoutError)
"""Errors that mean "Redis is not there right now" (``BusyLoadingError`` is a ConnectionError)."""


async def apply_waiting(store: ReadModelStore, writes: Sequence[Write], stage: str) -> None:
    """Apply ``writes``; while Redis is unreachable, log once and retry until it answers."""
    if not writes:
        return
    global _waiting
    delay = FIRST_DELAY_S
    failing_since: float | None = None
    try:
        while True:
            try:
                store.apply(writes)
            except RETRIED_ERRORS as exc:
                if failing_since is None:
                    failing_since = time.monotonic()
                    _waiting += 1
                    log.warning(
                        "%s: Redis unavailable (%s); holding %d writes and retrying",
                        stage,
                        type(exc).__name__,
                        len(writes),
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DELAY_S)
                continue
            if failing_since is not None:
                log.warning(
                    "%s: Redis is back after %.1f s; writes applied",
                    stage,
                    time.monotonic() - failing_since,
                )
            return
    finally:
        if failing_since is not None:
            _waiting -= 1
