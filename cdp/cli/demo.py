"""``cdp demo`` and ``cdp sample``: sample events from all four channels, through the pipeline."""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import typer

from cdp.serve.store import ReadModelStore, events_in_profiles
from cdp.settings import Settings, get_settings

sample_app = typer.Typer(help="Sample events from all four channels.", no_args_is_help=True)


def _step(text: str) -> None:
    typer.secho(f"==> {text}", fg="cyan", bold=True)


def _progress(label: str) -> Callable[[int, int], None]:
    started = time.monotonic()
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5 or done >= total:
            last[0] = now
            sys.stdout.write(f"\r    {label}: {done}/{total} ({now - started:4.1f}s)")
            if done >= total:
                sys.stdout.write("\n")
            sys.stdout.flush()

    return report


@sample_app.command("send")
def send(
    events: int = typer.Option(400, min=1, help="Valid events to send."),
    broken: int = typer.Option(20, min=0, help="Deliberately broken records to send."),
    seed: int = typer.Option(7, help="Random seed (same seed, same events)."),
) -> None:
    """Send sample events (plus some broken records) to the channel topics."""
    sent = _send_samples(get_settings(), events, broken, seed)
    typer.echo(
        f"sent {sum(sent.values())} records: " + ", ".join(f"{k}={v}" for k, v in sent.items())
    )


@sample_app.command("generate")
def generate_command(
    customers: int = typer.Option(2000, min=1, help="Synthetic customers."),
    events_per_customer: float = typer.Option(10.0, min=1.0, help="Events per customer (mean)."),
    seed: int = typer.Option(0, help="Random seed (same seed, same data)."),
    duplicate_rate: float = typer.Option(0.02, min=0.0, max=1.0, help="Share sent twice."),
    late_rate: float = typer.Option(0.05, min=0.0, max=1.0, help="Share sent out of order."),
    out: Path | None = typer.Option(
        None, help="Write events and ground truth as JSON lines to this file."
    ),
    send: bool = typer.Option(False, help="Send the events to the channel topics."),
) -> None:
    """Generate customers and their events with the true customer of every event recorded.

    Each JSON line of --out is {"event": <event>, "customer": <true customer key>};
    tests and benchmarks score identity resolution against it.
    """
    from cdp.samples import generate

    dataset = generate(
        customers,
        events_per_customer,
        seed=seed,
        duplicate_rate=duplicate_rate,
        late_rate=late_rate,
    )
    typer.echo(
        f"{len(dataset.customers)} customers, {dataset.distinct_events} events"
        f" (+{dataset.duplicates} duplicates)"
    )
    if out is not None:
        with out.open("w", encoding="utf-8") as handle:
            for event in dataset.events:
                line = {
                    "event": event.model_dump(mode="json"),
                    "customer": dataset.truth[event.event_id],
                }
                handle.write(json.dumps(line) + "\n")
        typer.echo(f"wrote {len(dataset.events)} lines to {out}")
    if send:
        from cdp.producer import EventProducer

        report = _progress("sent")
        with EventProducer(get_settings()) as producer:
            for index, event in enumerate(dataset.events, 1):
                producer.send(event)
                report(index, len(dataset.events))


def _send_samples(settings: Settings, events: int, broken: int, seed: int) -> Counter[str]:
    from cdp.contracts.codec import AvroCodec
    from cdp.contracts.registry import registry_from_settings
    from cdp.producer import EventProducer
    from cdp.samples import broken_records, generate
    from cdp.topics import Topics

    rng = random.Random(seed)
    codec = AvroCodec(registry_from_settings(settings))
    # whole customer journeys (about 10 events per customer) across all four channels
    valid = generate(max(1, events // 10), 10.0, seed=seed, duplicate_rate=0.0).events[:events]
    bad = broken_records(codec, Topics(settings.namespace), broken, rng)
    counts: Counter[str] = Counter()
    report = _progress("sent")
    with EventProducer(settings) as producer:
        for index, event in enumerate(valid, 1):
            producer.send(event)
            counts[event.channel.value] += 1
            report(index, len(valid) + len(bad))
        for index, record in enumerate(bad, len(valid) + 1):
            producer.send_raw(record.topic, record.value, record.key)
            counts["broken"] += 1
            report(index, len(valid) + len(bad))
    return counts


def demo(
    events: int = typer.Option(400, min=1, help="Valid sample events to send."),
    broken: int = typer.Option(20, min=0, help="Deliberately broken records to send."),
    seed: int = typer.Option(7, help="Random seed of the sample data."),
    timeout: float = typer.Option(180.0, help="Seconds to wait for the pipeline."),
) -> None:
    """Start the stack, run the worker and push sample events from all four channels through it.

    Ends with what came out: accepted events per channel and dead letters per reason.
    """
    from cdp.contracts.codec import AvroCodec
    from cdp.contracts.registry import registry_from_settings
    from cdp.outcomes import TopicMark, collect_outcomes
    from cdp.stack import LocalStack
    from cdp.topics import Topics, ensure_topics
    from cdp.worker_process import WorkerProcess, settings_env

    settings = get_settings()
    topics = Topics(settings.namespace)

    _step("1/6 starting the local stack (Kafka broker + Redis)")
    LocalStack(settings).up(progress=lambda line: typer.echo(f"    {line}"))

    _step("2/6 creating topics")
    created = ensure_topics(settings)
    typer.echo(f"    {len(created)} created, the others existed")

    _step("3/6 starting the worker")
    log_path = settings.state_dir / "worker.log"
    worker = WorkerProcess(settings_env(settings), log_path).start()
    typer.echo(f"    worker pid {worker.proc.pid if worker.proc else '?'}, log {log_path}")
    try:
        mark = TopicMark.take(settings, [topics.canonical, topics.deadletter])

        store = ReadModelStore.from_settings(settings)
        events_before = events_in_profiles(store.dump())
        _step(f"4/6 sending {events} sample events from four channels and {broken} broken records")
        _send_samples(settings, events, broken, seed)

        _step("5/6 waiting until every record came out of ingest")
        codec = AvroCodec(registry_from_settings(settings))
        outcomes = collect_outcomes(
            settings, codec, mark, events + broken, timeout=timeout, progress=_progress("done")
        )
        if not worker.running:
            typer.secho(f"worker died:\n{worker.log_tail()}", fg="red", err=True)
            raise typer.Exit(1)
        _step("6/6 waiting until every accepted event is in a unified profile (Redis)")
        target = events_before + len(outcomes.accepted)
        report = _progress("in profiles")
        deadline = time.monotonic() + timeout
        while (done := events_in_profiles(store.dump()) - events_before) < len(outcomes.accepted):
            report(max(done, 0), len(outcomes.accepted))
            if time.monotonic() > deadline or not worker.running:
                typer.secho(f"profiles incomplete; see {log_path}", fg="red", err=True)
                raise typer.Exit(1)
            time.sleep(0.5)
        report(target - events_before, len(outcomes.accepted))
    finally:
        worker.stop()

    typer.echo("")
    typer.secho("Accepted events (canonical topic)", bold=True)
    for channel, count in sorted(outcomes.by_channel().items()):
        typer.echo(f"    {channel:<12} {count:>6}")
    typer.echo(f"    {'total':<12} {len(outcomes.accepted):>6}")
    typer.secho("Dead-lettered records (dead-letter topic)", bold=True)
    for reason, count in sorted(outcomes.by_reason().items()):
        typer.echo(f"    {reason:<22} {count:>6}")
    typer.echo(f"    {'total':<22} {len(outcomes.dead_letters):>6}")
    if outcomes.total < events + broken:
        typer.secho(
            f"only {outcomes.total} of {events + broken} records came out within {timeout}s;"
            f" see {log_path}",
            fg="red",
            err=True,
        )
        raise typer.Exit(1)
    _print_profiles(store)
    _print_funnel(store, settings)
    typer.echo(
        f"\nThe stack keeps running: `cdp stack status`, `cdp stack down`. Worker log: {log_path}"
    )


def _print_profiles(store: ReadModelStore, count: int = 3) -> None:
    """Show the most complete unified profiles: identifiers, traits with sources, activity."""
    documents = [json.loads(entry["document"]) for entry in store.dump()["profiles"].values()]
    documents.sort(key=lambda d: (-len(d["sources"]), -d["event_count"], d["profile_id"]))
    typer.echo("")
    typer.secho(
        f"Unified profiles: {len(documents)} in Redis; the {count} with the most sources:",
        bold=True,
    )
    for doc in documents[:count]:
        computed = doc["computed"]
        typer.secho(f"\n  {doc['profile_id']}  ({doc['event_count']} events)", fg="green")
        typer.echo(f"    sources      {', '.join(doc['sources'])}")
        typer.echo(f"    identifiers  {', '.join(doc['identifiers'])}")
        for name, trait in sorted(doc["traits"].items()):
            typer.echo(
                f"    {name:<12} {trait['value']}  (from {trait['source']}, {trait['rule']})"
            )
        by_channel = ", ".join(f"{k} {v}" for k, v in sorted(computed["events_by_channel"].items()))
        typer.echo(f"    events       {by_channel}")
        revenue = ", ".join(f"{v} {k}" for k, v in computed["revenue"].items()) or "-"
        typer.echo(f"    orders       {computed['order_count']} (revenue {revenue})")
        typer.echo(
            f"    service      {computed['tickets_total']} tickets,"
            f" {len(computed['open_tickets'])} open,"
            f" satisfaction {computed['avg_satisfaction'] or '-'}"
        )
        consents = [
            f"{purpose}:{'yes' if decision['granted'] else 'no'}"
            for purpose, scopes in sorted(doc["consent"].items())
            for decision in scopes.values()
        ]
        typer.echo(f"    consent      {', '.join(consents) or '-'}")
        journey = doc.get("journey") or {}
        if journey.get("stage"):
            path = " -> ".join(t["to_stage"] for t in journey["history"])
            lead = "qualified lead" if journey["qualified"] else "not qualified"
            typer.echo(f"    journey      {journey['stage']} (owner {journey['owner']}); {path}")
            typer.echo(f"    lead score   {journey['score']} ({lead})")


def _print_funnel(store: ReadModelStore, settings: Settings) -> None:
    """The journey funnel as the stream keeps it in Redis, and moments of truth."""
    from cdp.journey.definition import load_journey_or_default
    from cdp.serve.journey import read_funnel, read_moments

    journey = load_journey_or_default(settings.journey_config)
    funnel = read_funnel(store, journey)
    typer.echo("")
    typer.secho(
        f"Journey funnel ({journey.name}): {funnel.overall.profiles} profiles,"
        f" {funnel.overall.unstaged} without a stage",
        bold=True,
    )
    typer.echo(
        f"    {'stage':<15} {'owner':<10} {'now':>5} {'reached':>8} {'-> next':>8}"
        f" {'median days':>12} {'p90 days':>9}"
    )
    for row in funnel.overall.stages:
        conversion = "-" if row.conversion is None else f"{100 * row.conversion:.0f}%"
        median = "-" if row.median_seconds is None else f"{row.median_seconds / 86400:.1f}"
        p90 = "-" if row.p90_seconds is None else f"{row.p90_seconds / 86400:.1f}"
        typer.echo(
            f"    {row.stage:<15} {row.owner:<10} {row.current:>5} {row.reached:>8}"
            f" {conversion:>8} {median:>12} {p90:>9}"
        )
    regions = ", ".join(
        f"{name} {segment.profiles}" for name, segment in sorted(funnel.by_region.items())
    )
    typer.echo(f"    profiles per region: {regions or '-'}")
    moments = read_moments(store)
    if moments:
        counts = ", ".join(f"{name} {values.get('total', 0)}" for name, values in moments.items())
        typer.echo(f"    moments of truth: {counts}")
