"""Hypothesis strategies for valid events (test helper; needs the ``dev`` extra).

``events()`` draws valid events of every type; downstream stages use it for
property tests (shuffled, duplicated, re-partitioned streams)::

    from hypothesis import given
    from cdp.contracts.strategies import events

    @given(events(channel="web"))
    def test_something(event): ...
"""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from cdp.contracts import events as ev
from cdp.contracts.events import (
    EVENT_CHANNELS,
    EVENT_MODELS,
    NAME_PATTERN,
    Consent,
    Event,
    Identifier,
    IdentifierType,
)
from cdp.topics import Channel

_ID_CHARS = string.ascii_letters + string.digits + "-_."

ids = st.text(alphabet=_ID_CHARS, min_size=1, max_size=16)
"""Object ids (order id, ticket id, ...)."""
texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=24
).filter(lambda text: bool(text.strip()))
"""Non-blank free texts, any Unicode."""
urls = st.builds(lambda path: f"https://www.example.com/{path}", ids)
money = st.decimals(
    min_value=Decimal(0),
    max_value=Decimal("9999999999999999.99"),
    places=2,
    allow_nan=False,
    allow_infinity=False,
)
currencies = st.sampled_from(["EUR", "USD", "CHF", "GBP", "SEK"])
names = st.from_regex(NAME_PATTERN.replace("*$", "{0,15}$"), fullmatch=True)
"""lower_snake_case names (trait names, consent purposes, identifier types)."""
event_times = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2025, 12, 31),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]),
)
"""Aware datetimes in the past, in several offsets (the models normalise to UTC)."""


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


emails = st.builds(
    lambda local, domain: f"{local}@{domain}.example.com",
    st.text(alphabet=string.ascii_letters + string.digits + "._+-", min_size=1, max_size=12),
    st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=8),
)
"""Email-looking values (mixed case: identity normalises)."""

json_objects = st.builds(
    lambda data: json.dumps(data, sort_keys=True),
    st.dictionaries(names, st.none() | st.booleans() | st.integers() | texts, max_size=4),
)
"""Texts of small JSON objects (properties of track and screen events, group traits)."""


@st.composite
def identifiers(draw: st.DrawFn) -> Identifier:
    """One identifier with a non-blank value, of a well-known or a custom type."""
    kind = draw(st.sampled_from([*list(IdentifierType), "loyalty_id"]))
    if kind == IdentifierType.EMAIL:
        return Identifier.email(draw(emails))
    if kind == IdentifierType.PHONE:
        return Identifier.phone(draw(st.from_regex(r"\A\+49 ?[1-9][0-9]{6,10}\Z")))
    return Identifier(type=kind, value=draw(ids))


consents = st.builds(
    Consent,
    purpose=names,
    granted=st.booleans(),
    channel=_optional(st.sampled_from(["email", "phone"])),
)

PAYLOADS: dict[str, st.SearchStrategy[Any]] = {
    "page_view": st.builds(
        ev.PageViewPayload,
        url=urls,
        title=_optional(texts),
        referrer=_optional(urls),
        page_category=_optional(st.sampled_from(["product", "pricing", "blog", "docs", "careers"])),
        campaign=_optional(ids),
    ),
    "click": st.builds(ev.ClickPayload, url=urls, element=ids, campaign=_optional(ids)),
    "form_submit": st.builds(
        ev.FormSubmitPayload,
        form_id=ids,
        form_type=st.sampled_from(["contact", "demo_request", "quote_request", "tender", "other"]),
        url=urls,
    ),
    "download": st.builds(
        ev.DownloadPayload,
        url=urls,
        asset=texts,
        asset_type=st.sampled_from(
            ["whitepaper", "datasheet", "tender_document", "case_study", "other"]
        ),
    ),
    "newsletter_signup": st.builds(ev.NewsletterSignupPayload, list_id=ids),
    "track": st.builds(ev.TrackPayload, event=texts, properties=_optional(json_objects)),
    "identify": st.builds(ev.IdentifyPayload),
    "screen": st.builds(
        ev.ScreenPayload,
        name=_optional(texts),
        category=_optional(texts),
        properties=_optional(json_objects),
    ),
    "group": st.builds(ev.GroupPayload, group_id=ids, traits=_optional(json_objects)),
    "alias": st.builds(ev.AliasPayload, previous_id=ids),
    "product_view": st.builds(
        ev.ProductViewPayload,
        product_id=ids,
        category=_optional(texts),
        price=_optional(money),
        currency=_optional(currencies),
    ),
    "cart": st.builds(
        ev.CartPayload,
        action=st.sampled_from(["add", "remove"]),
        cart_id=_optional(ids),
        product_id=ids,
        quantity=st.integers(1, 2**31 - 1),
        unit_price=money,
        currency=_optional(currencies),
    ),
    "checkout": st.builds(ev.CheckoutPayload, cart_id=ids, value=money, currency=currencies),
    "order": st.builds(
        ev.OrderPayload,
        order_id=ids,
        value=money,
        currency=currencies,
        items=st.integers(1, 10_000),
    ),
    "return": st.builds(
        ev.ReturnPayload, order_id=ids, value=money, currency=currencies, reason=_optional(texts)
    ),
    "call": st.builds(
        ev.CallPayload,
        call_id=ids,
        direction=st.sampled_from(["inbound", "outbound"]),
        duration_s=st.integers(0, 2**31 - 1),
        topic=_optional(texts),
    ),
    "ticket_opened": st.builds(
        ev.TicketOpenedPayload,
        ticket_id=ids,
        subject=_optional(texts),
        priority=st.sampled_from(["low", "normal", "high", "urgent"]),
        category=_optional(st.sampled_from(["complaint", "question", "technical"])),
    ),
    "ticket_resolved": st.builds(ev.TicketResolvedPayload, ticket_id=ids),
    "satisfaction_score": st.builds(
        ev.SatisfactionScorePayload, score=st.integers(0, 10), survey=_optional(ids)
    ),
    "contact_upsert": st.builds(
        ev.ContactUpsertPayload,
        contact_id=ids,
        first_name=_optional(texts),
        last_name=_optional(texts),
        job_title=_optional(texts),
        company=_optional(texts),
        account_id=_optional(ids),
    ),
    "lead_status_change": st.builds(
        ev.LeadStatusChangePayload, status=ids, previous_status=_optional(ids)
    ),
    "opportunity_stage_change": st.builds(
        ev.OpportunityStageChangePayload,
        opportunity_id=ids,
        stage=st.sampled_from(
            ["prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost"]
        ),
        amount=_optional(money),
        currency=currencies,
    ),
    "account_owner_change": st.builds(ev.AccountOwnerChangePayload, account_id=ids, owner=ids),
}
"""Payload strategy per event type."""


def events_of(event_type: str) -> st.SearchStrategy[Event]:
    """Valid events of one type."""
    return st.builds(
        EVENT_MODELS[event_type],
        event_time=event_times,
        source=st.sampled_from(["website", "shop-frontend", "crm", "contact-center"]),
        region=_optional(st.sampled_from(["DE", "AT", "CH", "US"])),
        identifiers=st.lists(identifiers(), min_size=1, max_size=4),
        traits=st.dictionaries(names, texts, max_size=4),
        consents=st.lists(consents, max_size=3),
        payload=PAYLOADS[event_type],
    )


def events(channel: Channel | str | None = None) -> st.SearchStrategy[Event]:
    """Valid events of every type (of one channel, if given)."""
    wanted = None if channel is None else Channel(channel)
    types = sorted(t for t, c in EVENT_CHANNELS.items() if wanted is None or c is wanted)
    return st.one_of([events_of(t) for t in types])
