"""Shared helpers of the benchmarks: fresh namespaces, workers, machine load, percentiles.

Every benchmark runs in namespaces of its own on the shared local stack
(``cdp stack up``) and removes what it created when it ends: the namespace's
Redis keys (:meth:`ReadModelStore.wipe`) and its Kafka topics (the declared
ones and the Faust worker's internal topics). The stack itself is never
stopped or restarted.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from cdp.contracts.codec import AvroCodec
from cdp.contracts.events import Event, decode_channel_event
from cdp.contracts.registry import registry_from_settings
from cdp.producer import EventProducer
from cdp.samples import generate
from cdp.serve.store import ReadModelStore
from cdp.settings import Settings, load_settings
from cdp.topics import Topics, ensure_topics
from cdp.worker_process import WorkerProcess, settings_env


def fresh_settings(prefix: str, *, topics: bool = True) -> Settings:
    """Settings for a new namespace ``{prefix}{8 hex}``, with all topics created if ``topics``."""
    settings = load_settings(namespace=prefix + uuid.uuid4().hex[:8], metrics_port=0)
    if topics:
        ensure_topics(settings)
    return settings


def cleanup(settings: Settings) -> None:
    """Delete the namespace's Redis keys and Kafka topics (errors are reported, not raised)."""
    try:
        with ReadModelStore.from_settings(settings) as store:
            deleted = store.wipe()
    except Exception as exc:  # cleanup only: report and go on
        print(f"cleanup: Redis keys of {settings.namespace} not wiped: {exc}", flush=True)
        deleted = 0
    names = Topics(settings.namespace)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    try:
        existing = admin.list_topics(timeout=10).topics
    except Exception as exc:
        print(f"cleanup: topics of {settings.namespace} not listed: {exc}", flush=True)
        return
    mine = [t for t in existing if t.startswith((f"{names.namespace}.", f"{names.app_id}-"))]
    if mine:
        for future in admin.delete_topics(mine, operation_timeout=30).values():
            with contextlib.suppress(Exception):  # cleanup only
                future.result(timeout=60)
    print(
        f"cleanup: {settings.namespace}: {deleted:,} Redis keys, {len(mine)} topics deleted",
        flush=True,
    )


@contextlib.contextmanager
def namespace(prefix: str, *, topics: bool = True) -> Iterator[Settings]:
    """A fresh namespace (:func:`fresh_settings`), cleaned up on exit (:func:`cleanup`)."""
    settings = fresh_settings(prefix, topics=topics)
    try:
        yield settings
    finally:
        cleanup(settings)


def topic_records(settings: Settings) -> dict[str, int]:
    """Records written so far to each topic of the namespace (sum of the partitions' end
    offsets; names without the namespace prefix), largest first."""
    names = Topics(settings.namespace)
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"{names.namespace}-sizes"}
    )
    try:
        sizes: dict[str, int] = {}
        for topic, meta in consumer.list_topics(timeout=10).topics.items():
            if not topic.startswith((f"{names.namespace}.", f"{names.app_id}-")):
                continue
            total = 0
            for partition in meta.partitions:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                total += high
            short = topic.removeprefix(f"{names.namespace}.").removeprefix(f"{names.app_id}-")
            sizes[short] = total
        return dict(sorted(sizes.items(), key=lambda item: -item[1]))
    finally:
        consumer.close()


def uncommitted(consumer: Consumer, topics: Sequence[str]) -> int:
    """Records the group of ``consumer`` has not committed, over every partition of ``topics``."""
    metadata = consumer.list_topics(timeout=10)
    partitions = [
        TopicPartition(topic, partition)
        for topic in topics
        for partition in metadata.topics[topic].partitions
    ]
    lag = 0
    for tp in consumer.committed(partitions, timeout=10):
        _low, high = consumer.get_watermark_offsets(tp, timeout=10)
        lag += high - max(tp.offset, 0)
    return lag


def pipeline_inputs(settings: Settings) -> list[str]:
    """The input topics of the worker's stages whose commits tell that a backlog is done:
    the channel topics and every internal topic up to the profiles stage."""
    topics = Topics(settings.namespace)
    return [
        *topics.channels,
        topics.canonical,
        topics.observations,
        topics.assignments,
        topics.facts,
    ]


def group_consumer(settings: Settings) -> Consumer:
    """A consumer in the worker's group that only reads the group's committed offsets."""
    return Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": Topics(settings.namespace).app_id,
            "enable.auto.commit": False,
        }
    )


def produce_generated(settings: Settings, events: int, seed: int) -> int:
    """Produce about ``events`` generated events (10 per customer, 5 % late) to the channel
    topics; return the number of distinct events."""
    dataset = generate(max(1, events // 10), 10, seed=seed, duplicate_rate=0.0, late_rate=0.05)
    started = time.monotonic()
    with EventProducer(settings) as producer:
        for index, event in enumerate(dataset.events):
            producer.send(event)
            if index % 5000 == 0:
                producer.poll(0)
        producer.flush(120)
    elapsed = time.monotonic() - started
    print(f"produced {len(dataset.events):,} events in {elapsed:.1f}s", flush=True)
    return dataset.distinct_events


def start_workers(settings: Settings, count: int, logs: Path) -> list[WorkerProcess]:
    """Start ``count`` ``cdp worker`` processes on the namespace (log level warning)."""
    env = settings_env(settings, CDP_LOG_LEVEL="warning")
    procs = [
        WorkerProcess(env, logs / f"bench-worker-{settings.namespace}-{n}.log")
        for n in range(count)
    ]
    for proc in procs:
        proc.start()
    return procs


class ChannelReader:
    """Raw baselines: a plain confluent-kafka consumer of the namespace's channel topics
    (from the beginning, group ``{namespace}-{group}``) that decodes and validates each
    record as the ingest stage does (Avro codec + pydantic event models)."""

    def __init__(self, settings: Settings, group: str) -> None:
        self.topics = Topics(settings.namespace)
        self.codec = AvroCodec(registry_from_settings(settings))
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": f"{settings.namespace}-{group}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe(self.topics.channels)

    def decode(self, message: Message) -> Event:
        """The event of a channel record."""
        channel = self.topics.channel_of(message.topic())
        assert channel is not None
        return decode_channel_event(self.codec, message.value(), channel)

    def close(self) -> None:
        """Close the consumer."""
        self.consumer.close()


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``cdp worker`` runs the Faust process as its child)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        todo += [int(child) for child in children]
    return pids


def peak_rss_kib(procs: Sequence[WorkerProcess], peak: int = 0) -> int:
    """The largest RSS of one process of the running ``procs`` (each with its children)
    or ``peak``, whichever is larger."""
    for proc in procs:
        if proc.proc is not None:
            peak = max([peak, *(rss_kib(pid) for pid in process_tree(proc.proc.pid))])
    return peak


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process used so far, in seconds (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_cpu(procs: Sequence[WorkerProcess], seen: dict[int, float]) -> float:
    """CPU seconds used by the ``procs`` and their children; ``seen`` keeps each process's
    last reading, so a process that ended (a restart) still counts."""
    for proc in procs:
        if proc.proc is not None:
            for pid in process_tree(proc.proc.pid):
                seen[pid] = max(seen.get(pid, 0.0), cpu_seconds(pid))
    return sum(seen.values())


def load() -> str:
    """The machine's load averages (1, 5, 15 min) and core count, for the record."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, nearest rank (``nan`` if empty)."""
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[rank]


def latency_summary(seconds: Sequence[float], quantiles: Sequence[float] = (0.5, 0.99)) -> str:
    """``p50 1.23 ms  p99 4.56 ms  max 7.89 ms`` for latencies given in seconds."""
    ordered = sorted(seconds)
    parts = [f"p{round(q * 100):d} {1000 * percentile(ordered, q):.2f} ms" for q in quantiles]
    parts.append(f"max {1000 * (ordered[-1] if ordered else float('nan')):.2f} ms")
    return "  ".join(parts)
