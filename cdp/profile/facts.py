"""Facts: the compact, order-free record of one event that a profile is built from.

The profile stage keeps, per profile, a *set* of facts keyed by event id. A
profile document is a pure function of that set (:func:`cdp.profile.build_profile`),
so merging two profiles is the union of their fact sets
(:func:`merge_fact_sets`): commutative, associative and idempotent by
construction, and independent of the order in which events arrived.

A :class:`Fact` keeps only what profiles need: the envelope (id, time, channel,
type, source, region), the traits and consent decisions the event carried,
and a few type-specific values (:data:`FACT_DATA_FIELDS`) for computed traits
and journey rules. Identifiers are *not* kept: identity resolution owns them.

JSON form (short keys; empty parts left out)::

    {"id": "6f1c...", "t": "2026-01-05T08:00:00.250000Z", "ch": "ecommerce",
     "ty": "order", "src": "shop", "rg": "DE",
     "tr": {"first_name": "Anna"}, "cs": [["newsletter", true, "email"]],
     "d": {"currency": "EUR", "items": 3, "order_id": "O-1", "value": "4497.00"}}

Trait values are PII: ``repr``/``str`` of a fact shows trait *names* and data
*keys* only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from cdp.contracts.events import Event
from cdp.messages import dumps_to_keep

DataValue = str | int
"""A type-specific value of a fact: ids, codes and amounts as text, counts as int."""

ConsentFact = tuple[str, bool, str | None]
"""A consent decision: ``(purpose, granted, contact channel or None for all channels)``."""

FACT_DATA_FIELDS: dict[str, tuple[str, ...]] = {
    "page_view": ("page_category", "campaign"),
    "click": ("element", "campaign"),
    "form_submit": ("form_id", "form_type"),
    "download": ("asset_type",),
    "newsletter_signup": ("list_id",),
    "track": ("event",),
    "identify": (),
    "screen": ("name", "category"),
    "group": ("group_id",),
    "alias": (),
    "product_view": ("product_id", "category"),
    "cart": ("action",),
    "checkout": ("value", "currency"),
    "order": ("order_id", "value", "currency", "items"),
    "return": ("order_id", "value", "currency"),
    "call": ("direction", "duration_s", "topic"),
    "ticket_opened": ("ticket_id", "priority", "category"),
    "ticket_resolved": ("ticket_id",),
    "satisfaction_score": ("score", "survey"),
    "contact_upsert": ("account_id",),
    "lead_status_change": ("status", "previous_status"),
    "opportunity_stage_change": ("opportunity_id", "stage", "amount", "currency"),
    "account_owner_change": ("account_id", "owner"),
}
"""Event type -> payload fields kept in :attr:`Fact.data` (``None`` values are left out).

Money is kept as its decimal text (``"4497.00"``), counts and scores as int.
URLs, free-text subjects, identifiers (the ``previous_id`` of an ``alias``) and the JSON
properties of ``track``/``screen`` calls are not kept.
"""

PAYLOAD_TRAITS: dict[str, tuple[str, ...]] = {
    "contact_upsert": ("first_name", "last_name", "job_title", "company"),
}
"""Event type -> payload fields that become traits of the fact (they win over the
same-named envelope trait of that event: the payload is the typed CRM record)."""


def _format_time(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True, repr=False)
class Fact:
    """What a profile keeps of one event; immutable, hashable, JSON-serialisable.

    ``traits`` and ``data`` are tuples of ``(name, value)`` pairs, ``consents``
    a tuple of decisions; the constructor sorts and dedupes them (names are
    unique, the last pair of a name counts), so equal content gives equal
    facts. Read them with :meth:`trait` / :meth:`get` or :attr:`traits_dict`.
    """

    event_id: str
    """Event id (dedupe key)."""
    event_time: datetime
    """When it happened, tz-aware UTC."""
    channel: str
    """Channel system (``web``, ``ecommerce``, ``callcenter``, ``crm``)."""
    type: str
    """Event type (``page_view``, ``order``, ...)."""
    source: str
    """Producing system (trait provenance, survivorship source priority)."""
    region: str | None = None
    """Region of the event (``DE``), if given."""
    traits: tuple[tuple[str, str], ...] = ()
    """Non-blank traits ``(name, value)``, sorted by name. PII."""
    consents: tuple[ConsentFact, ...] = ()
    """Consent decisions ``(purpose, granted, channel)``, sorted."""
    data: tuple[tuple[str, DataValue], ...] = ()
    """Type-specific values (:data:`FACT_DATA_FIELDS`), sorted by key."""

    def __post_init__(self) -> None:
        if self.event_time.tzinfo is None:
            raise ValueError("Fact.event_time must be timezone-aware")
        if self.event_time.tzinfo is not UTC:
            object.__setattr__(self, "event_time", self.event_time.astimezone(UTC))
        object.__setattr__(self, "traits", tuple(sorted(dict(self.traits).items())))
        object.__setattr__(self, "data", tuple(sorted(dict(self.data).items())))
        object.__setattr__(self, "consents", tuple(sorted(set(self.consents), key=_consent_key)))

    @property
    def traits_dict(self) -> dict[str, str]:
        """The traits as a new dict."""
        return dict(self.traits)

    def trait(self, name: str) -> str | None:
        """Value of one trait, or None."""
        for key, value in self.traits:
            if key == name:
                return value
        return None

    def get(self, key: str) -> DataValue | None:
        """One type-specific value (``order_id``, ``value``, ``page_category``, ...), or None."""
        for name, value in self.data:
            if name == key:
                return value
        return None

    def __repr__(self) -> str:
        return (
            f"Fact(event_id={self.event_id!r}, event_time={_format_time(self.event_time)!r},"
            f" channel={self.channel!r}, type={self.type!r}, source={self.source!r},"
            f" region={self.region!r}, traits={[k for k, _ in self.traits]!r},"
            f" consents={list(self.consents)!r}, data={[k for k, _ in self.data]!r})"
        )

    __str__ = __repr__

    def to_json(self) -> dict[str, Any]:
        """The compact JSON form (short keys, empty parts left out)."""
        out: dict[str, Any] = {
            "id": self.event_id,
            "t": _format_time(self.event_time),
            "ch": self.channel,
            "ty": self.type,
            "src": self.source,
        }
        if self.region is not None:
            out["rg"] = self.region
        if self.traits:
            out["tr"] = dict(self.traits)
        if self.consents:
            out["cs"] = [list(c) for c in self.consents]
        if self.data:
            out["d"] = dict(self.data)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fact:
        """Parse :meth:`to_json` output; :class:`ValueError` names the bad field (never values)."""
        if not isinstance(data, Mapping):
            raise ValueError("fact: expected a JSON object")
        unknown = set(data) - _JSON_KEYS
        if unknown:
            raise ValueError(f"fact: unknown keys {sorted(unknown)}")
        event_id = _text(data, "id")
        raw_time = _text(data, "t")
        try:
            event_time = datetime.fromisoformat(raw_time)
        except ValueError:
            raise ValueError("fact.t: not an ISO 8601 time") from None
        if event_time.tzinfo is None:
            raise ValueError("fact.t: time has no UTC offset")
        region = data.get("rg")
        if region is not None and not isinstance(region, str):
            raise ValueError("fact.rg: expected a string")
        traits = data.get("tr", {})
        if not isinstance(traits, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in traits.items()
        ):
            raise ValueError("fact.tr: expected an object of strings")
        consents = data.get("cs", [])
        if not isinstance(consents, list) or not all(_is_consent(c) for c in consents):
            raise ValueError("fact.cs: expected a list of [purpose, granted, channel|null]")
        values = data.get("d", {})
        if not isinstance(values, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str | int) and not isinstance(v, bool)
            for k, v in values.items()
        ):
            raise ValueError("fact.d: expected an object of strings and integers")
        return cls(
            event_id=event_id,
            event_time=event_time.astimezone(UTC),
            channel=_text(data, "ch"),
            type=_text(data, "ty"),
            source=_text(data, "src"),
            region=region,
            traits=tuple(traits.items()),
            consents=tuple((c[0], c[1], c[2]) for c in consents),
            data=tuple(values.items()),
        )


_JSON_KEYS = frozenset({"id", "t", "ch", "ty", "src", "rg", "tr", "cs", "d"})


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"fact.{key}: expected a non-empty string")
    return value


def _is_consent(item: object) -> bool:
    return (
        isinstance(item, list | tuple)
        and len(item) == 3
        and isinstance(item[0], str)
        and isinstance(item[1], bool)
        and (item[2] is None or isinstance(item[2], str))
    )


def _data_value(value: object) -> DataValue:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return str(value)


def fact_from_event(event: Event) -> Fact:
    """The fact of a validated event.

    Blank trait values are dropped (no information). For ``contact_upsert`` the
    payload's names, job title and company become traits (:data:`PAYLOAD_TRAITS`).
    """
    payload = event.payload
    traits = {name: value for name, value in event.traits.items() if value.strip()}
    for name in PAYLOAD_TRAITS.get(event.type, ()):
        value = getattr(payload, name, None)
        if isinstance(value, str) and value.strip():
            traits[name] = value
    data: dict[str, DataValue] = {}
    for name in FACT_DATA_FIELDS.get(event.type, ()):
        value = getattr(payload, name, None)
        if value is not None:
            data[name] = _data_value(value)
    return Fact(
        event_id=event.event_id,
        event_time=event.event_time.astimezone(UTC),
        channel=str(event.channel.value),
        type=event.type,
        source=event.source,
        region=event.region,
        traits=tuple(traits.items()),
        consents=tuple((c.purpose, c.granted, c.channel) for c in event.consents),
        data=tuple(data.items()),
    )


def _consent_key(consent: ConsentFact) -> tuple[str, bool, str]:
    return (consent[0], consent[1], consent[2] or "")


def order_key(fact: Fact) -> tuple[datetime, str]:
    """Sort key of the total order of facts: ``(event_time, event_id)``.

    Every "latest"/"earliest" decision of a profile is taken in this order, so
    equal event times are decided by the event id, never by arrival order.
    """
    return (fact.event_time, fact.event_id)


def sort_facts(facts: Iterable[Fact]) -> list[Fact]:
    """Facts in their total order (:func:`order_key`)."""
    return sorted(facts, key=order_key)


def merge_fact_sets(*sets: Mapping[str, Fact] | Iterable[Fact]) -> dict[str, Fact]:
    """The union of fact sets, keyed by event id (a new dict; inputs are not changed).

    Each argument is a mapping ``event_id -> Fact`` (only its values are read)
    or an iterable of facts. Re-deliveries of an event give equal facts and
    collapse to one. Should two *different* facts share an event id (a
    contract violation upstream), the greater by :func:`fact_tiebreak_key` is
    kept, so the result still does not depend on argument order or grouping.
    """
    merged: dict[str, Fact] = {}
    for group in sets:
        facts = group.values() if isinstance(group, Mapping) else group
        for fact in facts:
            existing = merged.get(fact.event_id)
            if existing is None:
                merged[fact.event_id] = fact
            elif existing is not fact and existing != fact:
                merged[fact.event_id] = max(existing, fact, key=fact_tiebreak_key)
    return merged


def fact_tiebreak_key(fact: Fact) -> tuple[Any, ...]:
    """A total order on facts that share an event id (used by :func:`merge_fact_sets`).

    Unequal facts never get equal keys, so the kept fact is the same whatever
    the order in which the two were merged.
    """
    return (
        fact.event_time,
        fact.channel,
        fact.type,
        fact.source,
        (fact.region is not None, fact.region or ""),
        fact.traits,
        tuple((p, g, c is not None, c or "") for p, g, c in fact.consents),
        tuple((k, isinstance(v, int), str(v)) for k, v in fact.data),
    )


def encode_fact(data: Mapping[str, Any] | bytes) -> bytes:
    """A fact's canonical JSON bytes, the form the stages keep it in (``bytes`` pass through).

    Kept as bytes, a stored fact costs about half the memory of its parsed JSON and
    nothing to Python's garbage collector (bytes are not tracked), and it is written
    into changelogs and messages as it is (:func:`cdp.messages.embed_json`), in a
    right-sized buffer (:func:`cdp.messages.dumps_to_keep`).
    """
    return data if isinstance(data, bytes) else dumps_to_keep(data)


def encode_facts(facts: Mapping[str, Any]) -> dict[str, bytes]:
    """``facts`` (event id -> fact) with every fact as :func:`encode_fact` bytes."""
    return {event_id: encode_fact(fact) for event_id, fact in facts.items()}


class ParsedFacts:
    """A bounded cache of parsed facts, for stages that re-read their stored facts.

    A profile's document is rebuilt from all its stored facts on every change,
    so without the cache a profile with *n* facts parses *n* facts per event.
    An entry is used only while the stored JSON bytes are the very ones it was
    parsed from (or equal to them), so a changed fact is always parsed again.
    The oldest entries go first once ``capacity`` is reached.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("ParsedFacts capacity must be at least 1")
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[bytes, Fact]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def forget(self, keys: Iterable[str]) -> None:
        """Drop the entries of ``keys`` (an erased profile's facts leave memory with it)."""
        for key in keys:
            self._entries.pop(key, None)

    def parse(self, key: str, data: bytes | Mapping[str, Any]) -> Fact:
        """The :class:`Fact` of JSON ``data`` (:func:`encode_fact` bytes), cached under ``key``
        (the fact's event id)."""
        entry = self._entries.get(key)
        encoded = encode_fact(data)
        if entry is not None and entry[0] == encoded:  # bytes compare the same object at once
            return entry[1]
        fact = Fact.from_json(orjson.loads(encoded))
        if entry is None and len(self._entries) >= self._capacity:
            self._entries.popitem(last=False)
        self._entries[key] = (encoded, fact)
        return fact
