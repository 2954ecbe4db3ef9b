"""Property tests: a profile is a function of the *set* of its facts (DESIGN.md, Convergence).

Fact sets come from generated events (``cdp.samples.generate``: three
customers' events folded into one profile, so traits conflict). To make the
tie-breaks matter, event times are often coarsened (to the day, or to one
instant for all facts), some consent decisions are turned into refusals, and
a few *conflicting* facts that reuse an event id are added (a contract
violation upstream that must still not make the result order-dependent).

Whatever the order, duplication, partitioning and merge grouping, the
canonical JSON of the document must be identical; merge must be commutative,
associative and idempotent. ``test_the_checks_catch_order_dependence`` shows
that these checks fail when the tie-breaks are broken.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cdp.profile.facts as facts_module
from cdp.profile import (
    Fact,
    TraitConfig,
    build_profile,
    canonical_json,
    default_trait_config,
    fact_from_event,
    merge_fact_sets,
    parse_trait_config,
)
from cdp.samples import generate

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ALT_CONFIG = parse_trait_config(
    {
        "default": {"rule": "first_seen"},
        "traits": {
            "first_name": {"rule": "most_recent"},
            "company": {
                "rule": "source_priority",
                "sources": ["channel:web", "crm"],
                "unlisted": "ignore",
            },
            "job_title": {"rule": "source_priority", "sources": ["website"]},
        },
    }
)
CONFIGS = st.sampled_from([default_trait_config(), ALT_CONFIG])

IDENTIFIERS = ["email:a@example.com", "customer_id:C-1", "anonymous_id:x", "phone:+491511234567"]
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@cache
def generated_facts(seed: int) -> tuple[Fact, ...]:
    """The distinct facts of three generated customers' events."""
    dataset = generate(customers=3, events_per_customer=8, seed=seed)
    return tuple(merge_fact_sets(fact_from_event(event) for event in dataset.events).values())


def _coarsen(time: datetime, grain: str) -> datetime:
    if grain == "day":
        return EPOCH + timedelta(days=(time - EPOCH).days)
    if grain == "instant":
        return EPOCH
    return time


@st.composite
def fact_collections(draw: st.DrawFn) -> list[Fact]:
    """A collection of facts (distinct ids, plus a few conflicting same-id variants)."""
    facts = list(generated_facts(draw(st.integers(0, 5_000))))
    grain = draw(st.sampled_from(("exact", "day", "instant")))
    if grain != "exact":
        facts = [dataclasses.replace(f, event_time=_coarsen(f.event_time, grain)) for f in facts]
    indexes = st.integers(0, len(facts) - 1)
    for index in draw(st.sets(indexes, max_size=4)):
        facts[index] = dataclasses.replace(
            facts[index],
            consents=(("marketing_email", False, "email"), ("case_study", False, None)),
        )
    for index in draw(st.sets(indexes, max_size=2)):
        facts.append(
            dataclasses.replace(
                facts[index], source="crm", channel="crm", traits=(("first_name", "Zed"),)
            )
        )
    return facts


def doc_bytes(
    facts: Sequence[Fact], config: TraitConfig, ids: Sequence[str] = IDENTIFIERS
) -> bytes:
    return canonical_json(build_profile("p-test", facts, config, ids))


# --------------------------------------------------------------------------- checks
# Plain functions, so that test_the_checks_catch_order_dependence can run them
# against deliberately broken tie-breaks.


def check_orders(facts: list[Fact], config: TraitConfig, orders: Sequence[Sequence[Fact]]) -> None:
    """Every order (with or without duplicates) gives the reference document."""
    expected = doc_bytes(facts, config)
    for order in orders:
        assert doc_bytes(order, config, list(reversed(IDENTIFIERS))) == expected


def check_fold(facts: list[Fact], config: TraitConfig, order: Sequence[Fact]) -> None:
    """Folding one fact at a time (what the stream stage does) gives the batch result."""
    state: dict[str, Fact] = {}
    for fact in order:
        state = merge_fact_sets(state, [fact])
    assert doc_bytes(list(state.values()), config) == doc_bytes(facts, config)


def check_merge_algebra(a: dict[str, Fact], b: dict[str, Fact], c: dict[str, Fact]) -> None:
    """Union is commutative, associative and idempotent (and {} is neutral)."""
    ab, ba = merge_fact_sets(a, b), merge_fact_sets(b, a)
    assert ab == ba
    assert merge_fact_sets(ab, c) == merge_fact_sets(a, merge_fact_sets(b, c))
    assert merge_fact_sets(ab, c) == merge_fact_sets(a, b, c)
    assert merge_fact_sets(a, a) == merge_fact_sets(a) == a
    assert merge_fact_sets(a, {}) == a
    assert merge_fact_sets(ab, ab) == ab


# --------------------------------------------------------------------------- properties


@PROPERTY_SETTINGS
@given(facts=fact_collections(), config=CONFIGS, data=st.data())
def test_any_order_with_duplicates_gives_the_same_document(
    facts: list[Fact], config: TraitConfig, data: st.DataObject
) -> None:
    permuted = data.draw(st.permutations(facts), label="permutation")
    extra = data.draw(st.lists(st.sampled_from(facts), max_size=12), label="duplicates")
    with_duplicates = data.draw(st.permutations(permuted + extra), label="mixed")
    check_orders(facts, config, [permuted, with_duplicates, facts[::-1]])
    check_fold(facts, config, with_duplicates)


@PROPERTY_SETTINGS
@given(facts=fact_collections(), config=CONFIGS, data=st.data())
def test_any_partitioning_and_merge_grouping_gives_the_same_document(
    facts: list[Fact], config: TraitConfig, data: st.DataObject
) -> None:
    groups_count = data.draw(st.integers(1, 6), label="groups")
    group_of = data.draw(
        st.lists(st.integers(0, groups_count - 1), min_size=len(facts), max_size=len(facts)),
        label="partition",
    )
    groups: list[list[Fact]] = [[] for _ in range(groups_count)]
    for fact, group in zip(facts, group_of, strict=True):
        groups[group].append(fact)
    # re-deliveries: some facts land in a second partition too
    for index in data.draw(st.sets(st.integers(0, len(facts) - 1), max_size=6), label="again"):
        groups[data.draw(st.integers(0, groups_count - 1))].append(facts[index])
    pool = [merge_fact_sets(data.draw(st.permutations(group))) for group in groups]
    while len(pool) > 1:  # merge two random partial profiles, in a random argument order
        i = data.draw(st.integers(0, len(pool) - 1), label="i")
        first = pool.pop(i)
        j = data.draw(st.integers(0, len(pool) - 1), label="j")
        second = pool.pop(j)
        swap = data.draw(st.booleans(), label="swap")
        pool.append(merge_fact_sets(second, first) if swap else merge_fact_sets(first, second))
    assert doc_bytes(list(pool[0].values()), config) == doc_bytes(facts, config)


@PROPERTY_SETTINGS
@given(facts=fact_collections(), config=CONFIGS, data=st.data())
def test_merge_is_commutative_associative_idempotent(
    facts: list[Fact], config: TraitConfig, data: st.DataObject
) -> None:
    masks = st.lists(st.booleans(), min_size=len(facts), max_size=len(facts))
    a, b, c = (
        merge_fact_sets(
            f for f, keep in zip(facts, data.draw(masks, label=name), strict=True) if keep
        )
        for name in "abc"
    )
    check_merge_algebra(a, b, c)
    ab, ba = merge_fact_sets(a, b), merge_fact_sets(b, a)
    assert doc_bytes(list(ab.values()), config) == doc_bytes(list(ba.values()), config)
    abc = merge_fact_sets(ab, c)
    assert doc_bytes(list(abc.values()), config) == doc_bytes(
        list(merge_fact_sets(a, merge_fact_sets(c, b)).values()), config
    )


# --------------------------------------------------------------------------- the checks have teeth


@contextmanager
def patched(name: str, replacement: Callable[..., Any]) -> Iterator[None]:
    original = getattr(facts_module, name)
    setattr(facts_module, name, replacement)
    try:
        yield
    finally:
        setattr(facts_module, name, original)


def test_the_checks_catch_order_dependence() -> None:
    """With the event-id tie-break removed, the same checks find differences."""
    facts = [dataclasses.replace(f, event_time=EPOCH) for f in generated_facts(1)]  # all ties
    config = default_trait_config()
    orders = [facts[::-1], facts[1:] + facts[:1]]
    check_orders(facts, config, orders)  # passes as it is
    with patched("order_key", lambda fact: fact.event_time), pytest.raises(AssertionError):
        check_orders(facts, config, orders)

    one = facts[0]
    other = dataclasses.replace(one, traits=(("first_name", "Zed"),))
    check_merge_algebra({one.event_id: one}, {other.event_id: other}, {})
    with patched("fact_tiebreak_key", lambda fact: 0), pytest.raises(AssertionError):
        check_merge_algebra({one.event_id: one}, {other.event_id: other}, {})
