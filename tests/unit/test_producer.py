"""EventProducer with a fake confluent-kafka Producer (no broker)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

import cdp.producer as producer_module
from cdp.contracts.codec import AvroCodec
from cdp.contracts.events import (
    Identifier,
    Order,
    OrderPayload,
    decode_channel_event,
    partition_key,
)
from cdp.contracts.examples import example_events
from cdp.contracts.registry import LocalSchemaRegistry
from cdp.errors import ConfigError
from cdp.producer import DeliveryError, EventProducer
from cdp.settings import PROJECT_ROOT, Settings, load_settings
from cdp.topics import Channel

SECRET = "jane.secret@example.com"
REGISTRY = LocalSchemaRegistry(PROJECT_ROOT / "schemas")


class FakeKafkaError:
    def __init__(self, name: str, text: str, fatal: bool = False) -> None:
        self._name, self._text, self._fatal = name, text, fatal

    def name(self) -> str:
        return self._name

    def str(self) -> str:
        return self._text

    def fatal(self) -> bool:
        return self._fatal


class FakeMessage:
    def __init__(self, topic: str, partition: int) -> None:
        self._topic, self._partition = topic, partition

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition


class FakeProducer:
    """Records produce() calls; delivers (or fails) them on poll/flush."""

    instances: ClassVar[list[FakeProducer]] = []

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.produced: list[dict[str, Any]] = []
        self.queue: list[tuple[Callable[[Any, Any], None], str]] = []
        self.fail_with: FakeKafkaError | None = None
        self.buffer_full = 0
        self.stuck = 0
        self.purged = 0
        self.closed = False
        FakeProducer.instances.append(self)

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        on_delivery: Any = None,
    ) -> None:
        if self.buffer_full:
            self.buffer_full -= 1
            raise BufferError("Local: Queue full")
        self.produced.append({"topic": topic, "value": value, "key": key})
        self.queue.append((on_delivery, topic))

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        served = self.queue[: len(self.queue) - self.stuck]
        self.queue = self.queue[len(served) :]
        for callback, topic in served:
            callback(self.fail_with, FakeMessage(topic, 1))
        return len(self.queue)

    def purge(self) -> None:
        self.purged += len(self.queue)
        self.queue = []

    def close(self) -> bool:
        self.closed = True
        return True

    def __len__(self) -> int:
        return len(self.queue)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeProducer]:
    FakeProducer.instances.clear()
    monkeypatch.setattr(producer_module, "Producer", FakeProducer)
    return FakeProducer


@pytest.fixture
def settings() -> Settings:
    return load_settings(namespace="unit", kafka_bootstrap="broker:9092")


def test_config_is_idempotent_acks_all(fake: type[FakeProducer], settings: Settings) -> None:
    EventProducer(settings, REGISTRY, config={"linger.ms": 50})
    conf = fake.instances[0].conf
    assert conf["bootstrap.servers"] == "broker:9092"
    assert conf["enable.idempotence"] is True
    assert conf["acks"] == "all"
    assert conf["linger.ms"] == 50
    with pytest.raises(ConfigError, match="idempotence"):
        EventProducer(settings, REGISTRY, config={"enable.idempotence": False})
    with pytest.raises(ConfigError, match="acks"):
        EventProducer(settings, REGISTRY, config={"acks": 1})


def test_send_encodes_to_the_channel_topic(fake: type[FakeProducer], settings: Settings) -> None:
    codec = AvroCodec(REGISTRY)
    events = example_events()
    with EventProducer(settings, REGISTRY) as producer:
        for event in events:
            producer.send(event)
    produced = fake.instances[0].produced
    assert len(produced) == len(events)
    for event, record in zip(events, produced, strict=True):
        assert record["topic"] == f"unit.channel.{event.channel.value}"
        assert record["key"] == partition_key(event)
        assert decode_channel_event(codec, record["value"], event.channel) == event
    assert fake.instances[0].queue == []


def test_registry_defaults_to_settings(fake: type[FakeProducer], settings: Settings) -> None:
    producer = EventProducer(settings)
    assert isinstance(producer.codec.registry, LocalSchemaRegistry)


def test_invalid_event_fails_before_anything_is_sent(
    fake: type[FakeProducer], settings: Settings
) -> None:
    producer = EventProducer(settings, REGISTRY)
    with pytest.raises(ValidationError) as caught:
        producer.send(
            Order(
                source="shop",
                identifiers=[Identifier.email(SECRET)],
                payload=OrderPayload(order_id="1", value=Decimal("-1"), currency="EUR", items=1),
            )
        )
    message = str(caught.value)
    assert "1 validation error for OrderPayload\nvalue\n" in message
    assert "greater than or equal to 0 [type=greater_than_equal]" in message
    assert "-1" not in message  # inputs are hidden (they may be PII)
    with pytest.raises(TypeError, match="takes an Event"):
        producer.send({"type": "order"})  # type: ignore[arg-type]
    assert fake.instances[0].produced == []


def test_send_raw(fake: type[FakeProducer], settings: Settings) -> None:
    with EventProducer(settings, REGISTRY) as producer:
        producer.send_raw("unit.channel.web", b"\x01garbage", key=b"k")
        producer.send_raw("unit.channel.web", None)
    assert fake.instances[0].produced == [
        {"topic": "unit.channel.web", "value": b"\x01garbage", "key": b"k"},
        {"topic": "unit.channel.web", "value": None, "key": None},
    ]


def test_delivery_failures_are_raised_not_lost(
    fake: type[FakeProducer], settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    producer = EventProducer(settings, REGISTRY)
    fake.instances[0].fail_with = FakeKafkaError("_MSG_TIMED_OUT", "Local: Message timed out")
    event = example_events()[2]  # carries an email and traits
    caplog.set_level(logging.DEBUG)
    producer.send(event)
    producer.send(event)
    with pytest.raises(DeliveryError) as caught:
        producer.flush(1)
    error = caught.value
    assert len(error.failures) == 2
    assert error.failures[0].event_id == event.event_id
    assert error.failures[0].topic == "unit.channel.web"
    assert error.failures[0].error_name == "_MSG_TIMED_OUT"
    assert "2 record(s) not delivered" in str(error)
    assert "Anna" not in str(error) and "anna" not in str(error).lower()
    assert "anna" not in caplog.text.lower()
    # reported once
    fake.instances[0].fail_with = None
    assert producer.flush(1) == 0


def test_context_manager_raises_on_undelivered(
    fake: type[FakeProducer], settings: Settings
) -> None:
    with (
        pytest.raises(DeliveryError, match="still queued"),
        EventProducer(settings, REGISTRY) as producer,
    ):
        fake.instances[0].stuck = 1
        producer.send(example_events()[0])
    # the client is released, and what could not be sent is dropped, not sent later
    assert fake.instances[0].closed
    assert fake.instances[0].purged == 1


def test_close_releases_the_client_once(fake: type[FakeProducer], settings: Settings) -> None:
    producer = EventProducer(settings, REGISTRY)
    producer.send(example_events()[0])
    producer.close()
    producer.close()
    assert fake.instances[0].closed and fake.instances[0].purged == 0
    assert len(fake.instances[0].produced) == 1  # sent, not dropped


def test_context_manager_does_not_mask_the_body_error(
    fake: type[FakeProducer], settings: Settings
) -> None:
    with pytest.raises(RuntimeError, match="boom"), EventProducer(settings, REGISTRY) as producer:
        fake.instances[0].fail_with = FakeKafkaError(
            "_TRANSPORT", "Local: Broker transport failure"
        )
        producer.send(example_events()[0])
        raise RuntimeError("boom")


def test_full_queue_is_retried(fake: type[FakeProducer], settings: Settings) -> None:
    with EventProducer(settings, REGISTRY) as producer:
        fake.instances[0].buffer_full = 3
        producer.send(example_events()[0])
    assert len(fake.instances[0].produced) == 1


def test_fatal_error_stops_sending(fake: type[FakeProducer], settings: Settings) -> None:
    producer = EventProducer(settings, REGISTRY)
    error_cb = fake.instances[0].conf["error_cb"]
    error_cb(FakeKafkaError("_TRANSPORT", "transient"))
    producer.send(example_events()[0])
    error_cb(FakeKafkaError("_FENCED", "Producer fenced", fatal=True))
    with pytest.raises(DeliveryError, match="_FENCED"):
        producer.send(example_events()[0])


def test_topics_follow_the_namespace(fake: type[FakeProducer]) -> None:
    producer = EventProducer(load_settings(namespace="acme-prod"), REGISTRY)
    producer.send(example_events()[8])
    assert fake.instances[0].produced[0]["topic"] == "acme-prod.channel.ecommerce"
    assert producer.topics.channel(Channel.CRM) == "acme-prod.channel.crm"


def test_on_delivery_reports_each_record(fake: type[FakeProducer], settings: Settings) -> None:
    results: list[Any] = []
    producer = EventProducer(settings, REGISTRY)
    producer.send(example_events()[0], on_delivery=results.append)
    assert producer.flush() == 0
    assert results == [None]
    fake.instances[0].fail_with = FakeKafkaError("_MSG_TIMED_OUT", "Local: Message timed out")
    event = example_events()[1]
    producer.send(event, on_delivery=results.append)
    assert producer.flush() == 0  # reported to the callback, not raised again
    failure = results[1]
    assert (failure.error_name, failure.event_id) == ("_MSG_TIMED_OUT", event.event_id)
    producer.send(event)  # without a callback, flush raises as before
    with pytest.raises(DeliveryError):
        producer.flush()
