"""EventProducer against a real Kafka broker.

The broker comes from ``CDP_KAFKA_BOOTSTRAP`` (set by the session fixture of
the suite; for development e.g. ``CDP_KAFKA_BOOTSTRAP=127.0.0.1:29092``),
defaulting to the settings. Auto-create is off on the broker, so the test
creates its own uniquely named topics (a fresh namespace per run) and deletes
them afterwards.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from cdp.contracts.codec import AvroCodec
from cdp.contracts.events import Event, decode_channel_event, partition_key
from cdp.contracts.examples import example_events
from cdp.contracts.registry import LocalSchemaRegistry
from cdp.producer import DeliveryError, EventProducer
from cdp.settings import Settings, load_settings
from cdp.topics import Channel, Topics

pytestmark = pytest.mark.integration


@pytest.fixture
def bootstrap(request: pytest.FixtureRequest) -> str:
    """CDP_KAFKA_BOOTSTRAP if set, else the suite's local stack, else the settings default."""
    from_env = os.environ.get("CDP_KAFKA_BOOTSTRAP")
    if from_env:
        return from_env
    try:
        stack: Settings = request.getfixturevalue("stack_settings")
    except pytest.FixtureLookupError:
        return load_settings().kafka_bootstrap
    return stack.kafka_bootstrap


@pytest.fixture
def settings(bootstrap: str) -> Settings:
    """Settings with a namespace of its own (so its topics are unique to this test)."""
    namespace = f"t{uuid.uuid4().hex[:12]}"
    return load_settings(namespace=namespace, kafka_bootstrap=bootstrap, partitions=3)


@pytest.fixture
def topics(settings: Settings) -> Iterator[Topics]:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    names = Topics(settings.namespace)
    wanted = [*names.channels, f"{settings.namespace}.raw"]
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=3, replication_factor=1) for name in wanted],
        operation_timeout=30,
    )
    for future in futures.values():
        future.result(timeout=60)
    try:
        yield names
    finally:
        for future in admin.delete_topics(wanted, operation_timeout=30).values():
            with contextlib.suppress(Exception):  # cleanup only
                future.result(timeout=60)


def consume(settings: Settings, topics: list[str], count: int, timeout: float = 60.0) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.namespace}-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(topics)
    messages: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            assert message.error() is None, message.error()
            messages.append(message)
    finally:
        consumer.close()
    return messages


def test_events_arrive_on_their_channel_topics(settings: Settings, topics: Topics) -> None:
    registry = LocalSchemaRegistry(settings.schemas_dir)
    events = example_events()
    with EventProducer(settings, registry) as producer:
        for event in events:
            producer.send(event)
        producer.send_raw(f"{settings.namespace}.raw", b"\x01not avro", key=b"raw-key")

    messages = consume(settings, [*topics.channels, f"{settings.namespace}.raw"], len(events) + 1)
    assert len(messages) == len(events) + 1
    codec = AvroCodec(registry)
    by_id: dict[str, Event] = {e.event_id: e for e in events}
    partitions: dict[bytes, set[int]] = {}
    for message in messages:
        if message.topic() == f"{settings.namespace}.raw":
            assert message.value() == b"\x01not avro" and message.key() == b"raw-key"
            continue
        channel = topics.channel_of(message.topic())
        assert channel is not None
        event = decode_channel_event(codec, message.value(), channel)
        assert event == by_id.pop(event.event_id)
        assert message.key() == partition_key(event)
        partitions.setdefault(message.key(), set()).add(message.partition())
    assert by_id == {}
    # one key, one partition: events of a person keep their order
    assert all(len(parts) == 1 for parts in partitions.values())


def test_delivery_failure_is_raised(settings: Settings, topics: Topics) -> None:
    missing = f"{settings.namespace}.does-not-exist"  # auto-create is off
    producer = EventProducer(
        settings, LocalSchemaRegistry(settings.schemas_dir), config={"message.timeout.ms": 3000}
    )
    producer.send_raw(missing, b"x")
    producer.send(example_events()[0])  # a good one, on an existing topic
    with pytest.raises(DeliveryError) as caught:
        producer.flush(30)
    failures = caught.value.failures
    assert [f.topic for f in failures] == [missing]
    assert failures[0].event_id is None
    assert producer.flush(10) == 0
    assert consume(settings, [topics.channel(Channel.WEB)], 1)[0].key() is not None
