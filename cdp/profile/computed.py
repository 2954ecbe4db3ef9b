"""Computed traits and consent: pure functions of a profile's fact set.

Everything here is derived from the set of facts, never from the order in
which they arrived: facts are sorted by ``(event_time, event_id)`` first, and
"latest" means last in that order (so equal event times are decided by the
event id). Counts and sums are order-free by nature; entities that several
events describe (orders, tickets, opportunities) are keyed by their id.

See ``docs/profiles.md`` for the field list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict, Field

from cdp.profile.facts import Fact, merge_fact_sets, sort_facts

ALL_CHANNELS = "*"
"""Consent scope key of a decision that is not limited to one contact channel."""

_MODEL_CONFIG = ConfigDict(frozen=True, extra="forbid")


class LatestValue(BaseModel):
    """The most recent value of something a channel system reports, with provenance."""

    model_config = _MODEL_CONFIG

    value: str
    """The value (lead status, opportunity stage, owner user id)."""
    ref: str | None = None
    """Id of the object the value belongs to (opportunity id, account id), if any."""
    source: str
    """Source system of the event that reported it."""
    channel: str
    """Channel of that event."""
    event_time: datetime
    """Time of that event (UTC)."""
    event_id: str
    """Id of that event."""


class ConsentDecision(BaseModel):
    """The most recent consent decision for one purpose and scope, with provenance."""

    model_config = _MODEL_CONFIG

    granted: bool
    """True = granted, False = refused or withdrawn."""
    source: str
    """Source system that reported the decision."""
    channel: str
    """Channel of the event that carried the decision."""
    event_time: datetime
    """Time of that event (UTC)."""
    event_id: str
    """Id of that event."""


Consent = dict[str, dict[str, ConsentDecision]]
"""purpose -> scope (contact channel, or ``"*"`` for all channels) -> latest decision."""


class ComputedTraits(BaseModel):
    """Traits computed from the facts (no survivorship: they are aggregates)."""

    model_config = _MODEL_CONFIG

    first_seen: datetime | None = None
    """Time of the earliest event."""
    last_seen: datetime | None = None
    """Time of the latest event."""
    last_channel: str | None = None
    """Channel of the latest event (equal times: the greater event id)."""
    region: str | None = None
    """Region of the latest event that names one."""
    regions: list[str] = Field(default_factory=list)
    """Every region seen, sorted."""
    events_by_channel: dict[str, int] = Field(default_factory=dict)
    """Channel -> number of events."""
    events_by_type: dict[str, int] = Field(default_factory=dict)
    """Event type -> number of events."""
    order_count: int = 0
    """Distinct order ids ordered."""
    items_ordered: int = 0
    """Sum of ``items`` over distinct orders."""
    revenue: dict[str, str] = Field(default_factory=dict)
    """Currency -> sum of order values over distinct orders (decimal text, ``"4497.00"``)."""
    return_count: int = 0
    """Number of return events."""
    returned_value: dict[str, str] = Field(default_factory=dict)
    """Currency -> sum of returned values (decimal text)."""
    tickets_total: int = 0
    """Distinct ticket ids opened."""
    open_tickets: list[str] = Field(default_factory=list)
    """Ticket ids opened and not resolved, sorted."""
    satisfaction_count: int = 0
    """Number of satisfaction scores."""
    avg_satisfaction: float | None = None
    """Mean satisfaction score (0..10), rounded to 2 places."""
    lead_status: LatestValue | None = None
    """Latest CRM lead status."""
    opportunity_stage: LatestValue | None = None
    """Latest CRM opportunity stage change (``ref`` = opportunity id)."""
    opportunities: dict[str, str] = Field(default_factory=dict)
    """Opportunity id -> its latest stage."""
    account_owner: LatestValue | None = None
    """Latest account owner (user id; ``ref`` = account id)."""


def compute_traits(facts: Iterable[Fact]) -> ComputedTraits:
    """The computed traits of a fact set (any order; deduped by event id first)."""
    return compute_sorted(sort_facts(merge_fact_sets(facts).values()))


def _money(value: object) -> Decimal | None:
    if not isinstance(value, str):
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _latest(fact: Fact, value: object, ref: object = None) -> LatestValue:
    return LatestValue(
        value=str(value),
        ref=None if ref is None else str(ref),
        source=fact.source,
        channel=fact.channel,
        event_time=fact.event_time,
        event_id=fact.event_id,
    )


def _sums(totals: Mapping[str, Decimal]) -> dict[str, str]:
    return {currency: str(totals[currency]) for currency in sorted(totals)}


_AGGREGATED_TYPES = frozenset(
    {
        "order",
        "return",
        "ticket_opened",
        "ticket_resolved",
        "satisfaction_score",
        "lead_status_change",
        "opportunity_stage_change",
        "account_owner_change",
    }
)


def compute_sorted(facts: Sequence[Fact]) -> ComputedTraits:
    """:func:`compute_traits` for distinct facts sorted by :func:`~cdp.profile.facts.order_key`.

    Values that a fact should carry but does not (or that are not valid, e.g. a
    money text that is no number) are skipped.
    """
    if not facts:
        return ComputedTraits()
    by_channel = Counter(fact.channel for fact in facts)
    by_type = Counter(fact.type for fact in facts)
    regions = {fact.region for fact in facts if fact.region is not None}
    region = next((fact.region for fact in reversed(facts) if fact.region is not None), None)
    orders: dict[str, Fact] = {}
    returned: dict[str, Decimal] = {}
    return_count = 0
    opened: set[str] = set()
    resolved: set[str] = set()
    score_sum = 0
    score_count = 0
    lead: Fact | None = None
    opportunity: Fact | None = None
    opportunities: dict[str, str] = {}
    owner: Fact | None = None
    for fact in facts:
        kind = fact.type
        if kind not in _AGGREGATED_TYPES:
            continue
        if kind == "order":
            order_id = fact.get("order_id")
            orders[str(order_id) if order_id is not None else "#" + fact.event_id] = fact
        elif kind == "return":
            return_count += 1
            amount, currency = _money(fact.get("value")), fact.get("currency")
            if amount is not None and isinstance(currency, str):
                returned[currency] = returned.get(currency, Decimal(0)) + amount
        elif kind == "ticket_opened":
            ticket = fact.get("ticket_id")
            if ticket is not None:
                opened.add(str(ticket))
        elif kind == "ticket_resolved":
            ticket = fact.get("ticket_id")
            if ticket is not None:
                resolved.add(str(ticket))
        elif kind == "satisfaction_score":
            score = fact.get("score")
            if isinstance(score, int):
                score_sum += score
                score_count += 1
        elif kind == "lead_status_change":
            if fact.get("status") is not None:
                lead = fact
        elif kind == "opportunity_stage_change":
            stage, opportunity_id = fact.get("stage"), fact.get("opportunity_id")
            if stage is not None:
                opportunity = fact
                if opportunity_id is not None:
                    opportunities[str(opportunity_id)] = str(stage)
        elif kind == "account_owner_change" and fact.get("owner") is not None:
            owner = fact
    revenue: dict[str, Decimal] = {}
    items = 0
    for order in orders.values():
        amount, currency = _money(order.get("value")), order.get("currency")
        if amount is not None and isinstance(currency, str):
            revenue[currency] = revenue.get(currency, Decimal(0)) + amount
        count = order.get("items")
        if isinstance(count, int):
            items += count
    first, last = facts[0], facts[-1]
    return ComputedTraits(
        first_seen=first.event_time,
        last_seen=last.event_time,
        last_channel=last.channel,
        region=region,
        regions=sorted(regions),
        events_by_channel={k: by_channel[k] for k in sorted(by_channel)},
        events_by_type={k: by_type[k] for k in sorted(by_type)},
        order_count=len(orders),
        items_ordered=items,
        revenue=_sums(revenue),
        return_count=return_count,
        returned_value=_sums(returned),
        tickets_total=len(opened),
        open_tickets=sorted(opened - resolved),
        satisfaction_count=score_count,
        avg_satisfaction=round(score_sum / score_count, 2) if score_count else None,
        lead_status=None if lead is None else _latest(lead, lead.get("status")),
        opportunity_stage=None
        if opportunity is None
        else _latest(opportunity, opportunity.get("stage"), opportunity.get("opportunity_id")),
        opportunities={k: opportunities[k] for k in sorted(opportunities)},
        account_owner=None
        if owner is None
        else _latest(owner, owner.get("owner"), owner.get("account_id")),
    )


# --------------------------------------------------------------------------- consent


def resolve_consent(facts: Iterable[Fact]) -> Consent:
    """Latest consent decision per purpose and scope (any order; deduped by event id first)."""
    return consent_sorted(sort_facts(merge_fact_sets(facts).values()))


def consent_sorted(facts: Sequence[Fact]) -> Consent:
    """:func:`resolve_consent` for distinct facts sorted by :func:`~cdp.profile.facts.order_key`.

    Scope is the decision's contact channel, or ``"*"`` when it is not limited
    to one. The latest decision per ``(purpose, scope)`` wins; if one event
    both grants and refuses the same purpose and scope, the refusal wins.
    """
    found: dict[tuple[str, str], tuple[bool, Fact]] = {}
    for fact in facts:
        for purpose, granted, channel in fact.consents:
            key = (purpose, channel or ALL_CHANNELS)
            current = found.get(key)
            if current is not None and current[1] is fact and not current[0]:
                continue  # same event: a refusal beats a grant
            found[key] = (granted, fact)
    consent: Consent = {}
    for purpose, scope in sorted(found):
        granted, fact = found[(purpose, scope)]
        consent.setdefault(purpose, {})[scope] = ConsentDecision(
            granted=granted,
            source=fact.source,
            channel=fact.channel,
            event_time=fact.event_time,
            event_id=fact.event_id,
        )
    return consent


def is_consented(consent: Consent, purpose: str, channel: str | None = None) -> bool | None:
    """Whether ``purpose`` is consented for a contact ``channel`` (None = no decision).

    The latest of the channel's own decision and the all-channels decision
    counts (equal time and event: the refusal). ``channel=None`` asks for the
    all-channels decision only.
    """
    scopes = consent.get(purpose)
    if not scopes:
        return None
    candidates = [scopes.get(ALL_CHANNELS)]
    if channel is not None:
        candidates.append(scopes.get(channel))
    decisions = [d for d in candidates if d is not None]
    if not decisions:
        return None
    latest = max(decisions, key=lambda d: (d.event_time, d.event_id, not d.granted))
    return latest.granted
