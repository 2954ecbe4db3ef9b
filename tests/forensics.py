"""Where events went missing on their way into profiles (for a failing convergence test).

A run that ends a few events short says nothing about where they were lost. This
module follows every event of the canonical topic through the stages' durable
state — the facts stage's table (its changelog), the assignments, the
``profile.facts`` messages, the profiles stage's table — to the documents in Redis,
and names the first place each missing event is absent from.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from cdp.serve.store import ReadModelStore
from cdp.settings import Settings
from cdp.topic_reader import read_messages
from cdp.topics import Topics


@dataclass
class _Trail:
    """What the topics say about the events and profiles of one namespace."""

    canonical: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    """event id -> (identifier key, partition, offset) of its first canonical record"""
    facts_by_identifier: dict[str, dict[str, Any]] = field(default_factory=dict)
    assignments: dict[str, str] = field(default_factory=dict)
    adds: defaultdict[str, list[tuple[str, str, int, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    """event id -> [(profile id, member, partition, offset)] of the ``add`` messages carrying it"""
    releases: defaultdict[tuple[str, str], list[tuple[int, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    """(profile id, member) -> [(partition, offset)] of its ``release`` messages"""
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, int] = field(default_factory=dict)
    """profile id -> event_count of its document in Redis"""


def _latest(settings: Settings, topic: str) -> dict[str, Any]:
    latest: dict[str, Any] = {}
    for message in read_messages(settings, topic):
        key = message.key()
        if key is None:
            continue
        value = message.value()
        if value is None:
            latest.pop(key.decode(), None)
        else:
            latest[key.decode()] = json.loads(value)
    return latest


def _read(settings: Settings) -> _Trail:
    topics = Topics(settings.namespace)
    trail = _Trail()
    for message in read_messages(settings, topics.canonical):
        headers = dict(message.headers() or [])
        event_id = headers.get("cdp.event_id")
        if event_id is not None:
            trail.canonical.setdefault(
                event_id.decode(),
                (message.key().decode(), message.partition(), message.offset()),
            )
    trail.facts_by_identifier = _latest(settings, topics.changelog("facts-by-identifier"))
    trail.assignments = {
        key: value["p"] for key, value in _latest(settings, topics.assignments).items()
    }
    for message in read_messages(settings, topics.facts):
        value = json.loads(message.value())
        profile_id = message.key().decode()
        where = (message.partition(), message.offset())
        if value.get("op") == "add":
            for event_id in value["f"]:
                trail.adds[event_id].append((profile_id, value["m"], *where))
        elif value.get("op") == "release":
            trail.releases[(profile_id, value["m"])].append(where)
    trail.states = _latest(settings, topics.changelog("profile-members"))
    with ReadModelStore.from_settings(settings) as store:
        for profile_id, entry in store.dump()["profiles"].items():
            trail.documents[profile_id] = json.loads(entry["document"])["event_count"]
    return trail


def _counted(trail: _Trail) -> set[str]:
    counted: set[str] = set()
    for profile_id in trail.documents:
        state = trail.states.get(profile_id, {})
        for member in state.get("m", ()):
            counted.update(state.get("f", {}).get(member, {}))
    return counted


def _why(trail: _Trail, event_id: str) -> tuple[str, str]:
    """(kind, explanation) of the first place the missing ``event_id`` is absent from."""
    key, partition, offset = trail.canonical[event_id]
    where = f"event {event_id} (canonical {partition}@{offset}, identifier {key})"
    if event_id not in trail.facts_by_identifier.get(key, {}):
        return "facts table", f"{where}: not in the facts table under its identifier"
    profile_id = trail.assignments.get(key)
    if profile_id is None:
        return "assignment", f"{where}: its identifier has no assignment (identity stage)"
    adds = [add for add in trail.adds.get(event_id, []) if add[0] == profile_id]
    if not adds:
        others = trail.adds.get(event_id, [])
        return "add", (
            f"{where}: assigned to {profile_id}, but no add to it carries the event"
            f" (facts stage); adds to other profiles: {others[:5]}"
        )
    state = trail.states.get(profile_id)
    if state is None:
        return "profile state", f"{where}: added to {profile_id} at {adds}, which has no state"
    if key not in state.get("m", ()):
        return "member list", (
            f"{where}: {profile_id}'s member list {state.get('m')} lacks the identifier"
            " (identity stage or profiles stage)"
        )
    if event_id not in state.get("f", {}).get(key, {}):
        releases = trail.releases.get((profile_id, key), [])
        return "profile facts", (
            f"{where}: added to {profile_id} at (partition, offset) {[a[2:] for a in adds]},"
            f" releases of the member there at {releases}, state version {state.get('v')}:"
            " not in the state (profiles stage lost it)"
        )
    if profile_id not in trail.documents:
        return (
            "redis document",
            f"{where}: in {profile_id}'s state, but Redis holds no document for it",
        )
    return "redis count", (
        f"{where}: in {profile_id}'s state, but the document in Redis does not count it"
    )


def explain_shortfall(settings: Settings, events: int, limit: int = 10) -> str:
    """A report on the events that no profile in Redis counts, ``events`` expected.

    Events the ingest stage never wrote to the canonical topic show as a canonical
    topic holding fewer than ``events`` distinct event ids.
    """
    trail = _read(settings)
    missing = sorted(set(trail.canonical) - _counted(trail))
    lines = [
        f"forensics: the canonical topic holds {len(trail.canonical)} distinct events of"
        f" {events}; {len(missing)} of them are not counted in profiles"
    ]
    kinds: Counter[str] = Counter()
    for event_id in missing:
        kind, reason = _why(trail, event_id)
        kinds[kind] += 1
        if len(lines) <= limit:
            lines.append("  " + reason)
    stale = [
        (profile_id, count, expected)
        for profile_id, count in trail.documents.items()
        if count
        != (
            expected := len(
                {
                    event_id
                    for member in trail.states.get(profile_id, {}).get("m", ())
                    for event_id in trail.states[profile_id].get("f", {}).get(member, {})
                    if event_id in trail.canonical
                }
            )
        )
    ]
    if stale:
        lines.append(f"  documents whose count differs from their state: {stale[:limit]}")
    if kinds:
        lines.append(f"  by kind: {dict(kinds)}")
    return "\n".join(lines)
