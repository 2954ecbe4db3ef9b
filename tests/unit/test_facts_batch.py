"""The facts stage's batch logic (``FactsBatch``): outputs per identifier, in order."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from cdp.messages import FactsAdded, MemberReleased, parse_facts_message
from cdp.profile.facts import Fact, encode_fact
from cdp.profile.stage import FactsBatch, _facts_as_bytes, _profile_facts_as_bytes

TOPIC = "t.profile.facts"
WHEN = datetime(2026, 3, 1, tzinfo=UTC)


class Out:
    """Records what a batch sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, int | None]] = []

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Any = None,
        partition: int | None = None,
    ) -> None:
        self.sent.append((topic, key, value, partition))

    def messages(self) -> list[tuple[str, Any]]:
        return [
            (key.decode(), parse_facts_message(value))
            for topic, key, value, _p in self.sent
            if topic == TOPIC and key is not None and value is not None
        ]


class Table(dict):  # type: ignore[type-arg]
    """A Faust table as far as the stage uses it: ``get``, ``data`` and the changelog name."""

    def __init__(self, name: str, entries: dict[bytes, Any] | None = None) -> None:
        super().__init__(entries or {})
        self.data = self
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: f"{name}-changelog")


def _fact(event_id: str) -> Fact:
    return Fact(event_id=event_id, event_time=WHEN, channel="web", type="page_view", source="site")


def _stored(fact: Fact) -> bytes:
    """A fact as the tables keep it: its canonical JSON bytes."""
    return encode_fact(fact.to_json())


def test_facts_of_a_batch_go_to_the_profile_in_one_message() -> None:
    facts, assignments = Table("f"), Table("a", {b"email:a": "p-1"})
    out = Out()
    work = FactsBatch(facts, assignments, out, TOPIC)  # type: ignore[arg-type]
    work.add(b"email:a", 2, _fact("e1"), derived=False)
    work.add(b"email:a", 2, _fact("e2"), derived=False)
    work.add(b"email:b", 1, _fact("e3"), derived=False)  # no profile yet: kept only
    work.flush()
    assert out.messages() == [
        ("p-1", FactsAdded("email:a", {"e1": _stored(_fact("e1")), "e2": _stored(_fact("e2"))}))
    ]
    assert facts == {}  # nothing written before save
    saved = Out()
    work.save(saved)  # type: ignore[arg-type]
    assert set(facts) == {b"email:a", b"email:b"}
    assert {(t, k, p) for t, k, _v, p in saved.sent} == {
        ("f-changelog", b"email:a", 2),
        ("f-changelog", b"email:b", 1),
    }


def test_a_move_sends_pending_facts_first_then_release_and_all_facts() -> None:
    facts = Table("f", {b"email:a": {"e0": _stored(_fact("e0"))}})
    assignments = Table("a", {b"email:a": "p-1"})
    out = Out()
    work = FactsBatch(facts, assignments, out, TOPIC)  # type: ignore[arg-type]
    work.add(b"email:a", 0, _fact("e1"), derived=False)
    work.assign(b"email:a", 0, "p-2")
    work.assign(b"email:a", 0, "p-2")  # a replayed assignment changes nothing
    work.flush()
    both = {"e0": _stored(_fact("e0")), "e1": _stored(_fact("e1"))}
    assert out.messages() == [
        ("p-1", FactsAdded("email:a", {"e1": _stored(_fact("e1"))})),
        ("p-1", MemberReleased("email:a")),
        ("p-2", FactsAdded("email:a", both)),
    ]


def test_an_erasure_drops_pending_facts_and_deletes_both_entries() -> None:
    facts = Table("f", {b"email:a": {"e0": _stored(_fact("e0"))}})
    assignments = Table("a", {b"email:a": "p-1"})
    out = Out()
    work = FactsBatch(facts, assignments, out, TOPIC)  # type: ignore[arg-type]
    work.add(b"email:a", 3, _fact("e1"), derived=False)
    work.forget(b"email:a", 3)
    work.add(b"email:a", 3, _fact("e2"), derived=False)  # in flight: kept, not forwarded
    work.flush()
    assert out.messages() == []
    saved = Out()
    work.save(saved)  # type: ignore[arg-type]
    assert b"email:a" not in assignments
    assert facts[b"email:a"] == {"e2": _stored(_fact("e2"))}
    assert ("a-changelog", b"email:a", None, 3) in saved.sent


def test_an_unchanged_derived_fact_is_not_sent_again() -> None:
    derived = _fact("d1")
    facts = Table("f", {b"email:a": {"d1": _stored(derived)}})
    out = Out()
    work = FactsBatch(facts, Table("a", {b"email:a": "p-1"}), out, TOPIC)  # type: ignore[arg-type]
    work.add(b"email:a", 0, derived, derived=True)
    work.flush()
    assert out.sent == []
    assert facts[b"email:a"] == {"d1": _stored(derived)}


def test_recovered_facts_are_kept_as_bytes() -> None:
    """Faust restores table values as parsed JSON; the stages turn facts back into bytes."""
    e1, e2 = _fact("e1"), _fact("e2")
    facts: dict[bytes, Any] = {b"email:a": {"e1": e1.to_json()}, b"email:b": {}}
    _facts_as_bytes(facts)
    assert facts == {b"email:a": {"e1": _stored(e1)}, b"email:b": {}}
    restored = json.loads(
        json.dumps({"m": ["email:a"], "v": 7, "f": {"email:a": {"e2": e2.to_json()}}})
    )
    profiles: dict[bytes, Any] = {b"p-1": restored, b"p-2": {"m": [], "v": 3, "x": 1}}
    _profile_facts_as_bytes(profiles)
    assert profiles[b"p-1"] == {"m": ["email:a"], "v": 7, "f": {"email:a": {"e2": _stored(e2)}}}
    assert profiles[b"p-2"] == {"m": [], "v": 3, "x": 1}


def test_the_stored_facts_stay_as_they_were_until_the_batch_is_saved() -> None:
    stored = {"e0": _stored(_fact("e0"))}
    facts = Table("f", {b"email:a": stored})
    work = FactsBatch(facts, Table("a", {b"email:a": "p-1"}), Out(), TOPIC)  # type: ignore[arg-type]
    work.add(b"email:a", 0, _fact("e1"), derived=False)
    work.add(b"email:a", 0, _fact("e2"), derived=False)
    work.add(b"email:a", 0, _fact("e1"), derived=True)  # the batch's own copy is compared
    assert facts[b"email:a"] is stored and set(stored) == {"e0"}
    work.save(Out())  # type: ignore[arg-type]
    assert set(facts[b"email:a"]) == {"e0", "e1", "e2"}
