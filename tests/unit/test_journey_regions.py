"""Region overrides change the outcome for profiles of that region only."""

from __future__ import annotations

import dataclasses

from cdp.journey import default_journey, evaluate_journey, profile_region
from cdp.profile.facts import Fact
from tests.unit.test_journey_support import fact, journey

DEFINITION = journey(
    """
rules:
  - {id: search.download, stage: search, events: download}
  - {id: choice.pricing, stage: choice, events: page_view,
     when: [{field: data.page_category, eq: pricing}]}
  - {id: purchase.order, stage: purchase, events: order}
regions:
  CH:
    disable: [choice.pricing]
    add:
      - {id: choice.tender, stage: choice, events: download,
         when: [{field: data.asset_type, eq: tender_document}]}
  AT:
    replace:
      - {id: purchase.order, stage: purchase, events: order,
         when: [{field: data.value, gte: 1000}]}
"""
)


def _profile(region: str | None) -> list[Fact]:
    return [
        fact("download", 0, region=region, asset_type="whitepaper"),
        fact("page_view", 10, region=region, page_category="pricing"),
        fact("download", 20, region=region, asset_type="tender_document"),
        fact("order", 30, region=region, order_id="O-1", value="500.00", currency="EUR"),
    ]


def _rules(region: str | None) -> list[str]:
    state = evaluate_journey(_profile(region), DEFINITION)
    assert state.region == region
    return [t.rule for t in state.history]


def test_base_rules_apply_without_an_override() -> None:
    expected = ["search.download", "choice.pricing", "purchase.order"]
    assert _rules("DE") == expected
    assert _rules(None) == expected
    assert _rules("FR") == expected


def test_disable_and_add_in_one_region_only() -> None:
    assert _rules("CH") == ["search.download", "choice.tender", "purchase.order"]


def test_replace_in_one_region_only() -> None:
    assert _rules("AT") == ["search.download", "choice.pricing"]  # order below 1000: no purchase
    big = [
        fact("order", 0, region="AT", order_id="O-2", value="1500.00", currency="EUR"),
    ]
    assert evaluate_journey(big, DEFINITION).stage == "purchase"


def test_rules_for() -> None:
    assert [r.id for r in DEFINITION.rules_for("CH")] == [
        "search.download",
        "purchase.order",
        "choice.tender",
    ]
    assert DEFINITION.rules_for("AT")[2].when[0].gte == 1000
    assert DEFINITION.rules_for("DE") == DEFINITION.rules
    assert DEFINITION.rules_for(None) == DEFINITION.rules


def test_profile_region_is_the_latest_that_names_one() -> None:
    facts = [
        fact("download", 0, event_id="a", region="CH", asset_type="whitepaper"),
        fact("page_view", 10, event_id="b", region="DE", page_category="pricing"),
        fact("page_view", 20, event_id="c", region=None, page_category="blog"),
    ]
    assert profile_region(facts) == "DE"
    state = evaluate_journey(facts, DEFINITION)
    assert state.region == "DE"
    assert state.stage == "choice"
    # equal times: the greater event id is the later fact
    tie = [
        fact("download", 0, event_id="y", region="CH", asset_type="whitepaper"),
        fact("download", 0, event_id="x", region="DE", asset_type="whitepaper"),
    ]
    assert evaluate_journey(tie, DEFINITION).region == "CH"


def test_the_region_applies_to_the_whole_history() -> None:
    # the latest fact decides the region, and its rules replay the whole history
    facts = [
        fact("page_view", 0, region="DE", page_category="pricing"),
        fact("download", 10, region="CH", asset_type="whitepaper"),
    ]
    assert evaluate_journey(facts, DEFINITION).stage == "search"


def test_default_journey_ch_override() -> None:
    definition = default_journey()
    facts = [
        fact("page_view", 0, page_category="home"),
        fact("page_view", 10, page_category="pricing"),
    ]
    de = evaluate_journey(facts, definition)
    ch = evaluate_journey([dataclasses.replace(f, region="CH") for f in facts], definition)
    assert de.stage == "choice"
    assert ch.stage == "need"
