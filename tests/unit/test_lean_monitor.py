"""The worker's Faust monitor keeps only what Faust reads back (``LeanMonitor``)."""

from __future__ import annotations

from types import SimpleNamespace

import faust
from faust.types import TP

from cdp.lean_monitor import LeanMonitor


def test_only_the_stream_inbound_time_is_kept() -> None:
    app = faust.App("lean-monitor-test", broker="kafka://127.0.0.1:1", Monitor=LeanMonitor)
    monitor = app.monitor
    assert isinstance(monitor, LeanMonitor)
    tp = TP("t.a", 0)
    message = SimpleNamespace(time_in=None)
    monitor.on_message_in(tp, 7, message)  # type: ignore[arg-type]
    state = monitor.on_stream_event_in(tp, 7, SimpleNamespace(), SimpleNamespace())  # type: ignore[arg-type,func-returns-value]
    monitor.on_stream_event_out(tp, 7, SimpleNamespace(), SimpleNamespace(), state)  # type: ignore[arg-type]
    monitor.on_message_out(tp, 7, message)  # type: ignore[arg-type]
    assert tp in monitor.stream_inbound_time  # Faust's slow-processing check reads it
    assert (monitor.messages_received_total, monitor.events_total) == (0, 0)
    assert message.time_in is None and not monitor.events_runtime
