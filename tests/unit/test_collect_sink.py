"""KafkaSink: a request resolves only when every record is acknowledged (fake producer)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from cdp.collect.sink import DeliveryFailed, KafkaSink
from cdp.contracts.examples import example_events
from cdp.producer import DeliveryFailure
from cdp.settings import load_settings

Callback = Callable[[DeliveryFailure | None], None]


class FakeProducer:
    """EventProducer stand-in: acks (or fails, or holds) records when polled."""

    def __init__(self) -> None:
        self.queue: list[Callback] = []
        self.sent: list[str] = []
        self.fail: DeliveryFailure | None = None
        self.hold = False
        self.closed = False
        self.lock = threading.Lock()

    def send(self, event: Any, *, on_delivery: Callback | None = None) -> None:
        assert on_delivery is not None
        with self.lock:
            self.sent.append(event.event_id)
            self.queue.append(on_delivery)

    def poll(self, timeout: float = 0.0) -> int:
        with self.lock:
            served, self.queue = ([], self.queue) if self.hold else (self.queue, [])
        for callback in served:
            callback(self.fail)
        threading.Event().wait(min(timeout, 0.01))
        return len(served)

    def close(self, timeout: float = 30.0) -> None:
        self.closed = True


def sink_with(producer: FakeProducer, timeout: float = 1.0) -> KafkaSink:
    return KafkaSink(load_settings(namespace="tsink"), timeout, producer)  # type: ignore[arg-type]


def test_resolves_after_every_ack() -> None:
    producer = FakeProducer()
    sink = sink_with(producer)
    events = example_events()[:5]
    try:
        asyncio.run(sink.deliver(events))
        assert producer.sent == [e.event_id for e in events]
        asyncio.run(sink.deliver([]))
    finally:
        sink.close()
    assert producer.closed


def test_a_failed_record_fails_the_request() -> None:
    producer = FakeProducer()
    producer.fail = DeliveryFailure("t", 0, "_MSG_TIMED_OUT", "Local: Message timed out")
    sink = sink_with(producer)
    try:
        with pytest.raises(DeliveryFailed) as caught:
            asyncio.run(sink.deliver(example_events()[:3]))
        assert (caught.value.reason, caught.value.detail) == ("not_acknowledged", "_MSG_TIMED_OUT")
    finally:
        sink.close()


def test_no_ack_in_time_fails_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cdp.collect.sink.ACK_MARGIN_S", 0.1)
    producer = FakeProducer()
    producer.hold = True
    sink = sink_with(producer, timeout=0.2)
    try:
        with pytest.raises(DeliveryFailed) as caught:
            asyncio.run(sink.deliver(example_events()[:1]))
        assert caught.value.reason == "ack_timeout"
    finally:
        sink.close()


def test_a_refusing_producer_fails_the_request() -> None:
    producer = FakeProducer()

    def refuse(event: Any, *, on_delivery: Callback | None = None) -> None:
        raise BufferError("Local: Queue full")

    producer.send = refuse  # type: ignore[method-assign]
    sink = sink_with(producer)
    try:
        with pytest.raises(DeliveryFailed) as caught:
            asyncio.run(sink.deliver(example_events()[:1]))
        assert caught.value.reason == "producer_refused"
    finally:
        sink.close()
