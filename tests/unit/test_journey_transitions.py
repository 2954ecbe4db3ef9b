"""Stage transitions: forward moves, skips, ignored and allowed backward moves."""

from __future__ import annotations

from datetime import timedelta

from cdp.journey import evaluate_journey
from tests.unit.test_journey_support import T0, fact, journey

RULES = """
rules:
  - {id: need.visit, stage: need, events: page_view, when: [{field: data.page_category, eq: home}]}
  - {id: search.download, stage: search, events: download}
  - {id: choice.pricing, stage: choice, events: page_view,
     when: [{field: data.page_category, eq: pricing}]}
  - {id: choice.call, stage: choice, events: call}
  - {id: purchase.order, stage: purchase, events: order}
  - {id: usage.ticket, stage: usage, events: ticket_opened}
  - {id: need.campaign, stage: need, events: click, when: [{field: data.campaign, exists: true}]}
"""


def test_no_rule_fired_means_no_stage() -> None:
    state = evaluate_journey([fact("page_view", page_category="blog")], journey(RULES))
    assert state.stage is None
    assert state.owner is None
    assert state.entered_at is None
    assert state.history == ()


def test_empty_fact_set() -> None:
    state = evaluate_journey([], journey(RULES))
    assert state.stage is None
    assert state.score == 0
    assert state.scored_at is None
    assert state.region is None


def test_forward_moves_record_history() -> None:
    facts = [
        fact("page_view", 0, event_id="a", page_category="home"),
        fact("page_view", 10, event_id="b", page_category="blog"),
        fact("download", 20, event_id="c", asset_type="whitepaper"),
        fact("page_view", 30, event_id="d", page_category="pricing"),
    ]
    state = evaluate_journey(facts, journey(RULES))
    assert state.stage == "choice"
    assert state.owner == "sales"
    assert state.entered_at == T0 + timedelta(minutes=30)
    assert [(t.from_stage, t.to_stage, t.event_id, t.rule) for t in state.history] == [
        (None, "need", "a", "need.visit"),
        ("need", "search", "c", "search.download"),
        ("search", "choice", "d", "choice.pricing"),
    ]
    assert state.history[1].channel == "web"
    assert state.history[1].at == T0 + timedelta(minutes=20)


def test_forward_skip_is_allowed() -> None:
    facts = [fact("page_view", 0, page_category="home"), fact("order", 5, order_id="O-1")]
    state = evaluate_journey(facts, journey(RULES))
    assert state.stage == "purchase"
    assert [t.to_stage for t in state.history] == ["need", "purchase"]
    assert state.history[-1].channel == "ecommerce"


def test_first_fact_may_enter_any_stage() -> None:
    state = evaluate_journey([fact("ticket_opened", ticket_id="T-1")], journey(RULES))
    assert state.stage == "usage"
    assert state.owner == "service"
    assert state.history[0].from_stage is None


def test_same_stage_again_is_no_transition() -> None:
    facts = [fact("call", 0, direction="inbound"), fact("page_view", 5, page_category="pricing")]
    state = evaluate_journey(facts, journey(RULES))
    assert len(state.history) == 1
    assert state.entered_at == T0


def test_backward_move_is_ignored_unless_allowed() -> None:
    facts = [
        fact("order", 0, order_id="O-1"),
        fact("call", 10, direction="inbound"),  # rule for choice: earlier stage
        fact("page_view", 20, page_category="home"),  # rule for need
    ]
    state = evaluate_journey(facts, journey(RULES))
    assert state.stage == "purchase"
    assert [t.to_stage for t in state.history] == ["purchase"]


def test_allowed_backward_move() -> None:
    definition = journey(RULES + "backward:\n  - {from: usage, to: need}\n")
    facts = [
        fact("ticket_opened", 0, ticket_id="T-1"),
        fact("page_view", 10, event_id="back", page_category="home"),
        fact("download", 20, asset_type="whitepaper"),
    ]
    state = evaluate_journey(facts, definition)
    assert [(t.from_stage, t.to_stage) for t in state.history] == [
        (None, "usage"),
        ("usage", "need"),
        ("need", "search"),
    ]
    assert state.stage == "search"
    # only the listed pair: purchase -> need stays forbidden
    other = evaluate_journey(
        [fact("order", 0, order_id="O-1"), fact("page_view", 5, page_category="home")], definition
    )
    assert other.stage == "purchase"


def test_backward_move_only_via_listed_rules() -> None:
    definition = journey(RULES + "backward:\n  - {from: usage, to: need, via: [need.campaign]}\n")
    base = [fact("ticket_opened", 0, ticket_id="T-1")]
    by_home = evaluate_journey([*base, fact("page_view", 10, page_category="home")], definition)
    assert by_home.stage == "usage"
    by_campaign = evaluate_journey(
        [*base, fact("click", 10, element="banner", campaign="spring")], definition
    )
    assert by_campaign.stage == "need"
    assert by_campaign.history[-1].rule == "need.campaign"


def test_latest_target_stage_wins_when_several_rules_match() -> None:
    definition = journey(
        """
rules:
  - {id: a.need, stage: need, events: call}
  - {id: b.choice, stage: choice, events: call}
  - {id: c.search, stage: search, events: call}
  - {id: d.choice, stage: choice, events: call}
"""
    )
    state = evaluate_journey([fact("call", direction="inbound")], definition)
    assert state.stage == "choice"
    assert state.history[0].rule == "b.choice"  # equal targets: first in rule order


def test_allowed_backward_move_loses_against_a_forward_move() -> None:
    definition = journey(
        """
rules:
  - {id: choice.form, stage: choice, events: form_submit}
  - {id: back.call, stage: need, events: call}
  - {id: fwd.call, stage: usage, events: call}
backward:
  - {from: choice, to: need}
"""
    )
    facts = [
        fact("form_submit", 0, form_id="f", form_type="contact"),
        fact("call", 5, direction="inbound"),
    ]
    state = evaluate_journey(facts, definition)
    assert [t.rule for t in state.history] == ["choice.form", "fwd.call"]
    assert state.stage == "usage"


def test_timestamps_decide_order_not_list_order() -> None:
    facts = [
        fact("order", 30, order_id="O-1"),
        fact("page_view", 0, page_category="home"),
    ]
    state = evaluate_journey(facts, journey(RULES))
    assert [t.to_stage for t in state.history] == ["need", "purchase"]


def test_equal_times_are_ordered_by_event_id() -> None:
    facts = [
        fact("order", 0, event_id="b", order_id="O-1"),
        fact("ticket_opened", 0, event_id="a", ticket_id="T-1"),
    ]
    state = evaluate_journey(facts, journey(RULES))
    # "a" (usage) comes first; the order ("b") would be a backward move
    assert [t.event_id for t in state.history] == ["a"]
    assert state.stage == "usage"
