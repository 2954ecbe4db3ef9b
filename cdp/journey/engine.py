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

from collections import OrderedDict
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
from cdp.journey.scoring import SECONDS_PER_DAY, decayed, fact_points
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


def _replay_values(definition: JourneyDefinition, values: Mapping[str, str]) -> dict[str, str]:
    return {name: values[name] for name in definition.replay_traits if name in values}


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


class JourneyFold:
    """The replay of :func:`evaluate_journey` after a prefix of a profile's ordered facts.

    :meth:`extend` folds further facts in, so a profile whose new facts all sort
    after the ones already folded, with the same rules (region) and values of the
    traits they test, is not replayed from its first fact (:meth:`resumes`). The
    replay is the same code either way, so a resumed fold gives the same state,
    float for float, as a full one. It holds trait values and facts (PII): drop it with the profile.
    """

    __slots__ = (
        "crossed",
        "definition",
        "facts",
        "history",
        "moments",
        "previous",
        "replay_values",
        "rules",
        "running",
        "seen",
        "stage",
        "values",
    )

    def __init__(
        self, definition: JourneyDefinition, values: dict[str, str], region: str | None
    ) -> None:
        self.definition = definition
        self.values = values
        self.replay_values = _replay_values(definition, values)
        self.rules = definition.rules_for(region)
        self.stage: str | None = None
        self.history: list[Transition] = []
        self.moments: list[MomentOccurrence] = []
        self.seen: set[str] = set()
        self.running = 0.0
        self.crossed: Fact | None = None
        self.previous: Fact | None = None
        self.facts: list[Fact] = []

    def copy(self) -> JourneyFold:
        """An independent fold in the same state (extending it leaves this one as it is)."""
        other = JourneyFold.__new__(JourneyFold)
        for name in JourneyFold.__slots__:
            setattr(other, name, getattr(self, name))
        other.history, other.moments = list(self.history), list(self.moments)
        other.seen, other.facts = set(self.seen), list(self.facts)
        return other

    def resumes(
        self,
        ordered: Sequence[Fact],
        definition: JourneyDefinition,
        values: Mapping[str, str],
        region: str | None,
    ) -> bool:
        """Whether ``ordered`` starts with exactly the facts folded so far, the rest after them.

        Also requires what the replay of every fact depends on: the same
        definition, the same rules (those of the profile's region) and the same
        values of the traits the rules test
        (:attr:`~cdp.journey.definition.JourneyDefinition.replay_traits`). Facts
        compare equal in every field (an event id sent again with other content
        is not the same fact).
        """
        folded = self.facts
        return (
            definition is self.definition
            and definition.rules_for(region) is self.rules
            and _replay_values(definition, values) == self.replay_values
            and len(ordered) >= len(folded)
            and all(a is b or a == b for a, b in zip(ordered, folded, strict=False))
        )

    def extend(self, facts: Iterable[Fact]) -> None:
        """Fold ``facts`` in: distinct facts sorted after every fact folded so far."""
        definition = self.definition
        values = self.values
        first_only = definition.first_only_moments
        scoring = definition.scoring
        half_life = scoring.half_life_days * SECONDS_PER_DAY
        for fact in facts:
            rule = _fire(fact, self.stage, self.rules, definition, values)
            if rule is not None:
                self.history.append(
                    Transition(
                        from_stage=self.stage,
                        to_stage=rule.stage,
                        at=fact.event_time,
                        event_id=fact.event_id,
                        channel=fact.channel,
                        rule=rule.id,
                    )
                )
                self.stage = rule.stage
            names: list[str] = []
            if rule is not None:
                names.extend(name for name, to in definition.transition_moments if to == rule.stage)
            names.extend(
                name for name, match in definition.event_moments if match.applies(fact, values)
            )
            for name in dict.fromkeys(names):  # one occurrence per moment and event
                if name in first_only and name in self.seen:
                    continue
                self.seen.add(name)
                self.moments.append(
                    MomentOccurrence(
                        name=name,
                        event_id=fact.event_id,
                        at=fact.event_time,
                        stage=self.stage,
                        channel=fact.channel,
                    )
                )
            # the lead score (cdp.journey.scoring.lead_score), one step
            self.running = decayed(self.running, self.previous, fact, half_life) + fact_points(
                fact, scoring, values
            )
            if self.crossed is None and self.running >= scoring.threshold:
                self.crossed = fact
            self.previous = fact
            self.facts.append(fact)

    def state(
        self, ordered: Sequence[Fact], identifiers: Iterable[str], values: Mapping[str, str]
    ) -> JourneyState:
        """The journey state of the profile whose ordered facts were all folded in.

        ``values`` are the profile's trait values now (the qualification filters
        read them).
        """
        definition = self.definition
        identifiers = tuple(identifiers)
        excluded = exclusion_reason(identifiers, values, ordered, definition.qualification)
        can_qualify = excluded is None and eligible(identifiers, values, definition.qualification)
        crossed = self.crossed if can_qualify else None
        score = round(self.running, SCORE_DIGITS)
        history = self.history
        return JourneyState(
            journey=definition.name,
            stage=self.stage,
            owner=definition.owner(self.stage) if self.stage is not None else None,
            entered_at=history[-1].at if history else None,
            region=profile_region(ordered),
            history=tuple(history),
            moments=tuple(self.moments),
            score=score,
            scored_at=ordered[-1].event_time if ordered else None,
            qualified=can_qualify and self.running >= definition.scoring.threshold,
            excluded=excluded,
            qualified_at=crossed.event_time if crossed is not None else None,
            qualification_event_id=crossed.event_id if crossed is not None else None,
            qualification_id=qualification_id(definition.name, crossed.event_id)
            if crossed is not None
            else None,
        )


class JourneyFolds:
    """The latest :class:`JourneyFold` per profile id, for the profiles stage (bounded).

    Holds folds of at most ``capacity`` facts in all (a fold keeps its facts); the
    fold stored longest ago goes first. A missing entry only means a full replay.
    Holds PII: :meth:`forget` an erased profile.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self._folds: OrderedDict[str, JourneyFold] = OrderedDict()
        self._capacity = capacity
        self._facts = 0

    def __len__(self) -> int:
        return len(self._folds)

    @property
    def facts(self) -> int:
        """Facts held by the stored folds."""
        return self._facts

    def get(self, profile_id: str) -> JourneyFold | None:
        """The fold stored for ``profile_id``, if any."""
        return self._folds.get(profile_id)

    def put(self, profile_id: str, fold: JourneyFold) -> None:
        """Store ``fold`` as the profile's latest."""
        self.forget(profile_id)
        self._folds[profile_id] = fold
        self._facts += len(fold.facts)
        while self._facts > self._capacity and self._folds:
            _oldest, dropped = self._folds.popitem(last=False)
            self._facts -= len(dropped.facts)

    def forget(self, profile_id: str) -> None:
        """Drop the profile's fold (erased or deleted)."""
        dropped = self._folds.pop(profile_id, None)
        if dropped is not None:
            self._facts -= len(dropped.facts)


def fold_journey(
    ordered: Sequence[Fact],
    definition: JourneyDefinition,
    values: dict[str, str],
    resume: JourneyFold | None = None,
) -> JourneyFold:
    """The fold of distinct ``ordered`` facts (sorted), resuming ``resume`` when it can.

    ``values`` are the trait values of :func:`resolve_traits`. ``resume`` is not
    changed; the fold returned is a new one (or ``resume`` itself when nothing
    was added).
    """
    region = profile_region(ordered)
    if resume is not None and resume.resumes(ordered, definition, values, region):
        folded = len(resume.facts)
        if folded == len(ordered):
            return resume
        fold = resume.copy()
        fold.extend(ordered[folded:])
        return fold
    fold = JourneyFold(definition, values, region)
    fold.extend(ordered)
    return fold


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
    return fold_journey(ordered, definition, values).state(ordered, identifiers, values)
