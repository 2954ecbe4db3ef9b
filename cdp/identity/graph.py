"""The deterministic identity graph: evidence in, profile assignments out.

:class:`IdentityGraph` keeps, for every pair of usable identifiers that
occurred together on an event, the pair's *first evidence* (the minimal
``(event_time, event_id)`` over all events carrying it) and every identifier
ever seen. Profiles are the clusters of the rule in
:mod:`cdp.identity.clustering`; as the evidence is a function of the set of
events, so are the profiles: order, duplicates and partitioning of the input
do not matter.

Incremental work per event:

* nothing new (a duplicate, or only later evidence for known pairs):
  ``O(k^2)`` dict look-ups for an event with ``k`` identifiers, no change;
* only new pairs that sort after every edge of the touched components (the
  usual case for a stream that is roughly in time order): the unions are
  applied directly to the current clusters, ``O(k^2 + size of the clusters)``;
* otherwise (a late event, or an earlier evidence for a known pair): the
  connected component(s) of the event are re-clustered from their edges,
  ``O(E log E)`` for a component with ``E`` edges. Other components are never
  visited.

Persistence (changelog): the evidence is the whole state; profiles are derived.
It is stored as one :class:`IdentityRecord` per identifier key,
``{"edges": {neighbour_key: [event_time_iso_utc, event_id]}}``; every edge is
stored at both ends. After :meth:`IdentityGraph.add_event`, the records of the
keys in :attr:`GraphChange.touched` are the ones to (re)write, e.g. to a Faust
table keyed by identifier key. :meth:`IdentityGraph.from_records` rebuilds the
graph, taking the union of the records and the earlier evidence where the two
ends disagree (a half-written pair heals), so loading is tolerant of a crash
between two writes; re-delivery of the event repairs the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from cdp.identity.clustering import (
    Edge,
    Evidence,
    ProfileId,
    candidate_id,
    cluster,
    iter_pairs,
    may_join,
    rank,
    type_counts,
    utc,
)
from cdp.identity.config import IdentityConfig, default_identity_config
from cdp.identity.identifiers import (
    IdentifierKey,
    RawIdentifier,
    primary_identifier,
    split_key,
    usable_identifiers,
)

STATE_VERSION = 1
"""Version of the :meth:`IdentityGraph.to_state` format."""


@dataclass(frozen=True, slots=True)
class Merge:
    """Existing profiles became one: ``absorbed`` ids now resolve to ``survivor``.

    A single absorbed id whose members all moved to a new ``survivor`` is a
    re-anchoring: a stronger identifier joined the profile and renamed it.
    """

    survivor: ProfileId
    absorbed: tuple[ProfileId, ...]
    event_id: str


@dataclass(frozen=True, slots=True)
class Split:
    """A late event re-clustered ``source``: its former members now sit in ``parts``.

    ``parts`` may include ``source`` itself when its anchor stayed and only
    some members moved away.
    """

    source: ProfileId
    parts: tuple[ProfileId, ...]
    event_id: str


@dataclass(frozen=True, slots=True)
class GraphChange:
    """What one :meth:`IdentityGraph.add_event` changed.

    ``assignments`` holds the new profile of every identifier whose profile
    changed (identifiers seen for the first time included), in key order;
    applying the assignments of all changes in order to an empty dict gives
    :meth:`IdentityGraph.snapshot`. ``touched`` names the identifiers whose
    stored :class:`IdentityRecord` changed. ``profile_id`` is the event's
    profile after the change (see :meth:`IdentityGraph.profile_for_event`);
    ``None`` if the event had no usable identifier.
    """

    event_id: str
    profile_id: ProfileId | None
    assignments: Mapping[IdentifierKey, ProfileId] = field(default_factory=dict)
    merges: tuple[Merge, ...] = ()
    splits: tuple[Split, ...] = ()
    touched: frozenset[IdentifierKey] = frozenset()

    @property
    def is_empty(self) -> bool:
        """True when the event added no evidence (nothing to emit, nothing to store)."""
        return not (self.assignments or self.merges or self.splits or self.touched)


@dataclass(frozen=True, slots=True)
class Forgetting:
    """What :meth:`IdentityGraph.forget` removed and changed.

    ``erased`` are the identifier keys that left the graph (their records are
    to be deleted), ``profile_ids`` every id that named them (their current
    profiles and their candidate ids, which other ids may alias to).
    ``assignments`` holds the new profile of every remaining identifier whose
    profile changed because its links to erased identifiers are gone, and
    ``touched`` the remaining identifiers whose records lost an edge.
    """

    erased: frozenset[IdentifierKey]
    profile_ids: frozenset[ProfileId]
    assignments: Mapping[IdentifierKey, ProfileId] = field(default_factory=dict)
    previous: Mapping[IdentifierKey, ProfileId] = field(default_factory=dict)
    """The former profile of each identifier in ``assignments``."""
    touched: frozenset[IdentifierKey] = frozenset()


class IdentityRecord(TypedDict):
    """Stored evidence of one identifier: ``{"edges": {neighbour: [time_iso, event_id]}}``."""

    edges: dict[str, list[str]]


class IdentityGraph:
    """Identity resolution state of one (single-partition) identity agent.

    Not thread-safe; one instance per agent. All queries are answered from the
    current state, which depends only on the set of events added so far.
    """

    def __init__(self, config: IdentityConfig | None = None) -> None:
        """An empty graph using ``config`` (default: the packaged configuration)."""
        self._config = config if config is not None else default_identity_config()
        # the evidence (the whole persistent state)
        self._edges: dict[IdentifierKey, dict[IdentifierKey, Evidence]] = {}
        # the derived clustering
        self._profile: dict[IdentifierKey, ProfileId] = {}
        self._members: dict[ProfileId, set[IdentifierKey]] = {}
        self._by_candidate: dict[ProfileId, IdentifierKey] = {}
        # connected components (union-find), with the greatest edge of each
        self._comp_parent: dict[IdentifierKey, IdentifierKey] = {}
        self._comp_size: dict[IdentifierKey, int] = {}
        self._comp_max: dict[IdentifierKey, Edge] = {}

    @property
    def config(self) -> IdentityConfig:
        """The identity configuration in use."""
        return self._config

    # ------------------------------------------------------------------ input

    def add_event(
        self, event_id: str, event_time: datetime, identifiers: Iterable[RawIdentifier]
    ) -> GraphChange:
        """Add the evidence of one event, given its raw ``(type, value)`` identifiers.

        Invalid, blank and blocked identifiers are dropped (see
        :func:`~cdp.identity.identifiers.usable_identifiers`). Adding an
        event again is a no-op that returns an empty change.
        """
        return self.add_keys(event_id, event_time, usable_identifiers(identifiers, self._config))

    def add_keys(
        self, event_id: str, event_time: datetime, keys: Iterable[IdentifierKey]
    ) -> GraphChange:
        """Like :meth:`add_event` for already normalised keys (blocked ones are dropped).

        Raises :class:`ValueError` for a string that is not an identifier key
        (no ``:``) or a naive ``event_time``.
        """
        evidence = Evidence(utc(event_time), event_id)
        ordered = sorted({key for key in keys if not self._config.is_blocked(key)})
        for key in ordered:
            if ":" not in key:
                raise ValueError("not an identifier key (no ':')")
        new_nodes = [key for key in ordered if key not in self._edges]
        new_pairs: list[tuple[IdentifierKey, IdentifierKey]] = []
        earlier_pairs: list[tuple[IdentifierKey, IdentifierKey]] = []
        for a, b in iter_pairs(ordered):
            known = self._edges.get(a)
            current = None if known is None else known.get(b)
            if current is None:
                new_pairs.append((a, b))
            elif evidence < current:
                earlier_pairs.append((a, b))
        if not (new_nodes or new_pairs or earlier_pairs):
            return GraphChange(event_id, self.profile_for_event(ordered))

        fast = not earlier_pairs and (
            not new_pairs or self._components_end_before(ordered, (evidence, *new_pairs[0]))
        )
        for key in new_nodes:
            self._add_node(key)
        touched = set(new_nodes)
        for a, b in new_pairs + earlier_pairs:
            self._edges[a][b] = evidence
            self._edges[b][a] = evidence
            self._union_components(a, b, (evidence, a, b))
            touched.add(a)
            touched.add(b)

        old: dict[IdentifierKey, ProfileId | None] = {}
        if fast:
            self._apply_unions(new_nodes, new_pairs, old)
        else:
            self._recompute(ordered[0], old)
        return self._change(event_id, old, touched, ordered)

    def merge_records(
        self,
        records: Mapping[str, IdentityRecord] | Iterable[tuple[str, IdentityRecord]],
        origin: str = "records",
    ) -> GraphChange:
        """Merge stored evidence (e.g. another graph's records) into this graph.

        The merge is commutative, associative and idempotent: per pair the
        earlier evidence wins, node sets are united. Records of blocked keys
        and edges to blocked keys are ignored (so a newly blocked value stops
        linking after a reload). ``origin`` labels the merges and splits.
        Raises :class:`ValueError` on a malformed record.
        """
        items = records.items() if isinstance(records, Mapping) else records
        touched: set[IdentifierKey] = set()
        for raw_key, record in items:
            key = _checked_key(raw_key)
            if self._config.is_blocked(key):
                continue
            if key not in self._edges:
                self._add_node(key)
                touched.add(key)
            for raw_neighbour, evidence in _record_edges(record):
                neighbour = _checked_key(raw_neighbour)
                if neighbour == key or self._config.is_blocked(neighbour):
                    continue
                if neighbour not in self._edges:
                    self._add_node(neighbour)
                    touched.add(neighbour)
                current = self._edges[key].get(neighbour)
                if current is None or evidence < current:
                    self._edges[key][neighbour] = evidence
                    self._edges[neighbour][key] = evidence
                    a, b = sorted((key, neighbour))
                    self._union_components(a, b, (evidence, a, b))
                    touched.add(key)
                    touched.add(neighbour)
        old: dict[IdentifierKey, ProfileId | None] = {}
        for seed in sorted(touched):
            if seed not in old:
                self._recompute(seed, old)
        return self._change(origin, old, touched, [])

    def forget(self, keys: Iterable[IdentifierKey | str]) -> Forgetting:
        """Erase the people that ``keys`` belong to (GDPR): their identifiers and evidence.

        Every member of the current profile of each key (and each key itself) is
        removed with all its edges; the remaining identifiers of the connected
        components involved are re-clustered from their remaining evidence, so
        the result equals a graph built from the records without the erased
        keys. Cost: the size of those components. Unknown keys are ignored.
        """
        erased: set[IdentifierKey] = set()
        for raw in keys:
            key = IdentifierKey(raw)
            profile_id = self._profile.get(key)
            if profile_id is None:
                continue
            erased.add(key)
            erased.update(self._members.get(profile_id, ()))
        if not erased:
            return Forgetting(frozenset(), frozenset())
        profile_ids = {self._profile[key] for key in erased} | {candidate_id(k) for k in erased}
        component = set(erased)
        stack = list(erased)
        while stack:
            for neighbour in self._edges[stack.pop()]:
                if neighbour not in component:
                    component.add(neighbour)
                    stack.append(neighbour)
        remaining = sorted(component - erased)
        previous = {key: self._profile[key] for key in remaining}
        kept_edges = {
            key: {n: ev for n, ev in self._edges[key].items() if n not in erased}
            for key in remaining
        }
        touched = {key for key in remaining if len(kept_edges[key]) != len(self._edges[key])}
        for key in component:
            self._members.pop(self._profile[key], None)
            del self._profile[key]
            del self._edges[key]
            self._by_candidate.pop(candidate_id(key), None)
            del self._comp_parent[key]
            self._comp_size.pop(key, None)
            self._comp_max.pop(key, None)
        for key in remaining:
            self._add_node(key)
        for key in remaining:
            for neighbour, evidence in kept_edges[key].items():
                if key < neighbour:
                    self._edges[key][neighbour] = evidence
                    self._edges[neighbour][key] = evidence
                    self._union_components(key, neighbour, (evidence, key, neighbour))
        old: dict[IdentifierKey, ProfileId | None] = {}
        for key in remaining:
            if key not in old:
                self._recompute(key, old)
        assignments = {k: self._profile[k] for k in remaining if self._profile[k] != previous[k]}
        return Forgetting(
            erased=frozenset(erased),
            profile_ids=frozenset(profile_ids),
            assignments=assignments,
            previous={key: previous[key] for key in assignments},
            touched=frozenset(touched),
        )

    # ---------------------------------------------------------------- queries

    def profile_of(self, key: IdentifierKey | str) -> ProfileId | None:
        """Current profile of an identifier key; ``None`` if never seen (or blocked)."""
        return self._profile.get(IdentifierKey(key))

    def members(self, profile_id: ProfileId | str) -> tuple[IdentifierKey, ...]:
        """Sorted identifier keys of a current profile id; empty if it is not current."""
        return tuple(sorted(self._members.get(ProfileId(profile_id), ())))

    def anchor(self, profile_id: ProfileId | str) -> IdentifierKey | None:
        """The identifier that names a current profile (its strongest member)."""
        if ProfileId(profile_id) not in self._members:
            return None
        return self._by_candidate[ProfileId(profile_id)]

    def resolve(self, profile_or_candidate_id: ProfileId | str) -> ProfileId | None:
        """The current profile id for any id that ever named a cluster of these identifiers.

        Every identifier's candidate id (the id it has when it anchors a
        cluster) resolves to the identifier's current profile, so an id that
        was merged away resolves to its survivor. A function of the current
        state only. ``None`` for ids of identifiers never seen.
        """
        key = self._by_candidate.get(ProfileId(profile_or_candidate_id))
        return None if key is None else self._profile[key]

    def profile_for_event(self, keys: Iterable[IdentifierKey]) -> ProfileId | None:
        """Profile of an event: that of its primary (strongest usable) identifier.

        An event carrying a refused link (say a second customer id) thereby
        belongs to the profile of its strongest identifier's own customer.
        ``None`` if the event has no usable key or its primary key was never added.
        """
        primary = primary_identifier(
            (key for key in keys if not self._config.is_blocked(key)), self._config
        )
        return None if primary is None else self._profile.get(primary)

    def snapshot(self) -> dict[IdentifierKey, ProfileId]:
        """Every identifier's profile, in key order (canonical, for comparisons)."""
        return dict(sorted(self._profile.items()))

    def profile_ids(self) -> list[ProfileId]:
        """The current profile ids, sorted."""
        return sorted(self._members)

    def __len__(self) -> int:
        """Number of identifiers in the graph."""
        return len(self._edges)

    def __contains__(self, key: object) -> bool:
        """Whether an identifier key is in the graph."""
        return key in self._edges

    # ------------------------------------------------------------ persistence

    def record(self, key: IdentifierKey | str) -> IdentityRecord | None:
        """The stored form of one identifier's evidence; ``None`` if unknown."""
        edges = self._edges.get(IdentifierKey(key))
        if edges is None:
            return None
        return {
            "edges": {
                neighbour: [evidence.time.isoformat(), evidence.event_id]
                for neighbour, evidence in sorted(edges.items())
            }
        }

    def to_records(self) -> dict[str, IdentityRecord]:
        """All records, by identifier key (JSON-able)."""
        records: dict[str, IdentityRecord] = {}
        for key in sorted(self._edges):
            record = self.record(key)
            assert record is not None
            records[key] = record
        return records

    def to_state(self) -> dict[str, Any]:
        """The whole state as plain JSON-able data: ``{"version": 1, "records": {...}}``."""
        return {"version": STATE_VERSION, "records": self.to_records()}

    @classmethod
    def from_records(
        cls,
        records: Mapping[str, IdentityRecord] | Iterable[tuple[str, IdentityRecord]],
        config: IdentityConfig | None = None,
    ) -> IdentityGraph:
        """Rebuild a graph from per-identifier records (clusters are recomputed)."""
        graph = cls(config)
        graph.merge_records(records, origin="restore")
        return graph

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], config: IdentityConfig | None = None
    ) -> IdentityGraph:
        """Rebuild a graph from :meth:`to_state` output; :class:`ValueError` if malformed."""
        if state.get("version") != STATE_VERSION or not isinstance(state.get("records"), Mapping):
            raise ValueError(f"not an identity state of version {STATE_VERSION}")
        return cls.from_records(state["records"], config)

    # -------------------------------------------------------------- internals

    def _add_node(self, key: IdentifierKey) -> None:
        self._edges[key] = {}
        self._by_candidate[candidate_id(key)] = key
        self._comp_parent[key] = key
        self._comp_size[key] = 1

    def _find(self, key: IdentifierKey) -> IdentifierKey:
        parent = self._comp_parent
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def _union_components(self, a: IdentifierKey, b: IdentifierKey, edge: Edge) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            if self._comp_size[ra] < self._comp_size[rb]:
                ra, rb = rb, ra
            self._comp_parent[rb] = ra
            self._comp_size[ra] += self._comp_size.pop(rb)
            other = self._comp_max.pop(rb, None)
            if other is not None and (ra not in self._comp_max or other > self._comp_max[ra]):
                self._comp_max[ra] = other
        if ra not in self._comp_max or edge > self._comp_max[ra]:
            self._comp_max[ra] = edge

    def _components_end_before(self, keys: list[IdentifierKey], edge: Edge) -> bool:
        """Whether every edge of the components of ``keys`` sorts before ``edge``."""
        for key in keys:
            if key in self._comp_parent:
                greatest = self._comp_max.get(self._find(key))
                if greatest is not None and greatest > edge:
                    return False
        return True

    def _apply_unions(
        self,
        new_nodes: list[IdentifierKey],
        new_pairs: list[tuple[IdentifierKey, IdentifierKey]],
        old: dict[IdentifierKey, ProfileId | None],
    ) -> None:
        """Fast path: the new edges come last in canonical order; union current clusters."""
        for key in new_nodes:
            pid = candidate_id(key)
            old[key] = None
            self._profile[key] = pid
            self._members[pid] = {key}
        for a, b in new_pairs:  # already in canonical order: same evidence, sorted keys
            pa, pb = self._profile[a], self._profile[b]
            if pa == pb:
                continue
            ma, mb = self._members[pa], self._members[pb]
            if not may_join(type_counts(ma), type_counts(mb), self._config):
                continue
            for key in ma:
                old.setdefault(key, pa)
            for key in mb:
                old.setdefault(key, pb)
            a_wins = rank(self._by_candidate[pa], self._config) < rank(
                self._by_candidate[pb], self._config
            )
            survivor, loser_members = (pa, mb) if a_wins else (pb, ma)
            for key in loser_members:
                self._profile[key] = survivor
            big, small = (ma, mb) if len(ma) >= len(mb) else (mb, ma)
            big |= small
            del self._members[pa]
            del self._members[pb]
            self._members[survivor] = big

    def _recompute(self, seed: IdentifierKey, old: dict[IdentifierKey, ProfileId | None]) -> None:
        """Slow path: re-cluster the whole connected component of ``seed``."""
        nodes = {seed}
        stack = [seed]
        while stack:
            for neighbour in self._edges[stack.pop()]:
                if neighbour not in nodes:
                    nodes.add(neighbour)
                    stack.append(neighbour)
        edges: list[Edge] = [
            (evidence, a, b) for a in nodes for b, evidence in self._edges[a].items() if a < b
        ]
        for key in nodes:
            previous = self._profile.get(key)
            old.setdefault(key, previous)
            if previous is not None:
                self._members.pop(previous, None)
        ids: dict[IdentifierKey, ProfileId] = {}
        for key, anchor_key in cluster(nodes, edges, self._config).items():
            pid = ids.get(anchor_key)
            if pid is None:
                pid = ids[anchor_key] = candidate_id(anchor_key)
            self._profile[key] = pid
            self._members.setdefault(pid, set()).add(key)
        root = self._find(seed)
        if edges:
            self._comp_max[root] = max(edges)
        else:
            self._comp_max.pop(root, None)

    def _change(
        self,
        event_id: str,
        old: dict[IdentifierKey, ProfileId | None],
        touched: set[IdentifierKey],
        event_keys: list[IdentifierKey],
    ) -> GraphChange:
        assignments: dict[IdentifierKey, ProfileId] = {}
        now_in: dict[ProfileId, set[ProfileId]] = {}
        for key in sorted(old):
            before, after = old[key], self._profile[key]
            if before != after:
                assignments[key] = after
            if before is not None:
                now_in.setdefault(before, set()).add(after)
        absorbed: dict[ProfileId, list[ProfileId]] = {}
        splits: list[Split] = []
        for before, afters in sorted(now_in.items()):
            if len(afters) > 1:
                splits.append(Split(before, tuple(sorted(afters)), event_id))
            else:
                (after,) = afters
                if after != before:
                    absorbed.setdefault(after, []).append(before)
        merges = tuple(
            Merge(survivor, tuple(ids), event_id) for survivor, ids in sorted(absorbed.items())
        )
        return GraphChange(
            event_id=event_id,
            profile_id=self.profile_for_event(event_keys),
            assignments=assignments,
            merges=merges,
            splits=tuple(splits),
            touched=frozenset(touched),
        )


def _checked_key(raw: object) -> IdentifierKey:
    if not isinstance(raw, str):
        raise ValueError("identifier key must be a string")
    split_key(raw)
    return IdentifierKey(raw)


def _record_edges(record: object) -> Iterable[tuple[str, Evidence]]:
    edges = record.get("edges") if isinstance(record, Mapping) else None
    if not isinstance(edges, Mapping):
        raise ValueError("identity record without an 'edges' mapping")
    for neighbour, value in edges.items():
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(isinstance(part, str) for part in value)
        ):
            raise ValueError("identity record edge must be [event_time_iso, event_id]")
        try:
            time = utc(datetime.fromisoformat(value[0]))
        except ValueError:
            raise ValueError("identity record edge has a bad event time") from None
        yield neighbour, Evidence(time, value[1])
