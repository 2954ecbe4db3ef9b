"""The identity stream processor: observations in, assignments, members and merges out.

Runs on the single partition of ``{ns}.identity.observations`` so one
:class:`~cdp.identity.graph.IdentityGraph` sees every identifier. Its evidence
is kept in the Faust table ``identity-graph`` (one record per identifier key,
changelog-backed). For every observation it

* stores the records the graph touched,
* sends the new assignment of every identifier whose profile changed to
  ``identity.assignments`` (keyed by identifier key, so it lands on the same
  partition as that identifier's canonical events),
* sends the authoritative member list of every affected profile to
  ``profile.facts`` (keyed by profile id; empty list = id no longer current),
* sends merges to ``identity.merges``, and
* writes the identifier index and aliases to Redis (version = input offset).

On recovery (start, restart, rebalance) it re-publishes every assignment, member
list and index entry: whatever a crash lost between a table write and an output
is repaired, and everything downstream is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import faust

from cdp.identity.clustering import ProfileId, candidate_id
from cdp.identity.config import IdentityConfig
from cdp.identity.graph import Forgetting, GraphChange, IdentityGraph, Merge
from cdp.identity.identifiers import IdentifierKey
from cdp.messages import (
    Assignment,
    ErasureRequest,
    MembersSet,
    Observation,
    ProfileErased,
    dumps,
    parse_identity_input,
)
from cdp.outputs import OutputBatch, Outputs
from cdp.serve.outage import apply_waiting
from cdp.serve.store import ReadModelStore
from cdp.serve.writes import AliasSet, IdentifierLink, IdentifierUnlink, Write
from cdp.streams import delete, json_table, put, raw_topic, stage_agent
from cdp.topics import Topics

log = logging.getLogger(__name__)

OFFSET_KEY = "__offset__"
"""Table entry holding the last processed observation offset (version of re-publishes)."""


class IdentityState:
    """The graph plus what was last published per identifier (to find old profiles)."""

    def __init__(self, config: IdentityConfig) -> None:
        self.config = config
        self.graph = IdentityGraph(config)
        self.published: dict[IdentifierKey, ProfileId] = {}

    def restore(self, records: Iterable[tuple[str, Any]]) -> None:
        """Rebuild from the table's records."""
        self.graph = IdentityGraph.from_records(
            ((_text(key), record) for key, record in records if _text(key) != OFFSET_KEY),
            self.config,
        )
        self.published = dict(self.graph.snapshot())

    def apply(self, observation: Observation) -> tuple[GraphChange, set[ProfileId]]:
        """Add one observation; return the change and every affected profile id."""
        change = self.graph.add_keys(
            observation.event_id,
            observation.event_time,
            (IdentifierKey(key) for key in observation.keys),
        )
        affected: set[ProfileId] = set()
        for key, profile_id in change.assignments.items():
            old = self.published.get(key)
            if old is not None:
                affected.add(old)
            affected.add(profile_id)
            self.published[key] = profile_id
        return change, affected

    def forget(self, request: ErasureRequest) -> tuple[Forgetting, set[ProfileId]]:
        """Erase the person(s) of ``request``; return what changed and the affected profiles.

        The affected profiles are those of remaining identifiers that changed
        profile (their member lists are to be re-sent); the erased ids are in
        :attr:`Forgetting.profile_ids`.
        """
        forgetting = self.graph.forget(IdentifierKey(key) for key in request.keys)
        for key in forgetting.erased:
            self.published.pop(key, None)
        affected: set[ProfileId] = set(forgetting.previous.values())
        for key, profile_id in forgetting.assignments.items():
            affected.add(profile_id)
            self.published[key] = profile_id
        return forgetting, affected


def identity_writes(key: str, profile_id: str, version: int) -> list[Write]:
    """Redis writes for one assignment: the index entry and the identifier's alias.

    The alias ``candidate_id(key) -> profile_id`` is written even when the two are
    equal (a self-alias, which readers treat as "current"), so the alias set is a
    function of the final assignments: a rebuild from Kafka writes the same set.
    """
    return [
        IdentifierLink(key, profile_id, version),
        AliasSet(candidate_id(key), profile_id, version),
    ]


def register_identity(
    app: faust.App,
    topics: Topics,
    config: IdentityConfig,
    store: ReadModelStore,
    outputs: Outputs,
) -> Any:
    """Attach the identity agent and its table to ``app``; return the agent."""
    source = raw_topic(app, topics.observations, partitions=1)
    table = json_table(app, "identity-graph", partitions=1)
    state = IdentityState(config)

    async def publish(keys: Iterable[str], profiles: Iterable[str], version: int) -> None:
        writes: list[Write] = []
        out = outputs.batch()
        for key in keys:
            current = state.graph.profile_of(key)
            if current is None:
                continue
            out.send(topics.assignments, key.encode(), Assignment(current, version).to_bytes())
            writes += identity_writes(key, current, version)
        for profile in profiles:
            members = state.graph.members(profile)
            out.send(topics.facts, profile.encode(), MembersSet(members, version).to_bytes())
        await out.delivered()
        await apply_waiting(store, writes, "identity")

    @table.on_recover  # type: ignore[untyped-decorator]
    async def republish() -> None:
        state.restore(table.items())
        version = int(table.get(OFFSET_KEY.encode()) or 0)
        snapshot = state.graph.snapshot()
        current = set(snapshot.values())
        gone = {candidate_id(key) for key in snapshot} - current
        log.info(
            "identity: restored %d identifiers in %d profiles; re-publishing",
            len(snapshot),
            len(current),
        )
        await publish(snapshot, sorted(current | gone), version)

    async def identity(stream: Any) -> None:
        async for batch in stream.take_events(1000, within=0.05):
            writes: list[Write] = []
            out = outputs.batch()
            touched: set[IdentifierKey] = set()
            for event in batch:
                version = event.message.offset
                message = parse_identity_input(event.message.value)
                if isinstance(message, ErasureRequest):
                    forgetting, affected = state.forget(message)
                    touched |= forgetting.erased | forgetting.touched
                    writes += _erasure_outputs(out, topics, state, forgetting, affected, version)
                    log.info(
                        "identity: erased %d identifiers of %d profile ids (audit %s)",
                        len(forgetting.erased),
                        len(forgetting.profile_ids),
                        message.audit_id,
                    )
                    continue
                change, affected = state.apply(message)
                touched |= change.touched
                for key, profile_id in change.assignments.items():
                    out.send(
                        topics.assignments, key.encode(), Assignment(profile_id, version).to_bytes()
                    )
                    writes += identity_writes(key, profile_id, version)
                for profile_id in sorted(affected):
                    members = MembersSet(state.graph.members(profile_id), version)
                    out.send(topics.facts, profile_id.encode(), members.to_bytes())
                for merge in change.merges:
                    out.send(topics.merges, merge.survivor.encode(), _merge(merge))
            # Outputs first, state second: once the graph records say an observation was
            # applied, everything it produced is on the broker. (Merges cannot be
            # re-derived by the re-publish on recovery; assignments and members could.)
            await out.delivered()
            await apply_waiting(store, writes, "identity")
            saved = outputs.batch()
            for key in sorted(touched):
                record = state.graph.record(key)
                if record is None:  # erased
                    delete(table, saved, 0, key.encode())
                else:
                    put(table, saved, 0, key.encode(), record)
            put(table, saved, 0, OFFSET_KEY.encode(), batch[-1].message.offset)
            await saved.delivered()

    return stage_agent(app, source, f"{topics.namespace}.identity", identity)


def _erasure_outputs(
    out: OutputBatch,
    topics: Topics,
    state: IdentityState,
    forgetting: Forgetting,
    affected: set[ProfileId],
    version: int,
) -> list[Write]:
    """Queue what an erasure tells the other stages; return its Redis writes.

    Assignment tombstones make the facts stage forget the identifiers and their
    facts (and compaction drop the old assignments); :class:`ProfileErased`
    makes the profile stage forget every id that named the person and delete
    it in Redis and ``profile.changes``. Remaining identifiers whose profile
    changed get their new assignment, and the affected profiles their member list.
    """
    writes: list[Write] = []
    for key in sorted(forgetting.erased):
        out.send(topics.assignments, key.encode(), None)
        writes.append(IdentifierUnlink(key, version))
    for profile_id in sorted(forgetting.profile_ids):
        out.send(topics.facts, profile_id.encode(), ProfileErased(version).to_bytes())
    for key, profile_id in forgetting.assignments.items():
        out.send(topics.assignments, key.encode(), Assignment(profile_id, version).to_bytes())
        writes += identity_writes(key, profile_id, version)
    for profile_id in sorted(affected):
        members = MembersSet(state.graph.members(profile_id), version)
        out.send(topics.facts, profile_id.encode(), members.to_bytes())
    return writes


def _merge(merge: Merge) -> bytes:
    """The ``identity.merges`` record of a merge."""
    return dumps(
        {"survivor": merge.survivor, "absorbed": list(merge.absorbed), "event_id": merge.event_id}
    )


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key
