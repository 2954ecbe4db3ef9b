"""Small helpers shared by the Faust stages."""

from __future__ import annotations

import logging
import weakref
from typing import Any

import faust
from faust.streams import _current_event

from cdp.deadletter import DeadLetter, SourceRecord, headers_to_tuples
from cdp.errors import EventError, ReasonCode

log = logging.getLogger(__name__)


def raw_topic(app: faust.App, *names: str, partitions: int | None = None) -> Any:
    """A Faust topic of raw bytes keys and values (Faust never decodes, never declares it)."""
    return app.topic(
        *names, key_serializer="raw", value_serializer="raw", partitions=partitions, internal=False
    )


def json_table(app: faust.App, name: str, *, partitions: int | None = None) -> Any:
    """A changelog-backed table with raw ``bytes`` keys and JSON values.

    A write goes to the changelog partition of Faust's *current event*, so it
    must happen while that is the record the key came from; in batches see
    :func:`as_current_event`.
    """
    return app.Table(
        name,
        partitions=partitions,
        key_type=bytes,  # Faust serialises bytes keys raw; values default to JSON
    )


def as_current_event(event: Any) -> None:
    """Make ``event`` Faust's current event (table writes use its partition).

    Needed inside ``take_events`` batches, where Faust's current event is the
    latest buffered one, possibly of another partition.
    """
    _current_event.set(weakref.ref(event))


def source_record(message: Any) -> SourceRecord:
    """A Faust message as a :class:`~cdp.deadletter.SourceRecord`."""
    return SourceRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
        headers=headers_to_tuples(message.headers),
    )


async def send_dead_letter(deadletter_topic: Any, letter: DeadLetter) -> None:
    """Write a dead letter: original key and value, context in headers."""
    await deadletter_topic.send(
        key=letter.source.key, value=letter.source.value, headers=letter.headers()
    )


async def dead_letter(deadletter_topic: Any, processor: str, message: Any, exc: Exception) -> None:
    """Dead-letter a message a processor failed on (no PII: the type of error, not its text)."""
    if isinstance(exc, EventError):
        reason, detail = exc.reason, exc.detail
    else:
        reason, detail = ReasonCode.PROCESSOR_ERROR, f"{type(exc).__name__} in {processor}"
        log.error(
            "%s failed on %s[%d]@%d: %s",
            processor,
            message.topic,
            message.partition,
            message.offset,
            type(exc).__name__,
        )
    letter = DeadLetter(source_record(message), reason, detail, processor)
    await send_dead_letter(deadletter_topic, letter)
