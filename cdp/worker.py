"""The stream-processing worker: one Faust app running every stage.

Fixed Faust settings (see the developers' guide): the aiokafka driver,
``processing_guarantee="at_least_once"``, agents with concurrency 1, topics
created by :mod:`cdp.topics` with explicit partition counts (Faust may not
declare topics, and the broker's auto-create is off). Effects are made
idempotent downstream instead of relying on Kafka transactions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import faust

from cdp import diagnostics, heap, in_order
from cdp.contracts.codec import AvroCodec
from cdp.contracts.decode_once import DecodeOnce
from cdp.contracts.registry import registry_from_settings
from cdp.errors import ConfigError
from cdp.identity.config import load_identity_config
from cdp.identity.stage import register_identity
from cdp.ingest.agent import register_ingest
from cdp.ingest.stage import IngestStage
from cdp.journey.definition import load_journey_or_default
from cdp.journey.handoff import register_handoff
from cdp.lean_monitor import LeanMonitor
from cdp.outputs import Outputs
from cdp.processors import discover
from cdp.processors.agent import register_processors
from cdp.processors.api import Input
from cdp.profile.stage import register_facts, register_profiles
from cdp.profile.survivorship import load_trait_config
from cdp.serve.store import ReadModelStore
from cdp.settings import WORKER_SESSION_TIMEOUT_S, Settings
from cdp.topics import Topics

log = logging.getLogger(__name__)


def faust_app(settings: Settings) -> faust.App:
    """The worker's Faust app with its fixed settings and patches, and no stage yet.

    :func:`create_app` registers the stages on it; ``bench/faust_floor.py`` measures
    what it costs per record with agents that do nothing.
    """
    in_order.install()  # no input record is skipped (Faust's fetch loop can drop some)
    topics = Topics(settings.namespace)
    datadir = settings.state_dir / "worker" / topics.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        topics.app_id,
        broker=[f"aiokafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")],
        store="memory://",
        processing_guarantee="at_least_once",
        topic_allow_declare=False,
        topic_disable_leader=True,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=WORKER_SESSION_TIMEOUT_S,  # a killed worker's partitions move on
        broker_heartbeat_interval=2.0,
        producer_acks=-1,
        producer_max_request_size=settings.max_message_bytes,
        consumer_max_fetch_size=settings.max_message_bytes,  # a whole record batch always fits
        web_enabled=False,
        datadir=str(datadir),
        table_standby_replicas=0,
        Monitor=LeanMonitor,  # no per-record bookkeeping for web views the worker does not run
    )
    in_order.reads_again_what_resuming_clears(app)  # nothing thrown away at a rebalance's end
    heap.install(
        app,
        settings.worker_gc_freeze_s,
        settings.worker_gc_sweep_s,
        settings.worker_gc_sweep_max_pause_s,
    )
    return app


def create_app(settings: Settings) -> faust.App:
    """Build the Faust app with every stage registered."""
    app = faust_app(settings)
    topics = Topics(settings.namespace)
    codec = AvroCodec(registry_from_settings(settings))
    identity = load_identity_config(settings.identity_config)
    journey = load_journey_or_default(settings.journey_config)
    store = ReadModelStore.from_settings(settings)
    outputs = Outputs(settings)
    processors = discover(settings)  # processors/ plugins
    # the facts stage and every event processor share one decode per canonical record,
    # none for the records this process's ingest stage wrote
    canonical = DecodeOnce(codec, readers=1 + sum(p.input is Input.EVENTS for p in processors))
    register_ingest(app, IngestStage(codec, topics, identity), topics, outputs, canonical)
    register_identity(app, topics, identity, store, outputs)
    register_facts(app, topics, canonical, outputs)
    traits = load_trait_config(settings.trait_config)
    register_profiles(app, topics, traits, store, outputs, journey)
    register_handoff(app, settings, topics, outputs)
    register_processors(app, processors, topics, canonical, outputs)
    # input that stops where the fetch loop cannot see it: log the state, then restart
    in_order.watch_blocked(
        app, in_order.BlockedInput(settings.input_stall_warn_s, settings.input_stall_restart_s)
    )

    async def log_state_on_sigusr1() -> None:
        diagnostics.log_on_signal(app, asyncio.get_running_loop())

    app.task(log_state_on_sigusr1)
    return app


def check_configs(settings: Settings) -> None:
    """Load every configuration file; :class:`ConfigError` names the setting and the problem."""
    loaders: list[tuple[str, Callable[[], object]]] = [
        ("CDP_IDENTITY_CONFIG", lambda: load_identity_config(settings.identity_config)),
        ("CDP_TRAIT_CONFIG", lambda: load_trait_config(settings.trait_config)),
        ("CDP_JOURNEY_CONFIG", lambda: load_journey_or_default(settings.journey_config)),
    ]
    for name, load in loaders:
        try:
            load()
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}") from None


def run_worker(settings: Settings) -> None:
    """Create missing topics, then run the worker until SIGTERM/SIGINT (blocks)."""
    from cdp.metrics import serve_metrics
    from cdp.topics import ensure_topics

    check_configs(settings)  # a bad file stops the worker before it touches anything
    use_event_loop(settings)
    ensure_topics(settings)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    run_app(create_app(settings), settings)


def use_event_loop(settings: Settings) -> None:
    """Make the event loop of ``CDP_WORKER_EVENT_LOOP`` the one Faust will create."""
    if settings.worker_event_loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_app(app: faust.App, settings: Settings) -> None:
    """Run ``app`` as a Faust worker at ``CDP_LOG_LEVEL`` until SIGTERM/SIGINT (blocks)."""
    loglevel = {"warning": "warn"}.get(settings.log_level, settings.log_level)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
