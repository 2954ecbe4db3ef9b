"""A snapshot of a worker's delivery state, for logs when records stop flowing.

:func:`snapshot` describes what decides whether a record reaches an agent: the
consumer's flow and recovery flags, each input partition's place (active,
paused by Faust, removed because its agent's buffer is full), the next offset
the agents must see against the log end, each agent's buffer, and where every
asyncio task of the process is suspended. The worker logs it on ``SIGUSR1``
(``kill -USR1 <pid>`` on the Faust process) and when the in-order watchdog
(:mod:`cdp.in_order`) finds input that stopped moving.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from cdp.in_order import log_end

log = logging.getLogger(__name__)


def snapshot(app: Any) -> str:
    """A multi-line description of the worker's consumer, agents and tasks.

    Input partitions that are active with nothing waiting are only counted.
    """
    lines: list[str] = []
    consumer = getattr(app, "_consumer", None)
    if consumer is None:
        return "consumer not started"
    assigned = consumer.assignment()
    active = set(consumer._active_partitions or ())
    paused = set(consumer._paused_partitions)
    buffered = set(consumer._buffered_partitions)
    lines.append(
        f"flow_active={consumer.flow_active} in_recovery={getattr(app, 'in_recovery', None)}"
        f" rebalancing={getattr(app, 'rebalancing', None)}"
        f" generation={getattr(app, 'consumer_generation_id', None)}"
        f" assigned={len(assigned)} active={len(active)}"
        f" paused={len(paused)} buffered={len(buffered)}"
    )
    delivery = getattr(consumer, "_cdp_in_order", None)
    now = time.monotonic()
    if delivery is not None:
        lines[0] += f" last_delivery={now - delivery.loop_at:.0f}s_ago"
    caught_up = 0
    for tp in sorted(assigned):
        if consumer._is_changelog_tp(tp):
            continue
        end = log_end(consumer, tp)
        expected = delivery.expected(tp) if delivery is not None else None
        since = delivery.progress_age(tp, now) if delivery is not None else None
        state = "active" if tp in active else "paused" if tp in paused else "inactive"
        if tp in buffered:
            state += "+buffered"
        if state == "active" and expected == end:
            caught_up += 1
            continue
        lines.append(
            f"  {tp.topic}[{tp.partition}] {state} next={expected}"
            f" log_end={'?' if end is None else end}"
            f" committed={consumer._committed_offset.get(tp)}"
            + (f" idle={since:.0f}s" if since is not None else "")
        )
    lines.append(f"  {caught_up} other input partitions: active, nothing waiting")
    for name, agent in sorted(getattr(app, "agents", {}).items()):
        for actor in list(getattr(agent, "_actors", ())):
            queue = getattr(getattr(getattr(actor, "stream", None), "channel", None), "queue", None)
            if queue is not None:
                lines.append(
                    f"  agent {name}: buffer {queue.qsize()}/{queue.maxsize},"
                    f" pressure callbacks {len(queue._pending_pressure_drop_callbacks)}"
                )
    lines.extend(f"  task {line}" for line in _task_lines())
    return "\n".join(lines)


def _task_lines() -> Iterator[str]:
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # no running loop
        return
    where = Counter(
        f"{getattr(task.get_coro(), '__qualname__', task.get_name())}:"
        f" {' > '.join(_awaiting(task.get_coro()))}"
        for task in tasks
    )
    for line, count in sorted(where.items()):
        yield line if count == 1 else f"{line} (x{count})"


def _awaiting(coro: Any, depth: int = 12) -> Iterator[str]:
    """Where a suspended coroutine is, following what it awaits."""
    while coro is not None and depth:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            if coro is not None and not hasattr(coro, "cr_frame"):
                yield type(coro).__name__
            return
        yield f"{frame.f_code.co_name}:{frame.f_lineno}"
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        depth -= 1


def log_on_signal(app: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Log :func:`snapshot` at warning level whenever the process gets ``SIGUSR1``."""
    loop.add_signal_handler(
        signal.SIGUSR1, lambda: log.warning("worker state on SIGUSR1:\n%s", snapshot(app))
    )
