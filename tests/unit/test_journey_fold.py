"""The profiles stage's journey folds: resuming a replay gives the same document as a full one.

``build_profile(..., folds=...)`` replays only the facts that sort after the ones
folded before, when traits and region are unchanged. Facts arrive here in chunks
of any order (late facts, facts of other customers merging in, trait changes),
and after every chunk the document must equal, byte for byte, the one built
without folds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.journey import JourneyDefinition, default_journey
from cdp.journey.engine import JourneyFold, JourneyFolds
from cdp.profile.document import build_profile, canonical_json
from cdp.profile.facts import Fact, sort_facts
from cdp.profile.survivorship import default_trait_config
from tests.unit.test_journey_properties import _backward_journey, _facts

IDENTIFIERS = ["email:a@example.com"]


@cache
def _trait_journey() -> JourneyDefinition:
    """The default journey with a score bonus and a rule that test profile traits."""
    data = default_journey().model_dump(by_alias=True)
    data["scoring"]["bonuses"] = [
        *data["scoring"]["bonuses"],
        {
            "id": "senior_contact",
            "events": ["page_view", "form_submit"],
            "when": [{"field": "trait.job_title", "matches": "(?i)head|chief|director|vp"}],
            "points": 15,
        },
    ]
    rule = next(r for r in data["rules"] if r["stage"] == "choice")
    rule["when"] = [*rule.get("when", ()), {"field": "trait.company", "exists": True}]
    return JourneyDefinition.model_validate(data)


JOURNEYS = {"default": default_journey, "backward": _backward_journey, "traits": _trait_journey}


def _document(facts: Iterable[Fact], folds: JourneyFolds | None, name: str) -> bytes:
    journey = JOURNEYS[name]()
    doc = build_profile(
        "p1", facts, default_trait_config(), identifiers=IDENTIFIERS, journey=journey, folds=folds
    )
    return canonical_json(doc)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.tuples(st.integers(0, 40), st.integers(1, 4), st.sampled_from(["none", "day", "instant"])),
    st.sampled_from(sorted(JOURNEYS)),
    st.booleans(),
    st.data(),
)
def test_resumed_folds_give_the_documents_of_full_replays(
    params: tuple[int, int, str], name: str, in_order: bool, data: st.DataObject
) -> None:
    facts = list(_facts(*params))
    arrival = sort_facts(facts) if in_order else data.draw(st.permutations(facts))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(arrival) - 1)), max_size=12)))
    folds = JourneyFolds()
    seen: list[Fact] = []
    for start, end in zip([0, *cuts], [*cuts, len(arrival)], strict=True):
        seen.extend(arrival[start:end])
        assert _document(seen, folds, name) == _document(seen, None, name)


def test_facts_in_time_order_are_folded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    folded: list[str] = []
    extend = JourneyFold.extend

    def counting(self: JourneyFold, facts: Iterable[Fact]) -> None:
        facts = list(facts)
        folded.extend(f.event_id for f in facts)
        extend(self, facts)

    monkeypatch.setattr(JourneyFold, "extend", counting)
    facts = sort_facts(_facts(3, 1, "none"))
    # no traits: nothing can change what the facts before were folded with
    facts = [dataclasses.replace(f, traits=()) for f in facts]
    folds = JourneyFolds()
    for end in range(1, len(facts) + 1):
        _document(facts[:end], folds, "default")
    assert sorted(folded) == sorted(f.event_id for f in facts)  # each fact once, not n²/2


def test_a_fact_sorting_before_the_folded_ones_replays_everything() -> None:
    facts = sort_facts(_facts(5, 2, "none"))
    late, rest = facts[0], facts[1:]
    folds = JourneyFolds()
    _document(rest, folds, "default")
    before = folds.get("p1")
    assert before is not None and len(before.facts) == len(rest)
    assert _document([*rest, late], folds, "default") == _document(facts, None, "default")
    after = folds.get("p1")
    assert after is not None and after is not before and after.facts[0] is late


def test_folds_are_bounded_by_their_facts_and_forgotten() -> None:
    facts = sort_facts(_facts(2, 1, "none"))[:3]
    journey = default_journey()

    def fold(count: int) -> JourneyFold:
        made = JourneyFold(journey, {}, None)
        made.extend(facts[:count])
        return made

    folds = JourneyFolds(capacity=5)
    folds.put("a", fold(2))
    folds.put("b", fold(2))
    folds.put("a", fold(3))  # replaces a's fold and makes it the newest: b (2) + a (3)
    assert (len(folds), folds.facts) == (2, 5)
    folds.put("c", fold(1))  # 6 facts: the oldest, b, goes
    assert folds.get("b") is None and (len(folds), folds.facts) == (2, 4)
    folds.forget("a")
    assert folds.get("a") is None and folds.get("c") is not None and folds.facts == 1


def test_the_trait_journey_tests_traits() -> None:
    assert _trait_journey().replay_traits == {"job_title", "company"}
    assert default_journey().replay_traits == frozenset()
