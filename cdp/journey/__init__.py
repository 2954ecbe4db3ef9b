"""Customer journeys: stages, lead scoring, qualification, moments of truth, funnel.

Pure Python (no Kafka, Faust or Redis). A journey is declared in a YAML file
(:func:`load_journey`; the packaged default is :func:`default_journey`, the
B2B journey need -> search -> choice -> purchase -> usage -> recommendation).
:func:`evaluate_journey` computes a profile's :class:`JourneyState` from its
set of facts, so the state survives profile merges and re-deliveries
deterministically; :func:`compute_funnel` sums many states into the
:class:`Funnel`. The file format and semantics are documented in
``docs/journeys.md``.

Typical use in the profile stage::

    journey = load_journey_or_default(settings.journey_config)
    state = evaluate_journey(facts, journey, identifiers=doc.identifiers, traits=doc.traits)
"""

from __future__ import annotations

from cdp.journey.definition import (
    DEFAULT_JOURNEY_RESOURCE,
    BackwardMove,
    Bonus,
    JourneyDefinition,
    Moment,
    Qualification,
    RegionOverride,
    Rule,
    Scoring,
    Stage,
    default_journey,
    load_journey,
    load_journey_or_default,
    parse_journey,
)
from cdp.journey.engine import (
    JourneyState,
    MomentOccurrence,
    Transition,
    evaluate_journey,
    profile_region,
)
from cdp.journey.funnel import (
    UNKNOWN_REGION,
    Arrival,
    Funnel,
    FunnelContribution,
    FunnelSegment,
    StageMetrics,
    Stay,
    aggregate_funnel,
    compute_funnel,
    funnel_contribution,
    percentile,
)
from cdp.journey.predicates import Match, Predicate
from cdp.journey.qualification import ExclusionReason, qualification_id
from cdp.journey.scoring import ScoreResult, lead_score

__all__ = [
    "DEFAULT_JOURNEY_RESOURCE",
    "UNKNOWN_REGION",
    "Arrival",
    "BackwardMove",
    "Bonus",
    "ExclusionReason",
    "Funnel",
    "FunnelContribution",
    "FunnelSegment",
    "JourneyDefinition",
    "JourneyState",
    "Match",
    "Moment",
    "MomentOccurrence",
    "Predicate",
    "Qualification",
    "RegionOverride",
    "Rule",
    "ScoreResult",
    "Scoring",
    "Stage",
    "StageMetrics",
    "Stay",
    "Transition",
    "aggregate_funnel",
    "compute_funnel",
    "default_journey",
    "evaluate_journey",
    "funnel_contribution",
    "lead_score",
    "load_journey",
    "load_journey_or_default",
    "parse_journey",
    "percentile",
    "profile_region",
    "qualification_id",
]
