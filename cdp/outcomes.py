"""Read back what the pipeline produced since a point in time.

Used by ``cdp demo`` and by integration tests: take a :class:`TopicMark` of the
output topics *before* sending, then :func:`collect_outcomes` reads everything
written after the mark until the expected number of distinct records arrived.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from cdp.contracts.codec import AvroCodec
from cdp.contracts.events import Event, decode_canonical
from cdp.deadletter import DeadLetter, headers_to_tuples
from cdp.settings import Settings
from cdp.topics import Topics

Progress = Callable[[int, int], None]

_LEADERSHIP_ERRORS = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
    }
)
"""Errors a just-created topic gives until its partition leaders are ready."""


@dataclass(frozen=True)
class TopicMark:
    """End offsets of some topics at one moment: where "new" records start."""

    offsets: dict[str, dict[int, int]]

    @classmethod
    def take(cls, settings: Settings, topics: Iterable[str], timeout: float = 10.0) -> TopicMark:
        """Record the current end offset of every partition of ``topics``."""
        consumer = _consumer(settings)
        try:
            marks: dict[str, dict[int, int]] = {}
            metadata = consumer.list_topics(timeout=timeout)
            for topic in topics:
                marks[topic] = {}
                for partition in metadata.topics[topic].partitions:
                    marks[topic][partition] = _end_offset(consumer, topic, partition, timeout)
            return cls(marks)
        finally:
            consumer.close()


@dataclass
class Outcomes:
    """Records that reached the canonical and dead-letter topics after a mark."""

    accepted: dict[str, Event] = field(default_factory=dict)
    """Canonical events by event id (distinct)."""
    accepted_deliveries: Counter[str] = field(default_factory=Counter)
    """How many canonical records each event id has (1 unless redelivered)."""
    dead_letters: list[DeadLetter] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Distinct accepted events plus dead letters."""
        return len(self.accepted) + len(self.dead_letters)

    def by_channel(self) -> Counter[str]:
        """Accepted events per channel."""
        return Counter(event.channel.value for event in self.accepted.values())

    def by_reason(self) -> Counter[str]:
        """Dead letters per reason code."""
        return Counter(letter.reason.value for letter in self.dead_letters)


def collect_outcomes(
    settings: Settings,
    codec: AvroCodec,
    mark: TopicMark,
    expected: int,
    timeout: float = 120.0,
    progress: Progress | None = None,
    settle: float = 0.0,
) -> Outcomes:
    """Read canonical + dead-letter records written after ``mark``.

    Stops once ``expected`` distinct records arrived (then keeps reading for
    ``settle`` seconds to catch duplicates) or when ``timeout`` passes.
    """
    names = Topics(settings.namespace)
    consumer = _consumer(settings)
    assignment = [
        TopicPartition(topic, partition, offset)
        for topic in (names.canonical, names.deadletter)
        for partition, offset in mark.offsets[topic].items()
    ]
    consumer.assign(assignment)
    outcomes = Outcomes()
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    try:
        while time.monotonic() < deadline:
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            for message in consumer.consume(num_messages=1000, timeout=0.2):
                if message.error():
                    continue
                if message.topic() == names.canonical:
                    event = decode_canonical(codec, message.value())
                    outcomes.accepted[event.event_id] = event
                    outcomes.accepted_deliveries[event.event_id] += 1
                else:
                    outcomes.dead_letters.append(
                        DeadLetter.from_kafka(
                            message.key(), message.value(), headers_to_tuples(message.headers())
                        )
                    )
            if progress is not None:
                progress(outcomes.total, expected)
            if settle_until is None and outcomes.total >= expected:
                settle_until = time.monotonic() + settle
        return outcomes
    finally:
        consumer.close()


def _end_offset(consumer: Consumer, topic: str, partition: int, timeout: float) -> int:
    """High watermark of one partition; retries while a new partition's leader gets ready."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout
            )
            return int(high)
        except KafkaException as exc:
            error = exc.args[0]
            transient = error.retriable() or error.code() in _LEADERSHIP_ERRORS
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _consumer(settings: Settings) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.namespace}-outcomes",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
    )
