"""Synthetic customers and their events, with the ground truth recorded.

:func:`generate` makes customers who move through the channels the way B2B
buyers do: anonymous website visits that are identified later (newsletter,
forms), shop orders, calls and tickets, CRM records. Each customer has 2-5
identifiers; values arrive with case and whitespace variations and in several
phone formats; some calls come from shared call-center numbers (which must
never link two customers); some events are duplicated or arrive late.
The true customer of every event is recorded, so tests and benchmarks can
score identity resolution. :func:`broken_records` makes records that the
ingest stage must dead-letter, one kind per reason code.

All persons are fictitious; emails use reserved ``example`` domains.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cdp.contracts import events as ev
from cdp.contracts.codec import AvroCodec
from cdp.contracts.events import (
    CHANNEL_SUBJECTS,
    Consent,
    Event,
    Identifier,
    event_to_avro,
)
from cdp.contracts.wire import frame
from cdp.errors import ReasonCode
from cdp.topics import Channel, Topics

STAGES = ("need", "search", "choice", "purchase", "usage", "recommendation")
"""The journey stages, in order (DESIGN.md)."""

SHARED_PHONE_NUMBERS = ("+49 30 1234567", "+49 30 12345678")
"""Call-center switchboard numbers many callers share; the default identity config blocks them."""

_FIRST = (
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Eva",
    "Felix",
    "Greta",
    "Hannes",
    "Ida",
    "Jonas",
    "Klara",
    "Lukas",
    "Mia",
    "Noah",
    "Olga",
    "Paul",
    "Rosa",
    "Simon",
    "Tara",
    "Uwe",
)
_LAST = (
    "Berg",
    "Schmidt",
    "Weber",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Koch",
    "Richter",
    "Klein",
    "Wolf",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Hartmann",
    "Lange",
)
_COMPANIES = (
    "Nordwind GmbH",
    "Alpenlicht AG",
    "Rheinwerk KG",
    "Elbtech GmbH",
    "Isarsoft AG",
    "Mainpower GmbH",
    "Spreewerk AG",
    "Weserlogistik GmbH",
)
_TITLES = (
    "Head of IT",
    "Procurement Manager",
    "CTO",
    "Operations Lead",
    "IT Architect",
    "Managing Director",
    "Plant Manager",
)
_REGIONS = ("DE", "AT", "CH")
EXCLUDED_ROLES = ("competitor", "consultant")
"""Roles of generated people the default journey must never hand to sales."""
COMPETITOR_DOMAIN = "competitor.example"
"""Email domain of generated competitors (excluded by the default journey)."""
CONSULTANT_TITLE = "Senior Consultant"
"""Job title of generated consultants (excluded by the default journey)."""
_DOMAINS = ("example.com", "example.org", "example.net")


@dataclass
class Customer:
    """A true person: the identifiers the channels know them by, and how far they get."""

    key: str
    first_name: str
    last_name: str
    company: str
    job_title: str
    region: str
    anonymous_id: str
    email: str | None
    phone: str | None
    customer_id: str | None
    crm_contact_id: str | None
    depth: int
    """Index of the deepest journey stage the customer reaches (0 = need)."""
    role: str = "lead"
    """``lead``, or one of :data:`EXCLUDED_ROLES` (must never be handed to sales)."""

    def contact_traits(self) -> dict[str, str]:
        """The contact details a form or CRM record carries."""
        return {
            "first_name": self.first_name,
            "last_name": self.last_name,
            "company": self.company,
            "job_title": self.job_title,
        }

    def identifiers(self) -> list[Identifier]:
        """Every identifier of the customer (canonical spelling)."""
        found = [Identifier.anonymous_id(self.anonymous_id)]
        if self.email:
            found.append(Identifier.email(self.email))
        if self.phone:
            found.append(Identifier.phone(self.phone))
        if self.customer_id:
            found.append(Identifier.customer_id(self.customer_id))
        if self.crm_contact_id:
            found.append(Identifier.crm_contact_id(self.crm_contact_id))
        return found


@dataclass
class Dataset:
    """Generated events in sending order, with the truth about them."""

    customers: list[Customer]
    events: list[Event]
    truth: dict[str, str] = field(default_factory=dict)
    """event id -> key of the true customer."""
    duplicates: int = 0
    """How many events of ``events`` are re-sends of an earlier one (same event id)."""

    @property
    def distinct_events(self) -> int:
        """Number of distinct event ids."""
        return len(self.truth)


def generate(
    customers: int,
    events_per_customer: float = 10.0,
    *,
    seed: int = 0,
    duplicate_rate: float = 0.0,
    late_rate: float = 0.05,
    start: datetime | None = None,
) -> Dataset:
    """Make ``customers`` customers and about ``events_per_customer`` events each.

    ``duplicate_rate`` of the events are sent twice; ``late_rate`` of them are
    sent out of time order (later than events that happened after them).
    """
    rng = random.Random(seed)
    begin = start or datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    people = [_customer(rng, index) for index in range(customers)]
    timeline: list[tuple[datetime, Event, str]] = []
    for person in people:
        for event in _journey(rng, person, begin, events_per_customer):
            timeline.append((event.event_time, event, person.key))
    timeline.sort(key=lambda item: (item[0], item[1].event_id))
    ordered = [(event, key) for _t, event, key in timeline]
    for index in range(len(ordered)):  # late arrivals: move some events back in sending order
        if rng.random() < late_rate:
            target = min(len(ordered) - 1, index + rng.randint(5, 200))
            ordered[index], ordered[target] = ordered[target], ordered[index]
    dataset = Dataset(customers=people, events=[])
    for event, key in ordered:
        dataset.events.append(event)
        dataset.truth[event.event_id] = key
        if rng.random() < duplicate_rate:
            dataset.events.append(event)
            dataset.duplicates += 1
    return dataset


def sample_events(count: int, rng: random.Random) -> list[Event]:
    """``count`` events from all four channels (no duplicates), for demos and smoke tests."""
    customers = max(1, count // 8)
    dataset = generate(
        customers,
        events_per_customer=count / customers + 2,
        seed=rng.randrange(1 << 30),
        duplicate_rate=0.0,
    )
    events = dataset.events[:count]
    missing = {c for c in Channel} - {e.channel for e in events}
    if missing and count >= len(Channel):  # make sure every channel is represented
        extra = [e for e in dataset.events[count:] if e.channel in missing]
        for event in extra:
            if event.channel in missing:
                events[rng.randrange(len(events))] = event
                missing.discard(event.channel)
    return events


# ---------------------------------------------------------------------------- customers


def _token(rng: random.Random, chars: int) -> str:
    """A random hex token from the dataset's seeded generator (unique across datasets)."""
    return uuid.UUID(int=rng.getrandbits(128)).hex[:chars]


def _customer(rng: random.Random, index: int) -> Customer:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    depth = rng.choices(range(6), weights=(18, 22, 20, 16, 14, 10))[0]
    known_email = depth >= 1 or rng.random() < 0.5
    role = rng.choices(("lead", *EXCLUDED_ROLES), weights=(92, 4, 4))[0]
    domain = COMPETITOR_DOMAIN if role == "competitor" else rng.choice(_DOMAINS)
    return Customer(
        key=f"cust-{index:06d}",
        first_name=first,
        last_name=last,
        company=rng.choice(_COMPANIES),
        job_title=CONSULTANT_TITLE if role == "consultant" else rng.choice(_TITLES),
        region=rng.choice(_REGIONS),
        anonymous_id=f"anon-{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}",
        email=f"{first.lower()}.{last.lower()}.{_token(rng, 6)}@{domain}" if known_email else None,
        phone=f"+49 {rng.randint(151, 179)} {rng.randint(2000000, 9999999)}"
        if depth >= 2 and rng.random() < 0.7
        else None,
        customer_id=f"C-{_token(rng, 10).upper()}" if depth >= 3 else None,
        crm_contact_id=f"003-{_token(rng, 12)}" if depth >= 2 and rng.random() < 0.8 else None,
        depth=depth,
        role=role,
    )


def _vary_email(rng: random.Random, email: str) -> str:
    """Case and whitespace variations of an email address (same person)."""
    choice = rng.random()
    if choice < 0.15:
        return f"  {email.upper()} "
    if choice < 0.3:
        return email.title()
    return email


def _vary_phone(rng: random.Random, phone: str) -> str:
    """Other spellings of a German phone number (same E.164 number)."""
    digits = phone.replace("+49", "").replace(" ", "")
    return rng.choice((phone, f"+49{digits}", f"0{digits}", f"0049 {digits}", phone))


# ---------------------------------------------------------------------------- journeys


class _Clock:
    def __init__(self, rng: random.Random, start: datetime) -> None:
        self.rng = rng
        self.now = start + timedelta(minutes=rng.randint(0, 60 * 24 * 120))

    def tick(self, low_minutes: int = 5, high_minutes: int = 60 * 24 * 4) -> datetime:
        self.now += timedelta(
            minutes=self.rng.randint(low_minutes, high_minutes),
            microseconds=self.rng.randint(0, 999999),
        )
        return self.now


def _journey(rng: random.Random, c: Customer, begin: datetime, per_customer: float) -> list[Event]:
    clock = _Clock(rng, begin)
    events: list[Event] = []
    anon = [Identifier.anonymous_id(c.anonymous_id)]
    web_known = anon + ([Identifier.email(_vary_email(rng, c.email))] if c.email else [])
    base = {"region": c.region}
    budget = max(2, round(rng.gauss(per_customer, per_customer / 4)))

    def web(ids: list[Identifier]) -> list[Identifier]:
        return ids if rng.random() < 0.5 else anon

    # 1 need: anonymous first visit from a campaign, maybe a newsletter sign-up
    events.append(
        ev.PageView(
            source="website",
            event_time=clock.tick(),
            identifiers=anon,
            **base,
            payload=ev.PageViewPayload(
                url="https://www.example.com/",
                page_category="home",
                campaign=rng.choice(("spring-launch", None)),
            ),
        )
    )
    if c.email:
        events.append(
            ev.NewsletterSignup(
                source="website",
                event_time=clock.tick(),
                **base,
                identifiers=[*anon, Identifier.email(_vary_email(rng, c.email))],
                consents=[Consent(purpose="marketing_email", granted=True, channel="email")],
                traits={"first_name": c.first_name},
                payload=ev.NewsletterSignupPayload(list_id="product-news"),
            )
        )
    # 2 search: product pages, whitepapers
    if c.depth >= 1:
        for _ in range(rng.randint(1, 3)):
            events.append(
                ev.PageView(
                    source="website",
                    event_time=clock.tick(),
                    identifiers=web(web_known),
                    **base,
                    payload=ev.PageViewPayload(
                        url=f"https://www.example.com/products/p{rng.randint(1, 40)}",
                        page_category="product",
                    ),
                )
            )
        events.append(
            ev.Download(
                source="website",
                event_time=clock.tick(),
                identifiers=web_known,
                **base,
                payload=ev.DownloadPayload(
                    url="https://www.example.com/wp/edge.pdf",
                    asset="Edge computing in plants",
                    asset_type="whitepaper",
                ),
            )
        )
        events.append(
            ev.ProductView(
                source="shop",
                event_time=clock.tick(),
                identifiers=web_known,
                **base,
                payload=ev.ProductViewPayload(
                    product_id=f"SKU-{rng.randint(1, 99)}",
                    category="gateways",
                    price=Decimal("499.00"),
                    currency="EUR",
                ),
            )
        )
    # 3 choice: pricing page, demo request, sales call, CRM contact
    if c.depth >= 2:
        events.append(
            ev.PageView(
                source="website",
                event_time=clock.tick(),
                identifiers=web_known,
                **base,
                payload=ev.PageViewPayload(
                    url="https://www.example.com/pricing", page_category="pricing"
                ),
            )
        )
        form_ids = web_known + ([Identifier.phone(_vary_phone(rng, c.phone))] if c.phone else [])
        events.append(
            ev.FormSubmit(
                source="website",
                event_time=clock.tick(),
                identifiers=form_ids,
                **base,
                traits=c.contact_traits(),
                payload=ev.FormSubmitPayload(
                    form_id="demo-request",
                    form_type="demo_request",
                    url="https://www.example.com/demo",
                ),
            )
        )
        crm_ids = _crm_ids(rng, c)
        if c.crm_contact_id:
            events.append(
                ev.ContactUpsert(
                    source="crm",
                    event_time=clock.tick(),
                    identifiers=crm_ids,
                    **base,
                    traits=c.contact_traits(),
                    payload=ev.ContactUpsertPayload(
                        contact_id=c.crm_contact_id, job_title=c.job_title, company=c.company
                    ),
                )
            )
            events.append(
                ev.LeadStatusChange(
                    source="crm",
                    event_time=clock.tick(),
                    identifiers=crm_ids,
                    **base,
                    payload=ev.LeadStatusChangePayload(status="qualified", previous_status="new"),
                )
            )
        events.append(_call(rng, c, clock, "pricing question"))
    # 4 purchase: order, opportunity won
    if c.depth >= 3:
        shop_ids = [Identifier.customer_id(c.customer_id or "")] + (
            [Identifier.email(_vary_email(rng, c.email))] if c.email else []
        )
        value = Decimal(rng.randint(400, 25000)).quantize(Decimal("0.01"))
        events.append(
            ev.Order(
                source="shop",
                event_time=clock.tick(),
                identifiers=shop_ids,
                **base,
                payload=ev.OrderPayload(
                    order_id=f"O-{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}",
                    value=value,
                    currency="EUR",
                    items=rng.randint(1, 12),
                ),
            )
        )
        if c.crm_contact_id:
            events.append(
                ev.OpportunityStageChange(
                    source="crm",
                    event_time=clock.tick(),
                    identifiers=_crm_ids(rng, c),
                    **base,
                    payload=ev.OpportunityStageChangePayload(
                        opportunity_id=f"OPP-{c.customer_id}",
                        stage="closed_won",
                        amount=value,
                        currency="EUR",
                    ),
                )
            )
    # 5 usage: tickets, calls, repeat orders
    if c.depth >= 4:
        ticket = f"T-{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}"
        ids = [Identifier.customer_id(c.customer_id or "")]
        events.append(
            ev.TicketOpened(
                source="callcenter",
                event_time=clock.tick(),
                identifiers=ids,
                **base,
                payload=ev.TicketOpenedPayload(
                    ticket_id=ticket, priority="normal", category="technical"
                ),
            )
        )
        events.append(_call(rng, c, clock, "onboarding"))
        events.append(
            ev.TicketResolved(
                source="callcenter",
                event_time=clock.tick(),
                identifiers=ids,
                **base,
                payload=ev.TicketResolvedPayload(ticket_id=ticket),
            )
        )
    # 6 recommendation: high satisfaction, case-study consent
    if c.depth >= 5:
        events.append(
            ev.SatisfactionScore(
                source="callcenter",
                event_time=clock.tick(),
                identifiers=[Identifier.customer_id(c.customer_id or "")],
                **base,
                consents=[Consent(purpose="case_study", granted=True)],
                payload=ev.SatisfactionScorePayload(score=rng.randint(9, 10)),
            )
        )
    # fill up to the budget with more browsing of known or anonymous visitors
    while len(events) < budget:
        events.append(
            ev.PageView(
                source="website",
                event_time=clock.tick(),
                identifiers=web(web_known),
                **base,
                payload=ev.PageViewPayload(
                    url=f"https://www.example.com/blog/{rng.randint(1, 300)}", page_category="blog"
                ),
            )
        )
    return events


def _crm_ids(rng: random.Random, c: Customer) -> list[Identifier]:
    ids = [Identifier.crm_contact_id(c.crm_contact_id or "")]
    if c.email:
        ids.append(Identifier.email(_vary_email(rng, c.email)))
    if c.phone and rng.random() < 0.5:
        ids.append(Identifier.phone(_vary_phone(rng, c.phone)))
    return ids


def _call(rng: random.Random, c: Customer, clock: _Clock, topic: str) -> Event:
    """A call: known by the customer's number, or from a shared switchboard number."""
    ids: list[Identifier]
    if c.phone and rng.random() < 0.6:
        ids = [Identifier.phone(_vary_phone(rng, c.phone))]
    else:
        ids = [Identifier.phone(rng.choice(SHARED_PHONE_NUMBERS))]
    if c.customer_id:
        ids.append(Identifier.customer_id(c.customer_id))
    elif c.email:
        ids.append(Identifier.email(_vary_email(rng, c.email)))
    else:
        ids.append(Identifier.anonymous_id(c.anonymous_id))
    return ev.Call(
        source="callcenter",
        event_time=clock.tick(),
        identifiers=ids,
        region=c.region,
        payload=ev.CallPayload(
            call_id=f"CALL-{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}",
            direction="inbound",
            duration_s=rng.randint(30, 1800),
            topic=topic,
        ),
    )


# ---------------------------------------------------------------------------- broken records


@dataclass(frozen=True)
class BrokenRecord:
    """A record the ingest stage must dead-letter, and the reason it must give."""

    topic: str
    key: bytes | None
    value: bytes
    reason: ReasonCode


def broken_records(
    codec: AvroCodec, topics: Topics, count: int, rng: random.Random
) -> list[BrokenRecord]:
    """``count`` broken records cycling through every way a record can be bad."""
    makers = (
        _not_wire_format,
        _unknown_schema_id,
        _truncated_avro,
        _wrong_channel,
        _missing_identifiers,
        _invalid_email,
        _event_time_in_future,
    )
    good = sample_events(max(count, len(Channel)), rng)
    return [makers[i % len(makers)](codec, topics, good[i % len(good)], rng) for i in range(count)]


def _encoded(codec: AvroCodec, event: Event, change: dict[str, object] | None = None) -> bytes:
    record = event_to_avro(event)
    record.update(change or {})
    return codec.encode(CHANNEL_SUBJECTS[event.channel], record)


def _not_wire_format(
    codec: AvroCodec, topics: Topics, event: Event, rng: random.Random
) -> BrokenRecord:
    value = b'{"event_id": "%s", "note": "JSON instead of Avro"}' % event.event_id.encode()
    return BrokenRecord(topics.channel(event.channel), None, value, ReasonCode.NOT_WIRE_FORMAT)


def _unknown_schema_id(
    codec: AvroCodec, topics: Topics, event: Event, rng: random.Random
) -> BrokenRecord:
    body = _encoded(codec, event)[5:]
    return BrokenRecord(
        topics.channel(event.channel), None, frame(987654, body), ReasonCode.UNKNOWN_SCHEMA_ID
    )


def _truncated_avro(
    codec: AvroCodec, topics: Topics, event: Event, rng: random.Random
) -> BrokenRecord:
    value = _encoded(codec, event)
    cut = rng.randint(6, max(6, len(value) // 2))
    return BrokenRecord(
        topics.channel(event.channel), None, value[:cut], ReasonCode.AVRO_DECODE_ERROR
    )


def _wrong_channel(
    codec: AvroCodec, topics: Topics, event: Event, rng: random.Random
) -> BrokenRecord:
    other = next(c for c in Channel if c != event.channel)
    return BrokenRecord(
        topics.channel(other), None, _encoded(codec, event), ReasonCode.WRONG_CHANNEL
    )


def _missing_identifiers(
    codec: AvroCodec, topics: Topics, event: Event, rng: random.Random
) -> BrokenRecord:
    value = _encoded(codec, event, {"identifiers": [{"type": "email", "value": "  "}]})
    return BrokenRecord(topics.channel(event.channel), None, value, ReasonCode.MISSING_IDENTIFIERS)


def _invalid_email(
    codec: AvroCodec, topics: Topics, event: Event, rng: random.Random
) -> BrokenRecord:
    value = _encoded(codec, event, {"identifiers": [{"type": "email", "value": "not-an-email"}]})
    return BrokenRecord(topics.channel(event.channel), None, value, ReasonCode.VALIDATION_FAILED)


def _event_time_in_future(
    codec: AvroCodec, topics: Topics, event: Event, rng: random.Random
) -> BrokenRecord:
    value = _encoded(codec, event, {"event_time": datetime(2300, 1, 1, tzinfo=UTC)})
    return BrokenRecord(topics.channel(event.channel), None, value, ReasonCode.VALIDATION_FAILED)
