"""Survivorship: which of the values seen for a trait a profile shows, with provenance.

Rules are data (YAML), one per trait, validated by pydantic. The packaged
default is ``cdp/profile/default_traits.yaml``; an installation points
:func:`load_trait_config` at its own file::

    default: {rule: most_recent}          # traits not listed below
    traits:
      first_name:
        rule: source_priority
        sources: [crm, shop, callcenter, website]   # best first
      first_touch_campaign: {rule: first_seen}

Rules (facts are totally ordered by ``(event_time, event_id)``, so a winner
never depends on processing order, even for equal event times):

``most_recent``
    the value of the latest fact (equal times: the greater event id wins).
``first_seen``
    the value of the earliest fact (equal times: the smaller event id wins).
``source_priority``
    the best-ranked source present wins; among its facts the most recent
    value. An entry is an event ``source`` (``crm``) or ``channel:<channel>``
    (``channel:web``: any source of that channel); a fact takes the rank of
    the first entry it matches. Sources that match no entry rank after all
    listed ones (``unlisted: last``, the default) or are ignored for the
    trait (``unlisted: ignore``).

Every resolved trait is a :class:`TraitValue`: the value and where it came
from (source, channel, event time, event id) and the rule that chose it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    field_validator,
    model_validator,
)

from cdp.config_files import read_yaml, validate_config
from cdp.contracts.events import NAME_PATTERN
from cdp.profile.facts import Fact, merge_fact_sets, sort_facts
from cdp.topics import Channel

DEFAULT_TRAITS_RESOURCE = "default_traits.yaml"
"""File name of the packaged default trait configuration (next to this module)."""

CHANNEL_PREFIX = "channel:"
"""Prefix of a ``source_priority`` entry that matches every source of a channel."""

RuleName = Literal["source_priority", "most_recent", "first_seen"]
"""Name of a survivorship rule."""

TraitName = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=64)]


class TraitValue(BaseModel):
    """A resolved trait: the winning value and its provenance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: str = Field(repr=False)
    """The winning value (PII, kept out of ``repr``)."""
    source: str
    """Source system of the winning fact."""
    channel: str
    """Channel of the winning fact."""
    event_time: datetime
    """Event time of the winning fact (UTC)."""
    event_id: str
    """Event id of the winning fact."""
    rule: RuleName
    """Rule that chose the value."""


class TraitRule(BaseModel):
    """The survivorship rule of one trait."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: RuleName = Field(description="How the winning value is chosen.")
    sources: tuple[str, ...] = Field(
        default=(),
        description="source_priority only: sources or channel:<channel> entries, best first.",
    )
    unlisted: Literal["last", "ignore"] = Field(
        default="last",
        description="source_priority only: sources matching no entry rank last or are ignored.",
    )

    @field_validator("sources")
    @classmethod
    def _check_sources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen: set[str] = set()
        for index, entry in enumerate(value):
            if not entry.strip() or entry != entry.strip():
                raise ValueError(f"[{index}]: entry must be non-blank without outer spaces")
            if entry.startswith(CHANNEL_PREFIX):
                channel = entry.removeprefix(CHANNEL_PREFIX)
                if channel not in {c.value for c in Channel}:
                    known = ", ".join(c.value for c in Channel)
                    raise ValueError(f"[{index}]: unknown channel {channel!r} (known: {known})")
            if entry in seen:
                raise ValueError(f"[{index}]: {entry!r} is listed twice")
            seen.add(entry)
        return value

    @model_validator(mode="after")
    def _sources_match_rule(self) -> TraitRule:
        if self.rule == "source_priority":
            if not self.sources:
                raise ValueError("sources: rule source_priority needs at least one source")
        elif self.sources:
            raise ValueError(f"sources: only for rule source_priority, not {self.rule}")
        elif self.unlisted != "last":
            raise ValueError(f"unlisted: only for rule source_priority, not {self.rule}")
        return self

    def rank(self, source: str, channel: str) -> int | None:
        """Rank of a fact's source (0 = best) under ``source_priority``; None = ignored.

        Other rules rank every source 0.
        """
        if self.rule != "source_priority":
            return 0
        channel_entry = CHANNEL_PREFIX + channel
        for index, entry in enumerate(self.sources):
            if entry in (source, channel_entry):
                return index
        return None if self.unlisted == "ignore" else len(self.sources)


class _Compiled:
    """A rule in plain Python for the per-event loop (pydantic attribute access is slower)."""

    __slots__ = ("kind", "ranks", "rule")

    def __init__(self, rule: TraitRule) -> None:
        self.rule = rule
        self.kind: RuleName = rule.rule
        self.ranks: dict[tuple[str, str], int | None] = {}

    def rank(self, source: str, channel: str) -> int | None:
        key = (source, channel)
        try:
            return self.ranks[key]
        except KeyError:
            rank = self.ranks[key] = self.rule.rank(source, channel)
            return rank

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Compiled) and other.rule == self.rule

    __hash__ = None  # type: ignore[assignment]


class TraitConfig(BaseModel):
    """The validated survivorship configuration: a rule per trait and a default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: TraitRule = Field(
        default_factory=lambda: TraitRule(rule="most_recent"),
        description="Rule of traits that are not listed under `traits`.",
    )
    traits: dict[TraitName, TraitRule] = Field(
        default_factory=dict, description="Trait name -> rule."
    )

    _compiled: dict[str, _Compiled] = PrivateAttr(default_factory=dict)
    _compiled_default: _Compiled = PrivateAttr(
        default_factory=lambda: _Compiled(TraitRule(rule="most_recent"))
    )

    def model_post_init(self, context: Any, /) -> None:
        """Prepare the plain-Python form of the rules used by :func:`resolve_sorted`."""
        self._compiled = {name: _Compiled(rule) for name, rule in self.traits.items()}
        self._compiled_default = _Compiled(self.default)

    def rule_for(self, name: str) -> TraitRule:
        """The rule of a trait (the default for unlisted traits)."""
        return self.traits.get(name, self.default)


def resolve_traits(facts: Iterable[Fact], config: TraitConfig) -> dict[str, TraitValue]:
    """Resolve every trait seen in ``facts`` (any order; deduped by event id first).

    Returns ``name -> TraitValue``, names sorted.
    """
    return resolve_sorted(sort_facts(merge_fact_sets(facts).values()), config)


def resolve_sorted(facts: Sequence[Fact], config: TraitConfig) -> dict[str, TraitValue]:
    """:func:`resolve_traits` for distinct facts already sorted by ``(event_time, event_id)``.

    One pass: ``most_recent`` takes the last value, ``first_seen`` the first,
    ``source_priority`` the last value of the best rank.
    """
    winners: dict[str, tuple[Fact, str, int, _Compiled]] = {}
    rules = config._compiled
    default = config._compiled_default
    for fact in facts:
        for name, value in fact.traits:
            rule = rules.get(name, default)
            current = winners.get(name)
            kind = rule.kind
            if kind == "most_recent":
                winners[name] = (fact, value, 0, rule)
            elif kind == "first_seen":
                if current is None:
                    winners[name] = (fact, value, 0, rule)
            else:
                rank = rule.rank(fact.source, fact.channel)
                if rank is not None and (current is None or rank <= current[2]):
                    winners[name] = (fact, value, rank, rule)
    resolved: dict[str, TraitValue] = {}
    for name in sorted(winners):
        fact, value, _rank, rule = winners[name]
        resolved[name] = TraitValue(
            value=value,
            source=fact.source,
            channel=fact.channel,
            event_time=fact.event_time,
            event_id=fact.event_id,
            rule=rule.kind,
        )
    return resolved


# --------------------------------------------------------------------------- loading


def parse_trait_config(data: Any, source: str = "<trait config>") -> TraitConfig:
    """Validate already-parsed YAML/JSON data; :class:`ConfigError` names source and field."""
    if data is None:
        data = {}
    return validate_config(TraitConfig, data, source)


def load_trait_config(path: str | Path | None = None) -> TraitConfig:
    """Read and validate a trait configuration file (default: the packaged one).

    Raises :class:`~cdp.errors.ConfigError` whose message names the file, the
    field path (``traits.first_name.sources``) and the problem.
    """
    data, source = read_yaml(path, __package__ or "", DEFAULT_TRAITS_RESOURCE)
    return parse_trait_config(data, source)


@lru_cache(maxsize=1)
def default_trait_config() -> TraitConfig:
    """The packaged default configuration (read once)."""
    return load_trait_config()
