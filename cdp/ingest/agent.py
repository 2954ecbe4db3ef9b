"""The ingest stream processor: a Faust agent around :class:`~cdp.ingest.stage.IngestStage`.

Channel topics are consumed with the ``raw`` serializer, so Faust itself never
decodes (its default decode-error path logs and commits, which would lose the
record); decoding happens in the stage, where every failure becomes a dead letter.
Events are taken in batches; a batch's outputs go through the worker's
:class:`~cdp.outputs.Outputs` and are acknowledged by the broker before Faust
acks the batch's input offsets: a crash re-processes, never skips (at-least-once).
"""

from __future__ import annotations

from typing import Any

import faust

from cdp.contracts.decode_once import DecodeOnce
from cdp.ingest.stage import Accepted, IngestStage
from cdp.metrics import count_ingest
from cdp.outputs import Outputs
from cdp.streams import raw_topic, send_dead_letter, source_record, stage_agent
from cdp.topics import Topics


def register_ingest(
    app: faust.App,
    stage: IngestStage,
    topics: Topics,
    outputs: Outputs,
    canonical: DecodeOnce | None = None,
) -> Any:
    """Attach the ingest agent (concurrency 1) to ``app``; return the agent.

    With ``canonical`` (the process's shared decoder of the canonical topic), the
    events it writes are handed over, so the readers of the canonical topic in this
    process need not decode them again.
    """
    source = raw_topic(app, *topics.channels)

    async def ingest(stream: Any) -> None:
        async for batch in stream.take_events(1000, within=0.05):
            out = outputs.batch()
            for event in batch:
                message = event.message
                result = stage.process(source_record(message))
                if isinstance(result, Accepted):
                    out.send(
                        topics.canonical,
                        result.key,
                        result.value,
                        [("cdp.event_id", result.event.event_id.encode())],
                    )
                    out.send(
                        topics.observations,
                        result.event.event_id.encode(),
                        result.observation.to_bytes(),
                    )
                    if canonical is not None:
                        canonical.remember(result.value, result.event)
                    count_ingest(message.topic, "accepted")
                else:
                    send_dead_letter(out, topics.deadletter, result)
                    count_ingest(message.topic, result.reason.value)
            await out.delivered()  # before Faust acks the batch's input offsets

    return stage_agent(app, source, f"{topics.namespace}.ingest", ingest)
