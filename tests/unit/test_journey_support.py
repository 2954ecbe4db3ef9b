"""Builders shared by the journey tests (no tests here).

``fact(...)`` makes a :class:`~cdp.profile.facts.Fact` at ``T0 + minutes``;
``journey(text)`` parses a small journey file written in the test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from cdp.contracts.events import EVENT_CHANNELS
from cdp.journey import JourneyDefinition, parse_journey
from cdp.profile.facts import DataValue, Fact

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
"""Time of the first fact of a test profile."""

_ids = count(1)

STAGES_YAML = """
name: test
stages:
  - {name: need, owner: marketing}
  - {name: search, owner: marketing}
  - {name: choice, owner: sales}
  - {name: purchase, owner: sales}
  - {name: usage, owner: service}
"""
"""Five stages; tests append ``rules:`` and more."""


def fact(
    type: str,
    minutes: float = 0,
    *,
    event_id: str | None = None,
    region: str | None = "DE",
    channel: str | None = None,
    source: str = "test",
    traits: dict[str, str] | None = None,
    **data: DataValue,
) -> Fact:
    """A fact of ``type`` at ``T0 + minutes`` (channel: the type's channel)."""
    return Fact(
        event_id=event_id or f"e{next(_ids):06d}",
        event_time=T0 + timedelta(minutes=minutes),
        channel=channel or str(EVENT_CHANNELS[type].value),
        type=type,
        source=source,
        region=region,
        traits=tuple((traits or {}).items()),
        data=tuple(data.items()),
    )


def journey(rules_and_more: str, stages: str = STAGES_YAML) -> JourneyDefinition:
    """A journey of :data:`STAGES_YAML` plus the given YAML sections."""
    return parse_journey(stages + rules_and_more, "test.yaml")
