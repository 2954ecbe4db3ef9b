"""Identity graph: merges, blocked values, limits, aliases, idempotence, late events, state."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cdp.identity import (
    GraphChange,
    IdentifierKey,
    IdentityConfig,
    IdentityGraph,
    Merge,
    ProfileId,
    Split,
    candidate_id,
    default_identity_config,
    usable_identifiers,
)
from cdp.identity.identifiers import RawIdentifier

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def pid(key: str) -> ProfileId:
    return candidate_id(key)


def key(raw: str) -> IdentifierKey:
    return IdentifierKey(raw)


def test_profile_id_is_derived_from_the_anchor() -> None:
    digest = hashlib.sha256(b"customer_id:C1").hexdigest()
    assert candidate_id("customer_id:C1") == "p-" + digest[:20]
    graph = IdentityGraph()
    change = graph.add_event("e1", at(0), [("email", "Anna@Example.com"), ("customer_id", "C1")])
    assert change.profile_id == pid("customer_id:C1")
    assert graph.anchor(pid("customer_id:C1")) == "customer_id:C1"
    assert graph.members(pid("customer_id:C1")) == ("customer_id:C1", "email:anna@example.com")


def test_single_identifier_event_makes_its_own_profile() -> None:
    graph = IdentityGraph()
    change = graph.add_event("e1", at(0), [("anonymous_id", "A1")])
    assert change.assignments == {"anonymous_id:a1": pid("anonymous_id:a1")}
    assert change.profile_id == pid("anonymous_id:a1")
    assert change.touched == {"anonymous_id:a1"}
    assert not change.merges and not change.splits


def test_event_without_usable_identifiers_changes_nothing() -> None:
    graph = IdentityGraph()
    change = graph.add_event("e1", at(0), [("email", "test@test.com"), ("phone", "garbage")])
    assert change.is_empty
    assert change.profile_id is None
    assert len(graph) == 0


def test_shared_identifier_merges_profiles() -> None:
    graph = IdentityGraph()
    first = graph.add_event("e1", at(0), [("email", "anna@example.com"), ("anonymous_id", "a1")])
    second = graph.add_event("e2", at(1), [("email", "bob@example.com"), ("anonymous_id", "a2")])
    assert first.profile_id == pid("email:anna@example.com")
    assert second.profile_id == pid("email:bob@example.com")

    link = graph.add_event("e3", at(2), [("anonymous_id", "a1"), ("anonymous_id", "A2")])
    survivor = pid("email:anna@example.com")
    assert link.merges == (Merge(survivor, (pid("email:bob@example.com"),), "e3"),)
    assert link.assignments == {"anonymous_id:a2": survivor, "email:bob@example.com": survivor}
    assert set(graph.snapshot().values()) == {survivor}
    assert graph.resolve(pid("email:bob@example.com")) == survivor
    assert graph.members(pid("email:bob@example.com")) == ()


def test_stronger_identifier_reanchors_and_old_id_stays_resolvable() -> None:
    graph = IdentityGraph()
    graph.add_event("e1", at(0), [("email", "anna@example.com"), ("anonymous_id", "a1")])
    change = graph.add_event("e2", at(1), [("customer_id", "C1"), ("email", "anna@example.com")])
    new = pid("customer_id:C1")
    assert change.merges == (Merge(new, (pid("email:anna@example.com"),), "e2"),)
    assert change.assignments == {
        "anonymous_id:a1": new,
        "customer_id:C1": new,
        "email:anna@example.com": new,
    }
    for alias in ("anonymous_id:a1", "customer_id:C1", "email:anna@example.com"):
        assert graph.resolve(pid(alias)) == new
    assert graph.resolve("p-00000000000000000000") is None


def test_aliases_resolve_through_chains_of_merges() -> None:
    graph = IdentityGraph()
    graph.add_event("e1", at(0), [("anonymous_id", "a1")])
    graph.add_event("e2", at(1), [("anonymous_id", "a1"), ("device_id", "d1")])
    graph.add_event("e3", at(2), [("device_id", "d1"), ("phone", "0170 1234501")])
    graph.add_event("e4", at(3), [("phone", "0170 1234501"), ("email", "anna@example.com")])
    graph.add_event("e5", at(4), [("email", "anna@example.com"), ("crm_contact_id", "K1")])
    final = pid("crm_contact_id:K1")
    history = ["anonymous_id:a1", "device_id:d1", "phone:+491701234501", "email:anna@example.com"]
    for alias in history:
        assert graph.resolve(pid(alias)) == final
    assert graph.profile_ids() == [final]


def test_blocked_values_never_link() -> None:
    graph = IdentityGraph()
    call_center = ("phone", "+49 30 1234567")
    graph.add_event("e1", at(0), [("customer_id", "C1"), call_center])
    graph.add_event("e2", at(1), [("customer_id", "C2"), ("phone", "030 1234567")])
    graph.add_event("e3", at(2), [("email", "test@test.com"), ("customer_id", "C1")])
    graph.add_event("e4", at(3), [("email", "TEST@test.com"), ("customer_id", "C2")])
    assert graph.snapshot() == {
        "customer_id:C1": pid("customer_id:C1"),
        "customer_id:C2": pid("customer_id:C2"),
    }
    assert graph.profile_of("phone:+49301234567") is None
    assert "email:test@test.com" not in graph
    # an event with only a blocked value has no profile
    assert graph.add_event("e5", at(4), [call_center]).profile_id is None
    # even when given as keys
    assert graph.add_keys(
        "e6", at(5), [key("phone:+49301234567"), key("customer_id:C3")]
    ).touched == {"customer_id:C3"}


def test_limit_refuses_a_second_customer_id_and_event_goes_to_its_own_customer() -> None:
    graph = IdentityGraph()
    graph.add_event("e1", at(0), [("customer_id", "C1"), ("email", "shared@example.com")])
    change = graph.add_event("e2", at(1), [("customer_id", "C2"), ("email", "shared@example.com")])
    assert change.profile_id == pid("customer_id:C2")
    assert change.assignments == {"customer_id:C2": pid("customer_id:C2")}
    assert not change.merges
    assert graph.profile_of("email:shared@example.com") == pid("customer_id:C1")
    assert graph.profile_of("customer_id:C2") == pid("customer_id:C2")
    # an event carrying both customer ids goes to its primary identifier's profile
    both = usable_identifiers([("customer_id", "C2"), ("customer_id", "C1")], graph.config)
    assert graph.profile_for_event(both) == pid("customer_id:C1")
    only_c2 = usable_identifiers(
        [("customer_id", "C2"), ("email", "shared@example.com")], graph.config
    )
    assert graph.profile_for_event(only_c2) == pid("customer_id:C2")


def test_limit_on_emails_per_profile() -> None:
    config = IdentityConfig.model_validate(
        {
            "types": {
                "customer_id": {"priority": 1, "max_per_profile": 1},
                "email": {"priority": 2, "max_per_profile": 2},
            }
        }
    )
    graph = IdentityGraph(config)
    emails: list[RawIdentifier] = [("email", f"u{i}@example.com") for i in range(4)]
    graph.add_event("e1", at(0), [("customer_id", "C1"), *emails])
    # canonical order: customer_id:C1-email:u0, customer_id:C1-email:u1, then refused
    assert graph.members(pid("customer_id:C1")) == (
        "customer_id:C1",
        "email:u0@example.com",
        "email:u1@example.com",
    )
    # u2 and u3 are linked to each other, but cannot join C1: their own profile
    assert graph.profile_of("email:u3@example.com") == pid("email:u2@example.com")


def test_re_adding_an_event_is_idempotent() -> None:
    graph = IdentityGraph()
    identifiers: list[RawIdentifier] = [("customer_id", "C1"), ("email", "anna@example.com")]
    assert not graph.add_event("e1", at(0), identifiers).is_empty
    before = graph.snapshot()
    again = graph.add_event("e1", at(0), identifiers)
    assert again.is_empty
    assert again == GraphChange("e1", pid("customer_id:C1"))
    assert graph.add_event("e1", at(0), list(reversed(identifiers))).is_empty
    # a later event with the same pair adds no evidence either
    assert graph.add_event("e9", at(60), identifiers).is_empty
    assert graph.snapshot() == before


def test_late_event_moves_an_identifier_and_reports_it() -> None:
    graph = IdentityGraph()
    graph.add_event("e2", at(10), [("customer_id", "C1"), ("email", "shared@example.com")])
    graph.add_event("e3", at(20), [("anonymous_id", "a1"), ("email", "shared@example.com")])
    assert graph.profile_of("email:shared@example.com") == pid("customer_id:C1")
    # an earlier event links the email to C2 first: it moves, with what is attached to it
    late = graph.add_event("e1", at(0), [("customer_id", "C2"), ("email", "shared@example.com")])
    c1, c2 = pid("customer_id:C1"), pid("customer_id:C2")
    assert late.assignments == {
        "anonymous_id:a1": c2,
        "customer_id:C2": c2,
        "email:shared@example.com": c2,
    }
    assert late.splits == (Split(c1, (c1, c2), "e1"),)
    assert late.merges == ()
    # identical to the graph that saw the events in time order
    ordered = IdentityGraph()
    ordered.add_event("e1", at(0), [("customer_id", "C2"), ("email", "shared@example.com")])
    ordered.add_event("e2", at(10), [("customer_id", "C1"), ("email", "shared@example.com")])
    ordered.add_event("e3", at(20), [("anonymous_id", "a1"), ("email", "shared@example.com")])
    assert ordered.snapshot() == graph.snapshot()


def test_earlier_evidence_for_a_known_pair_reclusters() -> None:
    graph = IdentityGraph()
    graph.add_event("e1", at(10), [("customer_id", "C1"), ("email", "x@example.com")])
    graph.add_event("e2", at(20), [("customer_id", "C2"), ("email", "x@example.com")])
    assert graph.profile_of("email:x@example.com") == pid("customer_id:C1")
    change = graph.add_event("e0", at(5), [("customer_id", "C2"), ("email", "x@example.com")])
    assert change.touched == {"customer_id:C2", "email:x@example.com"}
    assert change.assignments == {"email:x@example.com": pid("customer_id:C2")}
    record = graph.record("email:x@example.com")
    assert record is not None
    assert record["edges"]["customer_id:C2"] == [at(5).isoformat(), "e0"]


def test_equal_times_are_ordered_by_event_id_then_keys() -> None:
    forward, backward = IdentityGraph(), IdentityGraph()
    events: list[tuple[str, list[RawIdentifier]]] = [
        ("b", [("customer_id", "C1"), ("email", "x@example.com")]),
        ("a", [("customer_id", "C2"), ("email", "x@example.com")]),
    ]
    for event_id, identifiers in events:
        forward.add_event(event_id, at(0), identifiers)
    for event_id, identifiers in reversed(events):
        backward.add_event(event_id, at(0), identifiers)
    assert forward.snapshot() == backward.snapshot()
    assert forward.profile_of("email:x@example.com") == pid("customer_id:C2")  # "a" < "b"


def test_event_time_zone_does_not_matter_but_must_be_given() -> None:
    graph = IdentityGraph()
    cet = timezone(timedelta(hours=1))
    graph.add_event(
        "e1",
        datetime(2024, 3, 1, 10, 0, tzinfo=cet),
        [("customer_id", "C1"), ("email", "a@example.com")],
    )
    record = graph.record("customer_id:C1")
    assert record == {"edges": {"email:a@example.com": ["2024-03-01T09:00:00+00:00", "e1"]}}
    with pytest.raises(ValueError, match="timezone-aware"):
        graph.add_event("e2", datetime(2024, 3, 1, 10, 0), [("customer_id", "C1")])
    with pytest.raises(ValueError, match="identifier key"):
        graph.add_keys("e3", at(0), [key("no-colon")])


def test_state_round_trip_through_json() -> None:
    graph = IdentityGraph()
    graph.add_event("e1", at(0), [("customer_id", "C1"), ("email", "a@example.com")])
    graph.add_event("e2", at(1), [("customer_id", "C2"), ("email", "a@example.com")])
    graph.add_event("e3", at(2), [("anonymous_id", "x")])
    state = json.loads(json.dumps(graph.to_state()))
    restored = IdentityGraph.from_state(state)
    assert restored.snapshot() == graph.snapshot()
    assert restored.to_state() == graph.to_state()
    with pytest.raises(ValueError, match="version"):
        IdentityGraph.from_state({"version": 99, "records": {}})


def test_records_are_per_identifier_and_tolerate_half_written_pairs() -> None:
    graph = IdentityGraph()
    change = graph.add_event("e1", at(0), [("customer_id", "C1"), ("email", "a@example.com")])
    records = {k: graph.record(k) for k in change.touched}
    assert set(records) == {"customer_id:C1", "email:a@example.com"}
    # only one side of the pair was written before a crash
    only_one = {"customer_id:C1": records[key("customer_id:C1")]}
    restored = IdentityGraph.from_records(only_one)  # type: ignore[arg-type]
    assert restored.snapshot() == graph.snapshot()
    # the two sides disagree: the earlier evidence wins
    disagree = {
        "customer_id:C1": {"edges": {"email:a@example.com": [at(9).isoformat(), "e9"]}},
        "email:a@example.com": {"edges": {"customer_id:C1": [at(0).isoformat(), "e1"]}},
    }
    assert IdentityGraph.from_records(disagree).to_records() == graph.to_records()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "record",
    [
        None,
        {"edges": []},
        {"edges": {"email:a@example.com": ["2024-01-01T00:00:00+00:00"]}},
        {"edges": {"email:a@example.com": ["yesterday", "e1"]}},
        {"edges": {"email:a@example.com": ["2024-01-01T00:00:00", "e1"]}},  # naive
        {"edges": {"no-colon": ["2024-01-01T00:00:00+00:00", "e1"]}},
    ],
)
def test_malformed_records_are_refused(record: object) -> None:
    with pytest.raises(ValueError):
        IdentityGraph.from_records({"customer_id:C1": record})  # type: ignore[arg-type]


def test_newly_blocked_value_stops_linking_after_reload() -> None:
    graph = IdentityGraph()
    graph.add_event("e1", at(0), [("customer_id", "C1"), ("phone", "0170 1234501")])
    graph.add_event("e2", at(1), [("email", "b@example.com"), ("phone", "0170 1234501")])
    assert len(graph.profile_ids()) == 1
    stricter = IdentityConfig.model_validate(
        {
            **default_identity_config().model_dump(exclude={"types"}),
            "types": {
                name: {**cfg.model_dump(), "blocked": [*cfg.blocked, "0170 1234501"]}
                if name == "phone"
                else cfg.model_dump()
                for name, cfg in default_identity_config().types.items()
            },
        }
    )
    reloaded = IdentityGraph.from_records(graph.to_records(), stricter)
    assert reloaded.snapshot() == {
        "customer_id:C1": pid("customer_id:C1"),
        "email:b@example.com": pid("email:b@example.com"),
    }


def test_merging_graphs_of_two_partitions() -> None:
    left, right, whole = IdentityGraph(), IdentityGraph(), IdentityGraph()
    events: list[tuple[str, datetime, list[RawIdentifier]]] = [
        ("e1", at(0), [("customer_id", "C1"), ("email", "a@example.com")]),
        ("e2", at(1), [("anonymous_id", "x"), ("email", "a@example.com")]),
        ("e3", at(2), [("anonymous_id", "x"), ("device_id", "d")]),
        ("e4", at(3), [("customer_id", "C2"), ("device_id", "d")]),
    ]
    for index, (event_id, time, identifiers) in enumerate(events):
        (left if index % 2 else right).add_event(event_id, time, identifiers)
        whole.add_event(event_id, time, identifiers)
    merged = IdentityGraph()
    merged.merge_records(left.to_records())
    change = merged.merge_records(right.to_records(), origin="partition-1")
    assert merged.snapshot() == whole.snapshot()
    assert change.merges and all(m.event_id == "partition-1" for m in change.merges)
    assert merged.merge_records(left.to_records()).is_empty  # idempotent


def test_changes_replayed_reproduce_the_snapshot() -> None:
    graph = IdentityGraph()
    replay: dict[IdentifierKey, ProfileId] = {}
    steps: list[tuple[str, int, list[RawIdentifier]]] = [
        ("e5", 50, [("customer_id", "C1"), ("email", "a@example.com")]),
        ("e4", 40, [("email", "a@example.com"), ("anonymous_id", "x")]),
        ("e3", 30, [("customer_id", "C2"), ("anonymous_id", "x")]),
        ("e2", 20, [("email", "a@example.com"), ("phone", "0170 1234501")]),
        ("e1", 10, [("customer_id", "C3"), ("phone", "0170 1234501")]),
    ]
    for event_id, minute, identifiers in steps:
        replay.update(graph.add_event(event_id, at(minute), identifiers).assignments)
    assert replay == graph.snapshot()
    assert graph.profile_of("email:a@example.com") == pid("customer_id:C3")


def test_long_chain_of_late_events_stays_consistent() -> None:
    graph, ordered = IdentityGraph(), IdentityGraph()
    events: list[tuple[str, datetime, list[RawIdentifier]]] = [
        (f"e{i:04d}", at(i), [("anonymous_id", f"a{i}"), ("anonymous_id", f"a{i + 1}")])
        for i in range(300)
    ]
    for event_id, time, identifiers in reversed(events):
        graph.add_event(event_id, time, identifiers)
    for event_id, time, identifiers in events:
        ordered.add_event(event_id, time, identifiers)
    assert graph.snapshot() == ordered.snapshot()
    # anonymous_id limit 50: the chain is cut into clusters of 50, in time order
    sizes = sorted(len(graph.members(p)) for p in graph.profile_ids())
    assert sizes == [1] + [50] * 6


def test_worked_example_of_the_docs() -> None:
    """docs/identity.md, section 4: same ids, same changes, same final state in any order."""
    cest = timezone(timedelta(hours=2))

    def t(hour: int, minute: int) -> datetime:
        return datetime(2024, 5, 6, hour, minute, tzinfo=cest)

    events: list[tuple[str, datetime, list[RawIdentifier]]] = [
        ("e1", t(10, 0), [("anonymous_id", "A-7F3"), ("email", " Anna.Schmidt@Example.com ")]),
        (
            "e2",
            t(10, 5),
            [
                ("phone", "+49 30 1234567"),
                ("phone", "0170 1234501"),
                ("email", "anna.schmidt@example.com"),
            ],
        ),
        ("e3", t(10, 10), [("customer_id", "C-1001"), ("email", "ANNA.SCHMIDT@example.com")]),
        ("e4", t(10, 20), [("customer_id", "C-2002"), ("phone", "+491701234501")]),
        ("e0", t(9, 0), [("customer_id", "C-2002"), ("anonymous_id", "a-7f3")]),
    ]
    anna = ProfileId("p-f086f843169e73b163d5")
    c1001 = ProfileId("p-33a8812638b6c72b0b77")
    c2002 = ProfileId("p-cd70ab6eb02ca43ef4df")
    graph = IdentityGraph()
    changes = [graph.add_event(*event) for event in events]
    assert changes[0].profile_id == anna == pid("email:anna.schmidt@example.com")
    assert changes[1].assignments == {"phone:+491701234501": anna}
    assert changes[2].merges == (Merge(c1001, (anna,), "e3"),)
    assert changes[3].profile_id == c2002
    assert changes[4].splits == (Split(c1001, (c1001, c2002), "e0"),)
    assert changes[4].assignments == {
        "anonymous_id:a-7f3": c2002,
        "email:anna.schmidt@example.com": c2002,
        "phone:+491701234501": c2002,
    }
    final = {
        "anonymous_id:a-7f3": c2002,
        "customer_id:C-1001": c1001,
        "customer_id:C-2002": c2002,
        "email:anna.schmidt@example.com": c2002,
        "phone:+491701234501": c2002,
    }
    assert graph.snapshot() == final
    in_time_order = IdentityGraph()
    for event in sorted(events, key=lambda e: e[1]):
        in_time_order.add_event(*event)
    assert in_time_order.snapshot() == final
