"""Computed traits and consent on hand-made facts."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from cdp.profile import (
    ALL_CHANNELS,
    ComputedTraits,
    ConsentDecision,
    Fact,
    LatestValue,
    compute_traits,
    is_consented,
    resolve_consent,
)
from cdp.profile.facts import ConsentFact, DataValue

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
CHANNEL_OF = {
    "page_view": "web",
    "order": "ecommerce",
    "return": "ecommerce",
    "ticket_opened": "callcenter",
    "ticket_resolved": "callcenter",
    "satisfaction_score": "callcenter",
    "call": "callcenter",
    "lead_status_change": "crm",
    "opportunity_stage_change": "crm",
    "account_owner_change": "crm",
    "newsletter_signup": "web",
}


def fact(
    event_id: str,
    minutes: float,
    type: str,
    *,
    source: str = "sys",
    region: str | None = None,
    consents: tuple[ConsentFact, ...] = (),
    **data: DataValue,
) -> Fact:
    """A fact of ``type`` at ``T0 + minutes`` with payload ``data``."""
    return Fact(
        event_id=event_id,
        event_time=T0 + timedelta(minutes=minutes),
        channel=CHANNEL_OF[type],
        type=type,
        source=source,
        region=region,
        consents=consents,
        data=tuple(data.items()),
    )


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def same_in_every_order(facts: list[Fact]) -> ComputedTraits:
    """The computed traits, checked equal for every order (or 300 random ones when many)."""
    if len(facts) <= 6:
        orders: list[list[Fact]] = [list(p) for p in itertools.permutations(facts)]
    else:
        rng = random.Random(len(facts))
        orders = [rng.sample(facts, len(facts)) for _ in range(300)] + [facts[::-1]]
    results = {compute_traits(order).model_dump_json() for order in orders}
    assert len(results) == 1
    return compute_traits(facts)


def test_empty() -> None:
    assert compute_traits([]) == ComputedTraits()
    assert resolve_consent([]) == {}


def test_counts_times_channels_regions() -> None:
    facts = [
        fact("c", 3, "order", region="AT", order_id="O1", value="10.00", currency="EUR", items=2),
        fact("a", 0, "page_view", region="DE", page_category="home"),
        fact("b", 1, "page_view"),
        fact("d", 2, "call", region="DE"),
    ]
    computed = same_in_every_order(facts)
    assert computed.first_seen == at(0)
    assert computed.last_seen == at(3)
    assert computed.last_channel == "ecommerce"
    assert computed.region == "AT"
    assert computed.regions == ["AT", "DE"]
    assert computed.events_by_channel == {"callcenter": 1, "ecommerce": 1, "web": 2}
    assert list(computed.events_by_type) == ["call", "order", "page_view"]
    assert computed.events_by_type == {"call": 1, "order": 1, "page_view": 2}


def test_last_channel_tie_is_decided_by_event_id() -> None:
    facts = [fact("b", 5, "page_view"), fact("a", 5, "call"), fact("c", 0, "order")]
    assert same_in_every_order(facts).last_channel == "web"  # "b" > "a"
    facts = [fact("a", 5, "page_view"), fact("b", 5, "call")]
    assert same_in_every_order(facts).last_channel == "callcenter"


def test_orders_revenue_returns() -> None:
    facts = [
        fact("a", 0, "order", order_id="O1", value="100.00", currency="EUR", items=1),
        fact("b", 1, "order", order_id="O2", value="50.50", currency="EUR", items=2),
        fact("c", 2, "order", order_id="O3", value="20.00", currency="CHF", items=4),
        # the same order re-sent under a new event id (corrected value): latest counts once
        fact("d", 3, "order", order_id="O2", value="60.50", currency="EUR", items=3),
        fact("e", 4, "return", order_id="O1", value="30.00", currency="EUR"),
        fact("f", 5, "return", order_id="O1", value="20.00", currency="EUR"),
        fact("g", 6, "return", order_id="O3", value="5.25", currency="CHF"),
    ]
    computed = same_in_every_order(facts)
    assert computed.order_count == 3
    assert computed.items_ordered == 1 + 3 + 4
    assert computed.revenue == {"CHF": "20.00", "EUR": "160.50"}
    assert computed.return_count == 3
    assert computed.returned_value == {"CHF": "5.25", "EUR": "50.00"}


def test_bad_money_values_are_skipped() -> None:
    facts = [
        fact("a", 0, "order", order_id="O1", value="abc", currency="EUR"),
        fact("b", 1, "order", order_id="O2", value="NaN", currency="EUR"),
        fact("c", 2, "order", order_id="O3", value="1.00"),
        fact("d", 3, "order", value="2.00", currency="EUR", items=1),
    ]
    computed = compute_traits(facts)
    assert computed.order_count == 4
    assert computed.revenue == {"EUR": "2.00"}
    assert computed.items_ordered == 1


def test_tickets() -> None:
    facts = [
        fact("a", 0, "ticket_opened", ticket_id="T1"),
        fact("b", 1, "ticket_opened", ticket_id="T2"),
        fact("c", 2, "ticket_opened", ticket_id="T3"),
        fact("d", 3, "ticket_resolved", ticket_id="T2"),
        # resolution that arrived (or happened) before its opening: still resolved
        fact("e", -5, "ticket_resolved", ticket_id="T3"),
        fact("f", 4, "ticket_resolved", ticket_id="T9"),
    ]
    computed = same_in_every_order(facts)
    assert computed.tickets_total == 3
    assert computed.open_tickets == ["T1"]


def test_satisfaction() -> None:
    facts = [
        fact("a", 0, "satisfaction_score", score=9),
        fact("b", 1, "satisfaction_score", score=10),
        fact("c", 2, "satisfaction_score", score=6),
    ]
    computed = same_in_every_order(facts)
    assert computed.satisfaction_count == 3
    assert computed.avg_satisfaction == 8.33
    assert compute_traits([]).avg_satisfaction is None


def test_crm_states_are_the_latest() -> None:
    facts = [
        fact("a", 0, "lead_status_change", source="crm", status="new"),
        fact("b", 5, "lead_status_change", source="crm", status="qualified"),
        fact("c", 5, "lead_status_change", source="crm2", status="working"),  # tie: "c" > "b"
        fact("d", 1, "opportunity_stage_change", opportunity_id="O1", stage="proposal"),
        fact("e", 2, "opportunity_stage_change", opportunity_id="O2", stage="prospecting"),
        fact("f", 3, "opportunity_stage_change", opportunity_id="O1", stage="closed_won"),
        fact("g", 1, "account_owner_change", account_id="A1", owner="user-1"),
        fact("h", 0, "account_owner_change", account_id="A1", owner="user-2"),
    ]
    computed = same_in_every_order(facts)
    assert computed.lead_status == LatestValue(
        value="working", ref=None, source="crm2", channel="crm", event_time=at(5), event_id="c"
    )
    assert computed.opportunity_stage is not None
    assert (computed.opportunity_stage.value, computed.opportunity_stage.ref) == (
        "closed_won",
        "O1",
    )
    assert computed.opportunities == {"O1": "closed_won", "O2": "prospecting"}
    assert computed.account_owner is not None
    assert (computed.account_owner.value, computed.account_owner.ref) == ("user-1", "A1")
    assert computed.account_owner.event_id == "g"


# --------------------------------------------------------------------------- consent


def consent_fact(event_id: str, minutes: float, *consents: ConsentFact, source: str = "w") -> Fact:
    return fact(event_id, minutes, "newsletter_signup", source=source, consents=consents)


def test_latest_decision_per_purpose_and_channel() -> None:
    facts = [
        consent_fact("a", 0, ("newsletter", True, "email")),
        consent_fact("b", 5, ("newsletter", False, "email"), source="crm"),
        consent_fact("c", 2, ("newsletter", True, "phone"), ("analytics", True, None)),
        consent_fact("d", 3, ("analytics", False, None)),
    ]
    consent = resolve_consent(facts)
    for order in itertools.permutations(facts):
        assert resolve_consent(order) == consent
    assert list(consent) == ["analytics", "newsletter"]
    assert consent["newsletter"]["email"] == ConsentDecision(
        granted=False, source="crm", channel="web", event_time=at(5), event_id="b"
    )
    assert consent["newsletter"]["phone"].granted is True
    assert consent["analytics"] == {
        ALL_CHANNELS: ConsentDecision(
            granted=False, source="w", channel="web", event_time=at(3), event_id="d"
        )
    }


def test_equal_times_decided_by_event_id_and_refusal_within_one_event() -> None:
    grant = consent_fact("b", 5, ("p", True, "email"))
    refuse = consent_fact("a", 5, ("p", False, "email"))
    assert resolve_consent([grant, refuse])["p"]["email"].event_id == "b"
    assert resolve_consent([refuse, grant])["p"]["email"].granted is True
    both = consent_fact("x", 5, ("p", True, "email"), ("p", False, "email"))
    assert resolve_consent([both])["p"]["email"].granted is False
    both_reversed = Fact(
        event_id="x",
        event_time=at(5),
        channel="web",
        type="newsletter_signup",
        source="w",
        consents=(("p", False, "email"), ("p", True, "email")),
    )
    assert resolve_consent([both_reversed])["p"]["email"].granted is False


def test_is_consented() -> None:
    consent = resolve_consent(
        [
            consent_fact("a", 0, ("marketing", True, None)),
            consent_fact("b", 1, ("marketing", False, "phone")),
            consent_fact("c", 2, ("newsletter", False, None)),
            consent_fact("d", 3, ("newsletter", True, "email")),
        ]
    )
    assert is_consented(consent, "marketing") is True
    assert is_consented(consent, "marketing", "email") is True
    assert is_consented(consent, "marketing", "phone") is False
    assert is_consented(consent, "newsletter", "email") is True  # later than the global refusal
    assert is_consented(consent, "newsletter", "sms") is False
    assert is_consented(consent, "newsletter") is False
    assert is_consented(consent, "analytics") is None
    only_channel = resolve_consent([consent_fact("a", 0, ("x", True, "email"))])
    assert is_consented(only_channel, "x") is None
    assert is_consented(only_channel, "x", "phone") is None
    # global and channel decision from the same event disagreeing: refusal
    same = resolve_consent([consent_fact("a", 0, ("y", True, None), ("y", False, "email"))])
    assert is_consented(same, "y", "email") is False


def test_random_orders_of_a_larger_mix() -> None:
    rng = random.Random(7)
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("order", {"order_id": "O1", "value": "1.00", "currency": "EUR", "items": 1}),
        ("order", {"order_id": "O2", "value": "2.00", "currency": "USD", "items": 1}),
        ("ticket_opened", {"ticket_id": "T1"}),
        ("ticket_resolved", {"ticket_id": "T1"}),
        ("satisfaction_score", {"score": 7}),
        ("lead_status_change", {"status": "new"}),
        ("lead_status_change", {"status": "won"}),
        ("page_view", {}),
    ]
    facts: list[Fact] = []
    for i in range(40):
        kind, data = rng.choice(kinds)
        facts.append(fact(f"e{i:02d}", rng.choice([0, 1, 2]), kind, **data))
    expected = compute_traits(facts).model_dump_json()
    for _ in range(50):
        rng.shuffle(facts)
        assert compute_traits(facts).model_dump_json() == expected
