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
from cdp.contracts.events import Event, decode_channel_event, encode_canonical
from cdp.deadletter import DeadLetter, SourceRecord
from cdp.errors import EventError, ReasonCode
from cdp.identity.config import IdentityConfig, default_identity_config
from cdp.identity.identifiers import primary_identifier, usable_identifiers
from cdp.messages import Observation
from cdp.topics import Topics

log = logging.getLogger(__name__)

PROCESSOR_NAME = "ingest"


@dataclass(frozen=True)
class Accepted:
    """A valid event, encoded for the canonical topic, and its identity observation."""

    event: Event
    key: bytes
    """The canonical record's key: the event's primary identifier key."""
    value: bytes
    observation: Observation


class IngestStage:
    """Decode (Confluent wire format + Avro), validate, and re-encode canonically."""

    def __init__(
        self, codec: AvroCodec, topics: Topics, identity: IdentityConfig | None = None
    ) -> None:
        self._codec = codec
        self._topics = topics
        self._identity = identity if identity is not None else default_identity_config()

    def process(self, record: SourceRecord) -> Accepted | DeadLetter:
        """Accept the record or say why not; never raises for bad input."""
        try:
            event = self.decode(record)
            keys = usable_identifiers(
                ((i.type, i.value) for i in event.identifiers), self._identity
            )
            primary = primary_identifier(keys, self._identity)
            if primary is None:
                raise EventError(
                    ReasonCode.NO_USABLE_IDENTIFIER,
                    "every identifier is invalid after normalisation or blocked",
                )
            return Accepted(
                event=event,
                key=primary.encode(),
                value=encode_canonical(self._codec, event),
                observation=Observation(event.event_id, event.event_time, tuple(keys)),
            )
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
