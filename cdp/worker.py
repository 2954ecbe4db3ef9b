"""The stream-processing worker: one Faust app running every stage.

Fixed Faust settings (see the developers' guide): the aiokafka driver,
``processing_guarantee="at_least_once"``, agents with concurrency 1, topics
created by :mod:`cdp.topics` with explicit partition counts (Faust may not
declare topics, and the broker's auto-create is off). Effects are made
idempotent downstream instead of relying on Kafka transactions.
"""

from __future__ import annotations

import faust

from cdp.contracts.codec import AvroCodec
from cdp.contracts.registry import registry_from_settings
from cdp.identity.config import load_identity_config
from cdp.identity.stage import register_identity
from cdp.ingest.agent import register_ingest
from cdp.ingest.stage import IngestStage
from cdp.profile.stage import register_facts, register_profiles
from cdp.profile.survivorship import load_trait_config
from cdp.serve.store import ReadModelStore
from cdp.settings import Settings
from cdp.topics import Topics


def create_app(settings: Settings) -> faust.App:
    """Build the Faust app with every stage registered."""
    datadir = settings.state_dir / "worker" / Topics(settings.namespace).app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        Topics(settings.namespace).app_id,
        broker=[f"aiokafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")],
        store="memory://",
        processing_guarantee="at_least_once",
        topic_allow_declare=False,
        topic_disable_leader=True,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=10.0,  # a killed worker's partitions move on after 10 s
        broker_heartbeat_interval=2.0,
        producer_acks=-1,
        web_enabled=False,
        datadir=str(datadir),
        table_standby_replicas=0,
    )
    topics = Topics(settings.namespace)
    codec = AvroCodec(registry_from_settings(settings))
    identity = load_identity_config(settings.identity_config)
    store = ReadModelStore.from_settings(settings)
    register_ingest(app, IngestStage(codec, topics, identity), topics)
    register_identity(app, topics, identity, store)
    register_facts(app, topics, codec)
    register_profiles(app, topics, load_trait_config(settings.trait_config), store)
    return app


def run_worker(settings: Settings) -> None:
    """Create missing topics, then run the worker until SIGTERM/SIGINT (blocks)."""
    from cdp.metrics import serve_metrics
    from cdp.topics import ensure_topics

    ensure_topics(settings)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    app = create_app(settings)
    loglevel = {"warning": "warn"}.get(settings.log_level, settings.log_level)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
