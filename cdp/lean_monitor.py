"""Faust's monitor without its per-record bookkeeping.

Faust calls its :class:`~faust.sensors.Monitor` several times for every record
(received, into a stream, out of it, acknowledged) and on every table read,
to keep counters and timings for its web views, which the worker does not run
(the worker's metrics are :mod:`cdp.metrics`). :class:`LeanMonitor` keeps only
what Faust itself reads back: the time a partition last brought a record into
a stream (``stream_inbound_time``, for its slow-processing warnings); the
commit, rebalance and send callbacks are Faust's own.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from faust.sensors import Monitor


class LeanMonitor(Monitor):
    """The worker's Faust monitor (``faust.App(Monitor=LeanMonitor)``)."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        """A record was fetched: nothing to note."""

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        """A stream took a record: note when, for Faust's slow-processing check."""
        self.stream_inbound_time[tp] = monotonic()

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        """A stream is done with a record: nothing to note."""

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        """A record was acknowledged: nothing to note."""

    def on_table_get(self, table: Any, key: Any) -> None:
        """A table read: nothing to note."""

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        """A table write: nothing to note."""

    def on_table_del(self, table: Any, key: Any) -> None:
        """A table delete: nothing to note."""
