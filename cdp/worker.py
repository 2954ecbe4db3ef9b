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
from cdp.ingest.agent import register_ingest
from cdp.ingest.stage import IngestStage
from cdp.settings import Settings
from cdp.topics import Topics


def create_app(settings: Settings) -> faust.App:
    """Build the Faust app with every stage registered."""
    app = faust.App(
        f"{settings.namespace}-worker",
        broker=[f"aiokafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")],
        store="memory://",
        processing_guarantee="at_least_once",
        topic_allow_declare=False,
        topic_disable_leader=True,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        producer_acks=-1,
        web_enabled=False,
    )
    topics = Topics(settings.namespace)
    codec = AvroCodec(registry_from_settings(settings))
    register_ingest(app, IngestStage(codec, topics), topics)
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
