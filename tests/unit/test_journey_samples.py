"""The default journey puts every generated customer into the stage of their depth.

``cdp.samples.generate`` records how far each customer gets (``depth``) and the
true customer of every event (``Dataset.truth``). With all of a customer's
events in one profile, the default journey must end in ``STAGES[depth]``;
that is what the integration test checks end to end on the real stack.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from cdp.journey import compute_funnel, default_journey, evaluate_journey
from cdp.profile.facts import Fact, fact_from_event
from cdp.samples import STAGES, Customer, generate


def _profiles(seed: int, customers: int) -> list[tuple[Customer, list[Fact]]]:
    dataset = generate(customers, 10.0, seed=seed, duplicate_rate=0.1)
    facts: dict[str, list[Fact]] = defaultdict(list)
    for event in dataset.events:
        facts[dataset.truth[event.event_id]].append(fact_from_event(event))
    return [(customer, facts[customer.key]) for customer in dataset.customers]


def _identifiers(customer: Customer) -> list[str]:
    return [f"email:{customer.email.lower()}"] if customer.email else []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_depth_ends_in_its_stage(seed: int) -> None:
    journey = default_journey()
    depths: set[int] = set()
    for customer, facts in _profiles(seed, 80):
        state = evaluate_journey(facts, journey, identifiers=_identifiers(customer))
        assert state.stage == STAGES[customer.depth], (customer.key, customer.depth, state.history)
        assert state.owner == journey.owner(STAGES[customer.depth])
        assert state.region == customer.region
        if customer.role == "lead":
            assert state.excluded is None
        else:  # generated competitors and consultants never qualify
            assert state.qualification_id is None and not state.qualified
        depths.add(customer.depth)
    assert depths == set(range(len(STAGES)))


def test_blog_views_do_not_move_the_stage() -> None:
    journey = default_journey()
    for customer, facts in _profiles(4, 40):
        state = evaluate_journey(facts, journey)
        triggering = {t.event_id for t in state.history}
        blog = {f.event_id for f in facts if f.get("page_category") == "blog"}
        assert not triggering & blog, customer.key


def test_generated_funnel_is_consistent() -> None:
    journey = default_journey()
    profiles = _profiles(5, 150)
    states = [
        evaluate_journey(facts, journey, identifiers=_identifiers(customer))
        for customer, facts in profiles
    ]
    funnel = compute_funnel(states, journey)
    assert funnel.overall.profiles == len(profiles)
    assert funnel.overall.unstaged == 0
    for index, stage in enumerate(STAGES):
        metrics = funnel.stage(stage)
        assert metrics.current == sum(1 for c, _ in profiles if c.depth == index)
        assert metrics.reached == sum(1 for c, _ in profiles if c.depth >= index)
    assert set(funnel.by_region) == {"AT", "CH", "DE"}
    assert sum(segment.profiles for segment in funnel.by_region.values()) == len(profiles)
    assert sum(segment.profiles for segment in funnel.by_channel.values()) == len(profiles)
    # customers who reach choice are engaged enough to qualify (and have left an email
    # and a job title in the demo request); earlier ones are not
    for (customer, _facts), state in zip(profiles, states, strict=True):
        expected = customer.depth >= 2 and customer.role == "lead"
        assert (state.qualification_id is not None) == expected, customer.key
