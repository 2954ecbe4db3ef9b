"""The journey state of a profile: a pure function of its fact set.

:func:`evaluate_journey` replays the profile's facts in their total order
(``(event_time, event_id)``, :func:`~cdp.profile.facts.sort_facts`) against a
:class:`~cdp.journey.definition.JourneyDefinition`. Duplicates and arrival
order do not matter and no wall-clock time is used, so merging two profiles
(the union of their facts) gives the same state whichever way round, and
recomputing after a re-delivery gives the same state again.

Per fact, in order:

1. Of the rules (the profile region's, overrides applied) that match the fact
   and whose move is allowed from the current stage (forward, or a listed
   backward move), the one with the latest target stage wins (equal targets:
   the first in rule order). Its move is recorded as a :class:`Transition`.
2. Moments of truth of the fact are recorded: ``events`` moments that match
   it, and ``to`` moments of the transition it caused.

The lead score and the qualification come from :mod:`cdp.journey.scoring` and
:mod:`cdp.journey.qualification`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from cdp.journey.definition import JourneyDefinition, Rule
from cdp.journey.qualification import (
    ExclusionReason,
    eligible,
    exclusion_reason,
    qualification_id,
)
from cdp.journey.scoring import lead_score
from cdp.profile.facts import Fact, merge_fact_sets, sort_facts
from cdp.profile.survivorship import TraitValue

SCORE_DIGITS = 4
"""Decimal places of :attr:`JourneyState.score`."""

_CONFIG = ConfigDict(frozen=True, extra="forbid")


class Transition(BaseModel):
    """A move of the profile into a stage."""

    model_config = _CONFIG

    from_stage: str | None
    """Stage before the move (``None``: the first stage of the profile)."""
    to_stage: str
    """Stage entered."""
    at: datetime
    """Time of the triggering event (UTC)."""
    event_id: str
    """Id of the triggering event."""
    channel: str
    """Channel of the triggering event."""
    rule: str
    """Id of the rule that fired."""


class MomentOccurrence(BaseModel):
    """One occurrence of a moment of truth.

    ``(name, event_id)`` identifies it independently of the profile id.
    """

    model_config = _CONFIG

    name: str
    """Moment name."""
    event_id: str
    """Id of the event that is the moment."""
    at: datetime
    """Time of that event (UTC)."""
    stage: str | None
    """The profile's stage right after that event."""
    channel: str
    """Channel of that event."""


class JourneyState(BaseModel):
    """Where a profile is in the journey; ``model_dump(mode="json")`` is deterministic."""

    model_config = _CONFIG

    journey: str
    """Name of the journey definition."""
    stage: str | None = None
    """Current stage (``None``: no rule has fired yet)."""
    owner: str | None = None
    """Owning department of the current stage."""
    entered_at: datetime | None = None
    """When the current stage was entered."""
    region: str | None = None
    """The profile's region: of its latest fact that names one (its rules apply)."""
    history: tuple[Transition, ...] = ()
    """Every transition, oldest first."""
    moments: tuple[MomentOccurrence, ...] = ()
    """Every moment-of-truth occurrence, oldest first."""
    score: float = 0.0
    """Lead score at :attr:`scored_at`, rounded to 4 places."""
    scored_at: datetime | None = None
    """Reference time of the score: the time of the latest fact."""
    qualified: bool = False
    """``score >= threshold``, not :attr:`excluded` and every required identifier and trait."""
    excluded: ExclusionReason | None = None
    """Why the profile is never handed to sales, if it is not."""
    qualified_at: datetime | None = None
    """When the score first reached the threshold (not set when excluded)."""
    qualification_event_id: str | None = None
    """The event at which it did."""
    qualification_id: str | None = None
    """Stable id of that qualification (dedupe key of the hand-off)."""


def resolve_traits(
    traits: Mapping[str, str | TraitValue] | None, ordered: Sequence[Fact]
) -> dict[str, str]:
    """Trait values for predicates and filters.

    Given traits (resolved by survivorship: plain strings or
    :class:`~cdp.profile.survivorship.TraitValue`) are used as they are;
    without them, the latest value of each trait among the facts counts.
    """
    if traits is not None:
        return {
            name: value if isinstance(value, str) else value.value for name, value in traits.items()
        }
    latest: dict[str, str] = {}
    for fact in ordered:
        latest.update(fact.traits)
    return latest


def profile_region(ordered: Sequence[Fact]) -> str | None:
    """Region of the latest fact that names one (facts sorted; ties by event id)."""
    return next((fact.region for fact in reversed(ordered) if fact.region is not None), None)


def _fire(
    fact: Fact,
    stage: str | None,
    rules: Sequence[Rule],
    journey: JourneyDefinition,
    traits: Mapping[str, str],
) -> Rule | None:
    """The rule that moves the profile on ``fact``, or ``None``."""
    best: Rule | None = None
    best_index = -1
    for rule in rules:
        if fact.type not in rule.events or not rule.applies(fact, traits):
            continue
        if not journey.move_allowed(stage, rule.stage, rule.id):
            continue
        index = journey.stage_index(rule.stage)
        if index > best_index:
            best, best_index = rule, index
    return best


def evaluate_journey(
    facts: Iterable[Fact],
    definition: JourneyDefinition,
    *,
    identifiers: Iterable[str] = (),
    traits: Mapping[str, str | TraitValue] | None = None,
) -> JourneyState:
    """The journey state of a profile: a pure function of the *set* of ``facts``.

    ``facts`` may come in any order and contain re-deliveries (deduped by
    event id). ``identifiers`` are the profile's identifier keys
    (``email:anna@example.com``; for the competitor filter) and ``traits`` its
    resolved traits (for ``trait.*`` predicates and the job-title filter; when
    ``None``, the latest value of each trait among the facts).
    """
    ordered = sort_facts(merge_fact_sets(facts).values())
    values = resolve_traits(traits, ordered)
    region = profile_region(ordered)
    rules = definition.rules_for(region)
    first_only = definition.first_only_moments
    stage: str | None = None
    history: list[Transition] = []
    moments: list[MomentOccurrence] = []
    seen: set[str] = set()
    for fact in ordered:
        rule = _fire(fact, stage, rules, definition, values)
        if rule is not None:
            history.append(
                Transition(
                    from_stage=stage,
                    to_stage=rule.stage,
                    at=fact.event_time,
                    event_id=fact.event_id,
                    channel=fact.channel,
                    rule=rule.id,
                )
            )
            stage = rule.stage
        names: list[str] = []
        if rule is not None:
            names.extend(name for name, to in definition.transition_moments if to == rule.stage)
        names.extend(
            name for name, match in definition.event_moments if match.applies(fact, values)
        )
        for name in dict.fromkeys(names):  # one occurrence per moment and event
            if name in first_only and name in seen:
                continue
            seen.add(name)
            moments.append(
                MomentOccurrence(
                    name=name,
                    event_id=fact.event_id,
                    at=fact.event_time,
                    stage=stage,
                    channel=fact.channel,
                )
            )
    scored = lead_score(ordered, definition.scoring, values)
    identifiers = tuple(identifiers)
    excluded = exclusion_reason(identifiers, values, ordered, definition.qualification)
    can_qualify = excluded is None and eligible(identifiers, values, definition.qualification)
    crossed = scored.crossed if can_qualify else None
    score = round(scored.score, SCORE_DIGITS)
    return JourneyState(
        journey=definition.name,
        stage=stage,
        owner=definition.owner(stage) if stage is not None else None,
        entered_at=history[-1].at if history else None,
        region=region,
        history=tuple(history),
        moments=tuple(moments),
        score=score,
        scored_at=ordered[-1].event_time if ordered else None,
        qualified=can_qualify and scored.score >= definition.scoring.threshold,
        excluded=excluded,
        qualified_at=crossed.event_time if crossed is not None else None,
        qualification_event_id=crossed.event_id if crossed is not None else None,
        qualification_id=qualification_id(definition.name, crossed.event_id)
        if crossed is not None
        else None,
    )
