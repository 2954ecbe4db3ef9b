"""The event contract as pydantic models, and conversions to and from Avro records.

A channel system builds a typed event and hands it to the producer::

    from cdp.contracts.events import Identifier, PageView, PageViewPayload

    event = PageView(
        source="website",
        identifiers=[Identifier.anonymous_id("a1")],
        payload=PageViewPayload(url="https://example.com/pricing", page_category="pricing"),
    )

An invalid event cannot be constructed (:class:`pydantic.ValidationError`,
whose message names fields and rules but never shows input values). The
ingest stage goes the other way: :func:`event_from_avro` turns a decoded
channel record into an :class:`Event` or raises :class:`~cdp.errors.EventError`
with the dead-letter reason.

Envelope (every event): ``event_id``, ``event_time``, ``channel``, ``type``,
``source``, ``region``, ``identifiers``, ``traits``, ``consents``, ``payload``.
See ``docs/specs/events.md``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cdp.errors import EventError, ReasonCode
from cdp.topics import Channel

if TYPE_CHECKING:
    from cdp.contracts.codec import AvroCodec

CHANNEL_SUBJECTS: dict[Channel, str] = {
    Channel.WEB: "cdp.channel.WebEvent",
    Channel.ECOMMERCE: "cdp.channel.EcommerceEvent",
    Channel.CALLCENTER: "cdp.channel.CallcenterEvent",
    Channel.CRM: "cdp.channel.CrmEvent",
}
"""Schema subject (record full name) of each channel topic."""

CANONICAL_SUBJECT = "cdp.CanonicalEvent"
"""Schema subject of the canonical topic (envelope + every payload type)."""

MAX_FUTURE = timedelta(days=1)
"""How far in the future ``event_time`` may be (clock skew of channel systems)."""

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
"""Identifier types, trait names and consent purposes: lower_snake_case."""

MAX_IDENTIFIERS = 50
MAX_TRAITS = 200
MAX_CONSENTS = 50
MAX_JSON_TEXT = 65_536
"""Longest JSON text in a payload (``properties`` of ``track``/``screen``, group ``traits``)."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CANONICAL_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SAFE_LOC = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


# --------------------------------------------------------------------------- field types


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank_string", "must not be blank")
    return value


def _json_object(value: str) -> str:
    try:
        parsed = json.loads(value)
    except ValueError:
        raise PydanticCustomError("json_object", "must be the text of a JSON object") from None
    if not isinstance(parsed, dict):
        raise PydanticCustomError("json_object", "must be the text of a JSON object")
    return value


def _two_places(value: Decimal) -> Decimal:
    # decimal_places=2 already holds, so this only pads/strips trailing zeros (exact).
    return value.quantize(Decimal("0.01"))


Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=64)]
"""A lower_snake_case name (identifier type, trait name, consent purpose)."""
Id = Annotated[str, StringConstraints(max_length=256), AfterValidator(_not_blank)]
"""An id of an object in a channel system (order id, ticket id, ...)."""
Text = Annotated[str, StringConstraints(max_length=1024), AfterValidator(_not_blank)]
"""A short non-blank text (title, topic, status, ...)."""
Url = Annotated[str, StringConstraints(max_length=4096), AfterValidator(_not_blank)]
"""A URL as the channel system saw it."""
Money = Annotated[
    Decimal, Field(ge=0, max_digits=18, decimal_places=2), AfterValidator(_two_places)
]
"""A non-negative amount with at most 2 decimal places (Avro decimal(18, 2))."""
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""An ISO 4217 currency code (three upper-case letters)."""
JsonObjectText = Annotated[
    str, StringConstraints(max_length=MAX_JSON_TEXT), AfterValidator(_json_object)
]
"""The text of a JSON object (properties of a track or screen call, traits of a group)."""
Count = Annotated[int, Field(gt=0, le=2**31 - 1)]
"""A positive 32-bit count."""
Seconds = Annotated[int, Field(ge=0, le=2**31 - 1)]
"""A non-negative 32-bit duration in seconds."""

FormType = Literal["contact", "demo_request", "quote_request", "tender", "other"]
AssetType = Literal["whitepaper", "datasheet", "tender_document", "case_study", "other"]
CartAction = Literal["add", "remove"]
CallDirection = Literal["inbound", "outbound"]
TicketPriority = Literal["low", "normal", "high", "urgent"]

_MODEL_CONFIG = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


# --------------------------------------------------------------------------- envelope parts


class IdentifierType(StrEnum):
    """The well-known identifier types (any lower_snake_case type is accepted)."""

    EMAIL = "email"
    PHONE = "phone"
    CUSTOMER_ID = "customer_id"
    CRM_CONTACT_ID = "crm_contact_id"
    ANONYMOUS_ID = "anonymous_id"
    DEVICE_ID = "device_id"


IDENTIFIER_PRIORITY: tuple[str, ...] = (
    IdentifierType.CUSTOMER_ID,
    IdentifierType.CRM_CONTACT_ID,
    IdentifierType.EMAIL,
    IdentifierType.PHONE,
    IdentifierType.DEVICE_ID,
    IdentifierType.ANONYMOUS_ID,
)
"""Order in which :func:`primary_identifier` picks; other types follow alphabetically."""


class Identifier(BaseModel):
    """A typed identifier of the person; the raw value (normalised later, by identity)."""

    model_config = _MODEL_CONFIG

    type: Name
    """Identifier type (``email``, ``phone``, ... or another lower_snake_case type)."""
    value: Annotated[str, StringConstraints(max_length=512)] = Field(repr=False)
    """Raw value (PII, kept out of ``repr``); blank values are dropped from events."""

    @model_validator(mode="after")
    def _check_email(self) -> Identifier:
        if self.type == IdentifierType.EMAIL:
            text = self.value.strip()
            if text and not _EMAIL.match(text):
                raise PydanticCustomError(
                    "invalid_email", "email identifier does not look like an email address"
                )
        return self

    @property
    def is_blank(self) -> bool:
        """True when the value is empty or whitespace."""
        return not self.value.strip()

    @property
    def key_value(self) -> str:
        """The value as used in partition keys: stripped, lower-cased for emails."""
        text = self.value.strip()
        return text.lower() if self.type == IdentifierType.EMAIL else text

    @classmethod
    def of(cls, type: str, value: str) -> Identifier:
        """An identifier of any type."""
        return cls(type=type, value=value)

    @classmethod
    def email(cls, value: str) -> Identifier:
        """An ``email`` identifier."""
        return cls(type=IdentifierType.EMAIL, value=value)

    @classmethod
    def phone(cls, value: str) -> Identifier:
        """A ``phone`` identifier (any format; E.164 normalisation happens later)."""
        return cls(type=IdentifierType.PHONE, value=value)

    @classmethod
    def customer_id(cls, value: str) -> Identifier:
        """A ``customer_id`` identifier (shop/ERP customer number)."""
        return cls(type=IdentifierType.CUSTOMER_ID, value=value)

    @classmethod
    def crm_contact_id(cls, value: str) -> Identifier:
        """A ``crm_contact_id`` identifier."""
        return cls(type=IdentifierType.CRM_CONTACT_ID, value=value)

    @classmethod
    def anonymous_id(cls, value: str) -> Identifier:
        """An ``anonymous_id`` identifier (web tracking cookie id)."""
        return cls(type=IdentifierType.ANONYMOUS_ID, value=value)

    @classmethod
    def device_id(cls, value: str) -> Identifier:
        """A ``device_id`` identifier."""
        return cls(type=IdentifierType.DEVICE_ID, value=value)


class Consent(BaseModel):
    """A consent decision for one purpose, optionally limited to one contact channel."""

    model_config = _MODEL_CONFIG

    purpose: Name
    """Purpose, e.g. ``marketing_email``, ``analytics``, ``case_study``."""
    granted: bool
    """True when granted, false when refused or withdrawn."""
    channel: Name | None = None
    """Contact channel the decision is limited to (``email``, ``phone``, ...); None = all."""


class Payload(BaseModel):
    """Base of the type-specific payloads; ``avro_name`` is the Avro record's full name."""

    model_config = _MODEL_CONFIG

    avro_name: ClassVar[str]


def new_event_id() -> str:
    """A fresh random event id (UUID4, canonical lower-case form)."""
    return str(uuid.uuid4())


def utc_now() -> datetime:
    """The current time, tz-aware UTC."""
    return datetime.now(UTC)


class Event(BaseModel):
    """The canonical envelope; use the concrete event types (:class:`PageView`, ...).

    ``channel`` and ``type`` are fixed by the concrete class. Blank identifiers
    are dropped (and exact duplicates removed); at least one must remain.
    """

    model_config = _MODEL_CONFIG

    event_id: str = Field(default_factory=new_event_id)
    """Unique event id (UUID, canonical lower-case form); consumers dedupe on it."""
    event_time: AwareDatetime = Field(default_factory=utc_now)
    """When it happened (tz-aware, normalised to UTC; at most one day in the future)."""
    channel: Channel
    """Channel system the event comes from."""
    type: str
    """Event type, e.g. ``page_view`` (see :data:`EVENT_MODELS`)."""
    source: Annotated[
        str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$", max_length=128)
    ]
    """Producing system, e.g. ``shop-frontend`` (trait provenance)."""
    region: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9_-]{0,31}$")] | None = None
    """Region, e.g. ``DE`` (journey overrides); upper-cased."""
    identifiers: Annotated[list[Identifier], Field(max_length=MAX_IDENTIFIERS)]
    """Identifiers of the person the event is about."""
    traits: Annotated[
        dict[Name, Annotated[str, StringConstraints(max_length=4096)]],
        Field(max_length=MAX_TRAITS),
    ] = Field(default_factory=dict, repr=False)
    """Profile traits seen with the event (``first_name``, ...); PII, kept out of ``repr``."""
    consents: Annotated[list[Consent], Field(max_length=MAX_CONSENTS)] = Field(default_factory=list)
    """Consent decisions carried by the event."""
    payload: Payload
    """Type-specific data."""

    @field_validator("event_id", mode="before")
    @classmethod
    def _canonical_uuid(cls, value: object) -> object:
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, str):
            if _CANONICAL_UUID.fullmatch(value):
                return value
            try:
                return str(uuid.UUID(value))
            except ValueError:
                raise PydanticCustomError("uuid_format", "event_id must be a UUID") from None
        return value

    @field_validator("event_time", mode="after")
    @classmethod
    def _utc_not_future(cls, value: datetime) -> datetime:
        value = value.astimezone(UTC)
        if value > datetime.now(UTC) + MAX_FUTURE:
            raise PydanticCustomError(
                "event_time_in_future", "event_time is more than one day in the future"
            )
        return value

    @field_validator("region", mode="before")
    @classmethod
    def _upper_region(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("identifiers", mode="after")
    @classmethod
    def _usable_identifiers(cls, value: list[Identifier]) -> list[Identifier]:
        kept: list[Identifier] = []
        for identifier in value:
            if not identifier.is_blank and identifier not in kept:
                kept.append(identifier)
        if not kept:
            raise PydanticCustomError(
                "missing_identifiers", "at least one identifier with a non-blank value is required"
            )
        return kept

    @model_validator(mode="after")
    def _concrete_type(self) -> Event:
        if EVENT_MODELS.get(self.type) is not type(self):
            raise PydanticCustomError(
                "unknown_event_type", "use a concrete event type such as PageView"
            )
        return self


# --------------------------------------------------------------------------- web


class WebEvent(Event):
    """Base of the events of the web channel."""

    channel: Literal[Channel.WEB] = Channel.WEB


class PageViewPayload(Payload):
    """A page was viewed."""

    avro_name: ClassVar[str] = "cdp.payload.web.PageView"
    url: Url
    title: Text | None = None
    referrer: Url | None = None
    page_category: Text | None = None
    """Site section: product, pricing, blog, docs, careers, ..."""
    campaign: Text | None = None


class PageView(WebEvent):
    """Event ``page_view``."""

    type: Literal["page_view"] = "page_view"
    payload: PageViewPayload


class ClickPayload(Payload):
    """A tracked element was clicked."""

    avro_name: ClassVar[str] = "cdp.payload.web.Click"
    url: Url
    element: Text
    campaign: Text | None = None


class Click(WebEvent):
    """Event ``click``."""

    type: Literal["click"] = "click"
    payload: ClickPayload


class FormSubmitPayload(Payload):
    """A form was submitted."""

    avro_name: ClassVar[str] = "cdp.payload.web.FormSubmit"
    form_id: Id
    form_type: FormType
    url: Url


class FormSubmit(WebEvent):
    """Event ``form_submit``."""

    type: Literal["form_submit"] = "form_submit"
    payload: FormSubmitPayload


class DownloadPayload(Payload):
    """An asset was downloaded."""

    avro_name: ClassVar[str] = "cdp.payload.web.Download"
    url: Url
    asset: Text
    asset_type: AssetType


class Download(WebEvent):
    """Event ``download``."""

    type: Literal["download"] = "download"
    payload: DownloadPayload


class NewsletterSignupPayload(Payload):
    """The person subscribed to a newsletter."""

    avro_name: ClassVar[str] = "cdp.payload.web.NewsletterSignup"
    list_id: Id


class NewsletterSignup(WebEvent):
    """Event ``newsletter_signup``."""

    type: Literal["newsletter_signup"] = "newsletter_signup"
    payload: NewsletterSignupPayload


class TrackPayload(Payload):
    """A named action the person performed (Segment ``track``)."""

    avro_name: ClassVar[str] = "cdp.payload.web.Track"
    event: Text
    """Name of the action, e.g. ``Demo Requested``."""
    properties: JsonObjectText | None = Field(default=None, repr=False)
    """Properties of the action as the text of a JSON object (may hold PII)."""


class Track(WebEvent):
    """Event ``track``."""

    type: Literal["track"] = "track"
    payload: TrackPayload


class IdentifyPayload(Payload):
    """The person was identified (Segment ``identify``); identifiers and traits are in the
    envelope."""

    avro_name: ClassVar[str] = "cdp.payload.web.Identify"


class Identify(WebEvent):
    """Event ``identify``."""

    type: Literal["identify"] = "identify"
    payload: IdentifyPayload


class ScreenPayload(Payload):
    """A screen of an app was viewed (Segment ``screen``)."""

    avro_name: ClassVar[str] = "cdp.payload.web.Screen"
    name: Text | None = None
    category: Text | None = None
    properties: JsonObjectText | None = Field(default=None, repr=False)
    """Properties of the screen as the text of a JSON object (may hold PII)."""


class Screen(WebEvent):
    """Event ``screen``."""

    type: Literal["screen"] = "screen"
    payload: ScreenPayload


class GroupPayload(Payload):
    """The person was associated with a group, e.g. a company account (Segment ``group``)."""

    avro_name: ClassVar[str] = "cdp.payload.web.Group"
    group_id: Id
    traits: JsonObjectText | None = Field(default=None, repr=False)
    """Traits of the group as the text of a JSON object."""


class Group(WebEvent):
    """Event ``group``."""

    type: Literal["group"] = "group"
    payload: GroupPayload


class AliasPayload(Payload):
    """Two identities of the person are the same (Segment ``alias``).

    ``previous_id`` is also one of the event's identifiers, so identity
    resolution links it with the event's other identifiers.
    """

    avro_name: ClassVar[str] = "cdp.payload.web.Alias"
    previous_id: Annotated[Id, Field(repr=False)]
    """The id the person had before (PII, kept out of ``repr``)."""


class Alias(WebEvent):
    """Event ``alias``."""

    type: Literal["alias"] = "alias"
    payload: AliasPayload


# --------------------------------------------------------------------------- ecommerce


class EcommerceEvent(Event):
    """Base of the events of the ecommerce channel."""

    channel: Literal[Channel.ECOMMERCE] = Channel.ECOMMERCE


class ProductViewPayload(Payload):
    """A product detail page was viewed."""

    avro_name: ClassVar[str] = "cdp.payload.ecommerce.ProductView"
    product_id: Id
    category: Text | None = None
    price: Money | None = None
    currency: Currency | None = None


class ProductView(EcommerceEvent):
    """Event ``product_view``."""

    type: Literal["product_view"] = "product_view"
    payload: ProductViewPayload


class CartPayload(Payload):
    """A product was added to or removed from a cart."""

    avro_name: ClassVar[str] = "cdp.payload.ecommerce.Cart"
    action: CartAction
    cart_id: Id | None = None
    product_id: Id
    quantity: Count
    unit_price: Money
    currency: Currency | None = None


class Cart(EcommerceEvent):
    """Event ``cart``."""

    type: Literal["cart"] = "cart"
    payload: CartPayload


class CheckoutPayload(Payload):
    """A checkout was started."""

    avro_name: ClassVar[str] = "cdp.payload.ecommerce.Checkout"
    cart_id: Id
    value: Money
    currency: Currency


class Checkout(EcommerceEvent):
    """Event ``checkout``."""

    type: Literal["checkout"] = "checkout"
    payload: CheckoutPayload


class OrderPayload(Payload):
    """An order was placed."""

    avro_name: ClassVar[str] = "cdp.payload.ecommerce.Order"
    order_id: Id
    value: Money
    currency: Currency
    items: Count


class Order(EcommerceEvent):
    """Event ``order``."""

    type: Literal["order"] = "order"
    payload: OrderPayload


class ReturnPayload(Payload):
    """(Part of) an order was returned."""

    avro_name: ClassVar[str] = "cdp.payload.ecommerce.Return"
    order_id: Id
    value: Money
    currency: Currency
    reason: Text | None = None


class Return(EcommerceEvent):
    """Event ``return``."""

    type: Literal["return"] = "return"
    payload: ReturnPayload


# --------------------------------------------------------------------------- callcenter


class CallcenterEvent(Event):
    """Base of the events of the callcenter channel."""

    channel: Literal[Channel.CALLCENTER] = Channel.CALLCENTER


class CallPayload(Payload):
    """A phone call with the person ended."""

    avro_name: ClassVar[str] = "cdp.payload.callcenter.Call"
    call_id: Id
    direction: CallDirection
    duration_s: Seconds
    topic: Text | None = None


class Call(CallcenterEvent):
    """Event ``call``."""

    type: Literal["call"] = "call"
    payload: CallPayload


class TicketOpenedPayload(Payload):
    """A service ticket was opened."""

    avro_name: ClassVar[str] = "cdp.payload.callcenter.TicketOpened"
    ticket_id: Id
    subject: Text | None = None
    priority: TicketPriority = "normal"
    category: Text | None = None
    """e.g. complaint, question, technical."""


class TicketOpened(CallcenterEvent):
    """Event ``ticket_opened``."""

    type: Literal["ticket_opened"] = "ticket_opened"
    payload: TicketOpenedPayload


class TicketResolvedPayload(Payload):
    """A service ticket was resolved."""

    avro_name: ClassVar[str] = "cdp.payload.callcenter.TicketResolved"
    ticket_id: Id


class TicketResolved(CallcenterEvent):
    """Event ``ticket_resolved``."""

    type: Literal["ticket_resolved"] = "ticket_resolved"
    payload: TicketResolvedPayload


class SatisfactionScorePayload(Payload):
    """The person answered a satisfaction survey (0 worst .. 10 best)."""

    avro_name: ClassVar[str] = "cdp.payload.callcenter.SatisfactionScore"
    score: Annotated[int, Field(ge=0, le=10)]
    survey: Id | None = None


class SatisfactionScore(CallcenterEvent):
    """Event ``satisfaction_score``."""

    type: Literal["satisfaction_score"] = "satisfaction_score"
    payload: SatisfactionScorePayload


# --------------------------------------------------------------------------- crm


class CrmEvent(Event):
    """Base of the events of the crm channel."""

    channel: Literal[Channel.CRM] = Channel.CRM


class ContactUpsertPayload(Payload):
    """A CRM contact was created or changed."""

    avro_name: ClassVar[str] = "cdp.payload.crm.ContactUpsert"
    contact_id: Id
    first_name: Text | None = Field(default=None, repr=False)
    last_name: Text | None = Field(default=None, repr=False)
    job_title: Text | None = None
    company: Text | None = None
    account_id: Id | None = None


class ContactUpsert(CrmEvent):
    """Event ``contact_upsert``."""

    type: Literal["contact_upsert"] = "contact_upsert"
    payload: ContactUpsertPayload


class LeadStatusChangePayload(Payload):
    """The lead status of the person changed."""

    avro_name: ClassVar[str] = "cdp.payload.crm.LeadStatusChange"
    status: Text
    previous_status: Text | None = None


class LeadStatusChange(CrmEvent):
    """Event ``lead_status_change``."""

    type: Literal["lead_status_change"] = "lead_status_change"
    payload: LeadStatusChangePayload


class OpportunityStageChangePayload(Payload):
    """An opportunity moved to another stage; an amount needs a currency."""

    avro_name: ClassVar[str] = "cdp.payload.crm.OpportunityStageChange"
    opportunity_id: Id
    stage: Text
    """e.g. prospecting, qualification, proposal, negotiation, closed_won, closed_lost."""
    amount: Money | None = None
    currency: Currency | None = None

    @model_validator(mode="after")
    def _amount_needs_currency(self) -> OpportunityStageChangePayload:
        if self.amount is not None and self.currency is None:
            raise PydanticCustomError("currency_required", "an amount needs a currency")
        return self


class OpportunityStageChange(CrmEvent):
    """Event ``opportunity_stage_change``."""

    type: Literal["opportunity_stage_change"] = "opportunity_stage_change"
    payload: OpportunityStageChangePayload


class AccountOwnerChangePayload(Payload):
    """The owner (sales rep) of the person's account changed."""

    avro_name: ClassVar[str] = "cdp.payload.crm.AccountOwnerChange"
    account_id: Id
    owner: Id
    """Id of the new owner (a user id, not a name)."""


class AccountOwnerChange(CrmEvent):
    """Event ``account_owner_change``."""

    type: Literal["account_owner_change"] = "account_owner_change"
    payload: AccountOwnerChangePayload


# --------------------------------------------------------------------------- registry of types

_ALL_MODELS: tuple[type[Event], ...] = (
    PageView,
    Click,
    FormSubmit,
    Download,
    NewsletterSignup,
    Track,
    Identify,
    Screen,
    Group,
    Alias,
    ProductView,
    Cart,
    Checkout,
    Order,
    Return,
    Call,
    TicketOpened,
    TicketResolved,
    SatisfactionScore,
    ContactUpsert,
    LeadStatusChange,
    OpportunityStageChange,
    AccountOwnerChange,
)


def _default(model: type[Event], name: str) -> Any:
    return model.model_fields[name].default


def _payload_model(model: type[Event]) -> type[Payload]:
    annotation = model.model_fields["payload"].annotation
    assert isinstance(annotation, type) and issubclass(annotation, Payload)
    return annotation


EVENT_MODELS: dict[str, type[Event]] = {_default(m, "type"): m for m in _ALL_MODELS}
"""Event type name -> model class."""

EVENT_CHANNELS: dict[str, Channel] = {
    name: _default(m, "channel") for name, m in EVENT_MODELS.items()
}
"""Event type name -> channel it belongs to."""

PAYLOAD_MODELS: dict[str, type[Payload]] = {
    name: _payload_model(m) for name, m in EVENT_MODELS.items()
}
"""Event type name -> payload model class."""

PAYLOAD_RECORDS: dict[str, str] = {name: p.avro_name for name, p in PAYLOAD_MODELS.items()}
"""Event type name -> full name of its Avro payload record."""


# --------------------------------------------------------------------------- identifiers


def _identifier_rank(identifier: Identifier) -> tuple[int, str, str]:
    try:
        rank = IDENTIFIER_PRIORITY.index(identifier.type)
        return rank, "", identifier.key_value
    except ValueError:
        return len(IDENTIFIER_PRIORITY), identifier.type, identifier.key_value


def primary_identifier(event: Event) -> Identifier:
    """The identifier an event is keyed by before identity resolution.

    Priority: customer_id > crm_contact_id > email > phone > device_id >
    anonymous_id > other types alphabetically; ties broken by the (stripped,
    for emails lower-cased) value, so the choice is independent of order.
    """
    return min(event.identifiers, key=_identifier_rank)


def partition_key(event: Event) -> bytes:
    """Kafka key of an event: ``b"{type}:{value}"`` of its :func:`primary_identifier`.

    The value is stripped, and lower-cased for emails.
    """
    identifier = primary_identifier(event)
    return f"{identifier.type}:{identifier.key_value}".encode()


# --------------------------------------------------------------------------- Avro conversion


def event_to_avro(event: Event) -> dict[str, Any]:
    """The Avro record (channel schema) of an event; the payload as ``(record name, dict)``."""
    payload = event.payload
    return {
        "event_id": event.event_id,
        "event_time": event.event_time,
        "channel": event.channel.value,
        "type": event.type,
        "source": event.source,
        "region": event.region,
        "identifiers": [{"type": i.type, "value": i.value} for i in event.identifiers],
        "traits": dict(event.traits),
        "consents": [
            {"purpose": c.purpose, "granted": c.granted, "channel": c.channel}
            for c in event.consents
        ],
        "payload": (payload.avro_name, payload.model_dump()),
    }


def to_canonical_avro(event: Event) -> dict[str, Any]:
    """The Avro record for the canonical schema (same envelope, all payload branches)."""
    return event_to_avro(event)


def event_from_avro(record: Mapping[str, Any], expected_channel: Channel | str) -> Event:
    """Validate a decoded channel record into its typed event.

    ``record`` is what :meth:`AvroCodec.decode` returns (payload as a
    ``(record name, dict)`` tuple; a plain dict is validated against the
    ``type``'s payload model). Raises :class:`~cdp.errors.EventError` with

    * ``WRONG_CHANNEL`` when the record's channel or event type belongs to
      another channel than ``expected_channel``;
    * ``MISSING_IDENTIFIERS`` when no identifier has a non-blank value;
    * ``VALIDATION_FAILED`` otherwise: unknown type, payload branch not
      matching the type, or rule violations. The detail lists field locations
      and error types (``payload.value: greater_than_equal``), never values.
    """
    expected = Channel(expected_channel)
    if not isinstance(record, Mapping):
        raise EventError(
            ReasonCode.VALIDATION_FAILED, f"<event>: expected a record, got {type(record).__name__}"
        )
    channel = record.get("channel")
    if channel != expected.value:
        label = (
            channel
            if isinstance(channel, str) and channel in Channel.__members__.values()
            else "other"
        )
        raise EventError(
            ReasonCode.WRONG_CHANNEL,
            f"channel: record is from channel {label}, expected {expected.value}",
        )
    return _from_avro(record, expected)


def from_canonical_avro(record: Mapping[str, Any]) -> Event:
    """Validate a decoded canonical record into its typed event (see :func:`event_from_avro`)."""
    if not isinstance(record, Mapping):
        raise EventError(
            ReasonCode.VALIDATION_FAILED, f"<event>: expected a record, got {type(record).__name__}"
        )
    try:
        channel = Channel(str(record.get("channel")))
    except ValueError:
        raise EventError(ReasonCode.VALIDATION_FAILED, "channel: unknown_channel") from None
    return _from_avro(record, channel)


def _from_avro(record: Mapping[str, Any], channel: Channel) -> Event:
    event_type = record.get("type")
    model = EVENT_MODELS.get(event_type) if isinstance(event_type, str) else None
    if model is None or not isinstance(event_type, str):
        raise EventError(ReasonCode.VALIDATION_FAILED, "type: unknown_event_type")
    if EVENT_CHANNELS[event_type] is not channel:
        raise EventError(
            ReasonCode.WRONG_CHANNEL,
            f"type: event type {event_type} belongs to channel"
            f" {EVENT_CHANNELS[event_type].value}, expected {channel.value}",
        )
    payload = record.get("payload")
    if isinstance(payload, tuple) and len(payload) == 2:
        branch, payload = payload
        if branch != PAYLOAD_RECORDS[event_type]:
            raise EventError(
                ReasonCode.VALIDATION_FAILED,
                f"payload: payload_type_mismatch ({branch} does not match type {event_type})",
            )
    if not _has_identifier(record.get("identifiers")):
        raise EventError(
            ReasonCode.MISSING_IDENTIFIERS, "identifiers: no identifier with a non-blank value"
        )
    data = dict(record)
    data["payload"] = payload
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(error["type"] == "missing_identifiers" for error in errors):
            raise EventError(ReasonCode.MISSING_IDENTIFIERS, error_detail(exc)) from None
        raise EventError(ReasonCode.VALIDATION_FAILED, error_detail(exc)) from None


def _has_identifier(identifiers: object) -> bool:
    if not isinstance(identifiers, Sequence) or isinstance(identifiers, str):
        return False
    for identifier in identifiers:
        value = identifier.get("value") if isinstance(identifier, Mapping) else None
        if isinstance(value, str) and value.strip():
            return True
    return False


def error_detail(exc: ValidationError) -> str:
    """``loc: type`` pairs of a pydantic error, without input values or messages (no PII)."""
    parts: list[str] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        part = f"{_location(error['loc'])}: {error['type']}"
        if part not in parts:
            parts.append(part)
    return "; ".join(parts)


def _location(loc: Sequence[int | str]) -> str:
    names: list[str] = []
    for index, item in enumerate(loc):
        if isinstance(item, int):
            names.append(str(item))
        elif index > 0 and loc[0] == "traits" and index == 1:
            names.append("<key>")  # trait keys are data, not schema names
        elif _SAFE_LOC.match(item) or item == "[key]":
            names.append(item)
        else:
            names.append("<key>")
    return ".".join(names) or "<event>"


def private_copy(event: Event) -> Event:
    """A copy of ``event`` with containers of its own (identifiers, traits, consents).

    The models inside are frozen, so changing the copy in any way leaves ``event`` as it
    was: what the worker hands to user code when it shares one decoded event between
    stages (:mod:`cdp.contracts.decode_once`). Costs a few microseconds, no validation.
    """
    return event.model_copy(
        update={
            "identifiers": list(event.identifiers),
            "traits": dict(event.traits),
            "consents": list(event.consents),
        }
    )


# --------------------------------------------------------------------------- codec helpers


def encode_event(codec: AvroCodec, event: Event) -> bytes:
    """Wire bytes of an event for its channel topic (latest channel schema)."""
    return codec.encode(CHANNEL_SUBJECTS[event.channel], event_to_avro(event))


def decode_channel_event(codec: AvroCodec, data: bytes | None, channel: Channel | str) -> Event:
    """Decode and validate a record from a channel topic (what the ingest stage does).

    Raises :class:`~cdp.errors.EventError`: the codec's reasons, ``WRONG_CHANNEL``
    when the writer's subject is not the channel's subject, then those of
    :func:`event_from_avro`.
    """
    expected = Channel(channel)
    schema, record = codec.decode(data)
    if schema.subject != CHANNEL_SUBJECTS[expected]:
        raise EventError(
            ReasonCode.WRONG_CHANNEL,
            f"schema {schema.subject} (id {schema.id}) is not the {expected.value} channel schema"
            f" {CHANNEL_SUBJECTS[expected]}",
        )
    return event_from_avro(record, expected)


def encode_canonical(codec: AvroCodec, event: Event) -> bytes:
    """Wire bytes of an event for the canonical topic (latest canonical schema)."""
    return codec.encode(CANONICAL_SUBJECT, to_canonical_avro(event))


def decode_canonical(codec: AvroCodec, data: bytes | None) -> Event:
    """Decode and validate a record from the canonical topic."""
    schema, record = codec.decode(data)
    if schema.subject != CANONICAL_SUBJECT:
        raise EventError(
            ReasonCode.VALIDATION_FAILED,
            f"schema {schema.subject} (id {schema.id}) is not the canonical schema",
        )
    return from_canonical_avro(record)
