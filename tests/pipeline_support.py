"""Waiting for a real worker to converge, shared by the integration tests."""

from __future__ import annotations

import time
from typing import Any

from cdp.in_order import RESTART_LINE
from cdp.serve.store import ReadModelStore, events_in_profiles
from cdp.settings import Settings
from cdp.worker_process import WorkerProcess
from tests.forensics import explain_shortfall


def wait_converged(
    store: ReadModelStore,
    events: int,
    worker: WorkerProcess,
    *,
    stable_for: float = 3.0,
    stall: float = 240.0,
    ceiling: float = 1800.0,
    poll: float = 0.5,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Wait until exactly ``events`` events are in profiles and the dump stayed unchanged.

    Returns the final canonical dump. Fails when the worker dies, when the read
    model made no progress for ``stall`` seconds or after ``ceiling`` seconds;
    the message shows the progress seen (seconds, events in profiles) and the
    worker's log tail; with ``settings`` (a run whose events all reach profiles, no
    erasure) a run that ends short also says where the missing events were lost
    (:func:`tests.forensics.explain_shortfall`).
    """
    started = time.monotonic()
    progress: list[tuple[int, int]] = []
    previous: dict[str, Any] | None = None
    last_change = started
    while True:
        now = time.monotonic()
        assert worker.running, "the worker died:\n" + worker.log_tail()
        current = store.dump()
        done = events_in_profiles(current)
        if not progress or progress[-1][1] != done:
            progress.append((round(now - started), done))
        if current != previous:
            previous, last_change = current, now
        elif done == events and now - last_change >= stable_for:
            return current
        if now - last_change > stall or now - started > ceiling:
            report = ""
            if settings is not None and done < events:
                report = explain_shortfall(settings, events) + "\n"
            raise AssertionError(
                f"no convergence: {done} of {events} events in profiles after"
                f" {now - started:.0f}s; progress (s, events) {progress[-20:]}\n{report}"
                f"{worker.log_tail()}"
            )
        time.sleep(poll)


RECOVERY_LINES = (RESTART_LINE,)
"""Error lines of a documented recovery (``cdp.in_order``: after repeated seeks that do not
bring a record, or when input stopped moving for minutes, the worker restarts to read it
again)."""


def unexpected_errors(log: str) -> list[str]:
    """Lines of a worker log that show an error, except documented recoveries."""
    return [
        line
        for line in log.splitlines()
        if ("Traceback" in line or "[ERROR]" in line)
        and not any(ok in line for ok in RECOVERY_LINES)
    ]
