"""Every Kafka topic of the platform, declared as code.

Names are ``{namespace}.{suffix}``. :func:`ensure_topics` creates missing
topics idempotently with the declared partitions, replication and cleanup
policy; the broker's auto-create is off, so nothing else creates them.
The contract of each topic is documented in ``docs/topics.md``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from cdp.settings import Settings


class Channel(StrEnum):
    """The channel systems that publish events."""

    WEB = "web"
    ECOMMERCE = "ecommerce"
    CALLCENTER = "callcenter"
    CRM = "crm"


class Cleanup(StrEnum):
    """Kafka ``cleanup.policy`` of a topic."""

    DELETE = "delete"
    COMPACT = "compact"


@dataclass(frozen=True)
class TopicSpec:
    """One topic: name, partitions, replication, cleanup policy and extra config."""

    name: str
    partitions: int
    replication: int
    cleanup: Cleanup = Cleanup.DELETE
    config: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def broker_config(self) -> dict[str, str]:
        """The topic-level config sent to the broker on creation."""
        return {"cleanup.policy": self.cleanup.value, **self.config}


@dataclass(frozen=True)
class Topics:
    """The topic names of one installation (one namespace)."""

    namespace: str

    def channel(self, channel: Channel | str) -> str:
        """Raw events from one channel system (Avro, Confluent wire format)."""
        return f"{self.namespace}.channel.{Channel(channel).value}"

    @property
    def channels(self) -> list[str]:
        """All channel topics, in a stable order."""
        return [self.channel(c) for c in Channel]

    @property
    def canonical(self) -> str:
        """Validated events in the canonical envelope, keyed by primary identifier."""
        return f"{self.namespace}.events.canonical"

    @property
    def deadletter(self) -> str:
        """Rejected records: original bytes plus reason and source in headers."""
        return f"{self.namespace}.deadletter"

    @property
    def observations(self) -> str:
        """Identifier sets of events, for the (single-partition) identity stage."""
        return f"{self.namespace}.identity.observations"

    @property
    def assignments(self) -> str:
        """Identifier key -> profile id, compacted, co-partitioned with the canonical topic."""
        return f"{self.namespace}.identity.assignments"

    @property
    def merges(self) -> str:
        """Merge events: profiles that became one."""
        return f"{self.namespace}.identity.merges"

    @property
    def facts(self) -> str:
        """Profile facts and membership releases, keyed by profile id."""
        return f"{self.namespace}.profile.facts"

    @property
    def computed(self) -> str:
        """Computed traits of processors as derived facts, keyed by identifier key."""
        return f"{self.namespace}.profile.computed"

    @property
    def profiles(self) -> str:
        """Every new profile version, compacted, keyed by profile id; null = deleted."""
        return f"{self.namespace}.profile.changes"

    @property
    def qualified(self) -> str:
        """Qualification candidates from the profile stage (1 partition: one dedupe view)."""
        return f"{self.namespace}.journey.qualified"

    @property
    def handoffs(self) -> str:
        """Qualified leads handed to sales: one record per person and qualification."""
        return f"{self.namespace}.journey.handoffs"

    @property
    def moments(self) -> str:
        """Moment-of-truth occurrences, compacted, keyed ``{name}:{event id}``."""
        return f"{self.namespace}.journey.moments"

    @property
    def privacy_audit(self) -> str:
        """Auditable privacy events (GDPR erasures): who, when, which profile; no PII."""
        return f"{self.namespace}.privacy.audit"

    @property
    def app_id(self) -> str:
        """The Faust app id (consumer group, prefix of table changelogs)."""
        return f"{self.namespace}-worker"

    def changelog(self, table: str) -> str:
        """The changelog topic Faust uses for ``table``."""
        return f"{self.app_id}-{table}-changelog"

    def channel_of(self, topic: str) -> Channel | None:
        """The channel a channel topic belongs to, or None for other topics."""
        prefix = f"{self.namespace}.channel."
        if topic.startswith(prefix):
            try:
                return Channel(topic[len(prefix) :])
            except ValueError:
                return None
        return None


def declared_topics(settings: Settings) -> list[TopicSpec]:
    """Every topic this installation needs, with explicit partition counts."""
    names = Topics(settings.namespace)
    parts, repl = settings.partitions, settings.replication_factor
    specs = [
        TopicSpec(
            names.channel(c),
            parts,
            repl,
            description=f"raw {c.value} events from channel systems (Avro, Confluent wire format)",
        )
        for c in Channel
    ]
    specs += [
        TopicSpec(
            names.canonical,
            parts,
            repl,
            description="validated events in the canonical envelope, keyed by primary identifier",
        ),
        TopicSpec(
            names.deadletter,
            parts,
            repl,
            config={"retention.ms": str(30 * 24 * 3600 * 1000)},
            description="rejected records: original bytes, reason code and source in headers",
        ),
        TopicSpec(
            names.observations,
            1,
            repl,
            description="identifier sets of events for the identity stage (1 partition: 1 graph)",
        ),
        TopicSpec(
            names.assignments,
            parts,
            repl,
            Cleanup.COMPACT,
            description="identifier key -> profile id (JSON), keyed like the canonical topic",
        ),
        TopicSpec(names.merges, parts, repl, description="merge events (JSON), keyed by survivor"),
        TopicSpec(
            names.facts,
            parts,
            repl,
            description="facts and releases (JSON) for the profile stage, keyed by profile id",
        ),
        TopicSpec(
            names.computed,
            parts,
            repl,
            description="computed traits of processors (JSON fact), keyed by identifier key",
        ),
        TopicSpec(
            names.profiles,
            parts,
            repl,
            Cleanup.COMPACT,
            description="latest profile document per profile id (JSON); null value = deleted",
        ),
        TopicSpec(
            names.qualified,
            1,
            repl,
            description="qualification candidates (JSON) for the hand-off stage (1 partition)",
        ),
        TopicSpec(
            names.handoffs,
            parts,
            repl,
            config={"retention.ms": "-1"},
            description="lead hand-offs to sales (JSON), keyed by profile id; kept forever",
        ),
        TopicSpec(
            names.moments,
            parts,
            repl,
            Cleanup.COMPACT,
            description="moment-of-truth occurrences (JSON), keyed by '{name}:{event id}'",
        ),
        TopicSpec(
            names.privacy_audit,
            parts,
            repl,
            config={"retention.ms": "-1"},
            description="privacy audit events (JSON: erasures), keyed by profile id; kept forever",
        ),
    ]
    specs += [
        TopicSpec(
            names.changelog(table),
            count,
            repl,
            Cleanup.COMPACT,
            description=f"Faust changelog of table {table!r}",
        )
        for table, layout in TABLES.items()
        for count in [1 if layout == SINGLE else parts]
    ]
    limit = {MAX_MESSAGE_BYTES: str(settings.max_message_bytes)}
    return [replace(spec, config={**spec.config, **limit}) for spec in specs]


MAX_MESSAGE_BYTES = "max.message.bytes"


SINGLE = "single"
PARTITIONED = "partitioned"
TABLES: dict[str, str] = {
    "identity-graph": SINGLE,
    "facts-by-identifier": PARTITIONED,
    "assignment-by-identifier": PARTITIONED,
    "profile-members": PARTITIONED,
    "processor-state": PARTITIONED,
}
"""Faust tables of the worker and whether they follow the single identity partition."""


def ensure_topics(
    settings: Settings, specs: Iterable[TopicSpec] | None = None, timeout: float = 30.0
) -> list[str]:
    """Create the declared topics that do not exist yet; return the names created.

    Existing topics are left alone (idempotent), but for ``max.message.bytes``: one
    below the declared value (``CDP_MAX_MESSAGE_BYTES``, e.g. a topic created by an
    older version) is raised to it. Raises if a topic exists with fewer partitions
    than declared, since keyed data would then be misrouted.
    """
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    wanted = list(specs if specs is not None else declared_topics(settings))
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    existing = admin.list_topics(timeout=timeout).topics
    for spec in wanted:
        if spec.name in existing and len(existing[spec.name].partitions) < spec.partitions:
            raise RuntimeError(
                f"topic {spec.name} has {len(existing[spec.name].partitions)} partitions,"
                f" {spec.partitions} declared"
            )
    missing = [spec for spec in wanted if spec.name not in existing]
    created: list[str] = []
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    s.name,
                    num_partitions=s.partitions,
                    replication_factor=s.replication,
                    config=s.broker_config(),
                )
                for s in missing
            ],
            operation_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result()
                created.append(name)
            except Exception as exc:  # concurrent creation by another process is fine
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
        deadline = time.monotonic() + timeout
        _wait_for_leaders(admin, [spec.name for spec in missing], timeout)
        _wait_until_served(admin, missing, max(deadline - time.monotonic(), 1.0))
    # existing topics, and those another process created meanwhile (or that the
    # metadata did not list yet), may have a lower limit
    _raise_message_limits(admin, [spec for spec in wanted if spec.name not in created], timeout)
    return sorted(created)


def _wait_for_leaders(admin: Any, names: list[str], timeout: float) -> None:
    """Block until every partition of ``names`` has a leader (new topics need a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        pending = [
            name
            for name in names
            if name not in topics
            or topics[name].error is not None
            or not topics[name].partitions
            or any(p.leader < 0 or p.error is not None for p in topics[name].partitions.values())
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics without a partition leader after {timeout}s: {pending}")
        time.sleep(0.1)


def _wait_until_served(admin: Any, specs: list[TopicSpec], timeout: float) -> None:
    """Block until every partition of ``specs`` answers a ListOffsets request at its leader.

    The metadata names a new partition's leader before that broker has loaded the
    partition's log; until then it answers produce requests with
    ``NOT_LEADER_OR_FOLLOWER``. An idempotent librdkafka producer that writes in that
    window has been seen to lose its first batch to the partition with no delivery
    error (3 events of a CI run, 2026-11-24; docs/topics.md), so nothing may produce
    to a new topic before this returns.
    """
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

    pending = {TopicPartition(spec.name, p) for spec in specs for p in range(spec.partitions)}
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    deadline = time.monotonic() + timeout
    while pending:
        futures = admin.list_offsets(dict.fromkeys(pending, latest), request_timeout=timeout)
        for tp, future in futures.items():
            try:
                future.result()
            except Exception:  # not served yet (NOT_LEADER_OR_FOLLOWER, ...): ask again
                continue
            pending.discard(tp)
        if not pending:
            return
        if time.monotonic() > deadline:
            names = sorted({f"{tp.topic}[{tp.partition}]" for tp in pending})
            raise RuntimeError(f"partitions not served by their leader after {timeout}s: {names}")
        time.sleep(0.1)


def _raise_message_limits(admin: Any, specs: list[TopicSpec], timeout: float) -> None:
    """Raise each topic's ``max.message.bytes`` that is below its spec's (never lower one).

    Returns once the broker reports the raised limits (it applies a change a
    moment after the controller accepted it).
    """
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    wanted = {spec.name: int(spec.config[MAX_MESSAGE_BYTES]) for spec in specs}
    deadline = time.monotonic() + timeout
    altered = False
    while True:
        low = _below_limit(admin, wanted, timeout)
        if not low:
            return
        if altered and time.monotonic() > deadline:
            raise RuntimeError(f"{MAX_MESSAGE_BYTES} not raised after {timeout}s: {low}")
        if not altered:
            changes = [
                ConfigResource(
                    ResourceType.TOPIC,
                    name,
                    incremental_configs=[
                        ConfigEntry(
                            MAX_MESSAGE_BYTES,
                            str(wanted[name]),
                            incremental_operation=AlterConfigOpType.SET,
                        )
                    ],
                )
                for name in low
            ]
            futures = admin.incremental_alter_configs(changes, request_timeout=timeout)
            for future in futures.values():
                future.result()
            altered = True
        time.sleep(0.1)


def _below_limit(admin: Any, wanted: dict[str, int], timeout: float) -> list[str]:
    """The topics of ``wanted`` whose ``max.message.bytes`` is below the wanted value."""
    from confluent_kafka.admin import ConfigResource, ResourceType  # type: ignore[attr-defined]

    if not wanted:
        return []
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in wanted]
    low = []
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        entry = future.result().get(MAX_MESSAGE_BYTES)
        if entry is None or int(entry.value) < wanted[resource.name]:
            low.append(resource.name)
    return sorted(low)
