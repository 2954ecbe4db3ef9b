"""Event models: construction rules, Avro conversion, dead-letter reasons, partition keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cdp.contracts.codec import AvroCodec
from cdp.contracts.events import (
    CANONICAL_SUBJECT,
    CHANNEL_SUBJECTS,
    EVENT_CHANNELS,
    EVENT_MODELS,
    Consent,
    Event,
    Identifier,
    Order,
    OrderPayload,
    PageView,
    PageViewPayload,
    WebEvent,
    decode_canonical,
    decode_channel_event,
    encode_canonical,
    encode_event,
    event_from_avro,
    event_to_avro,
    from_canonical_avro,
    partition_key,
    primary_identifier,
    to_canonical_avro,
)
from cdp.contracts.examples import example_events
from cdp.contracts.registry import LocalSchemaRegistry
from cdp.contracts.strategies import events
from cdp.errors import EventError, ReasonCode
from cdp.settings import PROJECT_ROOT
from cdp.topics import Channel

SECRET_EMAIL = "jane.secret@example.com"
CODEC = AvroCodec(LocalSchemaRegistry(PROJECT_ROOT / "schemas"))


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return CODEC


def order(**overrides: Any) -> Order:
    data: dict[str, Any] = {
        "source": "shop-backend",
        "identifiers": [Identifier.email(SECRET_EMAIL)],
        "payload": OrderPayload(order_id="SO-1", value=Decimal("10.50"), currency="EUR", items=1),
    }
    data.update(overrides)
    return Order(**data)


def order_record(**overrides: Any) -> dict[str, Any]:
    record = event_to_avro(order())
    record.update(overrides)
    return record


# ------------------------------------------------------------------ construction


def test_defaults_make_a_minimal_event_easy() -> None:
    event = PageView(
        source="website",
        identifiers=[Identifier.anonymous_id("a1")],
        payload=PageViewPayload(url="https://www.example.com/"),
    )
    assert uuid.UUID(event.event_id).version == 4
    assert event.event_time.tzinfo is UTC
    assert abs(datetime.now(UTC) - event.event_time) < timedelta(seconds=5)
    assert event.channel is Channel.WEB
    assert event.type == "page_view"
    assert event.traits == {} and event.consents == [] and event.region is None


def test_every_event_type_has_an_example_and_a_channel() -> None:
    examples = example_events()
    assert sorted(e.type for e in examples) == sorted(EVENT_MODELS)
    for event in examples:
        assert EVENT_CHANNELS[event.type] is event.channel
        assert isinstance(event, EVENT_MODELS[event.type])


def test_identifier_helpers() -> None:
    assert Identifier.email("a@b.de") == Identifier(type="email", value="a@b.de")
    assert Identifier.phone("+4930").type == "phone"
    assert Identifier.customer_id("1").type == "customer_id"
    assert Identifier.crm_contact_id("1").type == "crm_contact_id"
    assert Identifier.device_id("1").type == "device_id"
    assert Identifier.of("loyalty_id", "L-1").type == "loyalty_id"
    with pytest.raises(ValidationError):
        Identifier.of("Loyalty-ID", "L-1")
    with pytest.raises(ValidationError):
        Identifier.email("x")
    assert SECRET_EMAIL not in repr(Identifier.email(SECRET_EMAIL))


def test_invalid_event_cannot_be_constructed_and_message_has_no_values() -> None:
    with pytest.raises(ValidationError) as caught:
        Order(
            source="shop-backend",
            identifiers=[Identifier.customer_id("C-1")],
            traits={"last_name": "Secretsson"},
            payload=OrderPayload(order_id="SO-1", value=Decimal("-1"), currency="eur", items=0),
        )
    message = str(caught.value)
    assert "greater_than_equal" in message
    assert "Secretsson" not in message and "eur" not in message
    with pytest.raises(ValidationError) as caught:
        Identifier.email("jane.secret@@example")
    assert "invalid_email" in str(caught.value)
    assert "jane.secret" not in str(caught.value)


def test_naive_and_future_times_are_rejected_offsets_normalised() -> None:
    with pytest.raises(ValidationError, match="timezone_aware"):
        order(event_time=datetime(2024, 1, 1, 12, 0))
    with pytest.raises(ValidationError, match="event_time_in_future"):
        order(event_time=datetime.now(UTC) + timedelta(days=2))
    order(event_time=datetime.now(UTC) + timedelta(hours=23))  # clock skew is fine
    event = order(event_time=datetime(2024, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    assert event.event_time == datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
    assert event.event_time.utcoffset() == timedelta(0)


def test_event_id_must_be_a_uuid_and_is_canonicalised() -> None:
    raw = uuid.uuid4()
    assert order(event_id=str(raw).upper()).event_id == str(raw)
    assert order(event_id=raw).event_id == str(raw)
    with pytest.raises(ValidationError, match="uuid_format"):
        order(event_id="order-1")
    with pytest.raises(ValidationError, match="uuid_format"):
        order(event_id=f"{raw}\n")


def test_blank_identifiers_are_dropped_but_one_must_remain() -> None:
    event = order(
        identifiers=[
            Identifier.email("  "),
            Identifier.customer_id("C-1"),
            Identifier.customer_id("C-1"),
        ]
    )
    assert event.identifiers == [Identifier.customer_id("C-1")]
    with pytest.raises(ValidationError, match="missing_identifiers"):
        order(identifiers=[Identifier.email(" "), Identifier.anonymous_id("")])
    with pytest.raises(ValidationError, match="missing_identifiers"):
        order(identifiers=[])


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("value", Decimal("1.001"), "decimal_max_places"),
        ("value", Decimal("-0.01"), "greater_than_equal"),
        ("currency", "EURO", "string_pattern_mismatch"),
        ("items", 0, "greater_than"),
        ("order_id", "   ", "blank_string"),
    ],
)
def test_payload_rules(field: str, value: Any, error: str) -> None:
    data: dict[str, Any] = {"order_id": "SO-1", "value": "1", "currency": "EUR", "items": 1}
    data[field] = value
    with pytest.raises(ValidationError, match=error):
        OrderPayload(**data)


def test_money_is_normalised_to_two_places() -> None:
    assert OrderPayload(order_id="1", value="1.100", currency="EUR", items=1).value.as_tuple() == (
        Decimal("1.10").as_tuple()
    )


def test_other_rules() -> None:
    from cdp.contracts import events as ev

    with pytest.raises(ValidationError, match="currency_required"):
        ev.OpportunityStageChangePayload(opportunity_id="o", stage="proposal", amount=Decimal(1))
    with pytest.raises(ValidationError, match="less_than_equal"):
        ev.SatisfactionScorePayload(score=11)
    with pytest.raises(ValidationError, match="greater_than"):
        ev.CartPayload(action="add", product_id="p", quantity=0, unit_price=Decimal(1))
    with pytest.raises(ValidationError, match="greater_than_equal"):
        ev.CallPayload(call_id="c", direction="inbound", duration_s=-1)
    with pytest.raises(ValidationError, match="literal_error"):
        ev.TicketOpenedPayload(ticket_id="t", priority="asap")  # type: ignore[arg-type]
    assert order(region=" de ").region == "DE"
    with pytest.raises(ValidationError, match="string_pattern_mismatch"):
        order(source="shop frontend")


def test_channel_and_type_are_fixed_by_the_class() -> None:
    with pytest.raises(ValidationError):
        order(channel="web")
    with pytest.raises(ValidationError):
        order(type="page_view")
    with pytest.raises(ValidationError, match="unknown_event_type"):
        WebEvent(
            type="page_view",
            source="website",
            identifiers=[Identifier.anonymous_id("a")],
            payload=PageViewPayload(url="https://x"),
        )
    with pytest.raises(ValidationError):
        Event(  # type: ignore[call-arg]
            channel="web", source="website", identifiers=[Identifier.anonymous_id("a")]
        )


def test_events_are_immutable() -> None:
    event = order()
    with pytest.raises(ValidationError):
        event.source = "other"  # type: ignore[misc]


# ------------------------------------------------------------------ Avro round trips


def test_examples_round_trip_through_channel_and_canonical_schemas(codec: AvroCodec) -> None:
    for event in example_events():
        data = encode_event(codec, event)
        schema, record = codec.decode(data)
        assert schema.subject == CHANNEL_SUBJECTS[event.channel]
        assert event_from_avro(record, event.channel) == event
        assert decode_channel_event(codec, data, event.channel) == event
        canonical = encode_canonical(codec, event)
        assert codec.decode(canonical)[0].subject == CANONICAL_SUBJECT
        assert decode_canonical(codec, canonical) == event
        assert from_canonical_avro(to_canonical_avro(event)) == event


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_any_valid_event_round_trips(event: Event) -> None:
    assert decode_channel_event(CODEC, encode_event(CODEC, event), event.channel) == event
    assert decode_canonical(CODEC, encode_canonical(CODEC, event)) == event


def test_avro_record_shape() -> None:
    record = event_to_avro(order(consents=[Consent(purpose="analytics", granted=False)]))
    assert record["channel"] == "ecommerce" and type(record["channel"]) is str
    assert record["payload"][0] == "cdp.payload.ecommerce.Order"
    assert record["payload"][1]["value"] == Decimal("10.50")
    assert record["consents"] == [{"purpose": "analytics", "granted": False, "channel": None}]


# ------------------------------------------------------------------ dead-letter reasons


def reason_of(record: dict[str, Any], channel: Channel = Channel.ECOMMERCE) -> EventError:
    with pytest.raises(EventError) as caught:
        event_from_avro(record, channel)
    return caught.value


def test_wrong_channel() -> None:
    assert reason_of(order_record(), Channel.WEB).reason is ReasonCode.WRONG_CHANNEL
    # a web event type claimed to be ecommerce
    page = event_to_avro(
        PageView(
            source="w", identifiers=[Identifier.anonymous_id("a")], payload=PageViewPayload(url="u")
        )
    )
    page["channel"] = "ecommerce"
    error = reason_of(page)
    assert error.reason is ReasonCode.WRONG_CHANNEL
    assert "page_view" in error.detail


def test_wrong_channel_by_subject(codec: AvroCodec) -> None:
    data = encode_event(codec, order())
    with pytest.raises(EventError) as caught:
        decode_channel_event(codec, data, Channel.CRM)
    assert caught.value.reason is ReasonCode.WRONG_CHANNEL
    canonical = encode_canonical(codec, order())
    with pytest.raises(EventError) as caught:
        decode_channel_event(codec, canonical, Channel.ECOMMERCE)
    assert caught.value.reason is ReasonCode.WRONG_CHANNEL


@pytest.mark.parametrize(
    "identifiers",
    [[], [{"type": "email", "value": ""}], [{"type": "email", "value": " \t"}], None],
)
def test_missing_identifiers(identifiers: Any) -> None:
    error = reason_of(order_record(identifiers=identifiers))
    assert error.reason is ReasonCode.MISSING_IDENTIFIERS


def test_validation_failed_details_name_fields_and_rules_only() -> None:
    record = order_record(
        identifiers=[{"type": "email", "value": "jane.secret@@example"}],
        traits={"Secret Key": "Secretsson", "last_name": "x" * 5000},
        payload=(
            "cdp.payload.ecommerce.Order",
            {"order_id": "SO-1", "value": Decimal("-5.00"), "currency": "eur", "items": 0},
        ),
    )
    error = reason_of(record)
    assert error.reason is ReasonCode.VALIDATION_FAILED
    for expected in (
        "payload.value: greater_than_equal",
        "payload.currency: string_pattern_mismatch",
        "payload.items: greater_than",
        "identifiers.0: invalid_email",
        "traits.<key>.[key]: string_pattern_mismatch",
        "traits.<key>: string_too_long",
    ):
        assert expected in error.detail
    for secret in ("jane", "Secret", "eur", "-5", "xxxx"):
        assert secret not in error.detail and secret not in str(error)


def test_unknown_type_and_payload_mismatch() -> None:
    assert reason_of(order_record(type="refund")).reason is ReasonCode.VALIDATION_FAILED
    mismatch = order_record(payload=("cdp.payload.ecommerce.Return", {"order_id": "1"}))
    error = reason_of(mismatch)
    assert error.reason is ReasonCode.VALIDATION_FAILED
    assert "payload_type_mismatch" in error.detail


def test_naive_or_future_time_in_record_fails_validation() -> None:
    future = order_record(event_time=datetime.now(UTC) + timedelta(days=3))
    error = reason_of(future)
    assert error.reason is ReasonCode.VALIDATION_FAILED
    assert error.detail == "event_time: event_time_in_future"


def test_plain_dict_payload_is_accepted() -> None:
    record = order_record()
    record["payload"] = record["payload"][1]
    assert event_from_avro(record, "ecommerce") == order(
        event_id=record["event_id"], event_time=record["event_time"]
    )


def test_canonical_record_with_unknown_channel() -> None:
    with pytest.raises(EventError) as caught:
        from_canonical_avro(order_record(channel="fax"))
    assert caught.value.reason is ReasonCode.VALIDATION_FAILED
    assert caught.value.detail == "channel: unknown_channel"


# ------------------------------------------------------------------ keys


def test_primary_identifier_priority() -> None:
    ids = [
        Identifier.anonymous_id("anon"),
        Identifier.device_id("dev"),
        Identifier.phone("+49 30 1"),
        Identifier.email("A@B.de"),
        Identifier.crm_contact_id("crm"),
        Identifier.customer_id("cust"),
        Identifier.of("loyalty_id", "L"),
    ]
    expected = ["customer_id", "crm_contact_id", "email", "phone", "device_id", "anonymous_id"]
    for kind in expected:
        event = order(identifiers=ids)
        assert primary_identifier(event).type == kind
        ids = [i for i in ids if i.type != kind]
    assert primary_identifier(order(identifiers=ids)).type == "loyalty_id"
    others = [Identifier.of("zeta_id", "1"), Identifier.of("alpha_id", "2")]
    assert primary_identifier(order(identifiers=others)).type == "alpha_id"


@given(
    st.permutations(
        [Identifier.email("b@x.de"), Identifier.email(" A@x.de "), Identifier.email("c@x.de")]
    )
)
def test_primary_identifier_ties_do_not_depend_on_order(ids: list[Identifier]) -> None:
    event = order(identifiers=ids)
    assert primary_identifier(event) == Identifier.email(" A@x.de ")
    assert partition_key(event) == b"email:a@x.de"


def test_partition_key_strips_values() -> None:
    assert partition_key(order(identifiers=[Identifier.customer_id(" C-1 ")])) == b"customer_id:C-1"
