"""``ensure_topics`` against the real broker: new partitions served, message limits raised.

``ensure_topics`` returns only once the broker serves every new partition. The
metadata names a new partition's leader before the broker has loaded its log. A
CI run (2026-11-24) lost the first batch an idempotent producer wrote to such a
partition, with no delivery error; with 75 partitions created at once, a
ListOffsets request sent right after the old ``ensure_topics`` returned failed
with ``NOT_LEADER_OR_FOLLOWER`` for 37 to 64 of them.
"""

from __future__ import annotations

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, OffsetSpec, ResourceType

from cdp.settings import Settings, load_settings
from cdp.topics import MAX_MESSAGE_BYTES, TopicSpec, declared_topics, ensure_topics

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("attempt", range(3))
def test_every_new_partition_is_served_when_ensure_topics_returns(
    stack_settings: Settings, namespace: str, attempt: int
) -> None:
    settings = load_settings(
        namespace=f"{namespace}{attempt}", kafka_bootstrap=stack_settings.kafka_bootstrap
    )
    specs = declared_topics(settings)
    assert sorted(ensure_topics(settings)) == sorted(spec.name for spec in specs)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    partitions = [TopicPartition(s.name, p) for s in specs for p in range(s.partitions)]
    futures = admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions})
    failed = {}
    for tp, future in futures.items():
        try:
            assert future.result().offset == 0
        except Exception as exc:  # one request, no retry: every partition must answer now
            failed[f"{tp.topic}[{tp.partition}]"] = str(exc)
    assert not failed, f"{len(failed)} of {len(partitions)} partitions not served: {failed}"


def _limit(admin: AdminClient, topic: str) -> int:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    (future,) = admin.describe_configs([resource]).values()
    return int(future.result()[MAX_MESSAGE_BYTES].value)


def test_a_lower_message_limit_of_an_existing_topic_is_raised(
    stack_settings: Settings, namespace: str
) -> None:
    admin = AdminClient({"bootstrap.servers": stack_settings.kafka_bootstrap})
    low, high = f"{namespace}.low", f"{namespace}.high"
    created = admin.create_topics(
        [
            NewTopic(low, 1, 1, config={MAX_MESSAGE_BYTES: "1048588"}),
            NewTopic(high, 1, 1, config={MAX_MESSAGE_BYTES: str(48 * 1024 * 1024)}),
        ]
    )
    for future in created.values():
        future.result()
    settings = load_settings(namespace=namespace, kafka_bootstrap=stack_settings.kafka_bootstrap)
    limit = {MAX_MESSAGE_BYTES: str(settings.max_message_bytes)}
    specs = [TopicSpec(name, 1, 1, config=limit) for name in (low, high)]
    assert ensure_topics(settings, specs) == []
    assert _limit(admin, low) == settings.max_message_bytes == 16 * 1024 * 1024
    assert _limit(admin, high) == 48 * 1024 * 1024  # a higher limit is kept
