"""What a processor emits for one input: pure decisions shared by the worker and ``cdp.testing``.

Both kinds write derived facts (:mod:`cdp.profile.derived`) whose content is a
function of the inputs seen, not of their order, so profiles still converge:

* **event processors** (:func:`on_event`): the fact goes under the event's
  primary identifier key; its time is the latest event time the processor saw
  for that key. State per key (kept by the worker in the ``processor-state``
  table) holds the function's own state, the event ids seen (a re-delivered
  event is not passed again) and the last emitted ``[value, time]`` (nothing
  is sent when they did not change).
* **profile processors** (:func:`on_profile`): the fact's time is the
  profile's ``computed.last_seen``. It goes under the *designated* member key
  (the one whose fact id is greatest, so it also wins ties), and to every member
  when a fact of another member shows (after a merge). Nothing is sent when the
  document already shows the expected value: no feedback loop.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cdp.contracts.events import Event, private_copy
from cdp.messages import dumps
from cdp.processors.api import Processor
from cdp.profile.derived import derived_fact, derived_fact_id
from cdp.profile.document import ProfileDocument
from cdp.profile.facts import Fact


@dataclass(frozen=True, slots=True)
class Emission:
    """One record for ``{ns}.profile.computed``: an identifier key and a derived fact."""

    key: str
    fact: Fact

    def to_bytes(self) -> bytes:
        """The record value: the fact's JSON form."""
        return dumps(self.fact.to_json())


def on_event(
    processor: Processor, key: str, event: Event, stored: Mapping[str, Any] | None
) -> tuple[list[Emission], dict[str, Any] | None]:
    """Run an event processor on one event of identifier ``key``.

    Returns the emissions and the new state of ``key`` (None: unchanged, the
    event was filtered out or seen before). Exceptions of the function propagate.
    The function gets a copy of ``event`` (:func:`private_copy`): whatever it does to
    it, ``event`` stays as it was.
    """
    if not processor.accepts(event):
        return [], None
    state = dict(stored or {})
    seen: list[str] = list(state.get("e", ()))
    if event.event_id in seen:
        return [], None
    own = copy.deepcopy(state.get("s", {}))
    mine = private_copy(event)  # the worker shares one decoded event between its stages
    value = processor(mine, own) if processor.stateful else processor(mine)
    _check_value(processor, value)
    latest = event.event_time
    if "t" in state:
        latest = max(latest, datetime.fromisoformat(state["t"]))
    new: dict[str, Any] = {"t": latest.isoformat(), "e": [*seen, event.event_id]}
    if processor.stateful:
        new["s"] = own
    previous = state.get("o")
    current = [value, new["t"]]
    emissions: list[Emission] = []
    if (value is not None and current != previous) or (
        value is None and previous is not None and previous[0] is not None
    ):
        fact = derived_fact(processor.name, processor.trait, key, value, latest)
        emissions.append(Emission(key, fact))
        previous = current
    if previous is not None:
        new["o"] = previous
    return emissions, new


def on_profile(processor: Processor, profile: ProfileDocument) -> list[Emission]:
    """Run a profile processor on one profile document (empty: nothing to change)."""
    at = profile.computed.last_seen
    if at is None or not profile.identifiers:
        return []
    value = processor(profile)
    _check_value(processor, value)
    ids = {
        key: derived_fact_id(processor.name, processor.trait, key) for key in profile.identifiers
    }
    designated = max(ids, key=lambda key: ids[key])
    current = profile.traits.get(processor.trait)
    ours = current is not None and current.source == processor.source
    if value is None:
        keys = list(profile.identifiers) if ours else []
    elif current is not None and ours and current.event_id == ids[designated]:
        unchanged = current.value == value and current.event_time == at
        keys = [] if unchanged else [designated]
    elif ours:
        keys = list(profile.identifiers)  # a fact of another member shows: replace them all
    else:
        keys = [designated]
    return [
        Emission(key, derived_fact(processor.name, processor.trait, key, value, at)) for key in keys
    ]


def _check_value(processor: Processor, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(
            f"processor {processor.name} returned {type(value).__name__}, expected str or None"
        )
