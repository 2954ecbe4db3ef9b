"""Moments of truth: event moments, transition moments, first_only, alternatives."""

from __future__ import annotations

from cdp.journey import JourneyState, default_journey, evaluate_journey
from tests.unit.test_journey_support import fact, journey

DEFINITION = journey(
    """
rules:
  - {id: choice.call, stage: choice, events: call}
  - {id: purchase.order, stage: purchase, events: order}
  - {id: usage.ticket, stage: usage, events: ticket_opened}
backward:
  - {from: usage, to: choice}
moments:
  - {name: first_purchase, to: purchase, first_only: true}
  - {name: reached_choice, to: choice}
  - name: ticket_resolved
    events: ticket_resolved
  - name: complaint
    events: satisfaction_score
    when: [{field: data.score, lte: 4}]
  - name: complaint
    events: ticket_opened
    when: [{field: data.category, eq: complaint}]
  - name: big_order
    events: order
    channel: ecommerce
    when: [{field: data.value, gte: 1000}]
    first_only: true
"""
)


def _names(state: JourneyState) -> list[tuple[str, str]]:
    return [(m.name, m.event_id) for m in state.moments]


def test_event_moment_every_occurrence() -> None:
    facts = [
        fact("ticket_resolved", 0, event_id="r1", ticket_id="T-1"),
        fact("ticket_resolved", 5, event_id="r2", ticket_id="T-2"),
    ]
    state = evaluate_journey(facts, DEFINITION)
    assert _names(state) == [("ticket_resolved", "r1"), ("ticket_resolved", "r2")]
    assert state.moments[0].stage is None
    assert state.moments[0].channel == "callcenter"


def test_event_moment_with_predicate_and_alternatives() -> None:
    facts = [
        fact("satisfaction_score", 0, event_id="s1", score=3),
        fact("satisfaction_score", 5, event_id="s2", score=9),
        fact("ticket_opened", 10, event_id="t1", ticket_id="T-1", category="complaint"),
        fact("ticket_opened", 15, event_id="t2", ticket_id="T-2", category="technical"),
    ]
    state = evaluate_journey(facts, DEFINITION)
    assert _names(state) == [("complaint", "s1"), ("complaint", "t1")]
    # the stage is the profile's stage right after the event
    assert state.moments[1].stage == "usage"


def test_transition_moment_first_only() -> None:
    facts = [
        fact("order", 0, event_id="o1", order_id="O-1"),
        fact("ticket_opened", 5, event_id="t1", ticket_id="T-1"),
        fact("call", 10, event_id="c1", direction="inbound"),  # usage -> choice (allowed)
        fact("order", 15, event_id="o2", order_id="O-2"),  # choice -> purchase again
    ]
    state = evaluate_journey(facts, DEFINITION)
    assert [t.to_stage for t in state.history] == ["purchase", "usage", "choice", "purchase"]
    assert _names(state) == [("first_purchase", "o1"), ("reached_choice", "c1")]
    assert state.moments[0].stage == "purchase"
    assert state.moments[0].at == state.history[0].at


def test_transition_moment_every_time_without_first_only() -> None:
    facts = [
        fact("call", 0, event_id="c1", direction="inbound"),
        fact("ticket_opened", 5, event_id="t1", ticket_id="T-1"),
        fact("call", 10, event_id="c2", direction="inbound"),
    ]
    state = evaluate_journey(facts, DEFINITION)
    assert _names(state) == [("reached_choice", "c1"), ("reached_choice", "c2")]


def test_no_transition_no_transition_moment() -> None:
    facts = [
        fact("order", 0, event_id="o1", order_id="O-1"),
        fact("order", 5, event_id="o2", order_id="O-2"),  # already in purchase
    ]
    assert _names(evaluate_journey(facts, DEFINITION)) == [("first_purchase", "o1")]


def test_event_moment_first_only_and_channel() -> None:
    facts = [
        fact("order", 0, event_id="o1", order_id="O-1", value="50.00", currency="EUR"),
        fact("order", 5, event_id="o2", order_id="O-2", value="5000.00", currency="EUR"),
        fact("order", 9, event_id="o3", order_id="O-3", value="9000.00", currency="EUR"),
    ]
    state = evaluate_journey(facts, DEFINITION)
    assert _names(state) == [("first_purchase", "o1"), ("big_order", "o2")]


def test_one_event_counts_once_per_moment() -> None:
    definition = journey(
        """
moments:
  - {name: bad, events: satisfaction_score, when: [{field: data.score, lte: 4}]}
  - {name: bad, events: satisfaction_score, when: [{field: data.score, lte: 2}]}
"""
    )
    state = evaluate_journey([fact("satisfaction_score", score=1)], definition)
    assert [m.name for m in state.moments] == ["bad"]


def test_default_journey_moments() -> None:
    facts = [
        fact("order", 0, event_id="o1", order_id="O-1"),
        fact("ticket_opened", 5, event_id="t1", ticket_id="T-1", category="complaint"),
        fact("ticket_resolved", 10, event_id="r1", ticket_id="T-1"),
        fact("satisfaction_score", 15, event_id="s1", score=2),
        fact("satisfaction_score", 20, event_id="s2", score=10),
    ]
    state = evaluate_journey(facts, default_journey())
    assert _names(state) == [
        ("first_purchase", "o1"),
        ("complaint", "t1"),
        ("ticket_resolved", "r1"),
        ("complaint", "s1"),
        ("became_promoter", "s2"),
    ]
