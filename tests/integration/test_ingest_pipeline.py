"""Ingest on the real broker: 1,000 records, 50 broken, nothing lost or duplicated."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Producer

from cdp.contracts.codec import AvroCodec
from cdp.contracts.registry import registry_from_settings
from cdp.errors import ReasonCode
from cdp.outcomes import TopicMark, collect_outcomes
from cdp.producer import EventProducer
from cdp.samples import broken_records, sample_events
from cdp.settings import Settings
from cdp.topics import Topics
from cdp.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


def _send_broken(settings: Settings, records: list) -> dict[tuple[str, int, int], ReasonCode]:
    """Produce raw records; return where each landed and the reason it must get."""
    landed: dict[tuple[str, int, int], ReasonCode] = {}
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True})

    def remember(reason: ReasonCode):  # type: ignore[no-untyped-def]
        def on_delivery(err, msg) -> None:  # type: ignore[no-untyped-def]
            assert err is None, err
            landed[(msg.topic(), msg.partition(), msg.offset())] = reason

        return on_delivery

    for record in records:
        producer.produce(
            record.topic, record.value, record.key, on_delivery=remember(record.reason)
        )
    assert producer.flush(30) == 0
    return landed


def test_thousand_records_fifty_broken(
    settings: Settings, worker_env: dict[str, str], tmp_path: Path
) -> None:
    rng = random.Random(2026)
    topics = Topics(settings.namespace)
    codec = AvroCodec(registry_from_settings(settings))
    valid = sample_events(950, rng)
    broken = broken_records(codec, topics, 50, rng)
    assert len({event.event_id for event in valid}) == 950
    assert {event.channel for event in valid} == set(topics.channel_of(t) for t in topics.channels)
    assert len({record.reason for record in broken}) == 6  # every reason an input can have

    mark = TopicMark.take(settings, [topics.canonical, topics.deadletter])
    with WorkerProcess(worker_env, tmp_path / "worker.log") as worker:
        with EventProducer(settings) as producer:
            for event in valid:
                producer.send(event)
        expected_reasons = _send_broken(settings, broken)
        outcomes = collect_outcomes(settings, codec, mark, expected=1000, timeout=180, settle=3.0)
        assert worker.running, worker.log_tail()

    # exactly the 950 valid events reached the canonical topic, each exactly once
    assert set(outcomes.accepted) == {event.event_id for event in valid}, worker.log_tail()
    assert max(outcomes.accepted_deliveries.values()) == 1
    assert Counter(e.channel for e in outcomes.accepted.values()) == Counter(
        e.channel for e in valid
    )
    # canonical events carry what was sent
    by_id = {event.event_id: event for event in valid}
    for event_id, event in outcomes.accepted.items():
        assert event == by_id[event_id]

    # exactly the 50 broken records were dead-lettered, each with its own reason
    assert len(outcomes.dead_letters) == 50
    sent_bytes = Counter((r.topic, r.value) for r in broken)
    got = {}
    for letter in outcomes.dead_letters:
        where = (letter.source.topic, letter.source.partition, letter.source.offset)
        assert where not in got, f"dead-lettered twice: {where}"
        got[where] = letter.reason
        assert letter.processor == "ingest"
        assert letter.detail
        assert sent_bytes[(letter.source.topic, letter.source.value)] > 0
    assert got == expected_reasons
