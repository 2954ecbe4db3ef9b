"""Where accepted events go: Kafka, through the producer SDK, acknowledged per request.

:class:`KafkaSink` sends a request's events with :class:`~cdp.producer.EventProducer`
(idempotent, ``acks=all``) and resolves only when the broker acknowledged every
one of them; a failed or late acknowledgement raises :class:`DeliveryFailed`, and
the collector answers 503 so the client retries (the retried events carry the same
event ids, so the pipeline counts them once). Sending runs in the thread pool
(encoding and a full local queue block), the acknowledgements arrive from a
poller thread and are handed to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import Protocol

from confluent_kafka import KafkaException
from starlette.concurrency import run_in_threadpool

from cdp.contracts.events import Event
from cdp.producer import DeliveryError, DeliveryFailure, EventProducer
from cdp.settings import Settings

log = logging.getLogger("cdp.collect")

ACK_MARGIN_S = 5.0
"""How much longer than the producer's message timeout a request waits for its acks."""


class DeliveryFailed(Exception):
    """Not every event of a request was acknowledged; ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class EventSink(Protocol):
    """What the collector hands accepted events to."""

    async def deliver(self, events: Sequence[Event]) -> None:
        """Return once every event is stored durably; raise :class:`DeliveryFailed` if not."""

    def close(self) -> None:
        """Release resources (flush what is queued)."""


class _Acks:
    """Counts a request's acknowledgements; its future resolves at the last ack or the
    first failure. Callbacks come from the producer's threads."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expected: int) -> None:
        self.loop = loop
        self.remaining = expected
        self.failures: list[DeliveryFailure] = []
        self.done: asyncio.Future[None] = loop.create_future()
        if expected == 0:
            self.done.set_result(None)

    def callback(self, failure: DeliveryFailure | None) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self.loop.call_soon_threadsafe(self._record, failure)

    def _record(self, failure: DeliveryFailure | None) -> None:
        self.remaining -= 1
        if failure is not None:
            self.failures.append(failure)
        if (failure is not None or self.remaining <= 0) and not self.done.done():
            self.done.set_result(None)


class KafkaSink:
    """Events to their channel topics through one :class:`EventProducer`.

    ``ack_timeout_s`` bounds how long a record may wait for the broker (the
    producer's ``message.timeout.ms``); a request waits that long plus
    :data:`ACK_MARGIN_S`.
    """

    def __init__(
        self, settings: Settings, ack_timeout_s: float, producer: EventProducer | None = None
    ) -> None:
        self.ack_timeout_s = ack_timeout_s
        self.producer = producer or EventProducer(
            settings,
            config={
                "client.id": f"cdp-collector-{settings.namespace}",
                "message.timeout.ms": int(ack_timeout_s * 1000),
            },
        )
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="collector-acks", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.1)

    def _send(self, events: Sequence[Event], acks: _Acks) -> None:
        for event in events:
            self.producer.send(event, on_delivery=acks.callback)

    async def deliver(self, events: Sequence[Event]) -> None:
        """Send ``events`` and wait for every acknowledgement (:class:`DeliveryFailed`)."""
        acks = _Acks(asyncio.get_running_loop(), len(events))
        try:
            await run_in_threadpool(self._send, events, acks)
        except (BufferError, DeliveryError, KafkaException) as exc:
            raise DeliveryFailed("producer_refused", type(exc).__name__) from None
        try:
            await asyncio.wait_for(asyncio.shield(acks.done), self.ack_timeout_s + ACK_MARGIN_S)
        except TimeoutError:
            raise DeliveryFailed(
                "ack_timeout", f"no acknowledgement within {self.ack_timeout_s:g} s"
            ) from None
        if acks.failures:
            names = sorted({failure.error_name for failure in acks.failures})
            raise DeliveryFailed("not_acknowledged", ", ".join(names))

    def close(self) -> None:
        """Stop the poller and flush what is queued (failures are logged, not raised)."""
        self._stop.set()
        self._poller.join(5)
        try:
            self.producer.close(self.ack_timeout_s)
        except DeliveryError as exc:
            log.warning("collector producer closed with undelivered records: %s", exc)
