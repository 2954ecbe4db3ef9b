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
from typing import Any

import faust

from cdp.contracts.codec import AvroCodec
from cdp.contracts.events import decode_canonical
from cdp.messages import (
    Assignment,
    FactsAdded,
    MemberReleased,
    MembersSet,
    parse_facts_message,
)
from cdp.profile.document import build_profile, canonical_json
from cdp.profile.facts import Fact, fact_from_event
from cdp.profile.survivorship import TraitConfig
from cdp.serve.store import ReadModelStore
from cdp.serve.writes import ProfileDelete, ProfileUpsert, Write
from cdp.streams import as_current_event, dead_letter, json_table, raw_topic
from cdp.topics import Topics

log = logging.getLogger(__name__)


def change_record(version: int, document: bytes) -> bytes:
    """Value of a ``profile.changes`` record: ``{"doc": <document>, "v": <version>}``."""
    return b'{"doc":' + document + b',"v":' + str(version).encode() + b"}"


def register_facts(app: faust.App, topics: Topics, codec: AvroCodec) -> Any:
    """Attach the per-identifier facts agent and its tables to ``app``."""
    source = raw_topic(app, topics.canonical, topics.assignments)
    out = raw_topic(app, topics.facts)
    deadletters = raw_topic(app, topics.deadletter)
    facts_table = json_table(app, "facts-by-identifier")
    assignment_table = json_table(app, "assignment-by-identifier")

    @assignment_table.on_recover  # type: ignore[untyped-decorator]
    async def republish() -> None:
        sent = 0
        for key, facts in list(facts_table.items()):
            profile_id = assignment_table.get(key)
            if profile_id and facts:
                await out.send(
                    key=profile_id.encode(), value=FactsAdded(_text(key), facts).to_bytes()
                )
                sent += 1
        log.info("facts: re-published the facts of %d identifiers", sent)

    async def facts(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            key: bytes = message.key
            if message.topic == topics.assignments:
                profile_id = _parse_assignment(message.value)
                old: str | None = assignment_table.get(key)
                if old != profile_id:
                    assignment_table[key] = profile_id
                    if old:
                        await out.send(
                            key=old.encode(), value=MemberReleased(_text(key)).to_bytes()
                        )
                    known = facts_table.get(key)
                    if known:
                        await out.send(
                            key=profile_id.encode(), value=FactsAdded(_text(key), known).to_bytes()
                        )
                continue
            try:
                fact = fact_from_event(decode_canonical(codec, message.value))
            except Exception as exc:
                await dead_letter(deadletters, "facts", message, exc)
                continue
            known = dict(facts_table.get(key) or {})
            known[fact.event_id] = fact.to_json()
            facts_table[key] = known
            profile_id = assignment_table.get(key)
            if profile_id:
                await out.send(
                    key=profile_id.encode(),
                    value=FactsAdded(_text(key), {fact.event_id: known[fact.event_id]}).to_bytes(),
                )

    return app.agent(source, name=f"{topics.namespace}.facts", concurrency=1)(facts)


def register_profiles(
    app: faust.App, topics: Topics, traits: TraitConfig, store: ReadModelStore
) -> Any:
    """Attach the per-profile document agent and its table to ``app``."""
    source = raw_topic(app, topics.facts)
    changes = raw_topic(app, topics.profiles)
    table = json_table(app, "profile-members")

    def render(profile_id: str, state: dict[str, Any]) -> tuple[Write, bytes | None] | None:
        members = state.get("m")
        version = int(state.get("v", 0))
        if members is None:
            return None  # member list not known yet
        if not members:
            return ProfileDelete(profile_id, version), None
        facts_by_member = state.get("f", {})
        facts = [
            Fact.from_json(fact)
            for member in members
            for fact in facts_by_member.get(member, {}).values()
        ]
        document = canonical_json(build_profile(profile_id, facts, traits, identifiers=members))
        return ProfileUpsert(profile_id, version, document), document

    async def publish(rendered: list[tuple[str, tuple[Write, bytes | None]]]) -> None:
        if not rendered:
            return
        store.apply([write for _pid, (write, _doc) in rendered])
        for profile_id, (write, document) in rendered:
            value = None if document is None else change_record(write.version, document)
            await changes.send(key=profile_id.encode(), value=value)

    @table.on_recover  # type: ignore[untyped-decorator]
    async def republish() -> None:
        rendered = []
        for key, state in list(table.items()):
            result = render(_text(key), state)
            if result is not None:
                rendered.append((_text(key), result))
        await publish(rendered)
        log.info("profiles: re-published %d profiles", len(rendered))

    async def profiles(stream: Any) -> None:
        async for batch in stream.take_events(500, within=0.05):
            touched: dict[bytes, dict[str, Any]] = {}
            sources: dict[bytes, Any] = {}
            for event in batch:
                key: bytes = event.message.key
                sources[key] = event
                state = touched.get(key)
                if state is None:
                    stored = table.get(key) or {}
                    state = {
                        "m": stored.get("m"),
                        "v": stored.get("v", 0),
                        "f": defaultdict(
                            dict, {m: dict(f) for m, f in stored.get("f", {}).items()}
                        ),
                    }
                    touched[key] = state
                _apply(state, parse_facts_message(event.message.value))
                state["v"] = max(int(state["v"]), event.message.offset)
            rendered = []
            for key, state in touched.items():
                stored_state = {"m": state["m"], "v": state["v"], "f": dict(state["f"])}
                as_current_event(sources[key])
                table[key] = stored_state
                result = render(_text(key), stored_state)
                if result is not None:
                    rendered.append((_text(key), result))
            await publish(rendered)

    return app.agent(source, name=f"{topics.namespace}.profiles", concurrency=1)(profiles)


def _apply(state: dict[str, Any], message: FactsAdded | MemberReleased | MembersSet) -> None:
    """Fold one ``profile.facts`` message into a profile's state."""
    facts: defaultdict[str, dict[str, Any]] = state["f"]
    if isinstance(message, FactsAdded):
        facts[message.member].update(message.facts)
    elif isinstance(message, MemberReleased):
        facts.pop(message.member, None)
    else:
        # Facts of non-members are kept (filtered out when rendering): a replayed,
        # older member list must not discard facts that nobody would send again.
        state["m"] = sorted(message.members)


def _parse_assignment(value: bytes) -> str:
    return Assignment.parse(value).profile_id


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key
