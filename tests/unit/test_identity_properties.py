"""Property tests: identity resolution is a function of the *set* of events.

Generated customers share identifiers, blocked values, conflicting customer
ids and equal event times. Whatever the delivery order, duplication or
partitioning, the graph must reach the same snapshot and alias resolution as
an independent, naive reference implementation of the rule in
``docs/identity.md``; and the stream of per-event changes must converge to
the same state.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from itertools import combinations
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.identity import (
    GraphChange,
    IdentifierKey,
    IdentityConfig,
    IdentityGraph,
    ProfileId,
    default_identity_config,
    key_type,
    usable_identifiers,
)
from cdp.identity.identifiers import RawIdentifier

Event = tuple[str, datetime, list[RawIdentifier]]

TIGHT = IdentityConfig.model_validate(
    {
        "default_region": "DE",
        "unknown_types": {"priority": 100, "max_per_profile": 1},
        "types": {
            "customer_id": {"priority": 10, "max_per_profile": 1},
            "crm_contact_id": {"priority": 20, "max_per_profile": 1},
            "email": {"priority": 30, "max_per_profile": 2, "blocked": ["test@test.com"]},
            "phone": {"priority": 40, "max_per_profile": 2, "blocked": ["+49 30 1234567"]},
            "device_id": {"priority": 50, "max_per_profile": 2},
            "anonymous_id": {"priority": 60, "max_per_profile": 3},
        },
    }
)
"""Small limits, so that refusals happen often."""

CONFIGS = st.sampled_from([TIGHT, default_identity_config()])

# Raw values deliberately overlap after normalisation (case, whitespace, phone formats),
# and include blocked and invalid ones.
RAW_IDENTIFIERS: list[RawIdentifier] = [
    ("customer_id", "C1"),
    ("customer_id", " C1 "),
    ("customer_id", "C2"),
    ("customer_id", "C3"),
    ("crm_contact_id", "K1"),
    ("crm_contact_id", "K2"),
    ("email", "anna@example.com"),
    ("email", " ANNA@example.com"),
    ("email", "bob@example.com"),
    ("email", "carl@example.com"),
    ("email", "dora@example.com"),
    ("email", "test@test.com"),  # blocked
    ("email", "no-email"),  # invalid
    ("phone", "0170 1234501"),
    ("phone", "+49 170 1234501"),
    ("phone", "0170 1234502"),
    ("phone", "0171 1234503"),
    ("phone", "+49 30 1234567"),  # blocked (shared call-center number)
    ("phone", "030 1234567"),  # blocked, other notation
    ("device_id", "D1"),
    ("device_id", "d2"),
    ("device_id", "D3"),
    ("anonymous_id", "a1"),
    ("anonymous_id", "a2"),
    ("anonymous_id", "a3"),
    ("anonymous_id", "a4"),
    ("anonymous_id", "a5"),
    ("loyalty_card", "L 1"),
    ("loyalty_card", "L  2"),
]

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
ZONES = [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5))]


@st.composite
def events(draw: st.DrawFn) -> list[Event]:
    """Events over a small universe: few times (ties), some event ids reused."""
    # a random slice of the universe keeps the graphs dense: more links, more conflicts
    pool = draw(st.lists(st.sampled_from(RAW_IDENTIFIERS), min_size=2, max_size=12, unique=True))
    count = draw(st.integers(min_value=1, max_value=20))
    result: list[Event] = []
    for index in range(count):
        identifiers = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4))
        minute = draw(st.integers(min_value=0, max_value=5))
        zone = draw(st.sampled_from(ZONES))
        time = (T0 + timedelta(minutes=minute)).astimezone(zone)
        reuse_id = draw(st.integers(min_value=0, max_value=9)) == 0
        event_id = "e0" if reuse_id else f"e{index:02d}"
        result.append((event_id, time, identifiers))
    return result


def deliveries(draw: Callable[[st.SearchStrategy[Any]], Any], batch: list[Event]) -> list[Event]:
    """The batch shuffled, with some events delivered several times."""
    extra: list[Event] = draw(st.lists(st.sampled_from(batch), max_size=len(batch)))
    shuffled: list[Event] = draw(st.permutations(batch + extra))
    return shuffled


# --------------------------------------------------------------------------- reference


def reference_snapshot(batch: list[Event], config: IdentityConfig) -> dict[str, str]:
    """The rule, written naively and independently of cdp.identity.graph/clustering."""
    first: dict[tuple[str, str], tuple[datetime, str]] = {}
    nodes: set[str] = set()
    for event_id, time, identifiers in batch:
        keys = usable_identifiers(identifiers, config)
        nodes.update(keys)
        evidence = (time.astimezone(UTC), event_id)
        for pair in combinations(sorted(keys), 2):
            if pair not in first or evidence < first[pair]:
                first[pair] = evidence
    clusters = {node: frozenset([node]) for node in nodes}
    for a, b in sorted(first, key=lambda pair: (first[pair], pair)):
        if clusters[a] is clusters[b]:
            continue
        joined = clusters[a] | clusters[b]
        counts = Counter(key.split(":", 1)[0] for key in joined)
        limits = {t: config.max_per_profile(t) for t in counts}
        if any(limits[t] is not None and counts[t] > limits[t] for t in counts):  # type: ignore[operator]
            continue
        for node in joined:
            clusters[node] = joined
    snapshot = {}
    for node, members in clusters.items():
        anchor = min(members, key=lambda k: (config.priority(k.split(":", 1)[0]), k))
        snapshot[node] = "p-" + hashlib.sha256(anchor.encode()).hexdigest()[:20]
    return dict(sorted(snapshot.items()))


def all_candidate_ids(batch: list[Event], config: IdentityConfig) -> list[str]:
    keys = {key for _, _, identifiers in batch for key in usable_identifiers(identifiers, config)}
    return ["p-" + hashlib.sha256(key.encode()).hexdigest()[:20] for key in sorted(keys)]


def run(
    events_in_order: list[Event], config: IdentityConfig
) -> tuple[IdentityGraph, dict[IdentifierKey, ProfileId], list[GraphChange]]:
    graph = IdentityGraph(config)
    replay: dict[IdentifierKey, ProfileId] = {}
    changes = []
    for event_id, time, identifiers in events_in_order:
        change = graph.add_event(event_id, time, identifiers)
        replay.update(change.assignments)
        changes.append(change)
        # merged-away ids resolve to their survivor right after the merge
        for merge in change.merges:
            for absorbed in merge.absorbed:
                assert graph.resolve(absorbed) == merge.survivor
                assert graph.members(absorbed) == ()
        for split in change.splits:
            assert all(graph.members(part) for part in split.parts)
    return graph, replay, changes


def check_invariants(graph: IdentityGraph, config: IdentityConfig) -> None:
    snapshot = graph.snapshot()
    assert not any(config.is_blocked(key) for key in snapshot)
    by_profile: dict[ProfileId, list[IdentifierKey]] = {}
    for key, profile in snapshot.items():
        by_profile.setdefault(profile, []).append(key)
    assert sorted(by_profile) == graph.profile_ids()
    for profile, members in by_profile.items():
        assert graph.members(profile) == tuple(members)
        counts = Counter(key_type(key) for key in members)
        for id_type, count in counts.items():
            limit = config.max_per_profile(id_type)
            assert limit is None or count <= limit
        anchor = min(members, key=lambda k: (config.priority(key_type(k)), k))
        assert graph.anchor(profile) == anchor


# --------------------------------------------------------------------------- properties

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
SECONDARY_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(config=CONFIGS, batch=events(), data=st.data())
def test_any_order_and_duplicates_give_the_same_state(
    config: IdentityConfig, batch: list[Event], data: st.DataObject
) -> None:
    expected = reference_snapshot(batch, config)
    in_order, replay_a, _ = run(batch, config)
    shuffled, replay_b, _ = run(deliveries(data.draw, batch), config)

    assert in_order.snapshot() == expected
    assert shuffled.snapshot() == expected
    # the stream of changes converges to the same state
    assert dict(sorted(replay_a.items())) == expected
    assert dict(sorted(replay_b.items())) == expected
    # alias resolution is a function of the final state
    for candidate in all_candidate_ids(batch, config):
        assert (
            in_order.resolve(candidate)
            == shuffled.resolve(candidate)
            == expected.get(next(k for k in expected if _cid(k) == candidate))
        )
    check_invariants(shuffled, config)
    # the primary identifier decides the event's profile
    for _, _, identifiers in batch:
        keys = usable_identifiers(identifiers, config)
        if keys:
            primary = min(keys, key=lambda k: (config.priority(key_type(k)), k))
            assert shuffled.profile_for_event(keys) == expected[primary]


def _cid(key: str) -> str:
    return "p-" + hashlib.sha256(key.encode()).hexdigest()[:20]


@SECONDARY_SETTINGS
@given(config=CONFIGS, batch=events(), data=st.data())
def test_re_adding_any_seen_event_changes_nothing(
    config: IdentityConfig, batch: list[Event], data: st.DataObject
) -> None:
    graph, _, _ = run(batch, config)
    before = graph.to_state()
    for event_id, time, identifiers in deliveries(data.draw, batch):
        assert graph.add_event(event_id, time, identifiers).is_empty
    assert graph.to_state() == before


@SECONDARY_SETTINGS
@given(
    config=CONFIGS,
    batch=events(),
    partitions=st.integers(min_value=1, max_value=4),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_partitioned_graphs_merge_to_the_same_state(
    config: IdentityConfig, batch: list[Event], partitions: int, seed: int
) -> None:
    rng = random.Random(seed)
    graphs = [IdentityGraph(config) for _ in range(partitions)]
    for event in batch:
        graphs[rng.randrange(partitions)].add_event(*event)
        if rng.random() < 0.2:  # a duplicate delivered to another partition
            graphs[rng.randrange(partitions)].add_event(*event)
    expected = reference_snapshot(batch, config)

    merged = IdentityGraph(config)
    replay: dict[IdentifierKey, ProfileId] = {}
    order = list(range(partitions)) * 2  # every partition merged twice: idempotent
    rng.shuffle(order)
    for index in order:
        replay.update(merged.merge_records(graphs[index].to_records()).assignments)
    assert merged.snapshot() == expected
    assert dict(sorted(replay.items())) == expected

    # the persisted form (JSON, per-identifier records) restores the same state
    restored = IdentityGraph.from_state(json.loads(json.dumps(merged.to_state())), config)
    assert restored.snapshot() == expected
    # and every record is symmetric: the pair's evidence is stored at both ends
    records = restored.to_records()
    for key, record in records.items():
        for neighbour, evidence in record["edges"].items():
            assert records[neighbour]["edges"][key] == evidence


@SECONDARY_SETTINGS
@given(config=CONFIGS, batch=events(), data=st.data())
def test_touched_records_are_enough_to_persist_the_graph(
    config: IdentityConfig, batch: list[Event], data: st.DataObject
) -> None:
    """Writing only the records of ``GraphChange.touched`` keeps a changelog complete."""
    graph = IdentityGraph(config)
    table: dict[str, object] = {}
    for event in deliveries(data.draw, batch):
        change = graph.add_event(*event)
        for key in change.touched:
            table[key] = json.loads(json.dumps(graph.record(key)))
    assert table == json.loads(json.dumps(graph.to_records()))
    restored = IdentityGraph.from_records(table, config)  # type: ignore[arg-type]
    assert restored.snapshot() == graph.snapshot()
