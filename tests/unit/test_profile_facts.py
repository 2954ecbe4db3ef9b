"""Facts: extraction from every event type, JSON round-trip, PII-free repr, set union."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from cdp.contracts import events as ev
from cdp.contracts.events import EVENT_MODELS, Consent, Event, Identifier
from cdp.contracts.examples import example_events
from cdp.profile import FACT_DATA_FIELDS, Fact, fact_from_event, merge_fact_sets

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

EXPECTED_DATA: dict[str, dict[str, str | int]] = {
    "page_view": {"page_category": "product", "campaign": "spring-launch"},
    "click": {"element": "cta-demo"},
    "form_submit": {"form_id": "demo-2024", "form_type": "demo_request"},
    "download": {"asset_type": "tender_document"},
    "newsletter_signup": {"list_id": "industry-news"},
    "track": {"event": "Demo Requested"},
    "identify": {},
    "screen": {"name": "Dashboard", "category": "app"},
    "group": {"group_id": "acct-9"},
    "alias": {},
    "product_view": {"product_id": "EG-200", "category": "gateways"},
    "cart": {"action": "add"},
    "checkout": {"value": "4497.00", "currency": "EUR"},
    "order": {"order_id": "SO-55012", "value": "4497.00", "currency": "EUR", "items": 3},
    "return": {"order_id": "SO-55012", "value": "1499.00", "currency": "EUR"},
    "call": {"direction": "inbound", "duration_s": 420, "topic": "onboarding"},
    "ticket_opened": {"ticket_id": "T-4711", "priority": "high", "category": "technical"},
    "ticket_resolved": {"ticket_id": "T-4711"},
    "satisfaction_score": {"score": 9, "survey": "post-ticket"},
    "contact_upsert": {"account_id": "001-ACC-9"},
    "lead_status_change": {"status": "qualified", "previous_status": "working"},
    "opportunity_stage_change": {
        "opportunity_id": "006-OPP-3",
        "stage": "closed_won",
        "amount": "120000.00",
        "currency": "EUR",
    },
    "account_owner_change": {"account_id": "001-ACC-9", "owner": "user-42"},
}

EXPECTED_TRAITS: dict[str, dict[str, str]] = {
    "form_submit": {"first_name": "Anna", "last_name": "Berg", "company": "Muster GmbH"},
    "identify": {"first_name": "Anna", "last_name": "Berg", "email": "anna.berg@example.com"},
    "group": {"company": "Muster GmbH", "industry": "Machinery"},
    "contact_upsert": {
        "first_name": "Anna",
        "last_name": "Berg",
        "job_title": "Head of Procurement",
        "company": "Muster GmbH",
    },
}


def _examples() -> dict[str, Event]:
    return {event.type: event for event in example_events()}


def test_every_event_type_has_a_data_table_entry() -> None:
    assert set(FACT_DATA_FIELDS) == set(EVENT_MODELS)
    assert set(EXPECTED_DATA) == set(EVENT_MODELS)
    for name, fields in FACT_DATA_FIELDS.items():
        payload = EVENT_MODELS[name].model_fields["payload"].annotation
        assert payload is not None
        assert set(fields) <= set(payload.model_fields), name


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_fact_from_every_event_type(event_type: str) -> None:
    event = _examples()[event_type]
    fact = fact_from_event(event)
    assert fact.event_id == event.event_id
    assert fact.event_time == event.event_time
    assert fact.event_time.tzinfo is UTC
    assert fact.channel == event.channel.value
    assert fact.type == event_type
    assert fact.source == event.source
    assert fact.region == event.region
    assert dict(fact.data) == EXPECTED_DATA[event_type]
    assert fact.traits_dict == EXPECTED_TRAITS.get(event_type, {})
    assert fact.consents == tuple(
        sorted(
            ((c.purpose, c.granted, c.channel) for c in event.consents),
            key=lambda c: (c[0], c[1], c[2] or ""),
        )
    )
    # JSON round-trip through real JSON text
    text = json.dumps(fact.to_json())
    assert Fact.from_json(json.loads(text)) == fact
    assert hash(Fact.from_json(json.loads(text))) == hash(fact)


def test_consents_are_kept() -> None:
    fact = fact_from_event(_examples()["form_submit"])
    assert fact.consents == (("marketing_email", True, "email"),)
    assert fact.to_json()["cs"] == [["marketing_email", True, "email"]]


def test_contact_upsert_payload_beats_envelope_traits() -> None:
    event = ev.ContactUpsert(
        source="crm",
        event_time=T0,
        identifiers=[Identifier.crm_contact_id("003-1")],
        traits={"first_name": "Old", "industry": "Machinery", "nickname": "  "},
        payload=ev.ContactUpsertPayload(contact_id="003-1", first_name="Anna", company="X AG"),
    )
    fact = fact_from_event(event)
    assert fact.traits_dict == {"first_name": "Anna", "company": "X AG", "industry": "Machinery"}
    assert fact.trait("first_name") == "Anna"
    assert fact.trait("last_name") is None
    assert fact.get("account_id") is None  # None payload values are left out
    assert fact.data == ()


def test_repr_and_str_keep_pii_out() -> None:
    for event in example_events():
        fact = fact_from_event(event)
        for text in (repr(fact), str(fact), f"{fact}"):
            assert "Anna" not in text
            assert "Berg" not in text
            assert "Muster" not in text
            assert "Procurement" not in text
    fact = fact_from_event(_examples()["contact_upsert"])
    assert "first_name" in repr(fact)  # names are shown, values are not


def test_compact_json_leaves_empty_parts_out() -> None:
    fact = Fact(event_id="e1", event_time=T0, channel="web", type="click", source="website")
    assert fact.to_json() == {
        "id": "e1",
        "t": "2026-01-05T08:00:00Z",
        "ch": "web",
        "ty": "click",
        "src": "website",
    }
    assert Fact.from_json(fact.to_json()) == fact


def test_times_are_normalised_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    fact = Fact(
        event_id="e1",
        event_time=datetime(2026, 1, 5, 9, 0, tzinfo=cet),
        channel="web",
        type="click",
        source="website",
    )
    assert fact.event_time == T0
    assert fact.event_time.tzinfo is UTC
    parsed = Fact.from_json({**fact.to_json(), "t": "2026-01-05T09:00:00+01:00"})
    assert parsed == fact
    with pytest.raises(ValueError, match="timezone-aware"):
        Fact(
            event_id="e",
            event_time=datetime(2026, 1, 5),
            channel="web",
            type="click",
            source="w",
        )


def test_constructor_sorts_so_equal_content_gives_equal_facts() -> None:
    a = Fact(
        event_id="e",
        event_time=T0,
        channel="web",
        type="form_submit",
        source="w",
        traits=(("b", "2"), ("a", "1")),
        consents=(("p", True, None), ("p", False, "email"), ("p", True, None)),
        data=(("z", 1), ("form_type", "contact")),
    )
    b = Fact(
        event_id="e",
        event_time=T0,
        channel="web",
        type="form_submit",
        source="w",
        traits=(("a", "1"), ("b", "2")),
        consents=(("p", False, "email"), ("p", True, None)),
        data=(("form_type", "contact"), ("z", 1)),
    )
    assert a == b
    assert hash(a) == hash(b)
    assert a.traits == (("a", "1"), ("b", "2"))
    assert a.consents == (("p", False, "email"), ("p", True, None))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": ""}, "fact.id"),
        ({"id": 5}, "fact.id"),
        ({"t": "yesterday"}, "fact.t"),
        ({"t": "2026-01-05T08:00:00"}, "fact.t"),
        ({"ch": None}, "fact.ch"),
        ({"rg": 7}, "fact.rg"),
        ({"tr": {"first_name": 1}}, "fact.tr"),
        ({"tr": ["x"]}, "fact.tr"),
        ({"cs": [["p", "yes", None]]}, "fact.cs"),
        ({"cs": [["p", True]]}, "fact.cs"),
        ({"d": {"score": True}}, "fact.d"),
        ({"d": {"score": 1.5}}, "fact.d"),
        ({"extra": 1}, "unknown keys"),
    ],
)
def test_from_json_rejects_bad_data_naming_the_field(change: dict[str, Any], field: str) -> None:
    good = fact_from_event(_examples()["form_submit"]).to_json()
    with pytest.raises(ValueError, match=field) as info:
        Fact.from_json({**good, **change})
    assert "Anna" not in str(info.value)


def test_from_json_needs_an_object() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        Fact.from_json(["x"])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- merge


def _fact(event_id: str, minutes: int = 0, **kw: Any) -> Fact:
    base: dict[str, Any] = {"channel": "web", "type": "page_view", "source": "website"}
    base.update(kw)
    return Fact(event_id=event_id, event_time=T0 + timedelta(minutes=minutes), **base)


def test_merge_is_union_by_event_id() -> None:
    a, b, c = _fact("a"), _fact("b", 1), _fact("c", 2)
    left = {"a": a, "b": b}
    right = [b, c, c]
    merged = merge_fact_sets(left, right)
    assert merged == {"a": a, "b": b, "c": c}
    assert left == {"a": a, "b": b}  # inputs unchanged
    assert merge_fact_sets() == {}
    assert merge_fact_sets(merged, merged) == merged
    assert merge_fact_sets([a], [b]) == merge_fact_sets([b], [a])


def test_merge_of_conflicting_facts_with_one_id_does_not_depend_on_order() -> None:
    one = _fact("a", traits=(("first_name", "Anna"),))
    other = _fact("a", traits=(("first_name", "Anne"),))
    assert merge_fact_sets([one], [other]) == merge_fact_sets([other], [one])
    assert merge_fact_sets([one, other]) == merge_fact_sets([other, one])


def test_fact_from_event_with_consent_withdrawal() -> None:
    event = ev.NewsletterSignup(
        source="website",
        event_time=T0,
        identifiers=[Identifier.email("a@example.com")],
        consents=[
            Consent(purpose="newsletter", granted=False, channel="email"),
            Consent(purpose="analytics", granted=True),
        ],
        payload=ev.NewsletterSignupPayload(list_id="l"),
    )
    fact = fact_from_event(event)
    assert fact.consents == (("analytics", True, None), ("newsletter", False, "email"))
    assert Fact.from_json(json.loads(json.dumps(fact.to_json()))) == fact
