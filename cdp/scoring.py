"""Score identity resolution and profiles in Redis against a generated ground truth.

The expected profiles of a :class:`~cdp.samples.Dataset`: for every true
customer, the usable identifier keys of their events, grouped into the
connected components their events link (an anonymous visitor who is never
identified stays a profile of their own). Two customers never share a profile:
the only values they share are blocked ones.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from cdp.identity.config import IdentityConfig
from cdp.identity.identifiers import primary_identifier, usable_identifiers
from cdp.samples import Dataset
from cdp.serve.store import ReadModelStore


@dataclass
class Expected:
    """What the read model must hold for a dataset."""

    clusters: list[frozenset[str]]
    """Identifier keys per expected profile."""
    owner: dict[str, str]
    """identifier key -> true customer."""
    events_per_cluster: Counter[int] = field(default_factory=Counter)
    """index into ``clusters`` -> number of distinct events whose primary key is in it."""

    @property
    def keys(self) -> int:
        """Number of identifier keys."""
        return len(self.owner)


def expected_profiles(dataset: Dataset, config: IdentityConfig) -> Expected:
    """The profiles a correct pipeline builds from ``dataset``."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    owner: dict[str, str] = {}
    primaries: dict[str, str] = {}
    for event in dataset.events:
        keys = usable_identifiers(((i.type, i.value) for i in event.identifiers), config)
        customer = dataset.truth[event.event_id]
        for key in keys:
            if owner.setdefault(key, customer) != customer:
                raise AssertionError(f"generator bug: {key} belongs to two customers")
            parent.setdefault(key, key)
        for key in keys[1:]:
            parent[find(key)] = find(keys[0])
        strongest = primary_identifier(keys, config)
        if strongest is not None:
            primaries[event.event_id] = strongest
    groups: dict[str, set[str]] = defaultdict(set)
    for member in parent:
        groups[find(member)].add(member)
    clusters = sorted((frozenset(g) for g in groups.values()), key=lambda c: min(c))
    index = {key: i for i, cluster in enumerate(clusters) for key in cluster}
    expected = Expected(clusters=clusters, owner=owner)
    for event_primary in primaries.values():
        expected.events_per_cluster[index[event_primary]] += 1
    return expected


def score(expected: Expected, store: ReadModelStore) -> list[str]:
    """Problems of the read model against the expectation; empty = exact match.

    Checks: every identifier resolves (lookup) to a profile; the keys of one
    expected cluster share one profile and no two clusters share one; that
    profile's document lists exactly the cluster's keys and counts exactly its
    events; no other profile documents exist.
    """
    problems: list[str] = []
    cluster_profile: dict[int, str] = {}
    seen_profiles: dict[str, int] = {}
    for index, cluster in enumerate(expected.clusters):
        found = {key: store.lookup(key) for key in sorted(cluster)}
        profiles = set(found.values())
        if None in profiles:
            missing = sum(1 for p in found.values() if p is None)
            problems.append(f"cluster {index}: {missing} of {len(cluster)} keys not indexed")
            continue
        if len(profiles) != 1:
            problems.append(f"cluster {index}: split over {len(profiles)} profiles")
            continue
        profile_id = profiles.pop()
        assert profile_id is not None
        if profile_id in seen_profiles:
            problems.append(f"clusters {seen_profiles[profile_id]} and {index} share {profile_id}")
            continue
        seen_profiles[profile_id] = index
        cluster_profile[index] = profile_id
        raw = store.get_profile(profile_id)
        if raw is None:
            problems.append(f"cluster {index}: profile {profile_id} has no document")
            continue
        document = json.loads(raw)
        if set(document["identifiers"]) != set(cluster):
            problems.append(f"cluster {index}: document identifiers differ")
        if document["event_count"] != expected.events_per_cluster[index]:
            problems.append(
                f"cluster {index}: {document['event_count']} events,"
                f" {expected.events_per_cluster[index]} expected"
            )
    extra = set(store.dump()["profiles"]) - set(cluster_profile.values())
    if extra:
        problems.append(f"{len(extra)} profiles that match no expected cluster")
    return problems
