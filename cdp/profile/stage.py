"""The profile stream processors: facts per identifier, then documents per profile.

``facts`` agent (canonical events + assignments, both keyed by identifier key,
co-partitioned): keeps every event's :class:`~cdp.profile.facts.Fact` under
the event's primary identifier and forwards facts to the profile that
identifier is assigned to. When an identifier moves to another profile, all its
facts follow (and the old profile is told to release them).

``profiles`` agent (``profile.facts``, keyed by profile id): keeps per profile
the member list (authoritative, from the identity stage) and the facts of each
member; the document is a pure function of the facts of the current members.
It writes the document to Redis (version-guarded; version = input offset) and
to the compacted ``profile.changes`` topic; a profile id that is no longer
current is deleted in both (tombstone).

Both re-publish their state on recovery, which repairs outputs a crash lost
between a table write and the send; all effects downstream are idempotent.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import faust

from cdp.contracts.decode_once import DecodeOnce
from cdp.journey.definition import JourneyDefinition
from cdp.journey.engine import JourneyFolds
from cdp.journey.handoff import QualificationCandidate
from cdp.messages import (
    Assignment,
    FactsAdded,
    MemberReleased,
    MembersSet,
    ProfileErased,
    dumps,
    parse_facts_message,
)
from cdp.outputs import OutputBatch, Outputs
from cdp.profile.derived import parse_derived_fact
from cdp.profile.document import ProfileDocument, build_profile, canonical_json
from cdp.profile.facts import Fact, ParsedFacts, encode_fact, encode_facts, fact_from_event
from cdp.profile.survivorship import TraitConfig
from cdp.serve.journey import profile_upsert
from cdp.serve.outage import apply_waiting
from cdp.serve.store import ReadModelStore
from cdp.serve.writes import ProfileDelete, ProfileUpsert
from cdp.streams import dead_letter, delete, json_table, put, raw_topic, stage_agent
from cdp.topics import Topics

log = logging.getLogger(__name__)


PROFILES_BATCH = 2000
"""Most ``profile.facts`` records per batch of the profiles agent. A profile is rendered once
per batch that touches it, so larger batches under a backlog render less often: 0.57-0.62
renders per event against 0.71-0.72 with 500 (122k-event benchmark, docs/benchmarks.md).
Under a steady load the 50 ms window ends a batch first."""


def change_record(version: int, document: bytes) -> bytes:
    """Value of a ``profile.changes`` record: ``{"doc": <document>, "v": <version>}``."""
    return b'{"doc":' + document + b',"v":' + str(version).encode() + b"}"


def register_facts(app: faust.App, topics: Topics, canonical: DecodeOnce, outputs: Outputs) -> Any:
    """Attach the per-identifier facts agent and its tables to ``app``.

    Reads in batches (:class:`FactsBatch`). Per batch it sends its outputs and
    waits for the broker's acknowledgements, then writes the table entries it
    changed (changelog records through the same producer), before Faust acks
    the input. A crash in between replays the batch against the old entries, so
    it sends the same outputs again (facts are keyed by event id, releases and
    re-adds are idempotent downstream). Derived facts of processors
    (``profile.computed``, :mod:`cdp.profile.derived`) are kept like events'
    facts, so computed traits follow merges and erasure. Canonical events are decoded
    once per process for this stage and the event processors (``canonical``).
    """
    source = raw_topic(app, topics.canonical, topics.assignments, topics.computed)
    facts_table = json_table(app, "facts-by-identifier")
    assignment_table = json_table(app, "assignment-by-identifier")

    @assignment_table.on_recover  # type: ignore[untyped-decorator]
    async def republish() -> None:
        _facts_as_bytes(facts_table.data)
        out = outputs.batch()
        sent = 0
        for key, facts in list(facts_table.items()):
            profile_id = assignment_table.get(key)
            if profile_id and facts:
                out.send(
                    topics.facts, profile_id.encode(), FactsAdded(_text(key), facts).to_bytes()
                )
                sent += 1
        await out.delivered()
        log.info("facts: re-published the facts of %d identifiers", sent)

    def parse_fact(message: Any) -> Fact:
        if message.topic == topics.computed:
            return parse_derived_fact(message.value)
        position = (message.topic, message.partition, message.offset)
        return fact_from_event(canonical.event(position, message.value))

    async def facts(stream: Any) -> None:
        async for batch in stream.take_events(1000, within=0.05):
            out = outputs.batch()
            work = FactsBatch(facts_table, assignment_table, out, topics.facts)
            for event in batch:
                message = event.message
                if message.topic == topics.assignments:
                    if message.value is None:
                        work.forget(message.key, message.partition)
                    else:
                        work.assign(
                            message.key, message.partition, _parse_assignment(message.value)
                        )
                    continue
                try:
                    fact = parse_fact(message)
                except Exception as exc:
                    dead_letter(out, topics.deadletter, "facts", message, exc)
                    continue
                work.add(
                    message.key, message.partition, fact, derived=message.topic == topics.computed
                )
            work.flush()
            await out.delivered()
            saved = outputs.batch()
            work.save(saved)
            await saved.delivered()

    return stage_agent(app, source, f"{topics.namespace}.facts", facts)


class FactsBatch:
    """One batch of the facts agent: table changes kept aside, outputs coalesced.

    Reads see the batch's own changes first (``None``: deleted in this batch); an
    identifier's stored facts are copied once per batch, on its first change, and
    the table keeps its value until :meth:`save`.
    Facts of one identifier for its profile are sent as one ``add`` per batch;
    pending facts of an identifier are sent before its release (an assignment
    change) and dropped by its erasure, so the order per identifier holds.
    """

    def __init__(self, facts: Any, assignments: Any, out: OutputBatch, topic: str) -> None:
        self._tables = {"f": facts, "a": assignments}
        self._changed: dict[str, dict[bytes, tuple[int, Any]]] = {"f": {}, "a": {}}
        self._pending: dict[bytes, tuple[str, dict[str, Any]]] = {}
        self._out = out
        self._topic = topic

    def _get(self, table: str, key: bytes) -> Any:
        changed = self._changed[table].get(key)
        return self._tables[table].data.get(key) if changed is None else changed[1]

    def _set(self, table: str, key: bytes, partition: int, value: Any) -> None:
        self._changed[table][key] = (partition, value)

    def add(self, key: bytes, partition: int, fact: Fact, *, derived: bool) -> None:
        """Keep ``fact`` under identifier ``key``; forward it to the identifier's profile."""
        encoded = encode_fact(fact.to_json())
        changed = self._changed["f"].get(key)
        if changed is not None and changed[1] is not None:
            known: dict[str, Any] = changed[1]  # this batch's own copy: change it in place
            if derived and known.get(fact.event_id) == encoded:
                return  # a processor re-sent its unchanged trait
        else:
            stored = None if changed is not None else self._tables["f"].data.get(key)
            if derived and stored and stored.get(fact.event_id) == encoded:
                return
            known = dict(stored or {})  # copied once per batch: the table keeps its value
            self._set("f", key, partition, known)
        known[fact.event_id] = encoded
        profile_id: str | None = self._get("a", key)
        if profile_id:
            pending = self._pending.setdefault(key, (profile_id, {}))
            pending[1][fact.event_id] = encoded

    def assign(self, key: bytes, partition: int, profile_id: str) -> None:
        """Identifier ``key`` now belongs to ``profile_id``: its facts move there."""
        old: str | None = self._get("a", key)
        if old == profile_id:
            return
        self._send_pending(key)
        self._set("a", key, partition, profile_id)
        if old:
            self._out.send(self._topic, old.encode(), MemberReleased(_text(key)).to_bytes())
        known = self._get("f", key)
        if known:
            self._out.send(
                self._topic, profile_id.encode(), FactsAdded(_text(key), known).to_bytes()
            )

    def forget(self, key: bytes, partition: int) -> None:
        """GDPR erasure of identifier ``key`` (an assignment tombstone): drop it and its facts.

        Nothing is sent, so the erased profile is not rendered again.
        """
        self._pending.pop(key, None)
        for table in ("a", "f"):
            if self._get(table, key) is not None:
                self._set(table, key, partition, None)

    def _send_pending(self, key: bytes) -> None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            profile_id, facts = pending
            self._out.send(
                self._topic, profile_id.encode(), FactsAdded(_text(key), facts).to_bytes()
            )

    def flush(self) -> None:
        """Send the facts still pending (end of the batch)."""
        for key in list(self._pending):
            self._send_pending(key)

    def save(self, out: OutputBatch) -> None:
        """Write the changed table entries (and their changelog records) through ``out``."""
        for table, changed in self._changed.items():
            for key, (partition, value) in changed.items():
                if value is None:
                    delete(self._tables[table], out, partition, key)
                else:
                    put(self._tables[table], out, partition, key, value)


def register_profiles(
    app: faust.App,
    topics: Topics,
    traits: TraitConfig,
    store: ReadModelStore,
    outputs: Outputs,
    journey: JourneyDefinition,
) -> Any:
    """Attach the per-profile document agent and its table to ``app``."""
    source = raw_topic(app, topics.facts)
    table = json_table(app, "profile-members")
    parsed = ParsedFacts()
    folds = JourneyFolds()

    def render(profile_id: str, state: dict[str, Any]) -> Rendered | None:
        members = state.get("m")
        version = int(state.get("v", 0))
        if members is None:
            return None  # member list not known yet
        if not members:
            folds.forget(profile_id)
            return Rendered(ProfileDelete(profile_id, version))
        facts_by_member = state.get("f", {})
        facts = [
            parsed.parse(event_id, fact)
            for member in members
            for event_id, fact in facts_by_member.get(member, {}).items()
        ]
        document = build_profile(
            profile_id, facts, traits, identifiers=members, journey=journey, folds=folds
        )
        encoded = canonical_json(document)
        return Rendered(profile_upsert(document, encoded, version, journey), encoded, document)

    async def publish(rendered: list[tuple[str, dict[str, Any], Rendered]]) -> None:
        if not rendered:
            return
        # Kafka first: the compacted change topic is what `cdp rebuild` restores
        # Redis from, so a write Redis holds is always in it.
        out = outputs.batch()
        for profile_id, state, item in rendered:
            value = (
                None if item.encoded is None else change_record(item.write.version, item.encoded)
            )
            out.send(topics.profiles, profile_id.encode(), value)
            if item.document is not None and item.document.journey is not None:
                _journey_outputs(out, topics, item.document, state)
        await out.delivered()
        await apply_waiting(store, [item.write for _pid, _state, item in rendered], "profiles")

    @table.on_recover  # type: ignore[untyped-decorator]
    async def republish() -> None:
        _profile_facts_as_bytes(table.data)
        rendered = []
        for key, state in list(table.items()):
            result = render(_text(key), state)
            if result is not None:
                rendered.append((_text(key), dict(state), result))
        await publish(rendered)
        log.info("profiles: re-published %d profiles", len(rendered))

    async def profiles(stream: Any) -> None:
        async for batch in stream.take_events(PROFILES_BATCH, within=0.05):
            touched: dict[bytes, dict[str, Any]] = {}
            sources: dict[bytes, Any] = {}
            for event in batch:
                key: bytes = event.message.key
                sources[key] = event
                state = touched.get(key)
                if state is None:
                    stored = table.data.get(key) or {}
                    state = dict(stored)
                    state["v"] = stored.get("v", 0)
                    state["f"] = defaultdict(
                        dict, {m: dict(f) for m, f in stored.get("f", {}).items()}
                    )
                    touched[key] = state
                message = parse_facts_message(event.message.value)
                if isinstance(message, ProfileErased):
                    parsed.forget(e for facts in state["f"].values() for e in facts)
                    folds.forget(_text(key))
                _apply(state, message)
                state["v"] = max(int(state["v"]), event.message.offset)
            rendered = []
            for key, state in touched.items():
                state["f"] = dict(state["f"])
                result = render(_text(key), state)
                if result is not None:
                    rendered.append((_text(key), state, result))
            # Outputs first (the journey outputs note what they published in the state),
            # then the state.
            await publish(rendered)
            saved = outputs.batch()
            for key, state in touched.items():
                put(table, saved, sources[key].message.partition, key, state)
            await saved.delivered()

    return stage_agent(app, source, f"{topics.namespace}.profiles", profiles)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A profile's read-model write, its encoded document and the document (None: deleted)."""

    write: ProfileUpsert | ProfileDelete
    encoded: bytes | None = None
    document: ProfileDocument | None = None


def _journey_outputs(
    out: OutputBatch, topics: Topics, document: ProfileDocument, state: dict[str, Any]
) -> None:
    """Queue new moment occurrences and a new qualification; note them in ``state``.

    ``state["o"]`` holds the moment keys and ``state["q"]`` the qualification ids
    this profile already published, so a re-render does not repeat them; a
    repeat after a crash is harmless (moments are keyed by occurrence, and the
    hand-off stage dedupes qualifications by person).
    """
    journey = document.journey
    assert journey is not None
    published = set(state.get("o", ()))
    for moment in journey.moments:
        key = f"{moment.name}:{moment.event_id}"
        if key in published:
            continue
        published.add(key)
        value = {
            "moment": moment.name,
            "event_id": moment.event_id,
            "at": moment.at.isoformat(),
            "channel": moment.channel,
            "stage": moment.stage,
            "profile_id": document.profile_id,
        }
        out.send(topics.moments, key.encode(), dumps(value))
    state["o"] = sorted(published)
    qualification = journey.qualification_id
    if qualification is not None and qualification not in state.get("q", ()):
        candidate = QualificationCandidate(
            qualification_id=qualification,
            profile_id=document.profile_id,
            members=tuple(document.identifiers),
            score=journey.score,
            stage=journey.stage,
            owner=journey.owner,
            region=journey.region,
            qualified_at=journey.qualified_at,
        )
        out.send(topics.qualified, document.profile_id.encode(), candidate.to_bytes())
        state["q"] = [*state.get("q", ()), qualification]


def _apply(
    state: dict[str, Any], message: FactsAdded | MemberReleased | MembersSet | ProfileErased
) -> None:
    """Fold one ``profile.facts`` message into a profile's state.

    An erasure empties the state but for the version and an ``"x"`` mark (no
    members: the profile renders as deleted); facts still in flight for the id
    are dropped while the mark stands, and a non-empty member list (the
    identifier came back with a new event) lifts it.
    """
    facts: defaultdict[str, dict[str, Any]] = state["f"]
    if isinstance(message, ProfileErased):
        version = state["v"]
        state.clear()
        state.update({"m": [], "v": version, "f": defaultdict(dict), "x": 1})
    elif isinstance(message, FactsAdded):
        if not state.get("x"):
            facts[message.member].update(message.facts)
    elif isinstance(message, MemberReleased):
        facts.pop(message.member, None)
    else:
        # Facts of non-members are kept (filtered out when rendering): a replayed,
        # older member list must not discard facts that nobody would send again.
        state["m"] = sorted(message.members)
        if message.members:
            state.pop("x", None)


def _facts_as_bytes(data: Any) -> None:
    """Keep the facts of a recovered ``facts-by-identifier`` table as :func:`encode_fact` bytes.

    Faust restores table values from their changelog JSON as parsed JSON; the stage
    keeps facts as bytes (half the memory, nothing for the garbage collector).
    """
    for key, facts in list(data.items()):
        if facts:
            data[key] = encode_facts(facts)


def _profile_facts_as_bytes(data: Any) -> None:
    """:func:`_facts_as_bytes` for the ``profile-members`` table (facts per member)."""
    for key, state in list(data.items()):
        if state.get("f"):
            data[key] = {**state, "f": {m: encode_facts(f) for m, f in state["f"].items()}}


def _parse_assignment(value: bytes) -> str:
    return Assignment.parse(value).profile_id


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key
