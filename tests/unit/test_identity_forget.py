"""GDPR erasure in the identity graph: :meth:`IdentityGraph.forget`.

Forgetting a person must leave exactly the graph one would build from the
stored records without the person's identifiers (and without the edges to
them), and report the changes the identity stage publishes.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.identity import IdentityGraph, candidate_id
from cdp.identity.graph import IdentityRecord
from tests.unit.test_identity_properties import CONFIGS, TIGHT, Event, check_invariants, events


def _graph(batch: list[Event], config: object) -> IdentityGraph:
    graph = IdentityGraph(config)  # type: ignore[arg-type]
    for event_id, time, identifiers in batch:
        graph.add_event(event_id, time, identifiers)
    return graph


def _without(records: dict[str, IdentityRecord], erased: set[str]) -> dict[str, IdentityRecord]:
    return {
        key: {"edges": {n: ev for n, ev in record["edges"].items() if n not in erased}}
        for key, record in records.items()
        if key not in erased
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=events(), config=CONFIGS, data=st.data())
def test_forget_equals_a_graph_built_without_the_person(
    batch: list[Event], config: object, data: st.DataObject
) -> None:
    graph = _graph(batch, config)
    if not len(graph):
        return
    before = graph.snapshot()
    records = graph.to_records()
    key = data.draw(st.sampled_from(sorted(before)))
    person = set(graph.members(before[key]))

    forgetting = graph.forget([key])

    assert forgetting.erased == person
    assert before[key] in forgetting.profile_ids
    assert {candidate_id(k) for k in person} <= forgetting.profile_ids
    expected = IdentityGraph.from_records(_without(records, person), graph.config)
    assert graph.snapshot() == expected.snapshot()
    assert graph.to_records() == expected.to_records()
    after = graph.snapshot()
    assert forgetting.assignments == {k: p for k, p in after.items() if before[k] != p}
    assert forgetting.previous == {k: before[k] for k in forgetting.assignments}
    for k in forgetting.touched:
        assert len(records[k]["edges"]) > len(graph.to_records()[k]["edges"])
    check_invariants(graph, graph.config)
    # forgetting twice changes nothing; an unknown key is ignored
    assert not graph.forget([key]).erased
    assert not graph.forget(["email:nobody@example.com"]).erased
    # the graph keeps working: the person can come back with a new event
    graph.add_keys("e-new", batch[0][1], [key])
    assert graph.profile_of(key) == candidate_id(key)


def test_forget_keeps_a_neighbour_the_limits_kept_apart() -> None:
    from datetime import UTC, datetime

    graph = IdentityGraph(TIGHT)
    t = datetime(2026, 1, 1, tzinfo=UTC)
    graph.add_event("e1", t, [("customer_id", "C1"), ("email", "anna@example.com")])
    # a second customer id on the same email is refused (max 1 per profile): C2 stays apart
    graph.add_event("e2", t, [("customer_id", "C2"), ("email", "anna@example.com")])
    assert graph.profile_of("customer_id:C2") != graph.profile_of("customer_id:C1")

    forgetting = graph.forget(["customer_id:C1"])

    assert forgetting.erased == {"customer_id:C1", "email:anna@example.com"}
    assert "customer_id:C2" in graph
    assert graph.record("customer_id:C2") == {"edges": {}}
    assert forgetting.touched == {"customer_id:C2"}
    assert graph.profile_of("email:anna@example.com") is None
