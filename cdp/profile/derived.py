"""Derived facts: computed traits that stream processors write to a profile.

A processor (see :mod:`cdp.processors`) does not write to a profile document
directly. It sends a *derived fact* to ``{ns}.profile.computed``, keyed by an
identifier key of the profile; the facts stage keeps it under that identifier
like an event's fact, so it follows identity merges and GDPR erasure, and the
profile stays a pure function of its facts.

A derived fact has ``type == "computed_trait"``, ``channel == "processor"``,
``source == "processor:<name>"`` and carries exactly the processor's trait
(or no trait: that removes it). Its event id is deterministic
(:func:`derived_fact_id`): a re-computation replaces the earlier fact instead of
adding one. A profile counts derived facts only for its traits: they are no
events (``event_count``, computed aggregates, consent, sources and the journey
ignore them).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import orjson

from cdp.errors import EventError, ReasonCode
from cdp.profile.facts import Fact

DERIVED_TYPE = "computed_trait"
"""``Fact.type`` of a derived fact."""
DERIVED_CHANNEL = "processor"
"""``Fact.channel`` of a derived fact."""
SOURCE_PREFIX = "processor:"
"""``Fact.source`` of a derived fact is this prefix plus the processor name."""

_ID_NAMESPACE = uuid.UUID("4f0c6f1e-2b7a-5d8e-9c41-7a3e0d5b6c21")


def derived_fact_id(processor: str, trait: str, identifier_key: str) -> str:
    """The event id of a processor's trait fact stored under ``identifier_key`` (a UUID5)."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{processor}\x1f{trait}\x1f{identifier_key}"))


def derived_fact(
    processor: str, trait: str, identifier_key: str, value: str | None, at: datetime
) -> Fact:
    """The fact of a computed trait (``value`` None: a fact without the trait, removing it)."""
    return Fact(
        event_id=derived_fact_id(processor, trait, identifier_key),
        event_time=at,
        channel=DERIVED_CHANNEL,
        type=DERIVED_TYPE,
        source=SOURCE_PREFIX + processor,
        traits=() if value is None else ((trait, value),),
    )


def is_derived(fact: Fact) -> bool:
    """Whether a fact was written by a processor (not observed in an event)."""
    return fact.type == DERIVED_TYPE and fact.channel == DERIVED_CHANNEL


def parse_derived_fact(value: bytes | None) -> Fact:
    """Parse a ``profile.computed`` record value; :class:`EventError` if it is no derived fact."""
    try:
        fact = Fact.from_json(orjson.loads(value or b"null"))
    except ValueError as exc:  # JSONDecodeError is a ValueError; messages name fields only
        raise EventError(ReasonCode.VALIDATION_FAILED, f"profile.computed: {exc}") from None
    if not is_derived(fact) or not fact.source.startswith(SOURCE_PREFIX):
        raise EventError(
            ReasonCode.VALIDATION_FAILED,
            f"profile.computed: a derived fact needs type {DERIVED_TYPE!r},"
            f" channel {DERIVED_CHANNEL!r} and a source starting with {SOURCE_PREFIX!r}",
        )
    return fact
