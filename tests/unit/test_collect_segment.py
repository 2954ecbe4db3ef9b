"""Segment calls -> cdp events: identifiers, traits, payloads, times, event ids, refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp.collect.keys import Sender
from cdp.collect.segment import (
    CALL_TYPES,
    InvalidMessage,
    RejectedMessages,
    batch_items,
    event_id,
    event_time,
    map_call,
    map_messages,
    profile_traits,
    snake_name,
)
from cdp.contracts import events as ev
from cdp.contracts.events import EVENT_CHANNELS, Event
from cdp.profile.facts import fact_from_event
from cdp.topics import Channel

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SENDER = Sender("dev-website", "website", "DE")


def keys(event: Event) -> set[tuple[str, str]]:
    return {(i.type, i.value) for i in event.identifiers}


def call(kind: str, **message: Any) -> Event:
    return map_call(kind, message, SENDER, NOW)


def refused(kind: str, **message: Any) -> InvalidMessage:
    with pytest.raises(InvalidMessage) as caught:
        map_call(kind, message, SENDER, NOW)
    return caught.value


def test_every_call_is_a_web_event_type() -> None:
    types = {"track": "track", "identify": "identify", "page": "page_view"}
    types |= {"screen": "screen", "group": "group", "alias": "alias"}
    assert set(types) == set(CALL_TYPES)
    for kind, event_type in types.items():
        assert EVENT_CHANNELS[event_type] is Channel.WEB
        extra = {"event": "E", "groupId": "g", "previousId": "p", "userId": "u"}
        event = map_call(kind, {**extra, "properties": {"url": "https://x.example/"}}, SENDER, NOW)
        assert event.type == event_type
        assert (event.source, event.region) == ("website", "DE")


def test_identify_maps_ids_and_traits() -> None:
    event = call(
        "identify",
        userId="C-100",
        anonymousId="anon-1",
        traits={
            "email": "Anna@Example.com",
            "phone": "+49 170 1234501",
            "firstName": "Anna",
            "last_name": "Berg",
            "title": "CTO",
            "company": {"name": "Muster GmbH", "industry": "Chemicals", "employee_count": 120},
            "age": 41,
            "vip": True,
            "address": {"city": "Berlin", "postalCode": "10115"},
            "tags": ["a", "b"],
            "nothing": None,
            "blank": "  ",
            "!!!": "no name",
        },
        context={"ip": "203.0.113.9", "traits": {"first_name": "Old", "plan": "pro"}},
        integrations={"All": False},
    )
    assert isinstance(event, ev.Identify)
    assert keys(event) == {
        ("customer_id", "C-100"),
        ("anonymous_id", "anon-1"),
        ("email", "Anna@Example.com"),
        ("phone", "+49 170 1234501"),
    }
    assert event.traits == {
        "email": "Anna@Example.com",
        "phone": "+49 170 1234501",
        "first_name": "Anna",  # identify traits win over context.traits
        "last_name": "Berg",
        "job_title": "CTO",
        "company": "Muster GmbH",
        "industry": "Chemicals",
        "company_employee_count": "120",
        "age": "41",
        "vip": "true",
        "address_city": "Berlin",
        "address_postal_code": "10115",
        "tags": '["a","b"]',
        "plan": "pro",
    }
    fact = fact_from_event(event)
    assert fact.type == "identify" and fact.trait("job_title") == "CTO"


def test_context_traits_give_identifiers_on_every_call() -> None:
    event = call(
        "track",
        anonymousId="a1",
        event="Clicked",
        context={"traits": {"email": "x@example.com"}},
        traits={"email": "ignored@example.com"},  # traits of a track call are not the person's
    )
    assert keys(event) == {("anonymous_id", "a1"), ("email", "x@example.com")}
    assert event.traits == {"email": "x@example.com"}


def test_an_invalid_email_is_a_trait_but_no_identifier() -> None:
    event = call("identify", userId="u1", traits={"email": "not-an-address"})
    assert keys(event) == {("customer_id", "u1")}
    assert event.traits == {"email": "not-an-address"}


def test_numeric_ids_are_text() -> None:
    event = call("track", userId=12345, event="E", messageId=7)
    assert keys(event) == {("customer_id", "12345")}
    assert event.event_id == event_id("website", "7")


def test_track_payload_and_fact() -> None:
    event = call("track", userId="u1", event="Demo Requested", properties={"plan": "pro", "n": 2})
    assert isinstance(event.payload, ev.TrackPayload)
    assert event.payload.event == "Demo Requested"
    assert json.loads(event.payload.properties or "") == {"plan": "pro", "n": 2}
    assert fact_from_event(event).to_json()["d"] == {"event": "Demo Requested"}
    assert call("track", userId="u1", event="E").payload == ev.TrackPayload(event="E")


def test_page_maps_to_page_view() -> None:
    event = call(
        "page",
        anonymousId="a1",
        name="Pricing",
        category=" Pricing ",
        properties={"url": "https://www.example.com/pricing?x=1", "referrer": "https://s.example/"},
        context={"campaign": {"name": "spring-launch"}, "page": {"title": "Prices"}},
    )
    assert event.payload == ev.PageViewPayload(
        url="https://www.example.com/pricing?x=1",
        title="Prices",
        referrer="https://s.example/",
        page_category="pricing",
        campaign="spring-launch",
    )
    fallback = call("page", anonymousId="a1", name="Home", context={"page": {"path": "/"}})
    assert fallback.payload == ev.PageViewPayload(url="/", title="Home")
    error = refused("page", anonymousId="a1", name="Home")
    assert (error.code, error.field) == ("missing_field", "properties.url")


def test_screen_group_alias() -> None:
    screen = call("screen", anonymousId="a1", name="Dashboard", properties={"tab": "kpi"})
    assert screen.payload == ev.ScreenPayload(name="Dashboard", properties='{"tab":"kpi"}')
    group = call(
        "group", userId="u1", groupId=42, traits={"name": "Muster GmbH", "industry": "Chem", "x": 1}
    )
    assert group.payload == ev.GroupPayload(
        group_id="42", traits='{"name":"Muster GmbH","industry":"Chem","x":1}'
    )
    assert group.traits == {"company": "Muster GmbH", "industry": "Chem"}
    alias = call("alias", userId="u1", previousId="anon-9")
    assert keys(alias) == {("customer_id", "u1"), ("anonymous_id", "anon-9")}
    assert alias.payload == ev.AliasPayload(previous_id="anon-9")
    assert "anon-9" not in repr(alias)


@pytest.mark.parametrize(
    ("kind", "message", "code", "field"),
    [
        ("track", {"event": "E"}, "missing_identifiers", "userId/anonymousId"),
        ("track", {"event": "E", "userId": " ", "anonymousId": ""}, "missing_identifiers", None),
        ("track", {"userId": "u"}, "missing_field", "event"),
        ("track", {"userId": "u", "event": 5}, "invalid_field", "event"),
        ("track", {"userId": {"id": 1}, "event": "E"}, "invalid_field", "userId"),
        ("track", {"userId": True, "event": "E"}, "invalid_field", "userId"),
        ("track", {"userId": "u" * 513, "event": "E"}, "invalid_field", "userId"),
        ("track", {"userId": "u", "event": "E", "properties": []}, "invalid_field", "properties"),
        ("identify", {"userId": "u", "traits": "x"}, "invalid_field", "traits"),
        ("identify", {"userId": "u", "traits": {"a": "x" * 5000}}, "invalid_field", "traits"),
        ("identify", {"userId": "u", "context": 3}, "invalid_field", "context"),
        ("group", {"userId": "u"}, "missing_field", "groupId"),
        ("alias", {"userId": "u"}, "missing_field", "previousId"),
        ("alias", {"previousId": "p", "anonymousId": "a"}, "missing_field", "userId"),
        (
            "track",
            {"userId": "u", "event": "E", "timestamp": "yesterday"},
            "invalid_timestamp",
            "timestamp",
        ),
        ("track", {"userId": "u", "event": "E", "sentAt": 17}, "invalid_timestamp", "sentAt"),
        ("track", {"userId": "u", "event": "E" * 2000}, "invalid_field", None),
    ],
)
def test_refusals_name_code_and_field(
    kind: str, message: dict[str, Any], code: str, field: str | None
) -> None:
    error = refused(kind, **message)
    assert error.code == code
    if field is not None:
        assert error.field == field
    assert "x" * 20 not in error.message  # no values in messages


def test_far_future_timestamp_is_refused() -> None:
    future = (NOW + timedelta(days=400)).isoformat()
    error = refused("track", userId="u", event="E", timestamp=future)
    assert error.code == "invalid_timestamp"


def test_event_time_rules() -> None:
    assert event_time({}, NOW) == NOW
    assert event_time({"timestamp": "2026-03-01T08:00:00Z"}, NOW) == NOW - timedelta(hours=25)
    assert event_time({"originalTimestamp": "2026-03-01T08:00:00"}, NOW) == datetime(
        2026, 3, 1, 8, tzinfo=UTC
    )
    # the client clock is 1 h fast: its times are corrected by received - sent
    skewed = {"timestamp": "2026-03-02T09:55:00+00:00", "sentAt": "2026-03-02T10:00:00+00:00"}
    assert event_time(skewed, NOW) == NOW - timedelta(minutes=5)
    assert event_time({"sentAt": "2026-03-02T10:00:00Z"}, NOW) == NOW
    assert event_time({"timestamp": "2026-03-02T10:00:00+01:00"}, NOW) == NOW


def test_event_id_is_uuid5_of_source_and_message_id() -> None:
    first = call("track", userId="u", event="E", messageId="m-1")
    again = map_call("track", {"userId": "u", "event": "E", "messageId": "m-1"}, SENDER, NOW)
    other_source = map_call(
        "track", {"userId": "u", "event": "E", "messageId": "m-1"}, Sender("k", "shop"), NOW
    )
    assert first.event_id == again.event_id != other_source.event_id
    assert first.event_id == first.event_id.lower() and first.event_id[14] == "5"
    generated = map_call("track", {"userId": "u", "event": "E"}, SENDER, NOW, lambda: "gen-1")
    assert generated.event_id == event_id("website", "gen-1")


def test_consent_preferences() -> None:
    event = call(
        "track",
        userId="u",
        event="E",
        context={
            "consent": {"categoryPreferences": {"Advertising": False, "Analytics": True, "x": "y"}}
        },
    )
    assert {(c.purpose, c.granted, c.channel) for c in event.consents} == {
        ("advertising", False, None),
        ("analytics", True, None),
    }


def test_snake_names_and_renames() -> None:
    assert snake_name("firstName") == "first_name"
    assert snake_name("Employee Count") == "employee_count"
    assert snake_name("userID2") == "user_id2"
    assert snake_name("9lives") is None and snake_name("---") is None
    assert snake_name("a" * 65) is None
    assert profile_traits({"title": "CTO", "job_title": "Head"}) == {"job_title": "Head"}
    deep = profile_traits({"a": {"b": {"c": {"d": 1}}}})
    assert deep == {"a_b_c": '{"d":1}'}
    with pytest.raises(InvalidMessage):
        profile_traits({f"t{i}": "v" for i in range(201)})


def test_batch_items_apply_the_batch_context_and_sent_at() -> None:
    body = {
        "batch": [
            {"type": "track", "context": {"ip": "1", "traits": {"a": 1}}},
            {"type": "page", "sentAt": "2026-01-01T00:00:00Z"},
            "not an object",
        ],
        "context": {"ip": "2", "library": {"name": "analytics-python"}},
        "sentAt": "2026-03-02T09:00:00Z",
    }
    items = batch_items(body)
    assert items[0] == {
        "type": "track",
        "context": {"ip": "1", "traits": {"a": 1}, "library": {"name": "analytics-python"}},
        "sentAt": "2026-03-02T09:00:00Z",
    }
    assert items[1]["sentAt"] == "2026-01-01T00:00:00Z"  # type: ignore[index]
    assert items[2] == "not an object"
    with pytest.raises(InvalidMessage):
        batch_items({"batch": {"type": "track"}})


def test_map_messages_is_all_or_nothing() -> None:
    good = {"type": "track", "userId": "u", "event": "E"}
    assert len(map_messages([(None, good), ("identify", {"userId": "u"})], SENDER, NOW)) == 2
    with pytest.raises(RejectedMessages) as caught:
        map_messages(
            [(None, good), (None, {"type": "nope"}), (None, 5), (None, {"type": "track"})],
            SENDER,
            NOW,
        )
    assert caught.value.total == 4
    assert [(e.index, e.code) for e in caught.value.errors] == [
        (1, "unknown_type"),
        (2, "invalid_message"),
        (3, "missing_identifiers"),
    ]
    assert caught.value.errors[0].to_json() == {
        "index": 1,
        "code": "unknown_type",
        "field": "type",
        "message": "type must be one of identify, track, page, screen, group, alias",
    }
