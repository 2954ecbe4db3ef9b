"""The same pipeline run on the real stack: Kafka, a worker subprocess, Redis.

:func:`run_on_stack` produces the events with the producer SDK to a namespace
of their own, runs ``cdp worker`` (with the given processors) until the read
model has every event and has stopped changing, and returns a
:class:`~cdp.testing.result.PipelineResult` read back from Redis and Kafka.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cdp.contracts.events import Event
from cdp.deadletter import DeadLetter, headers_to_tuples
from cdp.identity.config import load_identity_config
from cdp.processors.api import Processor, ProcessorError
from cdp.producer import EventProducer
from cdp.profile.document import profile_from_json
from cdp.serve.store import ReadModelStore, events_in_profiles
from cdp.settings import Settings
from cdp.testing.memory import run_in_memory
from cdp.testing.result import PipelineResult, Record
from cdp.topic_reader import read_messages
from cdp.topics import ensure_topics
from cdp.worker_process import WorkerProcess, settings_env

SETTLE_SECONDS = 3.0
"""The read model counts as settled when it did not change for this long."""


def run_on_stack(
    events: Iterable[Event],
    processors: Iterable[Processor] = (),
    *,
    settings: Settings,
    log_path: Path,
    timeout: float = 150.0,
) -> PipelineResult:
    """Run ``events`` through a real worker with exactly ``processors``; read the result back.

    ``settings`` should name a fresh namespace. The processors must come from
    a processor folder module (``processors/x.py``) or an entry point, so the
    worker process can import them. Raises :class:`AssertionError` (with the
    worker's log tail) when the worker dies or the run does not settle in time.
    """
    batch = list(events)
    chosen = list(processors)
    target = events_in_profiles_of(run_in_memory(batch, settings=settings))
    ensure_topics(settings)
    env = settings_env(
        settings,
        CDP_PROCESSORS_PATH=os.pathsep.join(_folders(chosen)),
        CDP_PROCESSORS=",".join(p.name for p in chosen),
        CDP_METRICS_PORT="0",
        CDP_LOG_LEVEL="warning",
    )
    with ReadModelStore.from_settings(settings) as store:
        worker = WorkerProcess(env, log_path).start()
        try:
            with EventProducer(settings) as producer:
                for event in batch:
                    producer.send(event)
            dump = _wait_settled(store, target, worker, timeout)
        finally:
            worker.stop()
    profiles = {
        profile_id: profile_from_json(entry["document"])
        for profile_id, entry in dump["profiles"].items()
    }
    letters = [
        DeadLetter.from_kafka(m.key(), m.value(), m.headers())
        for m in read_messages(settings, f"{settings.namespace}.deadletter")
    ]

    def records(topic: str) -> list[Record]:
        return [
            Record(topic, _text(m.key()), m.value(), headers_to_tuples(m.headers()))
            for m in read_messages(settings, f"{settings.namespace}.{topic}")
        ]

    return PipelineResult(
        profiles, letters, load_identity_config(settings.identity_config), records
    )


def events_in_profiles_of(result: PipelineResult) -> int:
    """Number of events folded into the profiles of a result."""
    return sum(document.event_count for document in result.profiles.values())


def _wait_settled(
    store: ReadModelStore, target: int, worker: WorkerProcess, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    previous: dict[str, Any] | None = None
    since = time.monotonic()
    while True:
        assert worker.running, f"the worker died:\n{worker.log_tail()}"
        dump = store.dump()
        seen = events_in_profiles(dump)
        if dump != previous:
            previous, since = dump, time.monotonic()
        elif seen >= target and time.monotonic() - since >= SETTLE_SECONDS:
            return dump
        assert time.monotonic() < deadline, (
            f"not settled after {timeout:.0f}s: {seen} of {target} events in profiles\n"
            + worker.log_tail()
        )
        time.sleep(0.5)


def _folders(processors: list[Processor]) -> list[str]:
    """The processor folders the worker must scan to find ``processors``."""
    found: list[str] = []
    for processor in processors:
        if processor.origin.startswith("entry point"):
            continue
        module = sys.modules.get(getattr(processor.function, "__module__", ""))
        file = Path(getattr(module, "__file__", None) or "")
        if module is None or module.__name__ != f"{file.parent.name}.{file.stem}":
            raise ProcessorError(
                f"processor {processor.name}: on the real stack a processor must live in a"
                " processor folder module (processors/<name>.py) or come from an entry point"
            )
        if str(file.parent) not in found:
            found.append(str(file.parent))
    return found


def _text(key: bytes | None) -> str | None:
    return None if key is None else key.decode(errors="replace")
