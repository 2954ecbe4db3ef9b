"""cdp.testing in memory: profiles, records, dead letters, convergence, feedback loops."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp.contracts import events as ev
from cdp.contracts.events import Identifier
from cdp.errors import ReasonCode
from cdp.processors import Input, ProcessorError, processor
from cdp.profile.document import canonical_json
from cdp.samples import generate
from cdp.testing import PipelineResult, run_in_memory
from processors.churn_risk import churn_risk
from processors.product_affinity import product_affinity

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


@processor(event_types={"order"})
def fails_on_orders(event: ev.Event) -> str | None:
    raise RuntimeError("a bug")


@processor(input=Input.PROFILES)
def fails_on_profiles(profile: Any) -> str | None:
    raise ValueError("another bug")


@processor(input=Input.PROFILES)
def flip_flop(profile: Any) -> str | None:
    current = profile.traits.get("flip_flop")
    return "b" if current is not None and current.value == "a" else "a"


def order(n: int = 0, email: str = "anna@example.com") -> ev.Event:
    return ev.Order(
        source="shop",
        event_time=T0 + timedelta(days=n),
        identifiers=[Identifier.email(email)],
        payload=ev.OrderPayload(order_id=f"O-{n}", value="10.00", currency="EUR", items=1),
    )


def test_profiles_records_and_lookup() -> None:
    result = run_in_memory([order(0), order(1)], [churn_risk])
    profile = result.profile("email: Anna@Example.com ")
    assert profile.event_count == 2 and profile.traits["churn_risk"].value == "low"
    assert result.trait("email:anna@example.com", "churn_risk") == "low"
    assert len(result.records("events.canonical")) == 2
    computed = result.records("profile.computed")
    assert [(r.key, r.json()["tr"]) for r in computed] == [
        ("email:anna@example.com", {"churn_risk": "low"})
    ]
    with pytest.raises(LookupError):
        result.profile("email:bob@example.com")


def test_a_failing_processor_dead_letters_and_the_others_go_on() -> None:
    events = [order(0), order(1, "bob@example.com")]
    result = run_in_memory(events, [fails_on_orders, fails_on_profiles, churn_risk])
    by_orders = result.dead_letters_of("processor:fails_on_orders")
    assert len(by_orders) == 2
    assert {letter.reason for letter in by_orders} == {ReasonCode.PROCESSOR_ERROR}
    assert by_orders[0].detail == "RuntimeError in processor:fails_on_orders"
    assert by_orders[0].source.topic.endswith(".events.canonical")
    by_profiles = result.dead_letters_of("processor:fails_on_profiles")
    # every profile version fails: before and after churn_risk added its trait
    assert len(by_profiles) == 4 and by_profiles[0].source.topic.endswith(".profile.changes")
    assert result.trait("email:bob@example.com", "churn_risk") == "low"  # others unaffected
    assert len(result.dead_letters) == 6


def test_a_feedback_loop_is_reported() -> None:
    with pytest.raises(ProcessorError, match="flip_flop still change profiles"):
        run_in_memory([order()], [flip_flop])


def _canonical(result: PipelineResult) -> dict[str, bytes]:
    return {pid: canonical_json(doc) for pid, doc in result.profiles.items()}


def test_profiles_with_processors_do_not_depend_on_event_order() -> None:
    events = generate(25, 10, seed=5, duplicate_rate=0.05).events
    processors = [churn_risk, product_affinity]
    reference = _canonical(run_in_memory(events, processors))
    shuffled = list(events)
    random.Random(1).shuffle(shuffled)
    assert _canonical(run_in_memory(shuffled, processors)) == reference
    assert any(b"churn_risk" in doc for doc in reference.values())
    assert any(b"product_affinity" in doc for doc in reference.values())


def test_computed_traits_are_no_events() -> None:
    events = generate(5, 10, seed=8).events
    plain = run_in_memory(events)
    with_traits = run_in_memory(events, [churn_risk, product_affinity])
    for profile_id, document in plain.profiles.items():
        other = with_traits.profiles[profile_id]
        assert other.event_count == document.event_count
        assert other.computed == document.computed and other.journey == document.journey
