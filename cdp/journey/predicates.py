"""Conditions on one fact: which events a rule, moment or score bonus applies to.

A :class:`Match` names event types (and optionally a channel) and a list of
:class:`Predicate` that must all hold. A predicate reads one value of the fact
or profile (``field``) and tests it with exactly one operator::

    events: [satisfaction_score]
    channel: callcenter
    when:
      - {field: data.score, lte: 4}                # type-specific value of the fact
      - {field: trait.job_title, matches: "(?i)engineer"}  # resolved profile trait
      - {field: event_trait.company, exists: true} # trait carried by this event
      - {field: region, in: [DE, AT]}              # region of the event

A missing value fails every operator except ``exists: false``. Comparisons
(``gt``, ``gte``, ``lt``, ``lte``) are numeric (integers and decimal text such
as ``"4497.00"``); ``eq``/``ne``/``in``/``not_in`` compare numerically when
the configured value is a number and as text otherwise; ``matches`` is a
Python regular expression searched anywhere in the text (use ``^...$`` to
anchor, ``(?i)`` to ignore case).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cdp.contracts.events import EVENT_CHANNELS
from cdp.profile.facts import FACT_DATA_FIELDS, DataValue, Fact

Scalar = StrictStr | StrictInt | StrictFloat
"""A configured value to compare with: text or number."""

Loc = tuple[int | str, ...]
"""A location inside the journey file (``("rules", 3, "stage")``)."""

PROBLEMS_ERROR = "journey_problems"
"""Pydantic error type whose ``ctx["problems"]`` lists ``(loc, message)`` pairs."""

FIELD_PATTERN = r"^((data|trait|event_trait)\.[a-z][a-z0-9_]*|region|channel|source)$"
"""What a predicate may read (see :attr:`Predicate.field`)."""

OPERATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "matches", "exists")
"""Predicate operators, as written in the file."""

_CONFIG = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def problems_error(problems: list[tuple[Loc, str]]) -> PydanticCustomError:
    """A validation error listing several problems, each at its own location.

    The location of each problem is relative to the model that raises it; the
    journey loader turns each into ``file:line: path: message``.
    """
    from cdp.config_files import format_loc

    summary = "; ".join(f"{format_loc(loc)}: {msg}" if loc else msg for loc, msg in problems)
    return PydanticCustomError(
        PROBLEMS_ERROR, "{summary}", {"summary": summary, "problems": problems}
    )


@lru_cache(maxsize=1024)
def compiled(pattern: str) -> re.Pattern[str]:
    """A compiled regular expression (cached; patterns are validated at load)."""
    return re.compile(pattern)


def check_regex(value: str) -> str:
    """``value`` if it is a valid regular expression, else :class:`ValueError` with the reason."""
    try:
        compiled(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc})") from None
    return value


def check_event_types(value: tuple[str, ...]) -> tuple[str, ...]:
    """``value`` if every name is a known event type, else :class:`ValueError`."""
    unknown = [name for name in value if name not in EVENT_CHANNELS]
    if unknown:
        raise ValueError(
            f"unknown event type {unknown[0]!r} (known: {', '.join(sorted(EVENT_CHANNELS))})"
        )
    if len(set(value)) != len(value):
        raise ValueError("event type listed twice")
    return value


def as_tuple(value: Any) -> Any:
    """A single name as a one-element tuple (``events: order`` = ``events: [order]``)."""
    return (value,) if isinstance(value, str) else value


EventTypes = Annotated[
    tuple[str, ...], BeforeValidator(as_tuple), AfterValidator(check_event_types)
]
"""Event type names: one name or a list, each a known event type, none twice."""


def match_problems(
    events: tuple[str, ...], channel: str | None, when: tuple[Predicate, ...]
) -> list[tuple[Loc, str]]:
    """Conditions that can never hold: a channel none of the events comes from, or a
    ``data.<name>`` that one of the event types does not have."""
    problems: list[tuple[Loc, str]] = []
    channels = {str(EVENT_CHANNELS[name].value) for name in events if name in EVENT_CHANNELS}
    if channel is not None and channel not in channels:
        problems.append(
            (
                ("channel",),
                f"no event of {', '.join(events)} comes from channel {channel!r}"
                f" (they come from {', '.join(sorted(channels))})",
            )
        )
    for index, predicate in enumerate(when):
        kind, _, name = predicate.field.partition(".")
        if kind != "data":
            continue
        lacking = [t for t in events if name not in FACT_DATA_FIELDS.get(t, ())]
        if lacking:
            has = ", ".join(FACT_DATA_FIELDS.get(lacking[0], ())) or "none"
            problems.append(
                (
                    ("when", index, "field"),
                    f"event type {lacking[0]!r} has no value {name!r} (it has: {has})",
                )
            )
    return problems


class Predicate(BaseModel):
    """One condition: a value of the fact or profile and exactly one operator."""

    model_config = _CONFIG

    field: Annotated[str, Field(pattern=FIELD_PATTERN)]
    """``data.<name>`` (fact value, :data:`~cdp.profile.facts.FACT_DATA_FIELDS`),
    ``trait.<name>`` (resolved profile trait), ``event_trait.<name>`` (trait the
    event carried), ``region``, ``channel`` or ``source`` (of the event)."""
    eq: Scalar | None = None
    """Equal to."""
    ne: Scalar | None = None
    """Present and not equal to."""
    in_: tuple[Scalar, ...] | None = Field(default=None, alias="in", min_length=1)
    """Equal to one of."""
    not_in: tuple[Scalar, ...] | None = Field(default=None, min_length=1)
    """Present and equal to none of."""
    gt: float | None = None
    """Numerically greater than."""
    gte: float | None = None
    """Numerically greater than or equal to."""
    lt: float | None = None
    """Numerically less than."""
    lte: float | None = None
    """Numerically less than or equal to."""
    matches: str | None = None
    """Regular expression, searched in the value's text."""
    exists: bool | None = None
    """``true``: the value is present; ``false``: it is missing."""

    @field_validator("matches")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        return None if value is None else check_regex(value)

    @model_validator(mode="after")
    def _one_operator(self) -> Predicate:
        given = [name for name in OPERATORS if getattr(self, _attr(name)) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(
                f"give exactly one operator of {', '.join(OPERATORS)} (found: {found})"
            )
        return self

    @property
    def operator(self) -> str:
        """The operator as written in the file (``eq``, ``in``, ...)."""
        return next(name for name in OPERATORS if getattr(self, _attr(name)) is not None)

    def read(self, fact: Fact, traits: Mapping[str, str]) -> DataValue | None:
        """The value this predicate tests, for ``fact`` of a profile with ``traits``."""
        kind, _, name = self.field.partition(".")
        if kind == "data":
            return fact.get(name)
        if kind == "trait":
            return traits.get(name)
        if kind == "event_trait":
            return fact.trait(name)
        if kind == "region":
            return fact.region
        if kind == "channel":
            return fact.channel
        return fact.source

    def holds(self, fact: Fact, traits: Mapping[str, str]) -> bool:
        """Whether the condition holds for ``fact`` (``traits``: the profile's resolved traits)."""
        return test(self, self.read(fact, traits))


def _attr(operator: str) -> str:
    return "in_" if operator == "in" else operator


def _number(value: DataValue | float) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _equal(value: DataValue, expected: str | int | float) -> bool:
    if isinstance(expected, str):
        return str(value) == expected
    number = _number(value)
    return number is not None and number == _number(expected)


def test(predicate: Predicate, value: DataValue | None) -> bool:
    """Apply ``predicate``'s operator to ``value`` (``None`` = missing)."""
    if predicate.exists is not None:
        return (value is not None) == predicate.exists
    if value is None:
        return False
    if predicate.eq is not None:
        return _equal(value, predicate.eq)
    if predicate.ne is not None:
        return not _equal(value, predicate.ne)
    if predicate.in_ is not None:
        return any(_equal(value, item) for item in predicate.in_)
    if predicate.not_in is not None:
        return not any(_equal(value, item) for item in predicate.not_in)
    if predicate.matches is not None:
        return compiled(predicate.matches).search(str(value)) is not None
    number = _number(value)
    if number is None:
        return False
    if predicate.gt is not None:
        return number > _decimal(predicate.gt)
    if predicate.gte is not None:
        return number >= _decimal(predicate.gte)
    if predicate.lt is not None:
        return number < _decimal(predicate.lt)
    if predicate.lte is not None:
        return number <= _decimal(predicate.lte)
    return False  # pragma: no cover - _one_operator guarantees an operator


def _decimal(value: float) -> Decimal:
    return Decimal(repr(value))


class Match(BaseModel):
    """Which facts something applies to: event type(s), optional channel, predicates (all)."""

    model_config = _CONFIG

    events: EventTypes = Field(min_length=1)
    """Event types (one name or a list)."""
    channel: str | None = None
    """Only events of this channel (``web``, ``ecommerce``, ``callcenter``, ``crm``)."""
    when: tuple[Predicate, ...] = ()
    """Conditions that must all hold."""

    @model_validator(mode="after")
    def _consistent(self) -> Match:
        problems = match_problems(self.events, self.channel, self.when)
        if problems:
            raise problems_error(problems)
        return self

    def applies(self, fact: Fact, traits: Mapping[str, str]) -> bool:
        """Whether ``fact`` is one of the events and all predicates hold."""
        if fact.type not in self.events:
            return False
        if self.channel is not None and fact.channel != self.channel:
            return False
        return all(predicate.holds(fact, traits) for predicate in self.when)
