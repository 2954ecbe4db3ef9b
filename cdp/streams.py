"""Small helpers shared by the Faust stages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import faust
import orjson

from cdp.deadletter import DeadLetter, SourceRecord, headers_to_tuples
from cdp.errors import EventError, ReasonCode
from cdp.messages import embed_json
from cdp.outputs import OutputBatch

log = logging.getLogger(__name__)


class RawSchema(faust.Schema):  # type: ignore[type-arg]
    """The schema of :func:`raw_topic`: records become events as they are, bytes in bytes out.

    Faust's own decode looks up the ``raw`` codec for key and value of every
    record and copies its headers into a dict; the stages read the record itself
    (``event.message``: key, value, headers as Kafka gave them), so the event is
    made directly. ``event.headers`` is left empty.
    """

    def __init__(self) -> None:
        super().__init__(key_serializer="raw", value_serializer="raw")

    def compile(self, app: Any, **_options: Any) -> Any:
        """The decode function of a channel: one event per record, no codec."""
        event_class = app.conf.Event

        async def decode(message: Any, *, propagate: bool = False) -> Any:
            return event_class(app, message.key, message.value, None, message)

        return decode


def raw_topic(app: faust.App, *names: str, partitions: int | None = None) -> Any:
    """A Faust topic of raw bytes keys and values (Faust never decodes, never declares it)."""
    return app.topic(*names, schema=RawSchema(), partitions=partitions, internal=False)


_busy: set[str] = set()


def stages_busy() -> frozenset[str]:
    """The stages that are processing a batch right now (between receiving it and asking
    for the next one)."""
    return frozenset(_busy)


class BatchTrackingStream:
    """The stream a stage body gets: Faust's stream, whose ``take_events`` batches are
    recorded as in progress (:func:`stages_busy`) until the body asks for the next one."""

    def __init__(self, stream: Any, name: str) -> None:
        self._stream = stream
        self._name = name

    async def take_events(self, max_: int, within: float) -> AsyncIterator[Sequence[Any]]:
        """Faust's ``Stream.take_events``, tracked."""
        async for batch in self._stream.take_events(max_, within):
            _busy.add(self._name)
            try:
                yield batch
            finally:
                _busy.discard(self._name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def stage_agent(
    app: faust.App, source: Any, name: str, body: Callable[[Any], Awaitable[None]]
) -> Any:
    """Register ``body`` as the agent ``name`` on ``source``: concurrency 1, crash-only.

    Faust's ``take_events`` acknowledges a batch in its ``finally``, also when the
    body raised while processing it, and Faust then restarts the crashed agent in
    the same process: the failed batch's input would be committed unprocessed. Here
    a body that raises logs the error with its traceback and ends the process at
    once (exit code 75, before anything is acknowledged); ``cdp worker`` starts it
    again, and it reads the batch again from the committed offsets. The body's
    batches are tracked (:class:`BatchTrackingStream`).
    """
    from cdp.in_order import RESTART_LINE, exit_for_restart

    async def crash_only(stream: Any) -> None:
        try:
            await body(BatchTrackingStream(stream, name))
        except Exception:
            exit_for_restart("stage %s failed; %s", name, RESTART_LINE, exc_info=True)

    crash_only.__name__ = crash_only.__qualname__ = getattr(body, "__name__", name)
    return app.agent(source, name=name, concurrency=1)(crash_only)


def json_table(app: faust.App, name: str, *, partitions: int | None = None) -> Any:
    """A changelog-backed table with raw ``bytes`` keys and JSON values.

    Read it like a dict; write it only with :func:`put` (never ``table[key] =``):
    Faust's own changelog path sends through a buffer that its commit does not
    reliably drain, so a crash right after a commit could lose table writes.
    """
    return app.Table(
        name,
        partitions=partitions,
        key_type=bytes,  # Faust serialises bytes keys raw; values default to JSON
    )


def put(table: Any, out: OutputBatch, partition: int, key: bytes, value: Any) -> None:
    """Set ``table[key] = value`` and queue its changelog record in ``out``.

    ``partition`` is the table partition (that of the input record the key came
    from). The record has the form Faust restores from (raw key, JSON value); it
    is durable once ``out`` is delivered, which the stages await before Faust
    acks the input, so committed input never runs ahead of the table. ``bytes`` inside
    ``value`` are JSON already (facts, :func:`cdp.messages.embed_json`).
    """
    table.data[key] = value
    record = orjson.dumps(value, default=embed_json)
    out.send(table.changelog_topic.get_topic_name(), key, record, partition=partition)


def delete(table: Any, out: OutputBatch, partition: int, key: bytes) -> None:
    """Remove ``table[key]`` and queue its changelog tombstone in ``out`` (see :func:`put`)."""
    table.data.pop(key, None)
    out.send(table.changelog_topic.get_topic_name(), key, None, partition=partition)


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


def send_dead_letter(out: OutputBatch, topic: str, letter: DeadLetter) -> None:
    """Queue a dead letter: original key and value, context in headers."""
    out.send(topic, letter.source.key, letter.source.value, letter.headers())


def dead_letter(out: OutputBatch, topic: str, processor: str, message: Any, exc: Exception) -> None:
    """Dead-letter a message a processor failed on (no PII: the type of error, not its text)."""
    send_dead_letter(out, topic, failure_letter(source_record(message), processor, exc))


def failure_letter(source: SourceRecord, processor: str, exc: Exception) -> DeadLetter:
    """The dead letter of a record ``processor`` raised on (logged without PII)."""
    if isinstance(exc, EventError):
        reason, detail = exc.reason, exc.detail
    else:
        reason, detail = ReasonCode.PROCESSOR_ERROR, f"{type(exc).__name__} in {processor}"
        log.error(
            "%s failed on %s[%d]@%d: %s",
            processor,
            source.topic,
            source.partition,
            source.offset,
            type(exc).__name__,
        )
    return DeadLetter(source, reason, detail, processor)
