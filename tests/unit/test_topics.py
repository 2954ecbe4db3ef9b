"""Topics as code: names, partitions, cleanup policies."""

from __future__ import annotations

from cdp.settings import load_settings
from cdp.topics import MAX_MESSAGE_BYTES, TABLES, Channel, Cleanup, Topics, declared_topics


def test_every_topic_has_explicit_partitions_and_policy() -> None:
    specs = declared_topics(load_settings(namespace="acme", partitions=6))
    names = [spec.name for spec in specs]
    assert len(names) == len(set(names))
    assert all(name.startswith(("acme.", "acme-worker-")) for name in names)
    acme = Topics("acme")
    single = {acme.observations, acme.qualified, acme.changelog("identity-graph")}
    assert all(spec.partitions == (1 if spec.name in single else 6) for spec in specs)
    assert all(
        spec.broker_config()["cleanup.policy"] in {c.value for c in Cleanup} for spec in specs
    )
    topics = Topics("acme")
    assert set(topics.channels) | {topics.canonical, topics.deadletter} <= set(names)
    compacted = {spec.name for spec in specs if spec.cleanup is Cleanup.COMPACT}
    assert {topics.assignments, topics.profiles} <= compacted
    assert all(topics.changelog(table) in compacted for table in TABLES)


def test_channel_of_topic() -> None:
    topics = Topics("acme")
    assert topics.channel_of("acme.channel.crm") is Channel.CRM
    assert topics.channel_of("acme.channel.fax") is None
    assert topics.channel_of("other.channel.crm") is None
    assert topics.channel_of(topics.canonical) is None


def test_every_topic_takes_the_configured_message_limit() -> None:
    settings = load_settings(namespace="acme", max_message_bytes=8 * 1024 * 1024)
    specs = declared_topics(settings)
    assert {spec.broker_config()[MAX_MESSAGE_BYTES] for spec in specs} == {str(8 * 1024 * 1024)}
    assert load_settings().max_message_bytes == 16 * 1024 * 1024
