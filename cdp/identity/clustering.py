"""The clustering rule as a pure function, and the profile-id derivation.

Identifiers are nodes; two identifiers that occurred together on an event
form an edge, labelled with its *first evidence* ``(event_time, event_id)``
(the minimum over all events carrying the pair). Clusters (profiles) are
built by union-find over the edges in canonical order,
``(event_time, event_id, key_a, key_b)`` with ``key_a < key_b``; a union is
refused when the joined cluster would hold more identifiers of some type
than that type's ``max_per_profile``. Each cluster's anchor is its strongest
member, minimal ``(priority, key)``, and the profile id is derived from it.

Because the edge labels are minima over the event set and the order is a
total order on edges, the result is a function of the set of events only.
:class:`~cdp.identity.graph.IdentityGraph` applies this rule incrementally;
:func:`cluster` is the reference used for (re)computing whole components.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import NamedTuple, NewType

from cdp.identity.config import IdentityConfig
from cdp.identity.identifiers import IdentifierKey, key_type

ProfileId = NewType("ProfileId", str)
"""``"p-"`` + 20 hex chars of ``sha256(anchor key)``."""

PROFILE_ID_PREFIX = "p-"
PROFILE_ID_HEX_CHARS = 20


class Evidence(NamedTuple):
    """First evidence of an edge: the earliest ``(event_time in UTC, event_id)``."""

    time: datetime
    event_id: str


Edge = tuple[Evidence, IdentifierKey, IdentifierKey]
"""An edge in canonical form: ``(evidence, a, b)`` with ``a < b``; tuples sort canonically."""


def utc(event_time: datetime) -> datetime:
    """The instant in UTC; naive datetimes are refused (they are ambiguous)."""
    if event_time.tzinfo is None or event_time.utcoffset() is None:
        raise ValueError("event_time must be timezone-aware")
    return event_time.astimezone(UTC)


def candidate_id(key: IdentifierKey | str) -> ProfileId:
    """The profile id a cluster anchored by ``key`` has (also: ``key``'s alias)."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return ProfileId(PROFILE_ID_PREFIX + digest[:PROFILE_ID_HEX_CHARS])


def rank(key: IdentifierKey, config: IdentityConfig) -> tuple[int, str]:
    """Strength of an identifier, smaller is stronger: ``(priority of its type, key)``."""
    return config.priority(key_type(key)), key


def type_counts(members: Iterable[IdentifierKey]) -> dict[str, int]:
    """How many identifiers of each type a set of members holds."""
    counts: dict[str, int] = {}
    for key in members:
        id_type = key_type(key)
        counts[id_type] = counts.get(id_type, 0) + 1
    return counts


def may_join(left: dict[str, int], right: dict[str, int], config: IdentityConfig) -> bool:
    """Whether two clusters with these type counts may become one (limits respected)."""
    if len(right) < len(left):
        left, right = right, left
    for id_type, count in left.items():
        other = right.get(id_type)
        if other is not None:
            limit = config.max_per_profile(id_type)
            if limit is not None and count + other > limit:
                return False
    return True


class _Group:
    __slots__ = ("anchor", "counts", "members")

    def __init__(self, key: IdentifierKey) -> None:
        self.anchor = key
        self.members = [key]
        self.counts = {key_type(key): 1}


def cluster(
    nodes: Iterable[IdentifierKey], edges: Iterable[Edge], config: IdentityConfig
) -> dict[IdentifierKey, IdentifierKey]:
    """Apply the clustering rule; map every node to its cluster's anchor.

    ``edges`` may come in any order (they are sorted here); both ends of each
    edge must be among ``nodes``. Cost: ``O(E log E + N log N)``.
    """
    group_of: dict[IdentifierKey, _Group] = {key: _Group(key) for key in nodes}
    for _evidence, a, b in sorted(edges):
        ga, gb = group_of[a], group_of[b]
        if ga is gb or not may_join(ga.counts, gb.counts, config):
            continue
        if len(ga.members) < len(gb.members):
            ga, gb = gb, ga
        for key in gb.members:
            group_of[key] = ga
        ga.members.extend(gb.members)
        for id_type, count in gb.counts.items():
            ga.counts[id_type] = ga.counts.get(id_type, 0) + count
        if rank(gb.anchor, config) < rank(ga.anchor, config):
            ga.anchor = gb.anchor
    return {key: group.anchor for key, group in group_of.items()}


def iter_pairs(keys: list[IdentifierKey]) -> Iterator[tuple[IdentifierKey, IdentifierKey]]:
    """All pairs ``(a, b)``, ``a < b``, of a sorted, duplicate-free key list, in order."""
    for index, a in enumerate(keys):
        for b in keys[index + 1 :]:
            yield a, b
