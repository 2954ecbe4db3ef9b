"""Integration tests of the Redis read model against the real Redis of the local stack.

The URL comes from ``CDP_REDIS_URL`` (default: the settings default, the local
stack's Redis). Each test writes only under its own fresh namespace in db 0 and
wipes it at the end.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from cdp.serve import (
    AliasCycleError,
    AliasSet,
    ChangeOp,
    IdentifierLink,
    IdentifierUnlink,
    LayoutMismatchError,
    Outcome,
    ProfileDelete,
    ProfileUpsert,
    ReadModelStore,
    StageMember,
    Write,
    scripts,
)
from cdp.serve import keys as layout
from cdp.serve import store as store_module
from cdp.settings import load_settings

pytestmark = pytest.mark.integration


def redis_url() -> str:
    return os.environ.get("CDP_REDIS_URL") or load_settings().redis_url


@pytest.fixture(scope="module")
def client() -> Iterator[redis.Redis]:
    url = redis_url()
    conn = redis.Redis.from_url(url)
    try:
        conn.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"no Redis at {url} ({exc}); start the local stack with `cdp stack up`")
    yield conn
    conn.close()


@pytest.fixture()
def make_store(client: redis.Redis) -> Iterator[Callable[..., ReadModelStore]]:
    """Factory of stores, each on a fresh namespace; every namespace is wiped afterwards."""
    made: list[ReadModelStore] = []

    def make(**options: Any) -> ReadModelStore:
        store = ReadModelStore(client, "tserve" + uuid.uuid4().hex[:12], **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.wipe()
        assert not list(client.scan_iter(match=layout.namespace_pattern(store.namespace)))


@pytest.fixture()
def store(make_store: Callable[..., ReadModelStore]) -> ReadModelStore:
    return make_store()


def doc(text: str) -> bytes:
    return ('{"v":"' + text + '"}').encode()


def outcomes(store: ReadModelStore, *writes: Write) -> list[Outcome]:
    return list(store.apply(writes).outcomes)


A, S, R = Outcome.APPLIED, Outcome.STALE, Outcome.REPLAYED


# ---------------------------------------------------------------- version guard


def test_upsert_version_guard(store: ReadModelStore) -> None:
    assert outcomes(store, ProfileUpsert("p-1", 10, doc("ten"))) == [A]
    assert outcomes(store, ProfileUpsert("p-1", 9, doc("nine"))) == [S]
    assert store.get_profile("p-1") == doc("ten")
    assert outcomes(store, ProfileUpsert("p-1", 10, doc("ten"))) == [R]
    assert outcomes(store, ProfileUpsert("p-1", 11, doc("eleven"))) == [A]
    assert store.get_profile("p-1") == doc("eleven")
    assert store.profile_version("p-1") == 11


def test_equal_version_reapplies_content(store: ReadModelStore) -> None:
    store.apply([ProfileUpsert("p-1", 10, doc("first"))])
    assert outcomes(store, ProfileUpsert("p-1", 10, doc("second"))) == [R]
    assert store.get_profile("p-1") == doc("second")


def test_delete_version_guard(store: ReadModelStore) -> None:
    store.apply([ProfileUpsert("p-1", 3, doc("x"))])
    assert outcomes(store, ProfileDelete("p-1", 5)) == [A]
    assert outcomes(store, ProfileDelete("p-1", 4)) == [S]
    assert outcomes(store, ProfileDelete("p-1", 5)) == [R]
    assert store.profile_version("p-1") == 5
    assert outcomes(store, ProfileDelete("p-1", 6)) == [A]
    assert store.profile_version("p-1") == 6
    assert store.get_profile("p-1") is None


def test_identifier_link_version_guard(store: ReadModelStore) -> None:
    key = "email:anna@example.com"
    assert outcomes(store, IdentifierLink(key, "p-1", 10)) == [A]
    assert outcomes(store, IdentifierLink(key, "p-2", 9)) == [S]
    assert store.lookup(key) == "p-1"
    assert outcomes(store, IdentifierLink(key, "p-1", 10)) == [R]
    assert outcomes(store, IdentifierLink(key, "p-3", 11)) == [A]
    assert store.lookup(key) == "p-3"


def test_identifier_unlink_version_guard_and_tombstone(store: ReadModelStore) -> None:
    key = "email:anna@example.com"
    store.apply([IdentifierLink(key, "p-1", 1)])
    assert outcomes(store, IdentifierUnlink(key, 5)) == [A]
    assert store.lookup(key) is None
    assert outcomes(store, IdentifierUnlink(key, 4)) == [S]
    assert outcomes(store, IdentifierLink(key, "p-1", 4)) == [S]  # no resurrection
    assert store.lookup(key) is None
    assert outcomes(store, IdentifierUnlink(key, 5)) == [R]
    assert outcomes(store, IdentifierUnlink(key, 6)) == [A]
    # the tombstone keeps the version, not the raw identifier
    tomb = store.client.hgetall(layout.identifier(store.namespace, key))
    assert tomb == {b"v": b"6"}
    assert outcomes(store, IdentifierLink(key, "p-2", 7)) == [A]
    assert store.lookup(key) == "p-2"


def test_alias_version_guard(store: ReadModelStore) -> None:
    assert outcomes(store, AliasSet("p-old", "p-1", 10)) == [A]
    assert outcomes(store, AliasSet("p-old", "p-2", 9)) == [S]
    assert store.alias_target("p-old") == "p-1"
    assert outcomes(store, AliasSet("p-old", "p-1", 10)) == [R]
    assert outcomes(store, AliasSet("p-old", "p-3", 11)) == [A]
    assert store.alias_target("p-old") == "p-3"


def test_tombstone_blocks_resurrection(store: ReadModelStore) -> None:
    store.apply([ProfileUpsert("p-1", 5, doc("x"), "need", 1000)])
    assert outcomes(store, ProfileDelete("p-1", 8)) == [A]
    assert store.get_profile("p-1") is None
    assert store.stage_counts() == {}
    assert outcomes(store, ProfileUpsert("p-1", 7, doc("late"), "search", 2000)) == [S]
    assert store.get_profile("p-1") is None
    assert store.stage_counts() == {}
    assert store.client.hgetall(layout.profile(store.namespace, "p-1")) == {b"v": b"8"}
    assert outcomes(store, ProfileUpsert("p-1", 9, doc("back"), "choice", 3000)) == [A]
    assert store.get_profile("p-1") == doc("back")
    assert store.stage_counts() == {"choice": 1}
    assert store.consistency_problems() == []


def test_versions_compare_as_integers_not_strings(store: ReadModelStore) -> None:
    big = 2**53 - 1
    store.apply([ProfileUpsert("p-1", 9, doc("nine"))])
    assert outcomes(store, ProfileUpsert("p-1", 10, doc("ten"))) == [A]  # "10" < "9" as text
    assert outcomes(store, ProfileUpsert("p-1", big, doc("big"))) == [A]
    assert outcomes(store, ProfileUpsert("p-1", big - 1, doc("less"))) == [S]
    assert store.profile_version("p-1") == big


# ----------------------------------------------------------------- stage index


def test_stage_index_moves_with_the_profile(store: ReadModelStore) -> None:
    store.apply(
        [
            ProfileUpsert("p-1", 1, doc("1"), "need", 1000),
            ProfileUpsert("p-2", 1, doc("2"), "need", 2000),
            ProfileUpsert("p-3", 1, doc("3"), "need", 3000),
        ]
    )
    assert store.stage_counts() == {"need": 3}
    newest = [m.profile_id for m in store.stage_members("need")]
    assert newest == ["p-3", "p-2", "p-1"]
    oldest = store.stage_members("need", newest_first=False)
    assert oldest[0] == StageMember("p-1", 1000)
    assert store.stage_members("need", offset=1, limit=1) == [StageMember("p-2", 2000)]
    assert store.stage_members("need", offset=5) == []

    store.apply([ProfileUpsert("p-2", 2, doc("2b"), "search", 5000)])
    assert store.stage_counts() == {"need": 2, "search": 1}
    assert store.stage_members("search") == [StageMember("p-2", 5000)]
    assert "p-2" not in {m.profile_id for m in store.stage_members("need")}

    # staying in a stage with a new document keeps one membership
    store.apply([ProfileUpsert("p-2", 3, doc("2c"), "search", 5000)])
    assert store.stage_counts() == {"need": 2, "search": 1}

    # leaving every stage; the empty stage disappears from the counts and the registry
    store.apply([ProfileUpsert("p-2", 4, doc("2d"), None, None)])
    assert store.stage_counts() == {"need": 2}
    assert store.client.smembers(layout.stages(store.namespace)) == {b"need"}

    # a stale write does not move anything
    store.apply([ProfileUpsert("p-1", 0, doc("old"), "usage", 9000)])
    assert store.stage_counts() == {"need": 2}

    store.apply([ProfileDelete("p-1", 5), ProfileDelete("p-3", 5)])
    assert store.stage_counts() == {}
    assert store.consistency_problems() == []


# --------------------------------------------------------------- change stream


def test_change_stream_entries(store: ReadModelStore) -> None:
    store.apply(
        [
            ProfileUpsert("p-1", 1, doc("a")),
            IdentifierLink("email:a@example.com", "p-1", 1),  # not a profile write
            AliasSet("p-0", "p-1", 1),  # not a profile write
            ProfileUpsert("p-2", 2, doc("b"), "need", 10),
        ]
    )
    first = store.changes()
    assert [(c.profile_id, c.version, c.op) for c in first] == [
        ("p-1", 1, ChangeOp.UPSERT),
        ("p-2", 2, ChangeOp.UPSERT),
    ]
    store.apply(
        [
            ProfileUpsert("p-1", 0, doc("stale")),  # stale: no entry
            ProfileUpsert("p-2", 2, doc("b"), "need", 10),  # identical replay: no entry
            ProfileUpsert("p-2", 2, doc("b2"), "need", 10),  # same version, new content: entry
            ProfileDelete("p-1", 3),
        ]
    )
    rest = store.changes(after_id=first[-1].id)
    assert [(c.profile_id, c.version, c.op) for c in rest] == [
        ("p-2", 2, ChangeOp.UPSERT),
        ("p-1", 3, ChangeOp.DELETE),
    ]
    assert store.changes(after_id=rest[-1].id) == []
    assert [c.id for c in store.changes(count=3)] == [first[0].id, first[1].id, rest[0].id]
    assert store.first_change_id() == first[0].id


def test_change_stream_is_capped(make_store: Callable[..., ReadModelStore]) -> None:
    store = make_store(change_stream_maxlen=100)
    store.apply([ProfileUpsert(f"p-{i}", 1, doc("x")) for i in range(2000)])
    length = store.client.xlen(layout.changes(store.namespace))
    assert 100 <= length < 2000  # MAXLEN ~ trims whole stream nodes only
    oldest = store.changes(count=1)[0]
    assert oldest.profile_id != "p-0"  # the oldest entries were trimmed
    assert store.first_change_id() == oldest.id


# ------------------------------------------------------------------- aliases


def test_alias_chains_are_followed(store: ReadModelStore) -> None:
    store.apply(
        [
            ProfileUpsert("p-c", 1, doc("survivor")),
            ProfileUpsert("p-a", 1, doc("merged away, not yet deleted")),
            AliasSet("p-a", "p-b", 2),
            AliasSet("p-b", "p-c", 2),
        ]
    )
    assert store.get_profile("p-a") == doc("survivor")  # the alias wins over the old doc
    assert store.get_profile("p-a", follow_aliases=False) == doc("merged away, not yet deleted")
    assert store.resolve("p-a") == "p-c"
    assert store.resolve("p-c") == "p-c"
    assert store.resolve("p-unknown") is None
    assert store.get_profile("p-unknown") is None
    store.apply([ProfileDelete("p-c", 3)])
    assert store.resolve("p-a") is None


def test_alias_cycle_is_reported(store: ReadModelStore) -> None:
    store.apply([AliasSet("p-a", "p-b", 1), AliasSet("p-b", "p-a", 1)])
    with pytest.raises(AliasCycleError):
        store.get_profile("p-a")
    with pytest.raises(AliasCycleError):
        store.resolve("p-b")


# ----------------------------------------------------------------- write path


def test_batch_of_10000_writes_in_one_round_trip(
    make_store: Callable[..., ReadModelStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = mixed_batch(10_000)
    rates: dict[int, float] = {}
    for writes_per_call in (1, store_module.DEFAULT_WRITES_PER_CALL):
        store = make_store(writes_per_call=writes_per_call)
        round_trips = count_pipeline_executes(monkeypatch)
        started = time.perf_counter()
        result = store.apply(batch)
        elapsed = time.perf_counter() - started
        monkeypatch.undo()
        rates[writes_per_call] = len(batch) / elapsed
        assert round_trips == [1]
        assert result.applied == len(batch) and result.stale == 0
        print(
            f"\n10,000 writes, {writes_per_call} per script call: "
            f"{elapsed * 1000:.0f} ms, {rates[writes_per_call]:,.0f} writes/s"
        )
        assert store.consistency_problems() == []
        replay = store.apply(batch)
        assert replay.replayed == len(batch)


def count_pipeline_executes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = redis.client.Pipeline.execute

    def counting(self: redis.client.Pipeline, raise_on_error: bool = True) -> list[Any]:
        calls[0] += 1
        return original(self, raise_on_error)

    monkeypatch.setattr(redis.client.Pipeline, "execute", counting)
    return calls


def mixed_batch(size: int) -> list[Write]:
    stages = ["need", "search", "choice", "purchase", "usage", "recommendation"]
    batch: list[Write] = []
    for i in range(size):
        pid = f"p-{i:020x}"
        kind = i % 4
        if kind == 0:
            body = b'{"traits":{"name":"Anna","score":42}}'
            batch.append(ProfileUpsert(pid, i, body, stages[i % 6], 1_700_000_000_000 + i))
        elif kind == 1:
            batch.append(IdentifierLink(f"email:user{i}@example.com", pid, i))
        elif kind == 2:
            batch.append(AliasSet(f"p-a{i:019x}", pid, i))
        else:
            batch.append(ProfileUpsert(pid, i, b'{"traits":{}}'))
    return batch


def test_missing_script_is_loaded_and_the_calls_rerun(
    store: ReadModelStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A variant of the script Redis cannot know yet (no SCRIPT FLUSH on a shared server).
    import hashlib

    source = scripts.APPLY_SOURCE + f"\n-- test {uuid.uuid4().hex}\n"
    sha = hashlib.sha1(source.encode()).hexdigest()
    monkeypatch.setattr(store_module, "APPLY_SOURCE", source)
    monkeypatch.setattr(store_module, "APPLY_SHA", sha)
    assert store.client.script_exists(sha) == [False]
    result = store.apply([ProfileUpsert("p-1", 1, doc("x")), AliasSet("p-0", "p-1", 1)])
    assert list(result.outcomes) == [A, A]
    assert store.get_profile("p-0") == doc("x")


def test_layout_mismatch_refuses_to_write(store: ReadModelStore) -> None:
    store.client.hset(layout.meta(store.namespace), layout.META_LAYOUT_FIELD, "2")
    with pytest.raises(LayoutMismatchError):
        store.apply([ProfileUpsert("p-1", 1, doc("x"))])
    assert store.profile_version("p-1") is None


def test_meta_key_records_the_layout(store: ReadModelStore) -> None:
    assert store.layout_version() is None
    store.apply([ProfileUpsert("p-1", 1, doc("x"))])
    assert store.layout_version() == layout.LAYOUT_VERSION


# ----------------------------------------------------------------- wipe, dump


def test_wipe_removes_only_the_namespace(
    make_store: Callable[..., ReadModelStore], client: redis.Redis
) -> None:
    one, two = make_store(), make_store()
    neighbour = f"{one.namespace}x:v1:profile:p-1"  # a namespace that extends the name
    client.set(neighbour, b"keep")
    try:
        for s in (one, two):
            s.apply([*mixed_batch(40), ProfileDelete("p-gone", 1), IdentifierUnlink("phone:1", 1)])
        before = two.dump(include_versions=True)
        deleted = one.wipe()
        assert deleted > 40
        assert not list(client.scan_iter(match=layout.namespace_pattern(one.namespace)))
        assert one.dump(include_versions=True)["profiles"] == {}
        assert two.dump(include_versions=True) == before
        assert client.get(neighbour) == b"keep"
        assert one.wipe() == 0
    finally:
        client.delete(neighbour)


def random_history(rng: random.Random, profiles: int = 30, writes: int = 400) -> list[Write]:
    """Writes with unique versions per key (so the final state is order-independent)."""
    stages = ["need", "search", "choice", "purchase"]
    history: list[Write] = []
    for version in range(1, writes + 1):
        pid = f"p-{rng.randrange(profiles):04d}"
        roll = rng.random()
        if roll < 0.55:
            stage = rng.choice([*stages, None])
            entered = None if stage is None else 1000 * rng.randrange(50)
            history.append(ProfileUpsert(pid, version, doc(f"{pid}@{version}"), stage, entered))
        elif roll < 0.65:
            history.append(ProfileDelete(pid, version))
        elif roll < 0.8:
            history.append(IdentifierLink(f"email:{rng.randrange(40)}@example.com", pid, version))
        elif roll < 0.87:
            history.append(IdentifierUnlink(f"email:{rng.randrange(40)}@example.com", version))
        else:
            target = f"p-{rng.randrange(profiles):04d}"
            if target != pid:
                history.append(AliasSet(pid, target, version))
    return history


def test_dump_is_canonical_across_orders_and_duplicates(
    make_store: Callable[..., ReadModelStore],
) -> None:
    rng = random.Random(20240607)
    history = random_history(rng)
    in_order, shuffled = make_store(), make_store(writes_per_call=7)
    in_order.apply(history)
    disturbed = history + rng.sample(history, 150)  # duplicates (replays) ...
    rng.shuffle(disturbed)  # ... in any order ...
    for start in range(0, len(disturbed), 37):  # ... in many batches
        shuffled.apply(disturbed[start : start + 37])
    assert in_order.dump(include_versions=True) == shuffled.dump(include_versions=True)
    assert in_order.dump() == shuffled.dump()
    assert in_order.consistency_problems() == shuffled.consistency_problems() == []
    dumped = in_order.dump()
    assert dumped["layout"] == layout.LAYOUT_VERSION
    assert dumped["profiles"] and dumped["identifiers"] and dumped["aliases"] and dumped["stages"]
    assert list(dumped["profiles"]) == sorted(dumped["profiles"])


def test_dump_without_versions_ignores_version_numbers(
    make_store: Callable[..., ReadModelStore],
) -> None:
    live, rebuilt = make_store(), make_store()
    live.apply(
        [
            ProfileUpsert("p-1", 100, doc("x"), "need", 5),
            IdentifierLink("email:a@example.com", "p-1", 100),
            AliasSet("p-0", "p-1", 100),
        ]
    )
    rebuilt.apply(
        [
            ProfileUpsert("p-1", 7, doc("x"), "need", 5),
            IdentifierLink("email:a@example.com", "p-1", 3),
            AliasSet("p-0", "p-1", 1),
        ]
    )
    assert live.dump() == rebuilt.dump()
    assert live.dump(include_versions=True) != rebuilt.dump(include_versions=True)


def test_replaying_a_batch_changes_nothing(store: ReadModelStore) -> None:
    history = random_history(random.Random(7))
    store.apply(history)
    before = store.dump(include_versions=True)
    stream_length = store.client.xlen(layout.changes(store.namespace))
    again = store.apply(history)
    assert again.applied + again.stale == len(history)
    assert store.dump(include_versions=True) == before
    assert store.client.xlen(layout.changes(store.namespace)) == stream_length


def test_from_settings(client: redis.Redis) -> None:
    namespace = "tserve" + uuid.uuid4().hex[:12]
    settings = load_settings(namespace=namespace, redis_url=redis_url())
    with ReadModelStore.from_settings(settings) as store:
        try:
            assert store.namespace == namespace
            store.apply([ProfileUpsert("p-1", 1, doc("x"))])
            assert store.get_profile("p-1") == doc("x")
        finally:
            store.wipe()
