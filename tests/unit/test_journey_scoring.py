"""Lead score: weights, bonuses, exponential decay, threshold crossing (exact numbers)."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from cdp.journey import evaluate_journey, lead_score
from cdp.journey.scoring import fact_points
from tests.unit.test_journey_support import T0, fact, journey

DAY = 24 * 60  # minutes

DEFINITION = journey(
    """
scoring:
  half_life_days: 1
  threshold: 10
  weights: {download: 8, page_view: 1, return: -2}
  bonuses:
    - {id: pricing, events: page_view, when: [{field: data.page_category, eq: pricing}], points: 3}
"""
)


def test_points_of_a_fact() -> None:
    scoring = DEFINITION.scoring
    assert fact_points(fact("download", asset_type="whitepaper"), scoring, {}) == 8
    assert fact_points(fact("page_view", page_category="pricing"), scoring, {}) == 4
    assert fact_points(fact("page_view", page_category="blog"), scoring, {}) == 1
    assert fact_points(fact("order", order_id="O-1"), scoring, {}) == 0  # not listed
    assert fact_points(fact("return", order_id="O-1"), scoring, {}) == -2


def test_one_fact_scores_its_points() -> None:
    state = evaluate_journey([fact("download", asset_type="whitepaper")], DEFINITION)
    assert state.score == 8.0
    assert state.scored_at == T0
    assert not state.qualified


def test_decay_halves_per_half_life() -> None:
    facts = [
        fact("download", 0, asset_type="whitepaper"),  # 8
        fact("page_view", DAY, page_category="pricing"),  # 8/2 + 4 = 8
        fact("download", 2 * DAY, asset_type="whitepaper"),  # 8/2 + 8 = 12 -> crosses 10
        fact("page_view", 3 * DAY, page_category="blog"),  # 12/2 + 1 = 7
    ]
    state = evaluate_journey(facts, DEFINITION)
    assert state.score == 7.0
    assert state.scored_at == T0 + timedelta(days=3)
    assert not state.qualified  # decayed below the threshold again
    assert state.qualified_at == T0 + timedelta(days=2)
    assert state.qualification_event_id == facts[2].event_id
    assert state.qualification_id is not None
    prefix = lead_score(facts[:3], DEFINITION.scoring, {})
    assert prefix.score == 12.0
    assert prefix.crossed == facts[2]


def test_fractional_decay_is_rounded_to_four_places() -> None:
    facts = [
        fact("download", 0, asset_type="whitepaper"),
        fact("page_view", DAY / 2, page_category="blog"),
    ]
    state = evaluate_journey(facts, DEFINITION)
    assert state.score == round(8 * math.sqrt(0.5) + 1, 4) == 6.6569


def test_threshold_reached_exactly_qualifies() -> None:
    facts = [
        fact("download", 0, asset_type="whitepaper"),
        fact("page_view", 0, page_category="blog"),
        fact("page_view", 0, page_category="blog"),
    ]
    state = evaluate_journey(facts, DEFINITION)
    assert state.score == 10.0
    assert state.qualified
    assert state.qualification_event_id == max(f.event_id for f in facts)


def test_negative_points() -> None:
    facts = [
        fact("download", 0, asset_type="whitepaper"),
        fact("return", 0, order_id="O-1"),
    ]
    assert evaluate_journey(facts, DEFINITION).score == 6.0


@pytest.mark.parametrize("half_life", [0.5, 7, 30])
def test_closed_form(half_life: float) -> None:
    definition = journey(
        f"scoring: {{half_life_days: {half_life}, threshold: 1000, weights: {{download: 5}}}}\n"
    )
    offsets = [0, 90, 2000, 2001, 9000]
    facts = [fact("download", minutes, asset_type="datasheet") for minutes in offsets]
    last = offsets[-1]
    expected = sum(5 * 0.5 ** ((last - m) / (half_life * DAY)) for m in offsets)
    assert evaluate_journey(facts, definition).score == round(expected, 4)


def test_default_scoring_of_a_demo_request() -> None:
    from cdp.journey import default_journey

    facts = [
        fact("page_view", 0, page_category="home"),  # 1
        fact("download", 0, asset_type="whitepaper"),  # 10
        fact("page_view", 0, page_category="pricing"),  # 1 + 10
        fact("form_submit", 0, form_id="demo", form_type="demo_request"),  # 10 + 20
    ]
    # the default journey hands off known contacts only: an email and a job title
    state = evaluate_journey(
        facts,
        default_journey(),
        identifiers=["email:anna@example.com"],
        traits={"job_title": "Head of IT"},
    )
    assert state.score == 52.0
    assert state.qualified
