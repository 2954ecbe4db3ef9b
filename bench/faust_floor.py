"""The framework floor: what the worker's Faust app costs per record with no logic at all.

Run on a started local stack (``cdp stack up``)::

    .venv/bin/python -m bench.faust_floor --events 100000

The end-to-end pipeline (``bench/e2e_throughput.py``) hands about 6.7 records per
event to its agents and writes about 7.8 (internal topics and table changelogs,
docs/benchmarks.md, "Framework floor"). This benchmark
measures the price of those records alone, on the same stack and the same
generated events, so the pipeline's rate can be held against what the framework
allows:

1. **raw baseline**: one confluent-kafka consumer reads the channel records (no
   decode, no commit);
2. **consume**: a worker process with the worker's Faust app (:func:`cdp.worker.faust_app`:
   aiokafka driver, at-least-once, the in-order delivery, concurrency 1) and one
   agent that takes the channel records in batches (``take_events(1000)``, as the
   stages do) and does nothing with them;
3. **forward**: the same, but the agent sends every record on to the canonical topic
   through the worker's producer (:class:`cdp.outputs.Outputs`, acknowledged per
   batch as the stages do) and a second agent takes them from there: two records
   read and one written per event.

Each run ends when the group committed the end of its inputs; time runs from its
first commit. Prints records/s, events/s and the Faust process's CPU per event and
per record read. Every measurement uses a namespace of its own, deleted at the end.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from bench.common import (
    group_consumer,
    load,
    namespace,
    produce_generated,
    uncommitted,
    worker_cpu,
)
from cdp.settings import Settings, load_settings
from cdp.topics import Topics
from cdp.worker_process import WorkerProcess, settings_env

MODES = ("consume", "forward")
BATCH = 1000


@dataclass
class Floor:
    """One measured run: ``records`` read in ``seconds`` with ``cpu_s`` of worker CPU."""

    events: int
    records: int
    seconds: float
    cpu_s: float

    @property
    def events_per_s(self) -> float:
        """Channel records (events) per second."""
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def records_per_s(self) -> float:
        """Records read per second, over all inputs."""
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        """Worker CPU per event (channel record), in microseconds."""
        return 1e6 * self.cpu_s / max(self.events, 1)

    @property
    def cpu_us_per_record(self) -> float:
        """Worker CPU per record read, in microseconds."""
        return 1e6 * self.cpu_s / max(self.records, 1)


def raw_consume(settings: Settings, expected: int) -> Floor:
    """Read the channel records with one confluent-kafka consumer; no decode."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.namespace}-raw-floor",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(Topics(settings.namespace).channels)
    done = 0
    started: float | None = None
    try:
        while done < expected:
            messages = consumer.consume(BATCH, timeout=1.0)
            if messages and started is None:
                started = time.monotonic()
            for message in messages:
                if message.error() is None:
                    message.value()  # the bytes, as an agent gets them
                    done += 1
        return Floor(done, done, time.monotonic() - (started or time.monotonic()), 0.0)
    finally:
        consumer.close()


def _inputs(topics: Topics, mode: str) -> list[str]:
    return [*topics.channels, topics.canonical] if mode == "forward" else list(topics.channels)


def faust_floor(settings: Settings, expected: int, mode: str, logs: Path) -> Floor:
    """Run the floor app in ``mode`` over the pre-loaded channel records."""
    group = group_consumer(settings)
    total = expected * (2 if mode == "forward" else 1)
    env = settings_env(settings, CDP_LOG_LEVEL="warning")
    log_path = logs / f"bench-floor-{settings.namespace}.log"
    proc = WorkerProcess(env, log_path, ("bench.faust_floor", "--serve", mode)).start()
    cpu: dict[int, float] = {}
    first: float | None = None
    cpu_first = 0.0
    started = time.monotonic()
    try:
        while True:
            time.sleep(0.2)
            assert proc.running, proc.log_tail()
            lag = uncommitted(group, _inputs(Topics(settings.namespace), mode))
            used = worker_cpu([proc], cpu)
            if first is None and lag < total:
                first, cpu_first = time.monotonic(), used
            if first is not None and lag == 0:
                break
            if time.monotonic() - started > 600:
                raise SystemExit(f"{mode}: {lag:,} records uncommitted after 600 s")
        return Floor(expected, total, time.monotonic() - first, worker_cpu([proc], cpu) - cpu_first)
    finally:
        proc.stop()
        group.close()


def serve(mode: str) -> None:
    """The floor app (in its own process): agents that take their input and do nothing else."""
    from cdp.outputs import Outputs
    from cdp.streams import raw_topic, stage_agent
    from cdp.worker import faust_app, run_app, use_event_loop

    settings = load_settings()
    use_event_loop(settings)
    app = faust_app(settings)
    topics = Topics(settings.namespace)
    ns = settings.namespace

    async def sink(stream: Any) -> None:
        async for _batch in stream.take_events(BATCH, within=0.05):
            pass

    if mode == "consume":
        stage_agent(app, raw_topic(app, *topics.channels), f"{ns}.floor-sink", sink)
    else:
        outputs = Outputs(settings)

        async def forward(stream: Any) -> None:
            async for batch in stream.take_events(BATCH, within=0.05):
                out = outputs.batch()
                for event in batch:
                    message = event.message
                    out.send(topics.canonical, message.key, message.value)
                await out.delivered()  # before Faust acks the batch, as the stages do

        stage_agent(app, raw_topic(app, *topics.channels), f"{ns}.floor-forward", forward)
        stage_agent(app, raw_topic(app, topics.canonical), f"{ns}.floor-sink", sink)
    run_app(app, settings)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events to generate")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--logs", type=Path, default=Path(".cdp/bench"))
    parser.add_argument(
        "--mode", choices=MODES, action="append", help="run only these (repeatable); default all"
    )
    parser.add_argument("--serve", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    print(f"start: {load()}", flush=True)
    with namespace("floorraw") as settings:
        expected = produce_generated(settings, args.events, args.seed)
        raw = raw_consume(settings, expected)
    print(
        f"raw consume: {raw.records:,} records in {raw.seconds:.2f}s"
        f" = {raw.records_per_s:,.0f} records/s",
        flush=True,
    )
    floors: dict[str, Floor] = {}
    for mode in args.mode or MODES:
        with namespace(f"floor{mode}") as settings:
            expected = produce_generated(settings, args.events, args.seed)
            floor = floors[mode] = faust_floor(settings, expected, mode, args.logs)
        print(
            f"faust {mode}: {floor.records:,} records read in {floor.seconds:.2f}s"
            f" = {floor.records_per_s:,.0f} records/s, {floor.events_per_s:,.0f} events/s"
            f" ({100 * floor.records_per_s / raw.records_per_s:.1f}% of raw);"
            f" worker CPU {floor.cpu_us_per_event:,.1f} µs per event"
            f" ({floor.cpu_us_per_record:,.1f} µs per record read)",
            flush=True,
        )
    print(f"end: {load()}")


if __name__ == "__main__":
    main()
