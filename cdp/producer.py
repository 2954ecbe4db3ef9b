"""Producer SDK for channel systems: typed events in, Avro wire-format records on Kafka out.

::

    from cdp.contracts.events import Identifier, PageView, PageViewPayload
    from cdp.producer import EventProducer
    from cdp.settings import get_settings

    with EventProducer(get_settings()) as producer:
        producer.send(PageView(source="website",
                               identifiers=[Identifier.anonymous_id("a1")],
                               payload=PageViewPayload(url="https://example.com/")))
    # leaving the block flushes; undelivered events raise DeliveryError

Events go to their channel topic (``{namespace}.channel.{channel}``), keyed by
:func:`~cdp.contracts.events.partition_key`, encoded with the latest version
of the channel's schema. The Kafka producer is idempotent with ``acks=all``.
Delivery failures are collected and raised by :meth:`EventProducer.flush`, so
nothing is lost silently. Log lines carry topics, counts and error names only,
never keys or values (they hold PII).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from confluent_kafka import Producer

from cdp.contracts.codec import AvroCodec
from cdp.contracts.events import CHANNEL_SUBJECTS, Event, event_to_avro, partition_key
from cdp.contracts.registry import SchemaRegistry, registry_from_settings
from cdp.errors import CdpError, ConfigError
from cdp.settings import Settings
from cdp.topics import Topics

log = logging.getLogger(__name__)

DEFAULT_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 10,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 200_000,
    "message.timeout.ms": 120_000,
}
"""librdkafka settings of the SDK (``config`` overrides all but the delivery guarantees)."""

_QUEUE_FULL_WAIT_S = 60.0


@dataclass(frozen=True)
class DeliveryFailure:
    """One record the broker did not acknowledge (no key or value: they may hold PII)."""

    topic: str
    partition: int | None
    error_name: str
    """librdkafka error name, e.g. ``_MSG_TIMED_OUT``, ``UNKNOWN_TOPIC_OR_PART``."""
    error: str
    """librdkafka's description of the error."""
    event_id: str | None = None
    """The event's id (``None`` for :meth:`EventProducer.send_raw`)."""


DeliveryCallback = Callable[[DeliveryFailure | None], None]
"""Called per record by :meth:`EventProducer.send`: ``None`` when acknowledged, else the failure."""


class DeliveryError(CdpError):
    """Records were not delivered; raised by :meth:`EventProducer.flush`."""

    def __init__(self, failures: list[DeliveryFailure], pending: int = 0) -> None:
        self.failures = failures
        self.pending = pending
        counts = Counter((f.topic, f.error_name, f.error) for f in failures)
        parts = [f"{topic}: {name} ({text}) x{n}" for (topic, name, text), n in counts.items()]
        if pending:
            parts.append(f"{pending} still queued when the flush timed out")
        total = len(failures) + pending
        super().__init__(f"{total} record(s) not delivered: " + "; ".join(parts))


class EventProducer:
    """Sends typed events to their channel topics (idempotent, ``acks=all``).

    ``registry`` defaults to :func:`~cdp.contracts.registry.registry_from_settings`;
    ``config`` adds or overrides librdkafka settings (``enable.idempotence`` and
    ``acks`` cannot be weakened). Thread-safe like the underlying producer.
    """

    def __init__(
        self,
        settings: Settings,
        registry: SchemaRegistry | None = None,
        *,
        config: dict[str, Any] | None = None,
    ) -> None:
        conf: dict[str, Any] = {
            "bootstrap.servers": settings.kafka_bootstrap,
            "client.id": f"cdp-producer-{settings.namespace}",
            **DEFAULT_CONFIG,
            **(config or {}),
        }
        if str(conf["enable.idempotence"]).lower() not in ("true", "1"):
            raise ConfigError("EventProducer: enable.idempotence must stay true")
        if str(conf["acks"]).lower() not in ("all", "-1"):
            raise ConfigError("EventProducer: acks must stay 'all'")
        conf["error_cb"] = self._on_error
        self.settings = settings
        self.topics = Topics(settings.namespace)
        self.codec = AvroCodec(
            registry if registry is not None else registry_from_settings(settings)
        )
        self._lock = threading.Lock()
        self._failures: list[DeliveryFailure] = []
        self._fatal: str | None = None
        self._producer = Producer(conf)
        self._closed = False

    # -- sending -------------------------------------------------------------------------

    def send(self, event: Event, *, on_delivery: DeliveryCallback | None = None) -> None:
        """Encode ``event`` and queue it for its channel topic, keyed by its partition key.

        Raises :class:`TypeError` for anything but an :class:`Event`,
        :class:`~cdp.contracts.codec.EncodeError` if it does not fit the schema.
        Delivery is asynchronous: call :meth:`flush` (or leave the ``with`` block).

        ``on_delivery`` (optional) is called once the broker acknowledged the
        record (with ``None``) or it failed (with its :class:`DeliveryFailure`),
        from whichever thread serves callbacks (:meth:`poll`, :meth:`flush`). A
        failure reported to ``on_delivery`` is the caller's to handle and is not
        raised again by :meth:`flush`.
        """
        if not isinstance(event, Event):
            raise TypeError(f"send() takes an Event, got {type(event).__name__}")
        value = self.codec.encode(CHANNEL_SUBJECTS[event.channel], event_to_avro(event))
        self._produce(
            self.topics.channel(event.channel),
            value,
            partition_key(event),
            event.event_id,
            on_delivery,
        )

    def send_raw(self, topic: str, value: bytes | None, key: bytes | None = None) -> None:
        """Queue arbitrary bytes (tools and tests that need broken or foreign records)."""
        self._produce(topic, value, key, None)

    def _produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        event_id: str | None,
        callback: DeliveryCallback | None = None,
    ) -> None:
        if self._fatal is not None:
            raise DeliveryError([DeliveryFailure(topic, None, "_FATAL", self._fatal, event_id)])

        def on_delivery(err: Any, msg: Any) -> None:
            failure = None if err is None else self._on_failure(err, msg, topic, event_id, callback)
            if callback is not None:
                callback(failure)

        deadline = time.monotonic() + _QUEUE_FULL_WAIT_S
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                if time.monotonic() > deadline:
                    raise
                self._producer.poll(0.1)  # local queue full: serve callbacks, then retry
        self._producer.poll(0)

    # -- callbacks -----------------------------------------------------------------------

    def _on_failure(
        self,
        err: Any,
        msg: Any,
        topic: str,
        event_id: str | None,
        callback: DeliveryCallback | None = None,
    ) -> DeliveryFailure:
        partition = msg.partition() if msg is not None else None
        failure = DeliveryFailure(
            topic=topic,
            partition=partition if partition is not None and partition >= 0 else None,
            error_name=str(err.name()),
            error=str(err.str()),
            event_id=event_id,
        )
        if callback is None:  # else the callback reports it
            with self._lock:
                self._failures.append(failure)
        log.warning("delivery to %s failed: %s", topic, failure.error_name)
        return failure

    def _on_error(self, err: Any) -> None:
        if err.fatal():
            self._fatal = f"{err.name()}: {err.str()}"
            log.error("fatal producer error: %s", self._fatal)
        else:
            log.warning("producer error: %s (%s)", err.name(), err.str())

    # -- flushing ------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery callbacks; return how many were served."""
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float = 30.0) -> int:
        """Wait up to ``timeout`` seconds for queued records; return how many are still queued.

        Raises :class:`DeliveryError` listing every record that failed since the
        last flush (the list is reset once raised).
        """
        pending = int(self._producer.flush(timeout))
        with self._lock:
            failures, self._failures = self._failures, []
        if failures:
            raise DeliveryError(failures, pending)
        return pending

    def close(self, timeout: float = 30.0) -> None:
        """Flush, then release the client (its connections and threads).

        Raises :class:`DeliveryError` if anything failed or is still queued after
        ``timeout``; what is still queued then is dropped, not sent later.
        """
        if self._closed:
            return
        self._closed = True
        try:
            pending = self.flush(timeout)
        finally:
            # without this the client lives on until garbage-collected and, with the
            # broker unreachable, keeps reconnecting (and logging) in the background
            self._producer.purge()
            self._producer.close()
        if pending:
            raise DeliveryError([], pending)

    def __len__(self) -> int:
        """Records queued and not yet acknowledged."""
        return len(self._producer)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        try:  # an exception is already propagating: deliver what we can, do not mask it
            self.close()
        except DeliveryError as error:
            log.error("while handling %s: %s", exc_type.__name__ if exc_type else "error", error)
