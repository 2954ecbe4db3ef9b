"""The profile document: content, canonical JSON, round-trip, PII-free repr, speed."""

from __future__ import annotations

import json
import timeit
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from cdp.contracts.examples import example_events
from cdp.profile import (
    Fact,
    ProfileDocument,
    build_profile,
    canonical_json,
    default_trait_config,
    fact_from_event,
    profile_from_json,
    profile_to_json,
)
from cdp.samples import generate

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
IDS = ["email:anna.berg@example.com", "anonymous_id:anon-7f3a", "customer_id:C-100234"]


def example_facts() -> list[Fact]:
    return [fact_from_event(event) for event in example_events(NOW)]


def example_doc() -> ProfileDocument:
    return build_profile("p-0123456789abcdef0123", example_facts(), default_trait_config(), IDS)


def test_document_of_the_examples() -> None:
    events = example_events(NOW)
    doc = build_profile(
        "p-0123456789abcdef0123", map(fact_from_event, events), default_trait_config(), IDS
    )
    assert list(ProfileDocument.model_fields) == [
        "profile_id",
        "identifiers",
        "traits",
        "computed",
        "consent",
        "sources",
        "event_count",
        "journey",
    ]
    assert doc.profile_id == "p-0123456789abcdef0123"
    assert doc.identifiers == sorted(IDS)
    assert doc.event_count == len(events)
    assert doc.sources == [
        "contact-center",
        "crm",
        "marketing-automation",
        "mobile-app",
        "service-desk",
        "shop-backend",
        "shop-frontend",
        "survey-tool",
        "website",
    ]
    # CRM beats the (earlier) website form for names; provenance points at the upsert
    upsert = next(e for e in events if e.type == "contact_upsert")
    for name, value in {
        "first_name": "Anna",
        "last_name": "Berg",
        "company": "Muster GmbH",
        "job_title": "Head of Procurement",
    }.items():
        trait = doc.traits[name]
        assert (trait.value, trait.source, trait.channel, trait.rule) == (
            value,
            "crm",
            "crm",
            "source_priority",
        )
        assert (trait.event_id, trait.event_time) == (upsert.event_id, upsert.event_time)
    computed = doc.computed
    assert computed.order_count == 1
    assert computed.revenue == {"EUR": "4497.00"}
    assert computed.returned_value == {"EUR": "1499.00"}
    assert computed.open_tickets == []
    assert computed.tickets_total == 1
    assert computed.avg_satisfaction == 9.0
    assert computed.lead_status is not None and computed.lead_status.value == "qualified"
    assert computed.account_owner is not None and computed.account_owner.value == "user-42"
    assert computed.last_channel == events[-1].channel.value
    assert set(doc.consent) == {"marketing_email", "newsletter"}
    assert doc.consent["newsletter"]["email"].granted is True


def test_identifiers_are_deduped_and_sorted() -> None:
    doc = build_profile("p", [], default_trait_config(), ["b:2", "a:1", "b:2"])
    assert doc.identifiers == ["a:1", "b:2"]
    assert doc.event_count == 0
    assert doc.traits == {} and doc.consent == {} and doc.sources == []


def test_canonical_json_is_sorted_and_compact() -> None:
    doc = example_doc()
    data = canonical_json(doc)
    assert isinstance(data, bytes)
    parsed = json.loads(data)
    assert data == json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    assert b" " not in data.replace(b"Muster GmbH", b"").replace(b"Head of Procurement", b"")
    assert parsed == profile_to_json(doc)
    assert parsed["computed"]["first_seen"].endswith("Z")


def test_json_round_trip() -> None:
    doc = example_doc()
    data = canonical_json(doc)
    back = profile_from_json(data)
    assert back == doc
    assert canonical_json(back) == data
    assert profile_from_json(data.decode()) == doc
    assert profile_from_json(profile_to_json(doc)) == doc


def test_malformed_document_is_rejected() -> None:
    data = profile_to_json(example_doc())
    data["surprise"] = 1
    with pytest.raises(ValidationError):
        profile_from_json(data)
    with pytest.raises(ValidationError):
        profile_from_json(b"{}")


def test_repr_keeps_pii_out() -> None:
    text = repr(example_doc()) + str(example_doc())
    for secret in ("Anna", "Berg", "anna.berg@example.com", "anon-7f3a", "C-100234"):
        assert secret not in text


def test_duplicates_are_one_event() -> None:
    facts = example_facts()
    doc = build_profile("p", facts + facts[:5], default_trait_config())
    assert doc.event_count == len(facts)
    assert canonical_json(doc) == canonical_json(build_profile("p", facts, default_trait_config()))


def test_building_a_50_fact_profile_is_fast() -> None:
    """Well under 1 ms for 50 facts (best of several runs; see docs/profiles.md)."""
    dataset = generate(customers=8, events_per_customer=8, seed=3)
    facts = [fact_from_event(event) for event in dataset.events][:50]
    assert len({f.event_id for f in facts}) == 50
    config = default_trait_config()
    runs = 200
    best = min(timeit.repeat(lambda: build_profile("p", facts, config, IDS), number=runs, repeat=5))
    assert best / runs < 1e-3, f"{best / runs * 1e6:.0f} us per build"
