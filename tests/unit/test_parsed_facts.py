"""The parsed-fact cache of the profiles stage (``ParsedFacts``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cdp.profile.facts import Fact, ParsedFacts, encode_fact

WHEN = datetime(2026, 3, 1, tzinfo=UTC)


def _json(event_id: str, **data: object) -> dict[str, object]:
    fact = Fact(event_id=event_id, event_time=WHEN, channel="web", type="order", source="shop")
    encoded = fact.to_json()
    if data:
        encoded["d"] = data
    return encoded


def test_the_same_or_an_equal_json_gives_the_parsed_fact_again() -> None:
    cache = ParsedFacts()
    stored = encode_fact(_json("e1", value=10))  # as the stages keep it
    first = cache.parse("e1", stored)
    assert cache.parse("e1", stored) is first
    assert cache.parse("e1", encode_fact(_json("e1", value=10))) is first  # an equal copy
    assert cache.parse("e1", _json("e1", value=10)) is first  # parsed JSON of the same fact
    assert first == Fact.from_json(_json("e1", value=10))


def test_a_changed_json_is_parsed_again() -> None:
    cache = ParsedFacts()
    cache.parse("e1", _json("e1", value=10))
    assert cache.parse("e1", _json("e1", value="10")).get("value") == "10"
    assert cache.parse("e1", _json("e1", value=11)).get("value") == 11
    granted = _json("e2")
    granted["cs"] = [["email", True, None]]
    assert cache.parse("e2", granted).consents[0][1] is True
    as_number = _json("e2")
    as_number["cs"] = [["email", 1, None]]  # equal in Python, not in JSON
    with pytest.raises(ValueError, match=r"fact\.cs"):
        cache.parse("e2", as_number)


def test_the_oldest_entries_go_first_at_capacity() -> None:
    cache = ParsedFacts(capacity=2)
    a, b, c = _json("a"), _json("b"), _json("c")
    first_a = cache.parse("a", a)
    cache.parse("b", b)
    cache.parse("c", c)
    assert len(cache) == 2
    assert cache.parse("a", a) is not first_a  # evicted, parsed again
    assert cache.parse("c", c) is cache.parse("c", c)


def test_a_bad_fact_raises_and_is_not_kept() -> None:
    cache = ParsedFacts()
    with pytest.raises(ValueError, match="fact"):
        cache.parse("e1", {"id": "e1"})
    assert len(cache) == 0
    with pytest.raises(ValueError, match="capacity"):
        ParsedFacts(capacity=0)


def test_forgotten_entries_are_gone() -> None:
    cache = ParsedFacts()
    cache.parse("a", _json("a"))
    cache.parse("b", _json("b"))
    cache.forget(["a", "unknown"])
    assert len(cache) == 1
