"""One realistic example of every event type (docs, demos, smoke tests, benchmarks).

The persons are fictitious; every address uses the reserved ``example.com`` domains.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cdp.contracts import events as ev
from cdp.contracts.events import Consent, Event, Identifier


def example_events(now: datetime | None = None) -> list[Event]:
    """One event of every type in :data:`~cdp.contracts.events.EVENT_MODELS`, a minute apart."""
    start = (now or datetime.now(UTC)) - timedelta(hours=1)
    anna = [Identifier.email("Anna.Berg@example.com"), Identifier.anonymous_id("anon-7f3a")]
    web = [Identifier.anonymous_id("anon-7f3a")]
    shop = [Identifier.customer_id("C-100234"), Identifier.email("anna.berg@example.com")]
    phone = [Identifier.phone("+49 30 1234567"), Identifier.customer_id("C-100234")]
    crm = [Identifier.crm_contact_id("003-XYZ-17"), Identifier.email("anna.berg@example.com")]
    items: list[Event] = [
        ev.PageView(
            source="website",
            region="DE",
            identifiers=web,
            payload=ev.PageViewPayload(
                url="https://www.example.com/products/edge-gateway",
                title="Edge Gateway",
                referrer="https://search.example.org/",
                page_category="product",
                campaign="spring-launch",
            ),
        ),
        ev.Click(
            source="website",
            identifiers=web,
            payload=ev.ClickPayload(
                url="https://www.example.com/pricing", element="cta-demo", campaign=None
            ),
        ),
        ev.FormSubmit(
            source="website",
            region="DE",
            identifiers=anna,
            traits={"first_name": "Anna", "last_name": "Berg", "company": "Muster GmbH"},
            consents=[Consent(purpose="marketing_email", granted=True, channel="email")],
            payload=ev.FormSubmitPayload(
                form_id="demo-2024", form_type="demo_request", url="https://www.example.com/demo"
            ),
        ),
        ev.Download(
            source="website",
            identifiers=anna,
            payload=ev.DownloadPayload(
                url="https://www.example.com/files/tender-kit.pdf",
                asset="Tender kit 2024",
                asset_type="tender_document",
            ),
        ),
        ev.NewsletterSignup(
            source="marketing-automation",
            identifiers=anna,
            consents=[Consent(purpose="newsletter", granted=True, channel="email")],
            payload=ev.NewsletterSignupPayload(list_id="industry-news"),
        ),
        ev.ProductView(
            source="shop-frontend",
            identifiers=shop,
            payload=ev.ProductViewPayload(
                product_id="EG-200", category="gateways", price=Decimal("1499.00"), currency="EUR"
            ),
        ),
        ev.Cart(
            source="shop-frontend",
            identifiers=shop,
            payload=ev.CartPayload(
                action="add",
                cart_id="cart-991",
                product_id="EG-200",
                quantity=3,
                unit_price=Decimal("1499.00"),
                currency="EUR",
            ),
        ),
        ev.Checkout(
            source="shop-frontend",
            identifiers=shop,
            payload=ev.CheckoutPayload(
                cart_id="cart-991", value=Decimal("4497.00"), currency="EUR"
            ),
        ),
        ev.Order(
            source="shop-backend",
            region="DE",
            identifiers=shop,
            payload=ev.OrderPayload(
                order_id="SO-55012", value=Decimal("4497.00"), currency="EUR", items=3
            ),
        ),
        ev.Return(
            source="shop-backend",
            identifiers=shop,
            payload=ev.ReturnPayload(
                order_id="SO-55012", value=Decimal("1499.00"), currency="EUR", reason="damaged"
            ),
        ),
        ev.Call(
            source="contact-center",
            identifiers=phone,
            payload=ev.CallPayload(
                call_id="call-8812", direction="inbound", duration_s=420, topic="onboarding"
            ),
        ),
        ev.TicketOpened(
            source="service-desk",
            identifiers=phone,
            payload=ev.TicketOpenedPayload(
                ticket_id="T-4711", subject="Gateway offline", priority="high", category="technical"
            ),
        ),
        ev.TicketResolved(
            source="service-desk",
            identifiers=phone,
            payload=ev.TicketResolvedPayload(ticket_id="T-4711"),
        ),
        ev.SatisfactionScore(
            source="survey-tool",
            identifiers=phone,
            payload=ev.SatisfactionScorePayload(score=9, survey="post-ticket"),
        ),
        ev.ContactUpsert(
            source="crm",
            identifiers=crm,
            traits={"job_title": "Head of Procurement", "company": "Muster GmbH"},
            payload=ev.ContactUpsertPayload(
                contact_id="003-XYZ-17",
                first_name="Anna",
                last_name="Berg",
                job_title="Head of Procurement",
                company="Muster GmbH",
                account_id="001-ACC-9",
            ),
        ),
        ev.LeadStatusChange(
            source="crm",
            identifiers=crm,
            payload=ev.LeadStatusChangePayload(status="qualified", previous_status="working"),
        ),
        ev.OpportunityStageChange(
            source="crm",
            identifiers=crm,
            payload=ev.OpportunityStageChangePayload(
                opportunity_id="006-OPP-3",
                stage="closed_won",
                amount=Decimal("120000.00"),
                currency="EUR",
            ),
        ),
        ev.AccountOwnerChange(
            source="crm",
            identifiers=crm,
            payload=ev.AccountOwnerChangePayload(account_id="001-ACC-9", owner="user-42"),
        ),
        # Segment-style calls of the HTTP collector (web channel)
        ev.Track(
            source="website",
            identifiers=[*web, Identifier.customer_id("C-100234")],
            payload=ev.TrackPayload(
                event="Demo Requested", properties='{"plan":"enterprise","seats":25}'
            ),
        ),
        ev.Identify(
            source="website",
            identifiers=[*anna, Identifier.customer_id("C-100234")],
            traits={"first_name": "Anna", "last_name": "Berg", "email": "anna.berg@example.com"},
            payload=ev.IdentifyPayload(),
        ),
        ev.Screen(
            source="mobile-app",
            identifiers=[Identifier.customer_id("C-100234")],
            payload=ev.ScreenPayload(
                name="Dashboard", category="app", properties='{"variant":"b"}'
            ),
        ),
        ev.Group(
            source="website",
            identifiers=[Identifier.customer_id("C-100234")],
            traits={"company": "Muster GmbH", "industry": "Machinery"},
            payload=ev.GroupPayload(
                group_id="acct-9", traits='{"industry":"Machinery","name":"Muster GmbH"}'
            ),
        ),
        ev.Alias(
            source="website",
            identifiers=[Identifier.customer_id("C-100234"), *web],
            payload=ev.AliasPayload(previous_id="anon-7f3a"),
        ),
    ]
    return [
        event.model_copy(update={"event_time": start + timedelta(minutes=index)})
        for index, event in enumerate(items)
    ]
