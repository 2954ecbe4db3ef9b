"""Internal messages between the stages, and the pure parts of the stages."""

from __future__ import annotations

import json
import tracemalloc
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from cdp.identity.config import default_identity_config
from cdp.identity.stage import IdentityState, identity_writes
from cdp.messages import (
    Assignment,
    ErasureRequest,
    FactsAdded,
    MemberReleased,
    MembersSet,
    Observation,
    ProfileErased,
    dumps,
    dumps_to_keep,
    parse_facts_message,
    parse_identity_input,
)
from cdp.profile.stage import _apply, change_record
from cdp.serve.rebuild import _document
from cdp.serve.writes import AliasSet, IdentifierLink


def test_messages_round_trip() -> None:
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    observation = Observation("e1", when, ("email:a@example.com", "phone:+4915112345678"))
    assert Observation.parse(observation.to_bytes()) == observation
    assert Assignment.parse(Assignment("p-1", 7).to_bytes()) == Assignment("p-1", 7)
    added = FactsAdded("email:a@example.com", {"e1": b'{"id":"e1","t":"2026-03-01"}'})
    assert parse_facts_message(added.to_bytes()) == added  # facts are parsed as their JSON bytes
    as_json = FactsAdded("email:a@example.com", {"e1": {"t": "2026-03-01", "id": "e1"}})
    assert parse_facts_message(as_json.to_bytes()) == added
    assert parse_facts_message(MemberReleased("k").to_bytes()) == MemberReleased("k")
    assert parse_facts_message(MembersSet(("a", "b"), 3).to_bytes()) == MembersSet(("a", "b"), 3)
    assert parse_facts_message(ProfileErased(9).to_bytes()) == ProfileErased(9)
    assert parse_identity_input(observation.to_bytes()) == observation
    erasure = ErasureRequest(("email:a@example.com",), "audit-1")
    assert parse_identity_input(erasure.to_bytes()) == erasure


def test_change_record_frames_the_document_bytes_unchanged() -> None:
    document = b'{"event_count":2,"profile_id":"p-1","traits":{"v":{"value":",\\"v\\":"}}}'
    record = change_record(42, document)
    assert json.loads(record)["v"] == 42
    assert _document(record) == document


def _state() -> dict[str, Any]:
    return {"m": None, "v": 0, "f": defaultdict(dict)}


def test_member_lists_filter_but_never_drop_facts() -> None:
    state = _state()
    _apply(state, FactsAdded("k1", {"e1": {"id": "e1"}}))
    _apply(state, MembersSet(("k2",), 1))  # an older list without k1 (replayed)
    assert state["f"]["k1"] == {"e1": {"id": "e1"}}  # kept: nobody would send it again
    _apply(state, MembersSet(("k1", "k2"), 2))
    assert state["m"] == ["k1", "k2"]
    _apply(state, MemberReleased("k1"))
    assert "k1" not in state["f"]


def test_an_erased_profile_drops_late_facts_until_it_is_current_again() -> None:
    state = _state()
    _apply(state, MembersSet(("k1",), 1))
    _apply(state, FactsAdded("k1", {"e1": {"id": "e1"}}))
    state["o"], state["q"], state["v"] = ["moment:e1"], ["q1"], 5
    _apply(state, ProfileErased(6))
    assert state == {"m": [], "v": 5, "f": {}, "x": 1}  # the caller raises the version
    _apply(state, FactsAdded("k1", {"e0": {"id": "e0"}}))  # in flight before the erasure
    assert state["f"] == {}
    _apply(state, MembersSet((), 7))  # still not current
    assert state.get("x") == 1
    _apply(state, MembersSet(("k1",), 8))  # the identifier came back with a new event
    _apply(state, FactsAdded("k1", {"e2": {"id": "e2"}}))
    assert "x" not in state and state["f"] == {"k1": {"e2": {"id": "e2"}}}


def test_identity_state_forgets_a_person() -> None:
    state = IdentityState(default_identity_config())
    when = datetime(2026, 3, 1, tzinfo=UTC)
    state.apply(Observation("e1", when, ("customer_id:C1", "email:a@example.com")))
    state.apply(Observation("e2", when, ("email:b@example.com",)))
    forgetting, affected = state.forget(ErasureRequest(("email:a@example.com",), "a1"))
    assert forgetting.erased == {"customer_id:C1", "email:a@example.com"}
    assert affected == set()
    assert set(state.published) == {"email:b@example.com"}


def test_identity_state_reports_old_and_new_profiles() -> None:
    state = IdentityState(default_identity_config())
    when = datetime(2026, 3, 1, tzinfo=UTC)
    _change, first = state.apply(Observation("e1", when, ("anonymous_id:a1",)))
    _change, second = state.apply(Observation("e2", when, ("email:x@example.com",)))
    change, affected = state.apply(
        Observation("e3", when, ("anonymous_id:a1", "email:x@example.com"))
    )
    assert change.assignments  # the anonymous visitor joined the email's profile
    assert first | second <= affected  # both old ids get a new member list


def test_identity_writes_always_carry_the_alias() -> None:
    writes = identity_writes("email:x@example.com", "p-1", 5)
    assert writes[0] == IdentifierLink("email:x@example.com", "p-1", 5)
    assert isinstance(writes[1], AliasSet) and writes[1].profile_id == "p-1"


def test_kept_json_bytes_are_right_sized() -> None:
    """orjson returns 4 KiB buffers for short JSON; facts kept in memory are copied to size."""
    fact = {"id": "e1", "t": "2026-03-01T00:00:00Z", "ch": "web", "ty": "page_view", "src": "s"}
    message = FactsAdded("k", {"e1": fact}).to_bytes()
    tracemalloc.start()
    try:
        kept = [dumps_to_keep(fact) for _ in range(1000)]
        per_fact = tracemalloc.get_traced_memory()[0] / len(kept)
        tracemalloc.clear_traces()
        parsed = [parse_facts_message(message) for _ in range(1000)]
        per_message = tracemalloc.get_traced_memory()[0] / len(parsed)
    finally:
        tracemalloc.stop()
    assert kept[0] == dumps(fact) == parsed[0].facts["e1"]  # type: ignore[union-attr]
    assert per_fact < 2 * len(kept[0])  # about 4,100 bytes without the copy
    assert per_message < 1000
