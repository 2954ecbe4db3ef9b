"""Journey definitions: the validated content of a journey file (YAML).

A journey is data, not code: stages with their owning department, rules that
move a profile into a stage, the backward moves that are allowed, region
overrides, moments of truth, lead scoring and qualification filters. The
packaged default is ``cdp/journey/b2b.yaml`` (:func:`default_journey`); an
installation points :func:`load_journey` at its own file. The format and the
semantics are documented in ``docs/journeys.md``.

Every problem of a file is a :class:`~cdp.errors.ConfigError` naming the file,
the line, the field path and the problem, e.g.
``journey.yaml:14: rules[2].stage: unknown stage 'purchse' (stages: need, ...)``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cdp.errors import ConfigError
from cdp.journey.predicates import (
    EventTypes,
    Loc,
    Match,
    Predicate,
    as_tuple,
    check_event_types,
    check_regex,
    match_problems,
    problems_error,
)
from cdp.journey.yaml_lines import parse_yaml, validate_with_lines

DEFAULT_JOURNEY_RESOURCE = "b2b.yaml"
"""File name of the packaged default journey (next to this module)."""

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
"""Stage names, owners, moment names: lower_snake_case."""
RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]*$", max_length=128)]
"""Rule ids: lower case, digits, ``_``, ``.``, ``-`` (``choice.demo_request``)."""
RegionCode = Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9_-]*$", max_length=16)]
"""Region codes as events carry them (upper case, ``DE``, ``CH``)."""

_CONFIG = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Stage(BaseModel):
    """One stage of the journey; the order of the list is the order of the journey."""

    model_config = _CONFIG

    name: Name
    """Stage name (``need``)."""
    owner: Name
    """Owning department (``marketing``, ``sales``, ``service``)."""
    description: str = ""
    """What the stage means, for people."""


class Rule(Match):
    """A transition rule: a fact that matches moves the profile to ``stage``."""

    id: RuleId
    """Unique id (region overrides and backward moves refer to it)."""
    stage: Name
    """Target stage."""


class BackwardMove(BaseModel):
    """A permitted move back from a later stage to an earlier one."""

    model_config = _CONFIG

    from_: Name = Field(alias="from")
    """The later stage the profile is in."""
    to: Name
    """The earlier stage it may go back to."""
    via: tuple[RuleId, ...] = ()
    """Only these rules may cause the move (empty: any rule for ``to``)."""

    @field_validator("via", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return as_tuple(value)


class RegionOverride(BaseModel):
    """How the rules differ in one region (applied to profiles of that region only)."""

    model_config = _CONFIG

    disable: tuple[RuleId, ...] = ()
    """Ids of base rules that do not apply in the region."""
    replace: tuple[Rule, ...] = ()
    """Rules that take the place of the base rule with the same id."""
    add: tuple[Rule, ...] = ()
    """Rules that apply in the region only (after the base rules)."""


class Moment(BaseModel):
    """A moment of truth: a transition into a stage, or an event that matches.

    Several entries may share a name; they are alternatives of one moment (an
    event counts once even if it matches several of them).
    """

    model_config = _CONFIG

    name: Name
    """Moment name (``first_purchase``)."""
    to: Name | None = None
    """A transition into this stage is the moment (instead of ``events``)."""
    events: EventTypes = ()
    """Event types that are the moment (instead of ``to``)."""
    channel: str | None = None
    """With ``events``: only events of this channel."""
    when: tuple[Predicate, ...] = ()
    """With ``events``: conditions that must all hold."""
    first_only: bool = False
    """Count only the first occurrence of the moment in the profile's life."""

    @model_validator(mode="after")
    def _one_kind(self) -> Moment:
        if (self.to is None) == (not self.events):
            raise ValueError("give either `to` (a stage) or `events` (event types), not both")
        if self.to is not None and (self.channel is not None or self.when):
            raise ValueError("`channel` and `when` go with `events`, not with `to`")
        problems = match_problems(self.events, self.channel, self.when)
        if problems:
            raise problems_error(problems)
        return self

    def match(self) -> Match | None:
        """The event match of an ``events`` moment (``None`` for a ``to`` moment)."""
        if not self.events:
            return None
        return Match(events=self.events, channel=self.channel, when=self.when)


class Bonus(Match):
    """Extra points for facts that match (on top of the event type's weight)."""

    id: RuleId
    """Name of the bonus (for people)."""
    points: float
    """Points added (may be negative)."""


class Scoring(BaseModel):
    """Lead scoring: points per event, halved every ``half_life_days``."""

    model_config = _CONFIG

    half_life_days: float = Field(default=30.0, gt=0)
    """After this many days an event counts half."""
    threshold: float = Field(default=50.0, gt=0)
    """A profile whose score reaches this is a qualified lead (unless excluded)."""
    weights: dict[str, float] = Field(default_factory=dict)
    """Event type -> points (types not listed: 0)."""
    bonuses: tuple[Bonus, ...] = ()
    """Extra points for facts that match."""

    @field_validator("weights")
    @classmethod
    def _known_events(cls, value: dict[str, float]) -> dict[str, float]:
        check_event_types(tuple(value))
        return value


class Qualification(BaseModel):
    """Who is never handed to sales, however high the score."""

    model_config = _CONFIG

    excluded_email_domains: tuple[str, ...] = ()
    """Email domains (competitors); subdomains are excluded too. Matched against the
    profile's ``email:`` identifier keys; stored lower case without ``@``."""
    excluded_job_titles: tuple[str, ...] = ()
    """Regular expressions searched in the ``job_title`` trait (consultants, ...)."""
    excluded_lead_statuses: tuple[str, ...] = ()
    """CRM lead statuses (latest ``lead_status_change``) that exclude; case-insensitive."""
    required_identifiers: tuple[str, ...] = ()
    """Identifier types a profile needs before it can qualify (e.g. ``email``): a lead
    sales can reach, and whose competitor filter could be checked. Until then its
    score may be high but it is not handed off (it is not excluded either)."""
    required_traits: tuple[str, ...] = ()
    """Traits a profile needs before it can qualify (e.g. ``job_title`` for the
    consultant filter)."""

    @field_validator("excluded_email_domains")
    @classmethod
    def _domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        domains = tuple(item.strip().lstrip("@").lower() for item in value)
        for index, domain in enumerate(domains):
            if not domain or "." not in domain or any(c.isspace() or c == "@" for c in domain):
                raise ValueError(f"[{index}]: not an email domain")
        return domains

    @field_validator("excluded_job_titles")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for index, pattern in enumerate(value):
            try:
                check_regex(pattern)
            except ValueError as exc:
                raise ValueError(f"[{index}]: {exc}") from None
        return value

    @field_validator("excluded_lead_statuses")
    @classmethod
    def _statuses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(item.strip().lower() for item in value)


class JourneyDefinition(BaseModel):
    """A validated journey: what :func:`~cdp.journey.evaluate_journey` runs.

    Look-ups used per event (:meth:`stage_index`, :meth:`owner`,
    :meth:`rules_for`, :meth:`move_allowed`) are plain dict look-ups.
    """

    model_config = _CONFIG

    name: Name
    """Journey name (part of qualification ids)."""
    description: str = ""
    """What the journey is, for people."""
    stages: tuple[Stage, ...] = Field(min_length=1)
    """The stages in journey order."""
    rules: tuple[Rule, ...] = ()
    """Transition rules (all regions)."""
    backward: tuple[BackwardMove, ...] = ()
    """Permitted backward moves; any other rule for an earlier stage is ignored."""
    regions: dict[RegionCode, RegionOverride] = Field(default_factory=dict)
    """Region code -> how its rules differ."""
    moments: tuple[Moment, ...] = ()
    """Moments of truth."""
    scoring: Scoring = Field(default_factory=Scoring)
    """Lead scoring."""
    qualification: Qualification = Field(default_factory=Qualification)
    """Qualification filters."""

    if TYPE_CHECKING:
        # Plain look-up tables, set in the instance __dict__ after validation.
        _tables: _Tables

    @model_validator(mode="after")
    def _check_and_index(self) -> JourneyDefinition:
        problems = _semantic_problems(self)
        if problems:
            raise problems_error(problems)
        object.__setattr__(self, "_tables", _index(self))
        return self

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Stage names in journey order."""
        return self._tables.names

    def stage_index(self, stage: str) -> int:
        """Position of a stage (0 = first); :class:`KeyError` for an unknown name."""
        return self._tables.index[stage]

    def owner(self, stage: str) -> str:
        """Owning department of a stage."""
        return self._tables.owners[stage]

    def rules_for(self, region: str | None) -> tuple[Rule, ...]:
        """The rules that apply to a profile of ``region`` (overrides applied)."""
        if region is None:
            return self.rules
        return self._tables.regional.get(region, self.rules)

    @property
    def event_moments(self) -> tuple[tuple[str, Match], ...]:
        """``(name, match)`` of the moments that are events, in file order."""
        return self._tables.event_moments

    @property
    def transition_moments(self) -> tuple[tuple[str, str], ...]:
        """``(name, stage)`` of the moments that are transitions into a stage, in file order."""
        return self._tables.transition_moments

    @property
    def first_only_moments(self) -> frozenset[str]:
        """Names of the moments that count only their first occurrence."""
        return self._tables.first_only

    @property
    def replay_traits(self) -> frozenset[str]:
        """Profile traits (``trait.<name>``) that rules, event moments or score bonuses test.

        The replay of the facts depends on these trait values only; the
        qualification filters read others after it.
        """
        return self._tables.replay_traits

    def move_allowed(self, current: str | None, target: str, rule_id: str) -> bool:
        """Whether ``rule_id`` may move a profile from ``current`` to ``target``.

        Forward moves (also skipping stages) always may; staying is no move;
        backward moves only as listed in :attr:`backward`.
        """
        if current is None:
            return True
        here, there = self._tables.index[current], self._tables.index[target]
        if there > here:
            return True
        if there == here:
            return False
        via = self._tables.backward.get((current, target))
        return via is not None and (not via or rule_id in via)


@dataclass(slots=True)
class _Tables:
    names: tuple[str, ...]
    index: dict[str, int]
    owners: dict[str, str]
    regional: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    backward: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    event_moments: tuple[tuple[str, Match], ...] = ()
    transition_moments: tuple[tuple[str, str], ...] = ()
    first_only: frozenset[str] = frozenset()
    replay_traits: frozenset[str] = frozenset()


def _index(journey: JourneyDefinition) -> _Tables:
    tables = _Tables(
        names=tuple(stage.name for stage in journey.stages),
        index={stage.name: i for i, stage in enumerate(journey.stages)},
        owners={stage.name: stage.owner for stage in journey.stages},
    )
    for region, override in journey.regions.items():
        replaced = {rule.id: rule for rule in override.replace}
        disabled = set(override.disable)
        kept = tuple(replaced.get(r.id, r) for r in journey.rules if r.id not in disabled)
        tables.regional[region] = kept + override.add
    tables.event_moments = tuple(
        (moment.name, match) for moment in journey.moments if (match := moment.match()) is not None
    )
    tables.transition_moments = tuple(
        (moment.name, moment.to) for moment in journey.moments if moment.to is not None
    )
    tables.first_only = frozenset(moment.name for moment in journey.moments if moment.first_only)
    matches: list[Match] = [*journey.rules, *journey.scoring.bonuses]
    matches += [match for _name, match in tables.event_moments]
    matches += [rule for rules in tables.regional.values() for rule in rules]
    tables.replay_traits = frozenset(
        predicate.field.partition(".")[2]
        for match in matches
        for predicate in match.when
        if predicate.field.startswith("trait.")
    )
    for move in journey.backward:
        previous = tables.backward.get((move.from_, move.to))
        # Two entries for the same pair: the union of their rules (empty = any rule).
        if previous is not None and (not previous or not move.via):
            tables.backward[(move.from_, move.to)] = frozenset()
        else:
            tables.backward[(move.from_, move.to)] = (previous or frozenset()) | set(move.via)
    return tables


def _semantic_problems(journey: JourneyDefinition) -> list[tuple[Loc, str]]:
    """Problems that need the whole file: unknown names, duplicates, impossible moves."""
    problems: list[tuple[Loc, str]] = []
    names = [stage.name for stage in journey.stages]
    known = set(names)
    listing = ", ".join(names)

    def stage_ref(loc: Loc, stage: str | None) -> None:
        if stage is not None and stage not in known:
            problems.append((loc, f"unknown stage {stage!r} (stages: {listing})"))

    for index, count in _duplicates(names):
        problems.append(
            (("stages", index, "name"), f"stage {names[index]!r} is listed {count} times")
        )
    rule_ids = [rule.id for rule in journey.rules]
    for index, count in _duplicates(rule_ids):
        problems.append(
            (("rules", index, "id"), f"rule id {rule_ids[index]!r} is used {count} times")
        )
    for index, rule in enumerate(journey.rules):
        stage_ref(("rules", index, "stage"), rule.stage)
    base = set(rule_ids)
    all_ids = set(base)
    for region, override in journey.regions.items():
        where: Loc = ("regions", region)
        for index, rule_id in enumerate(override.disable):
            if rule_id not in base:
                problems.append(((*where, "disable", index), f"no rule {rule_id!r} to disable"))
        replaced = [rule.id for rule in override.replace]
        for index, rule in enumerate(override.replace):
            stage_ref((*where, "replace", index, "stage"), rule.stage)
            if rule.id not in base:
                problems.append(
                    ((*where, "replace", index, "id"), f"no rule {rule.id!r} to replace")
                )
            elif rule.id in override.disable:
                problems.append(
                    (
                        (*where, "replace", index, "id"),
                        f"rule {rule.id!r} is both disabled and replaced",
                    )
                )
        for index, count in _duplicates(replaced):
            problems.append(
                (
                    (*where, "replace", index, "id"),
                    f"rule {replaced[index]!r} replaced {count} times",
                )
            )
        added = [rule.id for rule in override.add]
        for index, rule in enumerate(override.add):
            stage_ref((*where, "add", index, "stage"), rule.stage)
            if rule.id in base:
                problems.append(
                    (
                        (*where, "add", index, "id"),
                        f"rule id {rule.id!r} exists already (use replace)",
                    )
                )
        for index, count in _duplicates(added):
            problems.append(
                ((*where, "add", index, "id"), f"rule id {added[index]!r} is used {count} times")
            )
        all_ids.update(added)
    for index, move in enumerate(journey.backward):
        stage_ref(("backward", index, "from"), move.from_)
        stage_ref(("backward", index, "to"), move.to)
        if (
            move.from_ in known
            and move.to in known
            and names.index(move.to) >= names.index(move.from_)
        ):
            problems.append(
                (("backward", index, "to"), f"{move.from_} -> {move.to} is not a backward move")
            )
        for position, rule_id in enumerate(move.via):
            if rule_id not in all_ids:
                problems.append((("backward", index, "via", position), f"no rule {rule_id!r}"))
    first_only: dict[str, bool] = {}
    for index, moment in enumerate(journey.moments):
        stage_ref(("moments", index, "to"), moment.to)
        seen = first_only.setdefault(moment.name, moment.first_only)
        if seen != moment.first_only:
            problems.append(
                (
                    ("moments", index, "first_only"),
                    f"entries of moment {moment.name!r} disagree on first_only",
                )
            )
    return problems


def _duplicates(values: list[str]) -> list[tuple[int, int]]:
    """``(index, count)`` of each repeat after the first occurrence of a value."""
    counts = Counter(values)
    seen: set[str] = set()
    repeats: list[tuple[int, int]] = []
    for index, value in enumerate(values):
        if value in seen:
            repeats.append((index, counts[value]))
        seen.add(value)
    return repeats


def parse_journey(text: str, source: str = "<journey>") -> JourneyDefinition:
    """Validate the YAML text of a journey; :class:`ConfigError` names source, line and field."""
    data, root = parse_yaml(text, source)
    return validate_with_lines(JourneyDefinition, data, root, source)


def load_journey(path: str | Path) -> JourneyDefinition:
    """Read and validate a journey file.

    Raises :class:`~cdp.errors.ConfigError` whose message names the file, the
    line, the field path and the problem of every error found.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_journey(text, str(path))


def load_journey_or_default(path: str | Path | None) -> JourneyDefinition:
    """:func:`load_journey` of ``path``, or :func:`default_journey` when ``path`` is ``None``."""
    return default_journey() if path is None else load_journey(path)


@lru_cache(maxsize=1)
def default_journey() -> JourneyDefinition:
    """The packaged default B2B journey (``cdp/journey/b2b.yaml``, read once)."""
    resource = resources.files(__package__ or "cdp.journey").joinpath(DEFAULT_JOURNEY_RESOURCE)
    return parse_journey(resource.read_text(encoding="utf-8"), str(resource))
