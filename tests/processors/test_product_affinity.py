"""processors/product_affinity.py through the pipeline (in memory; --cdp-real-stack: real stack)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cdp.contracts import events as ev
from cdp.contracts.events import Identifier
from cdp.testing.plugin import PipelineRunner
from processors.product_affinity import product_affinity

T0 = datetime.now(UTC) - timedelta(days=10)
ANNA = [Identifier.email("anna@example.com")]


def view(minutes: int, product: str, category: str) -> ev.Event:
    return ev.ProductView(
        source="shop",
        event_time=T0 + timedelta(minutes=minutes),
        identifiers=ANNA,
        payload=ev.ProductViewPayload(product_id=product, category=category),
    )


def cart(minutes: int, product: str) -> ev.Event:
    return ev.Cart(
        source="shop",
        event_time=T0 + timedelta(minutes=minutes),
        identifiers=ANNA,
        payload=ev.CartPayload(action="add", product_id=product, quantity=1, unit_price="10.00"),
    )


def page(minutes: int, path: str) -> ev.Event:
    return ev.PageView(
        source="website",
        event_time=T0 + timedelta(minutes=minutes),
        identifiers=ANNA,
        payload=ev.PageViewPayload(url=f"https://www.example.com{path}"),
    )


def test_a_cart_outweighs_views(cdp_pipeline: PipelineRunner) -> None:
    events = [
        view(0, "S-1", "sensors"),
        page(1, "/products/sensors/s-2"),
        view(2, "G-1", "gateways"),
        cart(3, "G-1"),
    ]
    result = cdp_pipeline(events, [product_affinity])
    assert result.trait("email:anna@example.com", "product_affinity") == "gateways"
    assert result.dead_letters == []


def test_order_of_events_does_not_matter(cdp_pipeline: PipelineRunner) -> None:
    events = [cart(3, "G-1"), view(0, "S-1", "sensors"), view(2, "G-1", "gateways")]
    forward = cdp_pipeline(events, [product_affinity])
    backward = cdp_pipeline(list(reversed(events)), [product_affinity])
    assert forward.trait("email:anna@example.com", "product_affinity") == "gateways"
    assert forward.profiles == backward.profiles


def test_web_pages_count(cdp_pipeline: PipelineRunner) -> None:
    events = [
        view(0, "G-1", "gateways"),
        page(1, "/products/sensors/s-1"),
        page(2, "/products/sensors/"),
    ]
    result = cdp_pipeline(events, [product_affinity])
    # the second page names no product and does not count: 1 to 1, ties go alphabetically
    assert result.trait("email:anna@example.com", "product_affinity") == "gateways"


def test_no_product_interest_no_trait(cdp_pipeline: PipelineRunner) -> None:
    result = cdp_pipeline([page(0, "/pricing")], [product_affinity])
    assert result.trait("email:anna@example.com", "product_affinity") is None
    assert result.records("profile.computed") == []
