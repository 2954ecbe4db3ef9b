"""The worker state snapshot: what it says about partitions, agents and tasks, and SIGUSR1."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from cdp.diagnostics import log_on_signal, snapshot
from cdp.in_order import InOrderDelivery
from tests.unit.test_in_order import _TP, _App, _FaustConsumer


def _app() -> _App:
    delivery = InOrderDelivery()
    waiting, done = _TP("channel", 1), _TP("channel", 0)
    delivery.reset(waiting, 10, sought=True, now=0)
    delivery.reset(done, 50, sought=True, now=0)
    consumer = _FaustConsumer({waiting: 40, done: 50}, delivery)
    consumer._paused_partitions = set()
    consumer._active_partitions = {waiting, done}
    return _App(consumer)


def test_the_snapshot_lists_waiting_partitions_and_counts_the_rest() -> None:
    text = snapshot(_app())
    assert "flow_active=True" in text and "assigned=3 active=2 paused=0" in text
    assert "channel[1] active next=10 log_end=40 committed=0" in text
    assert "channel[0]" not in text  # caught up: only counted
    assert "1 other input partitions: active, nothing waiting" in text


def test_sigusr1_logs_the_snapshot(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        log_on_signal(_app(), asyncio.get_running_loop())
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.sleep(0.05)
        asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    (record,) = [r for r in caplog.records if "worker state on SIGUSR1" in r.getMessage()]
    assert "channel[1] active next=10" in record.getMessage()
    assert "scenario" in record.getMessage()  # where the tasks are
