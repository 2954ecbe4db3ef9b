"""The change feed as server-sent events, read from the read model's change stream.

Every applied profile write adds an entry to the Redis stream ``{ns}:v1:changes``
(``docs/specs/redis-layout.md``). The feed polls it with
:meth:`~cdp.serve.store.ReadModelStore.changes` (``XRANGE (after +``): every
:data:`POLL_INTERVAL_S` while idle, immediately again while there is a backlog,
so a write reaches a connected client well within a second.

Event format (``text/event-stream``)::

    retry: 1000

    id: 1717430400123-0
    event: change
    data: {"id":"1717430400123-0","profile_id":"p-3f9a...","version":1042,"op":"upsert"}

The first event is ``position`` (``id`` = where the feed starts, ``data:
{"after": ...}``), so a client that drops before the first change resumes from
there and misses nothing.

A client resumes after the last id it saw, with the ``Last-Event-ID`` header
(browsers' ``EventSource`` send it on reconnect) or ``?after=``. Without a
position the feed starts at the current end of the stream (new changes only);
``after=0-0`` replays everything still kept. The stream is capped, so a position
older than the oldest kept entry may have lost entries in between: the feed then
first sends an event ``reset`` (``data: {"first_id": ...}``) telling the client to
resync from the profiles. A comment line (``: keepalive``) is sent every
:data:`KEEPALIVE_S` seconds of silence so proxies keep the connection open.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.concurrency import run_in_threadpool

from cdp.api.metrics import ApiMetrics
from cdp.serve.store import ReadModelStore

POLL_INTERVAL_S = 0.1
"""Wait between polls of an idle stream."""

KEEPALIVE_S = 15.0
"""Seconds of silence after which a keepalive comment is sent."""

BATCH = 500
"""Entries read per poll."""

RETRY_MS = 1000
"""Reconnect delay the feed suggests to ``EventSource`` clients."""


def _stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq)


def format_event(event: str, data: str, event_id: str | None = None) -> str:
    """One SSE event block."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.append(f"data: {data}")
    return "\n".join(lines) + "\n\n"


async def change_events(
    store: ReadModelStore,
    after: str | None,
    *,
    is_disconnected: Callable[[], Awaitable[bool]],
    metrics: ApiMetrics | None = None,
    max_events: int | None = None,
    timeout_s: float | None = None,
) -> AsyncIterator[str]:
    """The SSE text of the feed after ``after`` (None: from the current end).

    Ends when the client disconnects, after ``max_events`` change events, or
    after ``timeout_s`` seconds.
    """
    from cdp.serve import keys

    changes_key = keys.changes(store.namespace)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    yield f"retry: {RETRY_MS}\n\n"
    if after is None:
        rows = await run_in_threadpool(store.client.xrevrange, changes_key, "+", "-", 1)
        position = "0-0"
        if rows:
            raw = rows[0][0]
            position = raw.decode() if isinstance(raw, bytes) else str(raw)
    else:
        position = after
        first = await run_in_threadpool(store.first_change_id)
        if first is not None and position != "0-0" and _stream_id(first) > _stream_id(position):
            # Entries between `position` and `first` may have been trimmed (or never existed;
            # the stream cannot tell): the client must resync.
            yield format_event("reset", json.dumps({"first_id": first, "after": position}))
    # The starting position as an event id: a client (or EventSource) that drops before the
    # first change resumes from here, not from a later "current end".
    yield format_event("position", json.dumps({"after": position}), position)
    sent = 0
    last_output = time.monotonic()
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            return
        if await is_disconnected():
            return
        batch = await run_in_threadpool(store.changes, position, BATCH)
        for change in batch:
            data = json.dumps(
                {
                    "id": change.id,
                    "profile_id": change.profile_id,
                    "version": change.version,
                    "op": change.op.value,
                },
                separators=(",", ":"),
            )
            yield format_event("change", data, change.id)
            position = change.id
            sent += 1
            if metrics is not None:
                metrics.change_events.inc()
            if max_events is not None and sent >= max_events:
                return
        if batch:
            last_output = time.monotonic()
            if len(batch) == BATCH:
                continue
        elif time.monotonic() - last_output >= KEEPALIVE_S:
            yield ": keepalive\n\n"
            last_output = time.monotonic()
        await asyncio.sleep(POLL_INTERVAL_S)
