"""Fast, acknowledged outputs of the stream processors (confluent-kafka producer).

Faust's own producer path costs tens of microseconds of Python per record;
every event crosses several internal topics, so the stages send their outputs
through one idempotent librdkafka producer instead (``acks=all``, a few
milliseconds of linger so records travel in large batches).

At-least-once still holds: a stage sends a batch's outputs, then awaits
:meth:`OutputBatch.delivered` *before* its ``take_events`` body returns, and
Faust acks (and later commits) the batch's input offsets only after that. A
record the broker refused is fatal: the process exits so that it restarts from
the last committed offsets instead of skipping input (crash-only).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Producer

from cdp.settings import Settings

log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes]]

EXIT_OUTPUT_FAILED = 70
"""Exit status of a worker whose output the broker refused (EX_SOFTWARE)."""


class Outputs:
    """One shared producer for all stages of a worker process."""

    def __init__(self, settings: Settings, *, linger_ms: int = 5) -> None:
        self._producer = Producer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "partitioner": "murmur2_random",  # the Java client's (and aiokafka's) partitioner
                "linger.ms": linger_ms,
                "batch.num.messages": 10_000,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1_048_576,
                "client.id": f"{settings.namespace}-worker-outputs",
                "message.max.bytes": settings.max_message_bytes,
            }
        )

    def batch(self) -> OutputBatch:
        """A new group of records whose delivery can be awaited together."""
        return OutputBatch(self)

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Any,
        cb: Any,
        partition: int | None = None,
    ) -> None:
        """Queue one record (waits while librdkafka's queue is full)."""
        while True:
            try:
                if partition is None:
                    self._producer.produce(
                        topic, value=value, key=key, headers=headers, on_delivery=cb
                    )
                else:
                    self._producer.produce(
                        topic,
                        value=value,
                        key=key,
                        headers=headers,
                        on_delivery=cb,
                        partition=partition,
                    )
                return
            except BufferError:
                self._producer.poll(0.05)

    def poll(self) -> None:
        """Serve delivery callbacks that are due."""
        self._producer.poll(0)


class OutputBatch:
    """Records of one processing step; :meth:`delivered` waits for all their acks."""

    def __init__(self, outputs: Outputs) -> None:
        self._outputs = outputs
        self.pending = 0

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        """Queue one record (``value`` None is a tombstone; partition None: by key)."""
        self.pending += 1
        self._outputs.produce(
            topic, key, value, list(headers) if headers else None, self._on_delivery, partition
        )

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        self.pending -= 1
        if err is not None:
            log.critical(
                "output to %s refused by the broker (%s); exiting to restart from committed input",
                msg.topic(),
                err.str(),
            )
            logging.shutdown()
            os._exit(EXIT_OUTPUT_FAILED)

    async def delivered(self) -> None:
        """Wait until the broker acknowledged every record of this batch."""
        while self.pending:
            self._outputs.poll()
            if self.pending:
                await asyncio.sleep(0.001)
