"""DecodeOnce: a canonical record is decoded once for all the stages of a process that read it."""

from __future__ import annotations

import pytest

from cdp.contracts.codec import AvroCodec
from cdp.contracts.decode_once import DecodeOnce
from cdp.contracts.events import (
    CHANNEL_SUBJECTS,
    Event,
    decode_canonical,
    encode_canonical,
    event_to_avro,
    private_copy,
)
from cdp.contracts.examples import example_events
from cdp.contracts.registry import LocalSchemaRegistry
from cdp.deadletter import SourceRecord
from cdp.errors import EventError, ReasonCode
from cdp.ingest.stage import Accepted, IngestStage
from cdp.processors import State, processor
from cdp.processors.steps import on_event
from cdp.profile.facts import fact_from_event
from cdp.samples import generate
from cdp.settings import PROJECT_ROOT
from cdp.topics import Topics

CODEC = AvroCodec(LocalSchemaRegistry(PROJECT_ROOT / "schemas"))
EVENTS = example_events()
RECORDS = [encode_canonical(CODEC, event) for event in EVENTS]


def test_every_reader_gets_the_validated_event_and_only_the_first_decodes() -> None:
    shared = DecodeOnce(CODEC, readers=3)
    for offset, (event, value) in enumerate(zip(EVENTS, RECORDS, strict=True)):
        position = ("ns.events.canonical", 0, offset)
        seen = [shared.event(position, value) for _ in range(3)]
        assert seen[0] == event == decode_canonical(CODEC, value)
        assert seen[1] is seen[0] and seen[2] is seen[0]
    assert (shared.decoded, shared.shared) == (len(EVENTS), 2 * len(EVENTS))
    assert len(shared) == 0  # every entry left once its last reader took it


def test_a_different_record_at_the_same_position_is_decoded_anew() -> None:
    shared = DecodeOnce(CODEC, readers=2)
    position = ("ns.events.canonical", 1, 7)
    assert shared.event(position, RECORDS[0]) == EVENTS[0]
    assert shared.event(position, RECORDS[1]) == EVENTS[1]  # e.g. a recreated topic
    assert shared.decoded == 2


def test_capacity_bounds_the_entries_and_a_late_reader_decodes_again() -> None:
    shared = DecodeOnce(CODEC, readers=2, capacity=2)
    for offset, value in enumerate(RECORDS[:3]):
        shared.event(("t", 0, offset), value)
    assert len(shared) == 2  # the oldest went first
    assert shared.event(("t", 0, 0), RECORDS[0]) == EVENTS[0]
    assert shared.decoded == 4


def test_an_invalid_record_raises_the_same_reason_for_every_reader() -> None:
    shared = DecodeOnce(CODEC, readers=2)
    reasons = []
    for _ in range(2):
        with pytest.raises(EventError) as caught:
            shared.event(("t", 0, 0), b"not avro")
        reasons.append(caught.value.reason)
    assert reasons == [ReasonCode.NOT_WIRE_FORMAT] * 2
    assert shared.decoded == 1


@pytest.mark.parametrize("readers, capacity", [(0, 10), (1, 0)])
def test_bad_sizes_are_refused(readers: int, capacity: int) -> None:
    with pytest.raises(ValueError):
        DecodeOnce(CODEC, readers=readers, capacity=capacity)


def test_a_processor_changing_its_event_changes_nothing_the_other_readers_see() -> None:
    event = next(e for e in EVENTS if e.traits and e.consents)
    before = event.model_dump()

    @processor(trait="vandal")
    def vandal(event: Event, state: State) -> str | None:
        event.identifiers.clear()
        event.traits.clear()
        event.consents.clear()
        return "done"

    shared = DecodeOnce(CODEC, readers=2)
    value = encode_canonical(CODEC, event)
    cached = shared.event(("t", 0, 0), value)
    emissions, _state = on_event(vandal, "email:a", cached, None)
    assert emissions
    assert cached.model_dump() == before
    assert shared.event(("t", 0, 0), value).model_dump() == before
    assert fact_from_event(cached) == fact_from_event(event)


def test_private_copy_is_equal_with_containers_of_its_own() -> None:
    for event in EVENTS:
        copy = private_copy(event)
        assert copy == event
        assert copy.identifiers is not event.identifiers
        assert copy.traits is not event.traits
        assert copy.consents is not event.consents


def test_records_the_ingest_stage_wrote_are_not_decoded() -> None:
    shared = DecodeOnce(CODEC, readers=2, capacity=2)
    for event, value in zip(EVENTS[:3], RECORDS[:3], strict=True):
        shared.remember(value, event)
    # the oldest was pushed out: decoded; the others are the very events ingest made
    first = shared.event(("t", 0, 0), RECORDS[0])
    assert first == EVENTS[0] and first is not EVENTS[0]
    assert shared.event(("t", 0, 1), RECORDS[1]) is EVENTS[1]
    assert shared.event(("t", 0, 1), RECORDS[1]) is EVENTS[1]  # the second reader
    assert shared.event(("t", 0, 2), RECORDS[2]) is EVENTS[2]
    assert (shared.decoded, shared.remembered, shared.shared) == (1, 2, 1)
    # taken once: the same bytes read again at another position (a duplicate) decode
    assert shared.event(("t", 0, 5), RECORDS[2]) == EVENTS[2]
    assert shared.decoded == 2


def test_a_written_event_equals_its_decoded_record() -> None:
    # what makes handing ingest's events over safe: decoding gives the same event
    for event, value in zip(EVENTS, RECORDS, strict=True):
        decoded = decode_canonical(CODEC, value)
        assert decoded == event
        assert fact_from_event(decoded).to_json() == fact_from_event(event).to_json()


def test_ingest_events_equal_their_decoded_canonical_records() -> None:
    stage = IngestStage(CODEC, Topics("ns"))
    for offset, event in enumerate(generate(60, 10, seed=5).events):
        value = CODEC.encode(CHANNEL_SUBJECTS[event.channel], event_to_avro(event))
        record = SourceRecord(f"ns.channel.{event.channel}", 0, offset, None, value)
        result = stage.process(record)
        assert isinstance(result, Accepted)
        assert decode_canonical(CODEC, result.value) == result.event
