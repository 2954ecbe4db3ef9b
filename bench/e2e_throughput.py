"""End-to-end throughput: channel topics -> profiles in Redis, against a raw baseline.

Run on a started local stack (``cdp stack up``)::

    .venv/bin/python -m bench.e2e_throughput --events 20000 --workers 1

Steps, each in a fresh namespace on the same broker and Redis:

1. generate ``--events`` ground-truth events (about 10 per customer) and
   produce them to the four channel topics (pre-loaded backlog);
2. **raw baseline**: one confluent-kafka consumer reads the same messages,
   decodes and validates each one (the Avro codec and the pydantic event
   models) and pipelines one Redis ``SET`` per event, no other logic;
3. **pipeline**: start ``--workers`` worker processes and wait until every
   stage's consumer group has committed the end of its input topics and every
   event is counted in a profile in Redis.

Prints events/s for both, the ratio, the worker's peak RSS, Redis memory per
profile and the machine's load average. Both namespaces (Redis keys and
topics) are deleted at the end.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.common import (
    ChannelReader,
    group_consumer,
    load,
    namespace,
    peak_rss_kib,
    pipeline_inputs,
    produce_generated,
    start_workers,
    topic_records,
    uncommitted,
    worker_cpu,
)
from cdp.serve.store import ReadModelStore, events_in_profiles
from cdp.settings import Settings


@dataclass
class Result:
    """One measured run."""

    events: int
    seconds: float

    @property
    def rate(self) -> float:
        """Events per second."""
        return self.events / self.seconds if self.seconds else 0.0


def raw_baseline(settings: Settings, expected: int) -> Result:
    """Consume, decode and validate every channel record and pipeline one Redis SET each."""
    reader = ChannelReader(settings, "raw-baseline")
    client = redis.Redis.from_url(settings.redis_url)
    done = 0
    started: float | None = None
    try:
        while done < expected:
            messages = reader.consumer.consume(1000, timeout=1.0)
            if not messages:
                continue
            if started is None:
                started = time.monotonic()
            pipe = client.pipeline(transaction=False)
            for message in messages:
                if message.error():
                    continue
                event = reader.decode(message)
                pipe.set(f"{settings.namespace}:raw:{event.event_id}", message.value())
                done += 1
            pipe.execute()
        return Result(done, time.monotonic() - (started or time.monotonic()))
    finally:
        reader.close()
        for key in client.scan_iter(f"{settings.namespace}:raw:*", count=1000):
            client.delete(key)
        client.close()


def pipeline(settings: Settings, expected: int, workers: int, logs: Path) -> tuple[Result, dict]:
    """Run the workers over the pre-loaded backlog until every event is in a profile."""
    client = redis.Redis.from_url(settings.redis_url)
    memory_before = int(client.info("memory")["used_memory"])
    group = group_consumer(settings)
    started = time.monotonic()
    procs = start_workers(settings, workers, logs)
    first_write: float | None = None
    peak_rss = 0
    cpu: dict[int, float] = {}
    cpu_at_first_write = 0.0
    store = ReadModelStore.from_settings(settings)
    try:
        while True:
            time.sleep(1.0)
            for proc in procs:
                assert proc.running, proc.log_tail()
            peak_rss = peak_rss_kib(procs, peak_rss)
            used = worker_cpu(procs, cpu)
            if first_write is None and client.dbsize() > 0:
                first_write = time.monotonic()
                cpu_at_first_write = used
            lag = uncommitted(group, pipeline_inputs(settings))
            print(
                f"  t={time.monotonic() - started:6.1f}s  uncommitted input records {lag:,}",
                flush=True,
            )
            if lag == 0 and first_write is not None:
                dump = store.dump()
                profiles = len(dump["profiles"])
                if events_in_profiles(dump) >= expected:
                    break
        finished = time.monotonic()
        used = worker_cpu(procs, cpu) - cpu_at_first_write
        memory_after = int(client.info("memory")["used_memory"])
        extra = {
            "profiles": profiles,
            "startup_s": (first_write or finished) - started,
            "peak_rss_mib": peak_rss / 1024,
            "cpu_us_per_event": 1e6 * used / max(expected, 1),
            "records": topic_records(settings),
            "redis_bytes_per_profile": (memory_after - memory_before) / max(profiles, 1),
        }
        return Result(expected, finished - (first_write or started)), extra
    finally:
        for proc in procs:
            proc.stop()
        group.close()
        store.close()
        client.close()


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events to generate")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--logs", type=Path, default=Path(".cdp/bench"))
    args = parser.parse_args()

    print(f"start: {load()}", flush=True)
    with namespace("benchraw") as baseline_settings:
        expected = produce_generated(baseline_settings, args.events, args.seed)
        raw = raw_baseline(baseline_settings, expected)
    print(f"raw baseline: {raw.events:,} events in {raw.seconds:.1f}s = {raw.rate:,.0f} events/s")

    with namespace("benchcdp") as settings:
        expected = produce_generated(settings, args.events, args.seed)
        result, extra = pipeline(settings, expected, args.workers, args.logs)
    print(
        f"pipeline ({args.workers} worker): {result.events:,} events in {result.seconds:.1f}s"
        f" = {result.rate:,.0f} events/s ({100 * result.rate / raw.rate:.1f}% of raw);"
        f" start-up {extra['startup_s']:.1f}s; {extra['profiles']:,} profiles;"
        f" worker CPU {extra['cpu_us_per_event']:,.0f} µs/event;"
        f" worker peak RSS {extra['peak_rss_mib']:.0f} MiB;"
        f" Redis {extra['redis_bytes_per_profile']:,.0f} bytes/profile"
    )
    records = extra["records"]
    per_event = ", ".join(f"{name} {count / expected:.2f}" for name, count in records.items())
    print(f"records per event: {sum(records.values()) / expected:.2f} ({per_event})")
    print(f"end: {load()}")


if __name__ == "__main__":
    main()
