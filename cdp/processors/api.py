"""The processor plugin API: a decorator that turns a function into a :class:`Processor`.

A processor computes one trait of a profile from one input stream::

    from cdp.processors import Input, processor
    from cdp.profile import ProfileDocument

    @processor(input=Input.PROFILES)
    def vip(profile: ProfileDocument) -> str | None:
        return "yes" if profile.computed.order_count >= 3 else None

Inputs (:class:`Input`): the decoded canonical events (``{ns}.events.canonical``,
:class:`~cdp.contracts.events.Event` objects) or the profile documents
(``{ns}.profile.changes``, :class:`~cdp.profile.ProfileDocument`). The output is
always the processor's trait, written as a derived fact to
``{ns}.profile.computed`` (see :mod:`cdp.profile.derived` and ``docs/processors.md``).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeAlias

from cdp.contracts.events import NAME_PATTERN, Event
from cdp.errors import ConfigError
from cdp.profile.derived import SOURCE_PREFIX
from cdp.profile.document import ProfileDocument

State: TypeAlias = dict[str, Any]
"""Per-identifier state of an event processor: a JSON-serialisable dict the function may change."""

EventFunction: TypeAlias = Callable[[Event], str | None] | Callable[[Event, State], str | None]
"""An event processor's function: ``(event)`` or ``(event, state)`` -> trait value or None."""
ProfileFunction: TypeAlias = Callable[[ProfileDocument], str | None]
"""A profile processor's function: ``(profile)`` -> trait value or None."""

OUTPUT_TOPIC = "profile.computed"
"""Suffix of the topic every processor writes its trait to (``{ns}.profile.computed``)."""


class ProcessorError(ConfigError):
    """A processor is defined wrongly or cannot be loaded; the message names it."""


class Input(StrEnum):
    """What a processor consumes."""

    EVENTS = "events"
    """Decoded canonical events (``{ns}.events.canonical``, keyed by primary identifier key)."""
    PROFILES = "profiles"
    """Profile documents (``{ns}.profile.changes``, keyed by profile id)."""

    @property
    def topic(self) -> str:
        """Suffix of the input topic (``events.canonical`` or ``profile.changes``)."""
        return "events.canonical" if self is Input.EVENTS else "profile.changes"


@dataclass(frozen=True, eq=False)
class Processor:
    """A registered stream processor: its name, input, trait and function.

    Call it like the function it wraps (handy in unit tests). Build it with
    :func:`processor`.
    """

    name: str
    """Unique lower_snake_case name; the source of its facts is ``processor:<name>``."""
    input: Input
    """What it consumes."""
    trait: str
    """The profile trait it writes."""
    function: Callable[..., str | None] = field(repr=False)
    """The wrapped function."""
    event_types: frozenset[str] | None = None
    """Event processors only: the event types passed to the function (None: all)."""
    stateful: bool = False
    """Event processors only: the function takes ``(event, state)``."""
    origin: str = ""
    """Where it was found (a file or an entry point), set by discovery."""

    @property
    def source(self) -> str:
        """``Fact.source`` of its derived facts."""
        return SOURCE_PREFIX + self.name

    @property
    def description(self) -> str:
        """First line of the function's docstring (for ``cdp processors list``)."""
        doc = inspect.getdoc(self.function) or ""
        return doc.splitlines()[0] if doc else ""

    def with_origin(self, origin: str) -> Processor:
        """A copy that records where it was found."""
        return replace(self, origin=origin)

    def accepts(self, event: Event) -> bool:
        """Whether an event of this type is passed to the function."""
        return self.event_types is None or event.type in self.event_types

    def __call__(self, *args: Any) -> str | None:
        return self.function(*args)


def processor(
    name: str | None = None,
    *,
    input: Input | str = Input.EVENTS,
    trait: str | None = None,
    event_types: Iterable[str] | None = None,
) -> Callable[[Callable[..., str | None]], Processor]:
    """Declare a processor; the decorated name becomes a :class:`Processor`.

    ``name`` defaults to the function's name and ``trait`` to ``name``.
    ``input=Input.EVENTS`` passes decoded events to ``f(event)`` or
    ``f(event, state)`` (``state``: a dict kept per identifier key, stored in
    a changelog-backed table); ``event_types`` limits which events it sees.
    ``input=Input.PROFILES`` passes the profile document to ``f(profile)``.
    The function returns the trait's value (a string) or None for "no value"
    (which removes a value it set earlier). An exception dead-letters the
    input record with reason ``processor_error`` and ``processor:<name>``.
    """
    kind = Input(input)

    def decorate(function: Callable[..., str | None]) -> Processor:
        own = name or function.__name__
        _check_name("processor name", own)
        trait_name = trait or own
        _check_name(f"processor {own}: trait", trait_name)
        parameters = len(inspect.signature(function).parameters)
        if kind is Input.PROFILES:
            if event_types is not None:
                raise ProcessorError(f"processor {own}: event_types is for Input.EVENTS only")
            if parameters != 1:
                raise ProcessorError(f"processor {own}: a profile processor takes (profile)")
        elif parameters not in (1, 2):
            raise ProcessorError(f"processor {own}: an event processor takes (event[, state])")
        return Processor(
            name=own,
            input=kind,
            trait=trait_name,
            function=function,
            event_types=None if event_types is None else frozenset(event_types),
            stateful=kind is Input.EVENTS and parameters == 2,
        )

    return decorate


def _check_name(what: str, value: str) -> None:
    if not re.fullmatch(NAME_PATTERN, value) or len(value) > 64:
        raise ProcessorError(f"{what} {value!r} is not lower_snake_case (at most 64 characters)")
