"""The ingest stream processor: a Faust agent around :class:`~cdp.ingest.stage.IngestStage`.

Channel topics are consumed with the ``raw`` serializer, so Faust itself never
decodes (its default decode-error path logs and commits, which would lose the
record); decoding happens in the stage, where every failure becomes a dead letter.
Outputs are sent through Faust's producer, which Faust flushes before it
commits the input offsets: a crash re-processes, never skips (at-least-once).
"""

from __future__ import annotations

from typing import Any

import faust

from cdp.deadletter import DeadLetter, SourceRecord, headers_to_tuples
from cdp.ingest.stage import Accepted, IngestStage
from cdp.metrics import count_ingest
from cdp.topics import Topics


def raw_topic(app: faust.App, *names: str) -> Any:
    """A Faust topic of raw bytes keys and values that Faust never creates itself."""
    return app.topic(*names, key_serializer="raw", value_serializer="raw", internal=False)


def register_ingest(app: faust.App, stage: IngestStage, topics: Topics) -> Any:
    """Attach the ingest agent (concurrency 1) to ``app``; return the agent."""
    source = raw_topic(app, *topics.channels)
    canonical = raw_topic(app, topics.canonical)
    deadletter = raw_topic(app, topics.deadletter)

    async def ingest(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            record = SourceRecord(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=message.value,
                timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
                headers=headers_to_tuples(message.headers),
            )
            result = stage.process(record)
            if isinstance(result, Accepted):
                await canonical.send(
                    key=result.key,
                    value=result.value,
                    headers=[("cdp.event_id", result.event.event_id.encode())],
                )
                count_ingest(message.topic, "accepted")
            else:
                await send_dead_letter(deadletter, result)
                count_ingest(message.topic, result.reason.value)

    return app.agent(source, name=f"{topics.namespace}.ingest", concurrency=1)(ingest)


async def send_dead_letter(deadletter_topic: Any, letter: DeadLetter) -> None:
    """Write a dead letter: original key and value, context in headers."""
    await deadletter_topic.send(
        key=letter.source.key, value=letter.source.value, headers=letter.headers()
    )
