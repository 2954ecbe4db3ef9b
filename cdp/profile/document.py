"""The profile document: a pure function of a profile's fact set.

:func:`build_profile` dedupes the facts by event id, sorts them by
``(event_time, event_id)`` and derives everything in one pass each:
survivorship traits (:mod:`cdp.profile.survivorship`), computed traits and
consent (:mod:`cdp.profile.computed`). The same set of facts always gives the
same document, byte for byte in :func:`canonical_json`, whatever the order,
duplication or grouping in which the facts were collected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cdp.journey.definition import JourneyDefinition
from cdp.journey.engine import JourneyFolds, JourneyState, fold_journey, resolve_traits
from cdp.messages import dumps
from cdp.profile.computed import (
    ComputedTraits,
    ConsentDecision,
    compute_sorted,
    consent_sorted,
)
from cdp.profile.derived import is_derived
from cdp.profile.facts import Fact, merge_fact_sets, sort_facts
from cdp.profile.survivorship import TraitConfig, TraitValue, resolve_sorted


class ProfileDocument(BaseModel):
    """One customer profile as served (Redis read model, profile change topic).

    Field order is fixed (declaration order); :func:`canonical_json` sorts keys.
    ``identifiers`` and ``traits`` hold PII and are kept out of ``repr``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile_id: str
    """Profile id (from identity resolution)."""
    identifiers: list[str] = Field(default_factory=list, repr=False)
    """Identifier keys of the profile (``email:anna@example.com``), sorted."""
    traits: dict[str, TraitValue] = Field(default_factory=dict, repr=False)
    """Trait name -> winning value with provenance and rule, names sorted."""
    computed: ComputedTraits = Field(default_factory=ComputedTraits)
    """Aggregates over the facts (counts, revenue, tickets, latest CRM states, ...)."""
    consent: dict[str, dict[str, ConsentDecision]] = Field(default_factory=dict)
    """Purpose -> scope (contact channel or ``"*"``) -> latest decision."""
    sources: list[str] = Field(default_factory=list)
    """Source systems seen, sorted."""
    event_count: int = 0
    """Number of distinct events (facts)."""
    journey: JourneyState | None = None
    """Journey stage, owner, history, moments of truth, lead score and qualification
    (:func:`cdp.journey.evaluate_journey`); None when built without a journey."""


def build_profile(
    profile_id: str,
    facts: Iterable[Fact],
    config: TraitConfig,
    identifiers: Iterable[str] = (),
    journey: JourneyDefinition | None = None,
    folds: JourneyFolds | None = None,
) -> ProfileDocument:
    """The document of a profile: a pure function of the *set* of ``facts``.

    ``facts`` may come in any order and contain re-deliveries (deduped by event
    id, see :func:`~cdp.profile.facts.merge_fact_sets`). ``identifiers`` are
    the profile's identifier keys, provided by identity resolution; they are
    deduped and sorted. With a ``journey`` definition the document carries the
    profile's journey state (a pure function of the same fact set). Derived
    facts (computed traits of processors, :mod:`cdp.profile.derived`) count for
    the traits only: they are not events.

    ``folds`` (the profiles stage's) keeps the journey replay per profile id, so
    a profile whose new events sort after all its others, with the same rules and
    values of the traits they test, replays only the new ones
    (:class:`~cdp.journey.engine.JourneyFold`); the document is the same either way.
    """
    fact_set = merge_fact_sets(facts)
    everything = sort_facts(fact_set.values())
    ordered = [fact for fact in everything if not is_derived(fact)]  # the events
    keys = sorted(set(identifiers))
    traits = resolve_sorted(everything, config)
    state = None
    if journey is not None:
        resume = None if folds is None else folds.get(profile_id)
        values = resolve_traits(traits, ordered)
        fold = fold_journey(ordered, journey, values, resume)
        if folds is not None:
            folds.put(profile_id, fold)
        state = fold.state(ordered, keys, values)
    return ProfileDocument(
        profile_id=profile_id,
        identifiers=keys,
        traits=traits,
        computed=compute_sorted(ordered),
        consent=consent_sorted(ordered),
        sources=sorted({fact.source for fact in ordered}),
        event_count=len(ordered),
        journey=state,
    )


def profile_to_json(doc: ProfileDocument) -> dict[str, Any]:
    """The document as JSON-compatible data (times as ISO 8601 UTC, ``...Z``)."""
    return doc.model_dump(mode="json")


def canonical_json(doc: ProfileDocument) -> bytes:
    """Canonical UTF-8 JSON of a document: sorted keys, no whitespace.

    Equal documents give equal bytes; used for the Redis value and for
    comparing profiles built in different ways.
    """
    return dumps(doc.model_dump(mode="json"))


def profile_from_json(data: bytes | str | Mapping[str, Any]) -> ProfileDocument:
    """Parse and validate a document (from :func:`canonical_json` or :func:`profile_to_json`).

    Raises :class:`pydantic.ValidationError` on a malformed document.
    """
    if isinstance(data, bytes | str):
        return ProfileDocument.model_validate_json(data)
    return ProfileDocument.model_validate(data)
