"""Funnel metrics over many profiles' journey states (the reference computation).

Each profile contributes a :class:`FunnelContribution`, a pure function of its
:class:`~cdp.journey.engine.JourneyState` (:func:`funnel_contribution`); the
funnel is the sum of the contributions (:func:`aggregate_funnel`). A stream
processor keeping the funnel in Redis can therefore apply the difference of a
profile's old and new contribution, and a test can compare it with
:func:`compute_funnel` over the final states.

Definitions, per stage ``s`` (``k`` = its position):

- **current**: profiles whose current stage is ``s``.
- **reached**: profiles that ever got to ``s`` or a later stage (entered ``s``,
  or skipped over it). The *arrival* at ``s`` is the first transition of the
  history into ``s`` or a later stage.
- **converted**: of the profiles that reached ``s``, those that also reached
  the next stage; **conversion** = converted / reached (``None`` for the last
  stage or when nobody reached ``s``).
- **time in stage**: for every *closed* stay in ``s`` (from the transition
  into ``s`` to the next transition of the profile), its length in seconds;
  the current, open stay is not counted. **median** and **p90** use the
  nearest-rank method: the smallest measured value such that at least 50 % /
  90 % of the values are less than or equal to it.

Breakdowns: **per region** by the profile's region (``unknown`` when it has
none); **per channel** by the channel of the transition that did it: for
*current* the transition into the current stage, for *reached*/*converted*
the arrival at ``s``, for *time in stage* the transition that began the stay.
A segment's ``profiles`` = the sum of its ``current`` counts + ``unstaged``
(profiles without a stage; always 0 per channel).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from cdp.journey.definition import JourneyDefinition
from cdp.journey.engine import JourneyState

UNKNOWN_REGION = "unknown"
"""Region key of profiles whose facts name no region."""

_CONFIG = ConfigDict(frozen=True, extra="forbid")


class Arrival(BaseModel):
    """A profile got to a stage (entered it or skipped over it) via a channel."""

    model_config = _CONFIG

    stage: str
    channel: str


class Stay(BaseModel):
    """A closed stay of a profile in a stage."""

    model_config = _CONFIG

    stage: str
    channel: str
    """Channel of the transition that began the stay."""
    seconds: float
    """Time from entering the stage to the next transition."""


class FunnelContribution(BaseModel):
    """What one profile adds to the funnel (a pure function of its journey state)."""

    model_config = _CONFIG

    region: str
    """The profile's region, or :data:`UNKNOWN_REGION`."""
    stage: str | None
    """Current stage."""
    stage_channel: str | None
    """Channel of the transition into the current stage."""
    arrivals: tuple[Arrival, ...]
    """Every stage reached, in journey order (a prefix of the stages)."""
    stays: tuple[Stay, ...]
    """Every closed stay, oldest first."""


class StageMetrics(BaseModel):
    """Funnel numbers of one stage in one segment."""

    model_config = _CONFIG

    stage: str
    owner: str
    current: int = 0
    reached: int = 0
    converted: int = 0
    conversion: float | None = None
    stays: int = 0
    """Number of closed stays measured."""
    median_seconds: float | None = None
    p90_seconds: float | None = None


class FunnelSegment(BaseModel):
    """The funnel of a set of profiles (all, one region, one channel)."""

    model_config = _CONFIG

    profiles: int = 0
    unstaged: int = 0
    stages: tuple[StageMetrics, ...] = ()


class Funnel(BaseModel):
    """Funnel metrics overall and broken down per region and per channel."""

    model_config = _CONFIG

    journey: str
    """Name of the journey definition."""
    stages: tuple[str, ...]
    """Stage names in journey order."""
    overall: FunnelSegment
    by_region: dict[str, FunnelSegment]
    """Region -> segment, regions sorted."""
    by_channel: dict[str, FunnelSegment]
    """Channel -> segment, channels sorted."""

    def stage(self, name: str, segment: FunnelSegment | None = None) -> StageMetrics:
        """The metrics of one stage (overall unless a segment is given)."""
        for metrics in (segment or self.overall).stages:
            if metrics.stage == name:
                return metrics
        raise KeyError(name)


def funnel_contribution(state: JourneyState, definition: JourneyDefinition) -> FunnelContribution:
    """A profile's share of the funnel; :class:`ValueError` for a stage the journey lacks."""
    names = definition.stage_names
    try:
        positions = [definition.stage_index(t.to_stage) for t in state.history]
    except KeyError as exc:
        raise ValueError(
            f"stage {exc.args[0]!r} is not a stage of journey {definition.name!r}"
        ) from None
    arrivals: list[Arrival] = []
    for position, transition in zip(positions, state.history, strict=True):
        while len(arrivals) <= position:
            arrivals.append(Arrival(stage=names[len(arrivals)], channel=transition.channel))
    stays = [
        Stay(
            stage=entered.to_stage,
            channel=entered.channel,
            seconds=(left.at - entered.at).total_seconds(),
        )
        for entered, left in zip(state.history, state.history[1:], strict=False)
    ]
    last = state.history[-1] if state.history else None
    return FunnelContribution(
        region=state.region or UNKNOWN_REGION,
        stage=state.stage,
        stage_channel=last.channel if last is not None else None,
        arrivals=tuple(arrivals),
        stays=tuple(stays),
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``q`` of the values <= it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass(slots=True)
class _Tally:
    unstaged: int = 0
    current: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    reached: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    converted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    stays: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def segment(self, definition: JourneyDefinition) -> FunnelSegment:
        rows = []
        for stage in definition.stages:
            reached, converted = self.reached[stage.name], self.converted[stage.name]
            last = stage.name == definition.stage_names[-1]
            durations = self.stays[stage.name]
            rows.append(
                StageMetrics(
                    stage=stage.name,
                    owner=stage.owner,
                    current=self.current[stage.name],
                    reached=reached,
                    converted=converted,
                    conversion=None if last or not reached else converted / reached,
                    stays=len(durations),
                    median_seconds=percentile(durations, 0.5),
                    p90_seconds=percentile(durations, 0.9),
                )
            )
        profiles = sum(self.current.values()) + self.unstaged
        return FunnelSegment(profiles=profiles, unstaged=self.unstaged, stages=tuple(rows))


def aggregate_funnel(
    contributions: Iterable[FunnelContribution], definition: JourneyDefinition
) -> Funnel:
    """The funnel of profiles given by their contributions (:func:`funnel_contribution`)."""
    overall = _Tally()
    regions: dict[str, _Tally] = defaultdict(_Tally)
    channels: dict[str, _Tally] = defaultdict(_Tally)
    for item in contributions:
        by_region = regions[item.region]
        for tally in (overall, by_region):
            if item.stage is None:
                tally.unstaged += 1
            else:
                tally.current[item.stage] += 1
        if item.stage is not None and item.stage_channel is not None:
            channels[item.stage_channel].current[item.stage] += 1
        for position, arrival in enumerate(item.arrivals):
            converted = position + 1 < len(item.arrivals)
            for tally in (overall, by_region, channels[arrival.channel]):
                tally.reached[arrival.stage] += 1
                if converted:
                    tally.converted[arrival.stage] += 1
        for stay in item.stays:
            for tally in (overall, by_region, channels[stay.channel]):
                tally.stays[stay.stage].append(stay.seconds)
    return Funnel(
        journey=definition.name,
        stages=definition.stage_names,
        overall=overall.segment(definition),
        by_region={name: regions[name].segment(definition) for name in sorted(regions)},
        by_channel={name: channels[name].segment(definition) for name in sorted(channels)},
    )


def compute_funnel(states: Iterable[JourneyState], definition: JourneyDefinition) -> Funnel:
    """The funnel of the profiles' final journey states."""
    return aggregate_funnel((funnel_contribution(s, definition) for s in states), definition)
