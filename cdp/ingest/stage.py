"""The ingest decision for one record, free of Kafka and Faust so it is unit-testable.

``IngestStage.process`` turns a consumed channel record into either an
:class:`Accepted` canonical record (key + Avro bytes for the canonical topic)
or a :class:`~cdp.deadletter.DeadLetter` with a reason code. It never raises
for bad input: every record ends as exactly one of the two.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cdp.contracts.codec import AvroCodec
from cdp.contracts.events import (
    Event,
    decode_channel_event,
    encode_canonical,
    partition_key,
)
from cdp.deadletter import DeadLetter, SourceRecord
from cdp.errors import EventError, ReasonCode
from cdp.topics import Topics

log = logging.getLogger(__name__)

PROCESSOR_NAME = "ingest"


@dataclass(frozen=True)
class Accepted:
    """A valid event, encoded for the canonical topic."""

    event: Event
    key: bytes
    value: bytes


class IngestStage:
    """Decode (Confluent wire format + Avro), validate, and re-encode canonically."""

    def __init__(self, codec: AvroCodec, topics: Topics) -> None:
        self._codec = codec
        self._topics = topics

    def process(self, record: SourceRecord) -> Accepted | DeadLetter:
        """Accept the record or say why not; never raises for bad input."""
        try:
            event = self.decode(record)
            value = encode_canonical(self._codec, event)
            return Accepted(event=event, key=partition_key(event), value=value)
        except EventError as exc:
            return DeadLetter(record, exc.reason, exc.detail, PROCESSOR_NAME)
        except Exception as exc:  # a bug must not lose the record either
            log.exception(
                "ingest failed on %s[%d]@%d", record.topic, record.partition, record.offset
            )
            detail = f"{type(exc).__name__} in ingest"
            return DeadLetter(record, ReasonCode.PROCESSOR_ERROR, detail, PROCESSOR_NAME)

    def decode(self, record: SourceRecord) -> Event:
        """Decode and validate a channel record; raise :class:`EventError` when it is bad."""
        channel = self._topics.channel_of(record.topic)
        if channel is None:
            raise EventError(ReasonCode.WRONG_CHANNEL, f"{record.topic} is not a channel topic")
        return decode_channel_event(self._codec, record.value, channel)
