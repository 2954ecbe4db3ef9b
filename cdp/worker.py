"""The stream-processing worker: one Faust app running every stage.

Fixed Faust settings (see the developers' guide): the aiokafka driver,
``processing_guarantee="at_least_once"``, agents with concurrency 1, topics
created by :mod:`cdp.topics` with explicit partition counts (Faust may not
declare topics, and the broker's auto-create is off). Effects are made
idempotent downstream instead of relying on Kafka transactions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import faust

from cdp.contracts.codec import AvroCodec
from cdp.contracts.registry import registry_from_settings
from cdp.errors import ConfigError
from cdp.identity.config import load_identity_config
from cdp.identity.stage import register_identity
from cdp.ingest.agent import register_ingest
from cdp.ingest.stage import IngestStage
from cdp.journey.definition import load_journey_or_default
from cdp.journey.handoff import register_handoff
from cdp.outputs import Outputs
from cdp.processors import discover
from cdp.processors.agent import register_processors
from cdp.profile.stage import register_facts, register_profiles
from cdp.profile.survivorship import load_trait_config
from cdp.serve.store import ReadModelStore
from cdp.settings import Settings
from cdp.topics import Cleanup, Topics, declared_topics

log = logging.getLogger(__name__)


RESTART_EXIT_CODE = 75
"""Exit code of a worker process that must start again from the committed offsets."""


def _never_skip_gaps(compacted: frozenset[str]) -> None:
    """Stop Faust from committing past records it never processed.

    When a fetch delivers an offset beyond the last one read (records prefetched
    before a rebalance or a seek arrive out of order), Faust records the
    range in between as a "gap" and later treats it as acknowledged, so the
    committed offset jumps over records no agent processed (faust-streaming
    issues #221, #606), and it drops the skipped records when they do arrive.
    Gaps are genuine only in compacted topics. For every other topic the
    process exits with :data:`RESTART_EXIT_CODE` before anything past the gap
    is acknowledged; ``cdp worker`` starts it again, and the new process reads
    from the committed offset (at least once).
    """
    from faust.transport.consumer import Consumer

    original = Consumer._add_gap
    if getattr(original, "_cdp_patched", False):
        return

    async def add_gap(self: Consumer, tp: Any, offset_from: int, offset_to: int) -> None:
        if tp.topic in compacted:
            await original(self, tp, offset_from, offset_to)
            return
        if await _below_log_start(self, tp, offset_to):
            return  # the records were deleted by retention: nothing to read
        # Faust drops every record below the highest offset it has read, so the records
        # of the gap would never reach an agent in this process. The commit stays below
        # them; a fresh process reads them again (the supervisor of `cdp worker` starts it).
        log.error(
            "%s[%d]: offsets %d..%d were skipped by the fetcher; restarting to read them"
            " again from the committed offset",
            tp.topic,
            tp.partition,
            offset_from,
            offset_to - 1,
        )
        logging.shutdown()
        os._exit(RESTART_EXIT_CODE)

    add_gap._cdp_patched = True  # type: ignore[attr-defined]
    Consumer._add_gap = add_gap  # type: ignore[method-assign]


async def _below_log_start(consumer: Any, tp: Any, offset_to: int) -> bool:
    """Whether every offset before ``offset_to`` is gone from the partition (retention).

    Then a "gap" is no loss: e.g. an uncommitted partition read from offset 0 whose
    first records were deleted. If the broker cannot say, it counts as a loss.
    """
    try:
        earliest = (await consumer.earliest_offsets(tp)).get(tp)
    except Exception:
        return False
    return earliest is not None and offset_to <= earliest


def _uncommitted_from_the_beginning() -> None:
    """Make a partition without a committed offset start at its beginning.

    aiokafka's ``seek_to_committed`` leaves a partition whose committed offset
    is missing (or 0) wherever the fetcher happens to be, which after a restart
    was the end of the partition, whatever ``auto_offset_reset`` says: a worker
    killed before its first commit on a partition skipped everything written
    there meanwhile. After Faust's seek, such partitions whose position is past 0
    are sought to 0 (at-least-once: re-processing is harmless, skipping is not).
    """
    from faust.transport.consumer import Consumer

    original = Consumer.perform_seek
    if getattr(original, "_cdp_patched", False):
        return

    async def perform_seek(self: Consumer) -> None:
        await original(self)
        for tp in self.assignment():
            # Only where the fetcher is ahead: a seek to where it already is would race
            # with records fetched before it, which Faust then drops as already read.
            if not self._committed_offset.get(tp) and (await self.position(tp) or 0) > 0:
                await self.seek(tp, 0)
                # Faust's seek leaves the read offset unset for offset 0, and then silently
                # drops records below the first one a prefetch delivers. With -1 such a
                # record is a gap instead, which the gap patch turns into a restart.
                self._read_offset[tp] = -1

    perform_seek._cdp_patched = True  # type: ignore[attr-defined]
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]


def create_app(settings: Settings) -> faust.App:
    """Build the Faust app with every stage registered."""
    _uncommitted_from_the_beginning()
    topics = Topics(settings.namespace)
    _never_skip_gaps(
        frozenset(
            spec.name for spec in declared_topics(settings) if spec.cleanup is Cleanup.COMPACT
        )
    )
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
        broker_session_timeout=10.0,  # a killed worker's partitions move on after 10 s
        broker_heartbeat_interval=2.0,
        producer_acks=-1,
        web_enabled=False,
        datadir=str(datadir),
        table_standby_replicas=0,
    )
    codec = AvroCodec(registry_from_settings(settings))
    identity = load_identity_config(settings.identity_config)
    journey = load_journey_or_default(settings.journey_config)
    store = ReadModelStore.from_settings(settings)
    outputs = Outputs(settings)
    register_ingest(app, IngestStage(codec, topics, identity), topics, outputs)
    register_identity(app, topics, identity, store, outputs)
    register_facts(app, topics, codec, outputs)
    traits = load_trait_config(settings.trait_config)
    register_profiles(app, topics, traits, store, outputs, journey)
    register_handoff(app, settings, topics, outputs)
    register_processors(app, discover(settings), topics, codec, outputs)  # processors/ plugins
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
    ensure_topics(settings)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    app = create_app(settings)
    loglevel = {"warning": "warn"}.get(settings.log_level, settings.log_level)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
