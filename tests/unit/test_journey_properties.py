"""Property tests: the journey state is a function of the *set* of facts.

Fact sets come from generated events (``cdp.samples.generate``), several
customers folded into one profile so that stages go back and forth, regions
conflict and scores cross the threshold at different facts. Event times are
often coarsened (to the day, or to one instant) so that the ``event_id``
tie-break decides. Shuffling, duplicating and splitting-then-merging the
facts must give an equal :class:`~cdp.journey.JourneyState`, byte for byte in
its JSON form.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.journey import JourneyDefinition, JourneyState, default_journey, evaluate_journey
from cdp.profile.facts import Fact, fact_from_event, merge_fact_sets
from cdp.samples import generate

PROPERTY_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@cache
def _backward_journey() -> JourneyDefinition:
    """The default journey with more backward moves (order matters most)."""
    data = default_journey().model_dump(by_alias=True)
    data["backward"] = [
        {"from": "usage", "to": "need"},
        {"from": "recommendation", "to": "search"},
        {"from": "purchase", "to": "choice"},
    ]
    return JourneyDefinition.model_validate(data)


@cache
def _facts(seed: int, customers: int, coarsen: str) -> tuple[Fact, ...]:
    dataset = generate(customers, 8.0, seed=seed, late_rate=0.0)
    facts = [fact_from_event(event) for event in dataset.events]
    if coarsen == "day":
        facts = [
            dataclasses.replace(
                f, event_time=f.event_time.replace(hour=0, minute=0, second=0, microsecond=0)
            )
            for f in facts
        ]
    elif coarsen == "instant":
        facts = [dataclasses.replace(f, event_time=facts[0].event_time) for f in facts]
    return tuple(merge_fact_sets(facts).values())


def _json(state: JourneyState) -> str:
    return json.dumps(state.model_dump(mode="json"), sort_keys=True)


def _evaluate(facts: Sequence[Fact], journey: JourneyDefinition) -> JourneyState:
    return evaluate_journey(facts, journey, identifiers=["email:a@example.com"])


fact_sets = st.tuples(
    st.integers(0, 40), st.integers(1, 4), st.sampled_from(["none", "day", "instant"])
)
journeys = st.sampled_from(["default", "backward"])


def _journey(name: str) -> JourneyDefinition:
    return default_journey() if name == "default" else _backward_journey()


@PROPERTY_SETTINGS
@given(fact_sets, journeys, st.data())
def test_order_and_duplicates_do_not_matter(
    params: tuple[int, int, str], name: str, data: st.DataObject
) -> None:
    facts = list(_facts(*params))
    journey = _journey(name)
    expected = _evaluate(facts, journey)
    shuffled = data.draw(st.permutations(facts))
    duplicates = data.draw(st.lists(st.sampled_from(facts), max_size=len(facts)))
    actual = _evaluate([*shuffled, *duplicates], journey)
    assert actual == expected
    assert _json(actual) == _json(expected)


@PROPERTY_SETTINGS
@given(fact_sets, journeys, st.data())
def test_merge_of_parts_equals_the_whole(
    params: tuple[int, int, str], name: str, data: st.DataObject
) -> None:
    facts = list(_facts(*params))
    journey = _journey(name)
    in_a = data.draw(st.lists(st.booleans(), min_size=len(facts), max_size=len(facts)))
    in_b = data.draw(st.lists(st.booleans(), min_size=len(facts), max_size=len(facts)))
    part_a = [f for f, a, b in zip(facts, in_a, in_b, strict=True) if a or not b]
    part_b = [f for f, b in zip(facts, in_b, strict=True) if b]
    merged_ab = merge_fact_sets(part_a, part_b)
    merged_ba = merge_fact_sets(part_b, part_a, part_b)
    assert _json(_evaluate(list(merged_ab.values()), journey)) == _json(_evaluate(facts, journey))
    assert _evaluate(list(merged_ba.values()), journey) == _evaluate(facts, journey)


def test_generated_profiles_exercise_backward_moves() -> None:
    journey = _backward_journey()
    backward = 0
    for seed in range(10):
        state = _evaluate(list(_facts(seed, 4, "none")), journey)
        backward += sum(
            1
            for t in state.history
            if t.from_stage is not None
            and journey.stage_index(t.to_stage) < journey.stage_index(t.from_stage)
        )
    assert backward > 0


def test_generated_profiles_exercise_qualification() -> None:
    # the email identifier and the job titles of the generated contacts make them eligible,
    # so the properties above cover qualification ids, too
    states = [_evaluate(list(_facts(seed, 2, "none")), default_journey()) for seed in range(10)]
    assert any(state.qualification_id is not None for state in states)


def test_json_round_trip() -> None:
    state = _evaluate(list(_facts(3, 3, "none")), _backward_journey())
    assert state.history
    assert JourneyState.model_validate_json(_json(state)) == state
