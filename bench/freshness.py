"""Freshness: event produced -> the profile in Redis contains it, at a steady offered load.

Run on a started local stack (``cdp stack up``)::

    .venv/bin/python -m bench.freshness --rate 100 --seconds 40

Two targets, each in a fresh namespace on the same broker and Redis and fed by
the same offered load:

1. **raw baseline**: one plain confluent-kafka consumer (its own process) reads
   the channel topics, decodes and validates each record (Avro codec + pydantic
   models, as ingest does), counts the events per identifier and writes, in one
   pipeline per consumed batch, a small document ``{identifiers, event_count}``
   per customer (``HSET {ns}:raw:{identifier}``) plus an entry on a stream
   (``XADD {ns}:raw:changes``) -- the same shape of signal the read model gives;
2. **pipeline**: ``--workers`` ``cdp worker`` processes (ingest, identity,
   facts, profiles + journey) write profile documents and the read model's
   change stream ``{ns}:v1:changes``.

Offered load: after the target is up (the first event is visible) and a
``--warmup`` at the offered rate, events are produced for ``--seconds`` at
``--rate`` events/s (paced every few milliseconds, not in bursts). Each event is
a page view of a new customer (``--new-share`` of them) or of an existing one,
identified by one email address (no merges), with a fresh event id.

**How visibility is detected** (the same path for both targets): a separate
detector process blocks on ``XREAD BLOCK`` on the target's change stream; for
every entry it reads the profile's document (one pipelined ``HGET`` per batch of
entries) and notes, per customer, when its ``event_count`` first reached each
value. The k-th event of a customer is visible when the customer's document
counts k events (a customer's events share a partition key, so they are
processed in order). Latency = that moment minus the moment just before
``EventProducer.send`` of the event (the SDK's ``linger.ms`` included). The
detector does not poll (it wakes when an entry arrives), costs one small read
per profile write, and runs in its own process so that neither the producer's
pacing nor the detector's JSON parsing wait on each other's GIL; both processes
use the same ``CLOCK_MONOTONIC``.

``--preload-events N`` measures how freshness changes with the state the worker
holds: before the detector starts, N generated events (``cdp.samples``, 10 per
customer, as in ``bench/e2e_throughput.py``) are produced and the script waits
until every one is in a profile and every stage has committed its input; the
offered load then goes to new customers as before. The raw baseline keeps no
state per customer that could grow, so it runs without a preload.

If the target cannot keep up (events still not visible ``--drain`` seconds
after the last one was produced), the script says so and prints the visible
throughput instead of percentiles, which would only measure the backlog.
"""

from __future__ import annotations

import argparse
import bisect
import json
import multiprocessing as mp
import queue
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import redis

from bench.common import (
    ChannelReader,
    group_consumer,
    load,
    namespace,
    peak_rss_kib,
    percentile,
    pipeline_inputs,
    produce_generated,
    start_workers,
    uncommitted,
)
from cdp.contracts.events import Identifier, PageView, PageViewPayload
from cdp.producer import EventProducer
from cdp.serve import keys
from cdp.serve.store import ReadModelStore, events_in_profiles
from cdp.settings import Settings, load_settings

PROGRESS_EVERY_S = 5.0
MAX_STREAM_LEN = 100_000

Sent = tuple[str, int, float]
"""(identifier key of the customer, the event's number for that customer, produce time)."""

Observation = tuple[float, int]
"""(monotonic time, the customer's event count seen in its document at that time)."""


# ------------------------------------------------------------------------- detector


def detect(
    redis_url: str,
    stream: str,
    doc_prefix: str,
    stop: MpEvent,
    visible: Any,
    out: Any,
    after: bytes = b"0-0",
) -> None:
    """Detector process: follow ``stream`` from the entry after ``after``, read each changed
    document, note its event count."""
    client = redis.Redis.from_url(redis_url)
    prefix = doc_prefix.encode()
    last = after
    counts: dict[str, int] = {}
    seen: dict[str, list[Observation]] = defaultdict(list)
    while not stop.is_set():
        reply = client.xread({stream: last}, count=1000, block=200)
        if not reply:
            continue
        entries = reply[0][1]
        last = entries[-1][0]
        ids = list(dict.fromkeys(entry[b"p"] for _id, entry in entries))
        with client.pipeline(transaction=False) as pipe:
            for profile_id in ids:
                pipe.hget(prefix + profile_id, "doc")
            documents = pipe.execute()
        now = time.monotonic()
        added = 0
        for document in documents:
            if document is None:
                continue
            parsed = json.loads(document)
            count = int(parsed["event_count"])
            for key in parsed["identifiers"]:
                if count > counts.get(key, 0):
                    added += count - counts.get(key, 0)
                    counts[key] = count
                    seen[key].append((now, count))
        if added:
            with visible.get_lock():
                visible.value += added
    out.put(dict(seen))
    client.close()


# ---------------------------------------------------------------------- raw baseline


def raw_consumer(namespace_name: str, stop: MpEvent) -> None:
    """Baseline process: consume, decode + validate, one document + one stream entry per event."""
    settings = load_settings(namespace=namespace_name, metrics_port=0)
    reader = ChannelReader(settings, "raw-freshness")
    client = redis.Redis.from_url(settings.redis_url)
    counts: dict[str, int] = defaultdict(int)
    stream = raw_stream(settings.namespace)
    try:
        while not stop.is_set():
            # poll() returns as soon as one record is there; consume(timeout=0) then takes what
            # else is ready (consume(n, timeout) alone would wait for n records or the timeout)
            first_message = reader.consumer.poll(0.1)
            if first_message is None:
                continue
            messages = [first_message, *reader.consumer.consume(999, timeout=0)]
            pipe = client.pipeline(transaction=False)
            for message in messages:
                if message.error():
                    continue
                event = reader.decode(message)
                first = event.identifiers[0]
                key = f"{first.type}:{first.value}"
                counts[key] += 1
                document = json.dumps({"identifiers": [key], "event_count": counts[key]})
                pipe.hset(f"{raw_prefix(settings.namespace)}{key}", "doc", document)
                pipe.xadd(stream, {"p": key}, maxlen=MAX_STREAM_LEN, approximate=True)
            pipe.execute()
    finally:
        reader.close()
        client.close()


def raw_prefix(namespace_name: str) -> str:
    """Key prefix of the baseline's per-customer documents."""
    return f"{namespace_name}:raw:"


def raw_stream(namespace_name: str) -> str:
    """The baseline's change stream."""
    return f"{raw_prefix(namespace_name)}changes"


# ---------------------------------------------------------------------------- load


@dataclass
class OfferedLoad:
    """Page views of new and existing customers, each customer known by one email."""

    run: str
    new_share: float
    rng: random.Random
    customers: list[list[Any]] = field(default_factory=list)
    """[email, events sent so far] per customer."""

    def next_event(self) -> tuple[PageView, str, int]:
        """The next event, its customer's identifier key and its number for that customer."""
        if not self.customers or self.rng.random() < self.new_share:
            self.customers.append([f"fresh-{self.run}-{len(self.customers)}@example.com", 0])
            customer = self.customers[-1]
        else:
            customer = self.customers[self.rng.randrange(len(self.customers))]
        customer[1] += 1
        event = PageView(
            source="website",
            identifiers=[Identifier.email(customer[0])],
            payload=PageViewPayload(url=f"https://www.example.com/p/{customer[1]}"),
        )
        return event, f"email:{customer[0]}", customer[1]


@dataclass
class Run:
    """One target's measured run."""

    name: str
    sent: list[Sent] = field(default_factory=list)
    offered_rate: float = 0.0
    window_s: float = 0.0
    produced_total: int = 0
    visible_at_window_end: int = 0
    visible_at_window_start: int = 0
    drained_s: float | None = None
    """Seconds after the last produce until every event was visible; None: not within --drain."""
    startup_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    unseen: int = 0
    peak_rss_mib: float = 0.0
    preloaded: int = 0
    """Distinct events the target held before the measurement (``--preload-events``)."""


class Target:
    """A system under test: started, detected through a change stream, stopped."""

    def __init__(self, name: str, stream: str, doc_prefix: str) -> None:
        self.name = name
        self.stream = stream
        self.doc_prefix = doc_prefix

    def start(self) -> None:
        """Start the processes under test."""

    def preload(self, events: int, seed: int) -> int:
        """Bring the started target to holding ``events`` generated events; return how many
        distinct events it holds (none here)."""
        return 0

    def check(self) -> None:
        """Raise if a process under test died."""

    def rss_kib(self) -> int:
        """Peak RSS of the processes under test (0: not tracked)."""
        return 0

    def stop(self) -> None:
        """Stop the processes under test."""


class RawTarget(Target):
    """The baseline consumer in its own process."""

    def __init__(self, context: Any, settings: Settings) -> None:
        super().__init__(
            "raw baseline", raw_stream(settings.namespace), raw_prefix(settings.namespace)
        )
        self.stopping = context.Event()
        self.proc = context.Process(target=raw_consumer, args=(settings.namespace, self.stopping))

    def start(self) -> None:
        self.proc.start()

    def check(self) -> None:
        assert self.proc.is_alive(), "the raw baseline consumer died"

    def stop(self) -> None:
        self.stopping.set()
        self.proc.join(30)


class PipelineTarget(Target):
    """``--workers`` worker processes."""

    def __init__(self, settings: Settings, workers: int, logs: Path) -> None:
        ns = settings.namespace
        super().__init__(
            f"pipeline ({workers} worker{'s' if workers > 1 else ''})",
            keys.changes(ns),
            keys.profile(ns, ""),
        )
        self.settings, self.workers, self.logs = settings, workers, logs
        self.procs: list[Any] = []
        self.peak = 0

    def start(self) -> None:
        self.procs = start_workers(self.settings, self.workers, self.logs)

    def preload(self, events: int, seed: int) -> int:
        """Produce ``events`` generated events; wait until each is in a profile and every
        stage has committed its input."""
        expected = produce_generated(self.settings, events, seed)
        began = time.monotonic()
        group = group_consumer(self.settings)
        store = ReadModelStore.from_settings(self.settings)
        try:
            while True:
                time.sleep(PROGRESS_EVERY_S)
                self.check()
                lag = uncommitted(group, pipeline_inputs(self.settings))
                print(
                    f"  {self.name}: preload t={time.monotonic() - began:6.1f}s"
                    f"  uncommitted input records {lag:,}",
                    flush=True,
                )
                if lag == 0 and events_in_profiles(store.dump()) >= expected:
                    break
        finally:
            group.close()
            store.close()
        print(
            f"  {self.name}: preloaded {expected:,} events in {time.monotonic() - began:.0f}s",
            flush=True,
        )
        return expected

    def check(self) -> None:
        for proc in self.procs:
            assert proc.running, proc.log_tail()
        self.peak = peak_rss_kib(self.procs, self.peak)

    def rss_kib(self) -> int:
        return self.peak

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


# ----------------------------------------------------------------------------- run


def offer(
    producer: EventProducer,
    load_gen: OfferedLoad,
    rate: float,
    seconds: float,
    sent: list[Sent] | None,
    tick: Callable[[int], None],
) -> tuple[int, float]:
    """Produce at ``rate`` events/s for ``seconds``; return (events, seconds from first to last)."""
    start = time.monotonic()
    produced = 0
    last = start
    next_tick = start + PROGRESS_EVERY_S
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        due = min(int((now - start) * rate) + 1, int(seconds * rate))
        while produced < due:
            event, key, number = load_gen.next_event()
            last = time.monotonic()
            producer.send(event)
            if sent is not None:
                sent.append((key, number, last))
            produced += 1
        if now >= next_tick:
            tick(produced)
            next_tick += PROGRESS_EVERY_S
        time.sleep(max(0.0, min(0.002, start + produced / rate - time.monotonic())))
    producer.poll(0)
    return produced, last - start


def measure(target: Target, settings: Settings, args: argparse.Namespace, context: Any) -> Run:
    """Start ``target``, warm it up, offer the load, drain, and collect the latencies."""
    run = Run(target.name)
    visible = context.Value("q", 0)
    stop = context.Event()
    out = context.Queue()
    load_gen = OfferedLoad(uuid.uuid4().hex[:6], args.new_share, random.Random(args.seed))
    began = time.monotonic()
    target.start()
    if args.preload_events:
        run.preloaded = target.preload(args.preload_events, args.seed)
        began = time.monotonic()
    detector = context.Process(
        target=detect,
        args=(
            settings.redis_url,
            target.stream,
            target.doc_prefix,
            stop,
            visible,
            out,
            stream_end(settings.redis_url, target.stream),
        ),
    )
    detector.start()
    produced = 0

    def tick(now_produced: int) -> None:
        target.check()
        total = produced + now_produced
        print(
            f"  {target.name}: t={time.monotonic() - began:6.1f}s produced {total:,}"
            f"  visible {visible.value:,}  backlog {total - visible.value:,}",
            flush=True,
        )

    try:
        with EventProducer(settings) as producer:
            # start-up: one event every 0.5 s until the first one is visible
            deadline = began + args.startup_timeout
            while visible.value == 0:
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"{target.name}: nothing visible after {args.startup_timeout}s"
                    )
                target.check()
                n, _ = offer(producer, load_gen, 2.0, 0.5, None, tick)
                produced += n
                producer.flush(5)
            run.startup_s = time.monotonic() - began
            print(f"  {target.name}: first event visible after {run.startup_s:.1f}s", flush=True)
            n, _ = offer(producer, load_gen, args.rate, args.warmup, None, tick)
            produced += n
            run.visible_at_window_start = visible.value
            n, run.window_s = offer(producer, load_gen, args.rate, args.seconds, run.sent, tick)
            produced += n
            run.offered_rate = n / run.window_s if run.window_s else 0.0
            producer.flush(30)
        last_produced = run.sent[-1][2] if run.sent else time.monotonic()
        run.visible_at_window_end = visible.value
        run.produced_total = produced
        drain_deadline = time.monotonic() + args.drain
        while visible.value < produced and time.monotonic() < drain_deadline:
            time.sleep(0.05)
            target.check()
        if visible.value >= produced:
            run.drained_s = time.monotonic() - last_produced
        run.peak_rss_mib = target.rss_kib() / 1024
    finally:
        stop.set()
        try:
            seen: dict[str, list[Observation]] = out.get(timeout=60)
        except queue.Empty:
            seen = {}
        detector.join(30)
        target.stop()
    for key, number, produced_at in run.sent:
        observations = seen.get(key, [])
        counts = [count for _t, count in observations]
        index = bisect.bisect_left(counts, number)
        if index < len(observations):
            run.latencies.append(observations[index][0] - produced_at)
        else:
            run.unseen += 1
    return run


def stream_end(redis_url: str, stream: str) -> bytes:
    """The id of the last entry of ``stream`` (``0-0`` when it has none)."""
    client = redis.Redis.from_url(redis_url)
    try:
        last = client.xrevrange(stream, count=1)
        return last[0][0] if last else b"0-0"
    finally:
        client.close()


def report(run: Run, args: argparse.Namespace) -> str:
    """One line about a run: percentiles if the target kept up, else what happened."""
    window_visible = run.visible_at_window_end - run.visible_at_window_start
    visible_rate = window_visible / run.window_s if run.window_s else 0.0
    head = (
        f"{run.name}: offered {run.offered_rate:,.0f} events/s for {run.window_s:.0f}s"
        f" ({len(run.sent):,} events); visible during the window {visible_rate:,.0f} events/s"
    )
    if run.preloaded:
        head += f"; after a preload of {run.preloaded:,} events"
    if run.peak_rss_mib:
        head += f"; worker peak RSS {run.peak_rss_mib:.0f} MiB"
    if run.unseen:
        return (
            f"{head}\n  DID NOT KEEP UP: {run.unseen:,} of {len(run.sent):,} events still not"
            f" visible {args.drain:.0f}s after the last was produced (the backlog grew);"
            " latency percentiles would only measure the backlog and are not printed"
        )
    ordered = sorted(run.latencies)
    fifth = max(1, len(ordered) // 5)
    first, last = sorted(run.latencies[:fifth]), sorted(run.latencies[-fifth:])
    trend = ""
    if percentile(last, 0.5) > 2 * percentile(first, 0.5) + 0.1:
        trend = (
            f"\n  WARNING: latency grew during the window (p50 of the first fifth"
            f" {1000 * percentile(first, 0.5):.0f} ms, of the last fifth"
            f" {1000 * percentile(last, 0.5):.0f} ms): the target is at or past its limit"
        )
    figures = "  ".join(
        f"p{round(q * 100)} {1000 * percentile(ordered, q):,.1f} ms" for q in (0.5, 0.95, 0.99)
    )
    return (
        f"{head}\n  produce -> visible: {figures}  max {1000 * ordered[-1]:,.1f} ms"
        f"  (all visible {run.drained_s or 0:.1f}s after the last produce){trend}"
    )


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="offered events/s")
    parser.add_argument("--seconds", type=float, default=40.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds at --rate before")
    parser.add_argument("--drain", type=float, default=15.0, help="max wait after the window")
    parser.add_argument("--new-share", type=float, default=0.2, help="events of new customers")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--preload-events",
        type=int,
        default=0,
        help="generated events the pipeline holds before the measurement (0: none)",
    )
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--skip-baseline", action="store_true", help="pipeline only")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--logs", type=Path, default=Path(".cdp/bench"))
    args = parser.parse_args()

    context = mp.get_context("spawn")
    print(f"start: {load()}", flush=True)
    runs: list[Run] = []
    if not args.skip_baseline:
        with namespace("benchfreshraw") as settings:
            runs.append(measure(RawTarget(context, settings), settings, args, context))
        print(report(runs[-1], args), flush=True)
    with namespace("benchfresh") as settings:
        runs.append(
            measure(PipelineTarget(settings, args.workers, args.logs), settings, args, context)
        )
    print(report(runs[-1], args), flush=True)
    print(f"end: {load()}")
    print("\nsummary")
    for run in runs:
        print(report(run, args))


if __name__ == "__main__":
    main()
