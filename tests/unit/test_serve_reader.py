"""One-round-trip profile reads (``read_profile``) answer like the store's separate reads."""

from __future__ import annotations

import fakeredis
import pytest

from cdp.serve.reader import read_profile
from cdp.serve.store import AliasCycleError, ReadModelStore
from cdp.serve.writes import AliasSet, IdentifierLink, ProfileDelete, ProfileUpsert


@pytest.fixture()
def store() -> ReadModelStore:
    return ReadModelStore(fakeredis.FakeRedis(), "t")


def test_reads_follow_the_identifier_and_the_alias_chain(store: ReadModelStore) -> None:
    store.apply(
        [
            ProfileUpsert("p-c", 3, b'{"profile_id":"p-c"}'),
            IdentifierLink("email:a@example.com", "p-a", 1),
            AliasSet("p-a", "p-b", 2),
            AliasSet("p-b", "p-c", 3),
            AliasSet("p-c", "p-c", 3),  # a self-alias: current
        ]
    )
    expected = ("p-c", b'{"profile_id":"p-c"}')
    assert read_profile(store, identifier_key="email:a@example.com") == expected
    assert read_profile(store, profile_id="p-a") == expected
    assert read_profile(store, profile_id="p-c") == expected
    assert store.resolve("p-a") == "p-c" and store.get_profile("p-a") == expected[1]
    assert read_profile(store, identifier_key="email:nobody@example.com") is None
    assert read_profile(store, profile_id="p-unknown") is None
    store.apply([ProfileDelete("p-c", 4)])
    assert read_profile(store, identifier_key="email:a@example.com") is None


def test_a_cycle_is_an_error(store: ReadModelStore) -> None:
    store.apply([AliasSet("p-a", "p-b", 1), AliasSet("p-b", "p-a", 1)])
    with pytest.raises(AliasCycleError):
        read_profile(store, profile_id="p-a")
    with pytest.raises(ValueError):
        read_profile(store)
