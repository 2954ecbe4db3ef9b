"""Predicates: every operator, every kind of value, missing values."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cdp.journey import Match, Predicate, evaluate_journey
from cdp.profile.facts import DataValue
from tests.unit.test_journey_support import fact, journey


def _holds(spec: dict[str, Any], value: DataValue | None, **traits: str) -> bool:
    predicate = Predicate.model_validate(spec)
    item = fact("satisfaction_score") if value is None else fact("satisfaction_score", score=value)
    return predicate.holds(item, traits)


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ({"eq": 9}, 9, True),
        ({"eq": 9}, 8, False),
        ({"eq": 9.0}, 9, True),  # numbers compare as numbers
        ({"eq": "9"}, 9, True),  # text compares as text
        ({"ne": 9}, 8, True),
        ({"ne": 9}, 9, False),
        ({"in": [1, 2, 3]}, 2, True),
        ({"in": [1, 2, 3]}, 4, False),
        ({"not_in": [1, 2]}, 4, True),
        ({"not_in": [1, 2]}, 2, False),
        ({"gt": 8}, 9, True),
        ({"gt": 9}, 9, False),
        ({"gte": 9}, 9, True),
        ({"gte": 9}, 8, False),
        ({"lt": 5}, 4, True),
        ({"lt": 4}, 4, False),
        ({"lte": 4}, 4, True),
        ({"lte": 4}, 5, False),
        ({"gte": 4.5}, 5, True),
        ({"matches": "^1[0-9]$"}, 10, True),
        ({"matches": "^1[0-9]$"}, 9, False),
        ({"exists": True}, 3, True),
        ({"exists": False}, 3, False),
        # a missing value fails every operator but `exists: false`
        ({"exists": True}, None, False),
        ({"exists": False}, None, True),
        ({"eq": 9}, None, False),
        ({"ne": 9}, None, False),
        ({"not_in": [9]}, None, False),
        ({"lte": 4}, None, False),
        ({"matches": ".*"}, None, False),
    ],
)
def test_operators_on_data_values(spec: dict[str, Any], value: int | None, expected: bool) -> None:
    assert _holds({"field": "data.score", **spec}, value) is expected


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ({"gte": 1000}, "4497.00", True),  # money kept as decimal text compares numerically
        ({"lt": 1000}, "4497.00", False),
        ({"eq": 4497}, "4497.00", True),
        ({"eq": "4497"}, "4497.00", False),
        ({"in": ["4497.00", "1.00"]}, "4497.00", True),
    ],
)
def test_decimal_text(spec: dict[str, Any], value: str, expected: bool) -> None:
    predicate = Predicate.model_validate({"field": "data.value", **spec})
    assert predicate.holds(fact("order", value=value, order_id="O-1"), {}) is expected


def test_non_numeric_text_fails_comparisons() -> None:
    predicate = Predicate.model_validate({"field": "data.status", "gte": 1})
    assert not predicate.holds(fact("lead_status_change", status="qualified"), {})


def test_text_equality_is_exact() -> None:
    predicate = Predicate.model_validate({"field": "data.page_category", "eq": "pricing"})
    assert predicate.holds(fact("page_view", page_category="pricing"), {})
    assert not predicate.holds(fact("page_view", page_category="Pricing"), {})


def test_matches_searches_anywhere_and_honours_flags() -> None:
    spec = {"field": "event_trait.job_title", "matches": "(?i)consult"}
    predicate = Predicate.model_validate(spec)
    assert predicate.holds(fact("contact_upsert", traits={"job_title": "Senior Consultant"}), {})
    assert not predicate.holds(fact("contact_upsert", traits={"job_title": "CTO"}), {})


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("trait.job_title", "Profile CTO"),
        ("event_trait.job_title", "Event CTO"),
        ("region", "CH"),
        ("channel", "crm"),
        ("source", "salesforce"),
        ("data.account_id", "ACC-1"),
    ],
)
def test_fields(field: str, expected: str) -> None:
    item = fact(
        "contact_upsert",
        region="CH",
        source="salesforce",
        traits={"job_title": "Event CTO"},
        account_id="ACC-1",
    )
    predicate = Predicate.model_validate({"field": field, "eq": expected})
    assert predicate.holds(item, {"job_title": "Profile CTO"})
    assert predicate.read(item, {"job_title": "Profile CTO"}) == expected


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"field": "data.score"}, "exactly one operator"),
        ({"field": "data.score", "eq": 1, "ne": 2}, "exactly one operator"),
        ({"field": "score", "eq": 1}, "should match pattern"),
        ({"field": "data.score", "matches": "(unclosed"}, "not a valid regular expression"),
        ({"field": "data.score", "in": []}, "at least 1 item"),
        ({"field": "data.score", "eq": [1]}, "valid string"),
    ],
)
def test_invalid_predicates(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Predicate.model_validate(spec)


def test_match_needs_event_type_channel_and_all_predicates() -> None:
    match = Match.model_validate(
        {
            "events": ["page_view", "click"],
            "channel": "web",
            "when": [
                {"field": "data.campaign", "exists": True},
                {"field": "region", "in": ["DE", "AT"]},
            ],
        }
    )
    assert match.applies(fact("click", element="b", campaign="x"), {})
    assert not match.applies(fact("click", element="b", campaign="x", region="CH"), {})
    assert not match.applies(fact("click", element="b"), {})
    assert not match.applies(fact("newsletter_signup", list_id="x"), {})


def test_events_may_be_one_name() -> None:
    assert Match.model_validate({"events": "order"}).events == ("order",)


def test_match_rejects_impossible_conditions() -> None:
    with pytest.raises(ValidationError, match="no event of order comes from channel 'web'"):
        Match.model_validate({"events": "order", "channel": "web"})
    with pytest.raises(ValidationError, match="'download' has no value 'page_category'"):
        Match.model_validate(
            {
                "events": ["page_view", "download"],
                "when": [{"field": "data.page_category", "eq": "x"}],
            }
        )


def test_trait_predicates_use_the_resolved_traits() -> None:
    definition = journey(
        """
rules:
  - {id: choice.it, stage: choice, events: page_view,
     when: [{field: trait.job_title, matches: "(?i)\\\\bIT\\\\b"}]}
"""
    )
    view = fact("page_view", 10, page_category="product")
    form = fact(
        "form_submit", 0, form_id="f", form_type="contact", traits={"job_title": "Head of IT"}
    )
    # without given traits: the latest value among the facts
    assert evaluate_journey([view, form], definition).stage == "choice"
    assert evaluate_journey([view], definition).stage is None
    # given traits (e.g. survivorship winners) take precedence
    assert evaluate_journey([view, form], definition, traits={"job_title": "CFO"}).stage is None
    assert evaluate_journey([view], definition, traits={"job_title": "IT lead"}).stage == "choice"
