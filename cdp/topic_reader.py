"""Read a topic from its beginning up to its current end (rebuilds, hand-off memory, tests)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from cdp.settings import Settings


def read_topic(
    settings: Settings, topic: str, progress: Callable[[str], None] | None = None
) -> Iterator[tuple[str, bytes | None]]:
    """Every keyed record of ``topic`` up to the end offsets at the start, oldest first.

    Yields ``(key, value)`` (``value`` None: a tombstone); keyless records are
    skipped. Uses no consumer group offsets (partitions are assigned, nothing is
    committed). ``progress`` hears one line with the number of records.
    """
    for message in read_messages(settings, topic, progress):
        key = message.key()
        if key is not None:
            yield key.decode(), message.value()


def read_messages(
    settings: Settings, topic: str, progress: Callable[[str], None] | None = None
) -> Iterator[Any]:
    """Every record of ``topic`` up to the end offsets at the start (confluent-kafka messages).

    Per partition in offset order; see :func:`read_topic`.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.namespace}-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        ends: dict[int, int] = {}
        assignment = []
        for partition in metadata.partitions:
            low, high = _watermarks(consumer, TopicPartition(topic, partition))
            if high > low:
                ends[partition] = high
                assignment.append(TopicPartition(topic, partition, low))
        if progress is not None:
            progress(f"reading {topic} ({sum(ends.values())} records)")
        if not assignment:
            return
        consumer.assign(assignment)
        remaining = set(ends)
        while remaining:
            for message in consumer.consume(num_messages=5000, timeout=1.0):
                partition = message.partition() or 0
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(partition)
                    continue
                offset = message.offset() or 0
                if offset >= ends[partition] - 1:
                    remaining.discard(partition)
                if offset < ends[partition]:
                    yield message
    finally:
        consumer.close()


_RETRIABLE = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}
"""Errors of a partition whose leadership is still settling (a new topic, a broker restart)."""


def _watermarks(consumer: Consumer, partition: TopicPartition, timeout: float = 30.0) -> Any:
    """``(low, high)`` of ``partition``, retrying while its leader is not known yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() not in _RETRIABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
