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

from cdp.ingest.stage import Accepted, IngestStage
from cdp.metrics import count_ingest
from cdp.streams import raw_topic, send_dead_letter, source_record
from cdp.topics import Topics


def register_ingest(app: faust.App, stage: IngestStage, topics: Topics) -> Any:
    """Attach the ingest agent (concurrency 1) to ``app``; return the agent."""
    source = raw_topic(app, *topics.channels)
    canonical = raw_topic(app, topics.canonical)
    observations = raw_topic(app, topics.observations)
    deadletter = raw_topic(app, topics.deadletter)

    async def ingest(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            result = stage.process(source_record(message))
            if isinstance(result, Accepted):
                await canonical.send(
                    key=result.key,
                    value=result.value,
                    headers=[("cdp.event_id", result.event.event_id.encode())],
                )
                await observations.send(
                    key=result.event.event_id.encode(), value=result.observation.to_bytes()
                )
                count_ingest(message.topic, "accepted")
            else:
                await send_dead_letter(deadletter, result)
                count_ingest(message.topic, result.reason.value)

    return app.agent(source, name=f"{topics.namespace}.ingest", concurrency=1)(ingest)
