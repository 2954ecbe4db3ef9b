"""The ingest decision without a broker: every record ends accepted or dead-lettered."""

from __future__ import annotations

import random

import pytest

from cdp.contracts.codec import AvroCodec
from cdp.contracts.events import decode_canonical, encode_canonical, encode_event
from cdp.contracts.examples import example_events
from cdp.contracts.registry import LocalSchemaRegistry
from cdp.deadletter import DeadLetter, SourceRecord
from cdp.errors import ReasonCode
from cdp.identity.config import default_identity_config
from cdp.identity.identifiers import primary_identifier, usable_identifiers
from cdp.ingest import Accepted, IngestStage
from cdp.samples import broken_records
from cdp.settings import load_settings
from cdp.topics import Topics

TOPICS = Topics("unit")
IDENTITY = default_identity_config()


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec(LocalSchemaRegistry(load_settings().schemas_dir))


@pytest.fixture(scope="module")
def stage(codec: AvroCodec) -> IngestStage:
    return IngestStage(codec, TOPICS)


def _record(topic: str, value: bytes | None, offset: int = 0) -> SourceRecord:
    return SourceRecord(topic=topic, partition=1, offset=offset, key=b"k", value=value)


def test_every_event_type_is_accepted_and_keyed(stage: IngestStage, codec: AvroCodec) -> None:
    for event in example_events():
        result = stage.process(_record(TOPICS.channel(event.channel), encode_event(codec, event)))
        assert isinstance(result, Accepted), result
        keys = usable_identifiers(((i.type, i.value) for i in event.identifiers), IDENTITY)
        assert result.key == primary_identifier(keys, IDENTITY).encode()  # type: ignore[union-attr]
        assert result.observation.keys == tuple(keys)
        assert result.observation.event_id == event.event_id
        assert decode_canonical(codec, result.value) == event


def test_each_kind_of_broken_record_gets_its_reason(stage: IngestStage, codec: AvroCodec) -> None:
    broken = broken_records(codec, TOPICS, 21, random.Random(5))
    assert len({record.reason for record in broken}) == 6
    for offset, record in enumerate(broken):
        result = stage.process(_record(record.topic, record.value, offset))
        assert isinstance(result, DeadLetter)
        assert result.reason == record.reason, result.detail
        assert result.source.value == record.value  # the original bytes travel along
        assert result.source.offset == offset
        assert result.processor == "ingest"


def test_canonical_record_on_a_channel_topic_is_wrong_channel(
    stage: IngestStage, codec: AvroCodec
) -> None:
    event = example_events()[0]
    result = stage.process(_record(TOPICS.channel(event.channel), encode_canonical(codec, event)))
    assert isinstance(result, DeadLetter)
    assert result.reason is ReasonCode.WRONG_CHANNEL


@pytest.mark.parametrize("value", [None, b"", b"\x00\x00", b"\x01\x00\x00\x00\x01abc"])
def test_not_wire_format(stage: IngestStage, value: bytes | None) -> None:
    result = stage.process(_record(TOPICS.channel("web"), value))
    assert isinstance(result, DeadLetter)
    assert result.reason is ReasonCode.NOT_WIRE_FORMAT


def test_record_from_a_foreign_topic_is_dead_lettered(stage: IngestStage) -> None:
    result = stage.process(_record("unit.other", b"\x00\x00\x00\x00\x01"))
    assert isinstance(result, DeadLetter)
    assert result.reason is ReasonCode.WRONG_CHANNEL


def test_a_bug_becomes_a_processor_error_not_a_lost_record(codec: AvroCodec) -> None:
    class ExplodingCodec(AvroCodec):
        def decode(self, data):  # type: ignore[no-untyped-def, override]
            raise ZeroDivisionError("boom")

    stage = IngestStage(ExplodingCodec(LocalSchemaRegistry(load_settings().schemas_dir)), TOPICS)
    result = stage.process(_record(TOPICS.channel("crm"), b"\x00\x00\x00\x00\x01x"))
    assert isinstance(result, DeadLetter)
    assert result.reason is ReasonCode.PROCESSOR_ERROR
    assert "ZeroDivisionError" in result.detail


def test_details_never_carry_the_values(stage: IngestStage, codec: AvroCodec) -> None:
    from cdp.contracts.events import CHANNEL_SUBJECTS, event_to_avro

    event = example_events()[0]
    record = event_to_avro(event)
    record["identifiers"] = [{"type": "email", "value": "secret.person@@example.com"}]
    value = codec.encode(CHANNEL_SUBJECTS[event.channel], record)
    result = stage.process(_record(TOPICS.channel(event.channel), value))
    assert isinstance(result, DeadLetter)
    assert result.reason is ReasonCode.VALIDATION_FAILED
    assert "secret" not in result.detail
    assert "identifiers" in result.detail


def test_event_with_only_blocked_identifiers_is_dead_lettered(
    stage: IngestStage, codec: AvroCodec
) -> None:
    from cdp.contracts import events as ev
    from cdp.contracts.events import Identifier
    from cdp.samples import SHARED_PHONE_NUMBERS

    call = ev.Call(
        source="callcenter",
        identifiers=[Identifier.phone(SHARED_PHONE_NUMBERS[0])],
        payload=ev.CallPayload(call_id="c1", direction="inbound", duration_s=30),
    )
    result = stage.process(_record(TOPICS.channel("callcenter"), encode_event(codec, call)))
    assert isinstance(result, DeadLetter)
    assert result.reason is ReasonCode.NO_USABLE_IDENTIFIER
