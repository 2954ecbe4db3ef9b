"""processors/churn_risk.py through the pipeline (in memory; --cdp-real-stack: real stack)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cdp.contracts import events as ev
from cdp.contracts.events import Identifier
from cdp.testing.plugin import PipelineRunner
from processors.churn_risk import churn_risk

T0 = datetime.now(UTC) - timedelta(days=20)
SHOP = [Identifier.customer_id("C-1"), Identifier.email("anna@example.com")]
SERVICE = [Identifier.customer_id("C-1")]


def order(days: int = 0) -> ev.Event:
    payload = ev.OrderPayload(order_id=f"O-{days}", value="99.00", currency="EUR", items=1)
    return ev.Order(
        source="shop", event_time=T0 + timedelta(days=days), identifiers=SHOP, payload=payload
    )


def ticket(days: int, ticket_id: str, resolved: bool = False) -> ev.Event:
    at = T0 + timedelta(days=days)
    if resolved:
        return ev.TicketResolved(
            source="callcenter",
            event_time=at,
            identifiers=SERVICE,
            payload=ev.TicketResolvedPayload(ticket_id=ticket_id),
        )
    return ev.TicketOpened(
        source="callcenter",
        event_time=at,
        identifiers=SERVICE,
        payload=ev.TicketOpenedPayload(ticket_id=ticket_id),
    )


def score(days: int, value: int) -> ev.Event:
    return ev.SatisfactionScore(
        source="callcenter",
        event_time=T0 + timedelta(days=days),
        identifiers=SERVICE,
        payload=ev.SatisfactionScorePayload(score=value),
    )


def test_unhappy_customer_with_open_ticket_is_high_risk(cdp_pipeline: PipelineRunner) -> None:
    result = cdp_pipeline([order(), ticket(1, "T-1"), score(2, 3)], [churn_risk])
    assert result.trait("email:anna@example.com", "churn_risk") == "high"
    trait = result.profile("customer_id:C-1").traits["churn_risk"]
    assert trait.source == "processor:churn_risk"
    assert trait.event_time == T0 + timedelta(days=2)  # as of the profile's latest event
    assert result.dead_letters == []


def test_resolved_ticket_and_good_score_is_low_risk(cdp_pipeline: PipelineRunner) -> None:
    events = [order(), ticket(1, "T-1"), ticket(2, "T-1", resolved=True), score(3, 9)]
    result = cdp_pipeline(events, [churn_risk])
    assert result.trait("customer_id:C-1", "churn_risk") == "low"


def test_no_order_no_trait(cdp_pipeline: PipelineRunner) -> None:
    result = cdp_pipeline([ticket(1, "T-1")], [churn_risk])
    assert result.trait("customer_id:C-1", "churn_risk") is None


def test_the_trait_follows_a_merge(cdp_pipeline: PipelineRunner) -> None:
    # the ticket arrives under a phone number that only a later call links to the customer
    phone = [Identifier.phone("+49 170 1234567")]
    opened = ev.TicketOpened(
        source="callcenter",
        event_time=T0 + timedelta(days=1),
        identifiers=phone,
        payload=ev.TicketOpenedPayload(ticket_id="T-9"),
    )
    link = ev.Call(
        source="callcenter",
        event_time=T0 + timedelta(days=2),
        identifiers=[*SERVICE, *phone],
        payload=ev.CallPayload(call_id="CALL-1", direction="inbound", duration_s=60),
    )
    result = cdp_pipeline([order(), opened, score(3, 6), link], [churn_risk])
    profile = result.profile("phone:+491701234567")
    assert "customer_id:C-1" in profile.identifiers
    assert result.trait("customer_id:C-1", "churn_risk") == "medium"  # 2 (ticket) + 1 (score 6)
