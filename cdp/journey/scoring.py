"""Lead score: points per event with exponential time decay.

Each fact earns ``weights[type]`` plus every matching bonus. Its points halve
every ``half_life_days``, measured back from a reference time, so a profile's
score at time ``T`` (the time of one of its facts) is::

    score(T) = sum over facts f with time(f) <= T of points(f) * 0.5 ** ((T - time(f)) / half_life)

The reference of the profile's score is its latest fact, never the wall
clock: the score is a pure function of the fact set. A profile *crosses the
threshold* at the first fact (in ``(event_time, event_id)`` order) at which
``score(time of that fact)`` reaches ``threshold``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cdp.journey.definition import Scoring
from cdp.profile.facts import Fact

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """The score at the profile's latest fact, and the fact that first reached the threshold."""

    score: float
    """Decayed score at the time of the latest fact (not rounded)."""
    crossed: Fact | None
    """First fact at which the running score reached the threshold, if any."""


def fact_points(fact: Fact, scoring: Scoring, traits: Mapping[str, str]) -> float:
    """Points of one fact before decay: its type's weight plus matching bonuses."""
    points = scoring.weights.get(fact.type, 0.0)
    for bonus in scoring.bonuses:
        if bonus.applies(fact, traits):
            points += bonus.points
    return points


def decayed(running: float, previous: Fact | None, fact: Fact, half_life: float) -> float:
    """A running score at ``previous``'s time, decayed to ``fact``'s (``half_life`` in seconds)."""
    if previous is None or not running:
        return running
    elapsed = (fact.event_time - previous.event_time).total_seconds()
    factor: float = 0.5 ** (elapsed / half_life)
    return running * factor


def lead_score(ordered: Sequence[Fact], scoring: Scoring, traits: Mapping[str, str]) -> ScoreResult:
    """Score of distinct facts sorted by :func:`~cdp.profile.facts.order_key`.

    The running score is decayed from fact to fact, so the result is computed
    in one pass in a fixed order (equal fact sets give equal floats).
    """
    half_life = scoring.half_life_days * SECONDS_PER_DAY
    running = 0.0
    crossed: Fact | None = None
    previous: Fact | None = None
    for fact in ordered:
        running = decayed(running, previous, fact, half_life) + fact_points(fact, scoring, traits)
        if crossed is None and running >= scoring.threshold:
            crossed = fact
        previous = fact
    return ScoreResult(score=running, crossed=crossed)
