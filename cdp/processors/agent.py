"""Processors in the worker: one Faust agent per processor, same guarantees as the built-in stages.

Each agent has concurrency 1 and its own stream of its input topic, takes its input in
batches, sends the batch's outputs through the worker's
:class:`~cdp.outputs.Outputs` and awaits their acknowledgements (then those of
its state changes) before Faust acks the input: at least once. A record the
processor fails on (its function raises, or the input cannot be decoded) goes
to the dead-letter topic with processor ``processor:<name>`` and the batch goes
on; other processors and the built-in stages never see the failure.

Event processors read ``events.canonical`` and ``identity.assignments``
(co-partitioned): an assignment tombstone (GDPR erasure) deletes the state the
processor kept for that identifier. Their state lives in the ``processor-state``
table, keyed ``<processor>|<identifier key>``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
import orjson

from cdp.contracts.decode_once import DecodeOnce
from cdp.metrics import count_processor
from cdp.outputs import OutputBatch, Outputs
from cdp.processors.api import Input, Processor
from cdp.processors.steps import Emission, on_event, on_profile
from cdp.profile.document import profile_from_json
from cdp.streams import dead_letter, delete, json_table, put, raw_topic, stage_agent
from cdp.topics import Topics

log = logging.getLogger(__name__)

STATE_TABLE = "processor-state"
"""The table holding every event processor's per-identifier state."""


def register_processors(
    app: faust.App,
    processors: list[Processor],
    topics: Topics,
    canonical: DecodeOnce,
    outputs: Outputs,
) -> list[Any]:
    """Attach one agent per processor to ``app``; return the agents.

    ``canonical`` decodes each canonical event once for every stage of the process
    that reads it; each processor's function gets a copy of its own.
    """
    table = None
    if any(p.input is Input.EVENTS for p in processors):
        table = json_table(app, STATE_TABLE)
    agents = []
    for processor in processors:
        if processor.input is Input.EVENTS:
            agents.append(_event_agent(app, processor, topics, canonical, outputs, table))
        else:
            agents.append(_profile_agent(app, processor, topics, outputs))
    if processors:
        log.info("processors: %s", ", ".join(p.name for p in processors))
    return agents


def _send(out: OutputBatch, topics: Topics, emissions: list[Emission]) -> None:
    for emission in emissions:
        out.send(topics.computed, emission.key.encode(), emission.to_bytes())


def _event_agent(
    app: faust.App,
    processor: Processor,
    topics: Topics,
    canonical: DecodeOnce,
    outputs: Outputs,
    table: Any,
) -> Any:
    source = raw_topic(app, topics.canonical, topics.assignments)
    reason = f"processor:{processor.name}"

    async def run(stream: Any) -> None:
        async for batch in stream.take_events(500, within=0.05):
            out = outputs.batch()
            changed: dict[bytes, tuple[int, dict[str, Any] | None]] = {}
            store = table.data  # read past Faust's per-read sensors and KeyError
            for event in batch:
                message = event.message
                state_key = f"{processor.name}|".encode() + message.key
                if message.topic == topics.assignments:
                    if message.value is None and (state_key in changed or state_key in store):
                        changed[state_key] = (message.partition, None)  # erased identifier
                    continue
                started = time.perf_counter()
                try:
                    position = (message.topic, message.partition, message.offset)
                    decoded = canonical.event(position, message.value)
                    stored = changed[state_key][1] if state_key in changed else store.get(state_key)
                    emissions, state = on_event(processor, message.key.decode(), decoded, stored)
                except Exception as exc:
                    dead_letter(out, topics.deadletter, reason, message, exc)
                    count_processor(processor.name, "dead_lettered")
                    continue
                if state is None:
                    count_processor(processor.name, "skipped")
                    continue
                changed[state_key] = (message.partition, state)
                _send(out, topics, emissions)
                count_processor(processor.name, "processed", time.perf_counter() - started)
            await out.delivered()  # outputs first: state never claims an unsent output
            saved = outputs.batch()
            for key, (partition, state) in changed.items():
                if state is None:
                    delete(table, saved, partition, key)
                else:
                    put(table, saved, partition, key, state)
            await saved.delivered()

    return stage_agent(app, source, f"{topics.namespace}.processor.{processor.name}", run)


def _profile_agent(app: faust.App, processor: Processor, topics: Topics, outputs: Outputs) -> Any:
    source = raw_topic(app, topics.profiles)
    reason = f"processor:{processor.name}"

    async def run(stream: Any) -> None:
        async for batch in stream.take_events(500, within=0.05):
            latest: dict[bytes, Any] = {}
            for event in batch:  # only the newest document of a profile matters
                latest[event.message.key] = event.message
            out = outputs.batch()
            for message in latest.values():
                if message.value is None:
                    continue  # the profile id is no longer current
                started = time.perf_counter()
                try:
                    document = profile_from_json(orjson.loads(message.value)["doc"])
                    emissions = on_profile(processor, document)
                except Exception as exc:
                    dead_letter(out, topics.deadletter, reason, message, exc)
                    count_processor(processor.name, "dead_lettered")
                    continue
                _send(out, topics, emissions)
                count_processor(processor.name, "processed", time.perf_counter() - started)
            await out.delivered()

    return stage_agent(app, source, f"{topics.namespace}.processor.{processor.name}", run)
