"""Processors on the real stack: example traits in Redis, a failing processor dead-letters.

One worker runs the built-in stages, both example processors of ``processors/``
and a deliberately failing processor from a folder of its own. The profiles in
Redis must carry the same traits as the in-memory harness computes for the same
events; the failing processor's inputs must be on the dead-letter topic with
its name, while everything else keeps working.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cdp.contracts import events as ev
from cdp.contracts.events import Identifier
from cdp.errors import ReasonCode
from cdp.processors import discover
from cdp.samples import generate
from cdp.settings import PROJECT_ROOT, Settings
from cdp.testing import run_in_memory, run_on_stack

pytestmark = pytest.mark.integration

FAILING = '''
from cdp.processors import processor


@processor(event_types={"order"})
def always_fails(event):
    """Raises on every order (a bug)."""
    raise RuntimeError("boom")
'''


def anna() -> list[ev.Event]:
    """A customer with an open ticket and a bad score, interested in sensors."""
    t0 = datetime.now(UTC) - timedelta(days=30)
    ids = [Identifier.customer_id("C-4711"), Identifier.email("anna@example.com")]
    return [
        ev.ProductView(
            source="shop",
            event_time=t0,
            identifiers=ids,
            payload=ev.ProductViewPayload(product_id="SKU-7", category="sensors"),
        ),
        ev.Order(
            source="shop",
            event_time=t0 + timedelta(days=1),
            identifiers=ids,
            payload=ev.OrderPayload(order_id="O-4711", value="99.00", currency="EUR", items=1),
        ),
        ev.TicketOpened(
            source="callcenter",
            event_time=t0 + timedelta(days=2),
            identifiers=ids[:1],
            payload=ev.TicketOpenedPayload(ticket_id="T-1", category="complaint"),
        ),
        ev.SatisfactionScore(
            source="callcenter",
            event_time=t0 + timedelta(days=3),
            identifiers=ids[:1],
            payload=ev.SatisfactionScorePayload(score=2),
        ),
    ]


def test_processors_on_the_real_stack(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / f"plugins_{settings.namespace}"
    folder.mkdir()
    (folder / "always_fails.py").write_text(FAILING)
    path = os.pathsep.join([str(PROJECT_ROOT / "processors"), str(folder)])
    processors = discover(settings.model_copy(update={"processors_path": path}))
    assert [p.name for p in processors] == ["always_fails", "churn_risk", "product_affinity"]
    events = generate(12, 10, seed=77).events + anna()
    orders = sum(1 for event in events if event.type == "order")

    result = run_on_stack(events, processors, settings=settings, log_path=tmp_path / "worker.log")
    expected = run_in_memory(events, processors, settings=settings)

    # both example traits on the real profiles, as the harness computed them
    assert result.trait("email:anna@example.com", "churn_risk") == "high"
    assert result.trait("email:anna@example.com", "product_affinity") == "sensors"
    assert sorted(result.profiles) == sorted(expected.profiles)
    for profile_id, document in expected.profiles.items():
        real = result.profiles[profile_id]
        assert real.traits == document.traits, profile_id
        assert real.event_count == document.event_count, profile_id
    # the failing processor dead-lettered every order, with its name; nothing else failed
    failed = result.dead_letters_of("processor:always_fails")
    assert len({(letter.source.partition, letter.source.offset) for letter in failed}) == orders
    assert all(letter.reason is ReasonCode.PROCESSOR_ERROR for letter in failed)
    assert all(letter.source.topic == f"{settings.namespace}.events.canonical" for letter in failed)
    assert len(result.dead_letters) == len(failed)
    assert len(expected.dead_letters_of("processor:always_fails")) == orders
