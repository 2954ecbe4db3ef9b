"""ReadModelStore reads, wipe, dump and checks on fakeredis.

The data is seeded by hand in the documented layout (docs/specs/redis-layout.md),
which also pins that layout. The apply script needs Lua, which fakeredis only
runs with ``lupa`` installed; those tests skip without it (the integration tests
run the script on the real Redis).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import fakeredis
import pytest
from redis.typing import EncodableT, FieldT

from cdp.serve import (
    AliasCycleError,
    Change,
    ChangeOp,
    ProfileDelete,
    ProfileUpsert,
    ReadModelStore,
    StageMember,
)
from cdp.serve import keys as layout
from cdp.settings import load_settings

NS = "tunit"


@pytest.fixture()
def client() -> Iterator[fakeredis.FakeRedis]:
    server = fakeredis.FakeServer()
    yield fakeredis.FakeRedis(server=server)


@pytest.fixture()
def store(client: fakeredis.FakeRedis) -> ReadModelStore:
    return ReadModelStore(client, NS)


def seed_profile(
    client: fakeredis.FakeRedis,
    pid: str,
    version: int,
    doc: bytes | None,
    stage: str | None = None,
    entered: int | None = None,
) -> None:
    fields: dict[FieldT, EncodableT] = {"v": version}
    if doc is not None:
        fields["doc"] = doc
    if stage is not None and entered is not None:
        fields |= {"stage": stage, "ms": str(entered)}
        client.zadd(layout.stage(NS, stage), {pid: entered})
        client.sadd(layout.stages(NS), stage)
    client.hset(layout.profile(NS, pid), mapping=fields)


def seed_identifier(client: fakeredis.FakeRedis, key: str, pid: str | None, version: int) -> None:
    fields: dict[FieldT, EncodableT] = {"v": version}
    if pid is not None:
        fields |= {"p": pid, "k": key}
    client.hset(layout.identifier(NS, key), mapping=fields)


def seed_alias(client: fakeredis.FakeRedis, alias_id: str, pid: str, version: int) -> None:
    client.hset(layout.alias(NS, alias_id), mapping={"v": str(version), "to": pid})


def layout_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def test_refuses_a_decoding_client() -> None:
    with pytest.raises(ValueError, match="decode_responses"):
        ReadModelStore(fakeredis.FakeRedis(decode_responses=True), NS)


@pytest.mark.parametrize(
    "options", [{"change_stream_maxlen": 0}, {"writes_per_call": 0}, {"namespace": "Bad:ns"}]
)
def test_refuses_bad_options(client: fakeredis.FakeRedis, options: dict[str, object]) -> None:
    namespace = str(options.pop("namespace", NS))
    with pytest.raises(ValueError):
        ReadModelStore(client, namespace, **options)  # type: ignore[arg-type]


def test_empty_batch_makes_no_call(store: ReadModelStore) -> None:
    result = store.apply([])
    assert result.outcomes == ()
    assert store.client.dbsize() == 0


def test_from_settings_owns_its_client() -> None:
    store = ReadModelStore.from_settings(load_settings(namespace="tunitx"))
    assert store.namespace == "tunitx"
    store.close()


def test_profile_reads(client: fakeredis.FakeRedis, store: ReadModelStore) -> None:
    seed_profile(client, "p-1", 5, b'{"a":1}', "need", 1000)
    seed_profile(client, "p-gone", 9, None)
    assert store.get_profile("p-1") == b'{"a":1}'
    assert store.profile_version("p-1") == 5
    assert store.get_profile("p-gone") is None
    assert store.profile_version("p-gone") == 9  # tombstone
    assert store.get_profile("p-never") is None
    assert store.profile_version("p-never") is None
    assert store.resolve("p-1") == "p-1"
    assert store.resolve("p-gone") is None


def test_alias_following(client: fakeredis.FakeRedis, store: ReadModelStore) -> None:
    seed_profile(client, "p-c", 1, b"c")
    seed_profile(client, "p-a", 1, b"stale copy")
    seed_alias(client, "p-a", "p-b", 2)
    seed_alias(client, "p-b", "p-c", 2)
    assert store.get_profile("p-a") == b"c"
    assert store.get_profile("p-a", follow_aliases=False) == b"stale copy"
    assert store.resolve("p-a") == "p-c"
    assert store.alias_target("p-a") == "p-b"
    assert store.alias_target("p-c") is None


def test_alias_cycle_and_overlong_chain(client: fakeredis.FakeRedis, store: ReadModelStore) -> None:
    seed_alias(client, "p-x", "p-y", 1)
    seed_alias(client, "p-y", "p-x", 1)
    with pytest.raises(AliasCycleError, match="cycle"):
        store.get_profile("p-x")
    for i in range(40):
        seed_alias(client, f"p-chain{i}", f"p-chain{i + 1}", 1)
    seed_profile(client, "p-chain40", 1, b"end")
    with pytest.raises(AliasCycleError, match="longer"):
        store.resolve("p-chain0")
    assert store.get_profile("p-chain20") == b"end"  # 20 hops is fine


def test_self_alias_means_current(client: fakeredis.FakeRedis, store: ReadModelStore) -> None:
    seed_profile(client, "p-self", 1, b"doc")
    seed_alias(client, "p-self", "p-self", 1)
    assert store.get_profile("p-self") == b"doc"
    assert store.resolve("p-self") == "p-self"
    seed_alias(client, "p-old", "p-self", 1)
    assert store.get_profile("p-old") == b"doc"


def test_lookup(client: fakeredis.FakeRedis, store: ReadModelStore) -> None:
    seed_identifier(client, "email:anna@example.com", "p-1", 3)
    seed_identifier(client, "email:gone@example.com", None, 4)
    assert store.lookup("email:anna@example.com") == "p-1"
    assert store.lookup("email:gone@example.com") is None
    assert store.lookup("email:never@example.com") is None


def test_stage_reads(client: fakeredis.FakeRedis, store: ReadModelStore) -> None:
    for i, entered in enumerate([3000, 1000, 2000, 2000]):
        seed_profile(client, f"p-{i}", 1, b"{}", "need", entered)
    seed_profile(client, "p-9", 1, b"{}", "search", 5)
    assert store.stage_counts() == {"need": 4, "search": 1}
    newest = store.stage_members("need")
    assert newest == [
        StageMember("p-0", 3000),
        StageMember("p-3", 2000),
        StageMember("p-2", 2000),
        StageMember("p-1", 1000),
    ]
    assert store.stage_members("need", newest_first=False) == newest[::-1]
    assert store.stage_members("need", offset=1, limit=2) == newest[1:3]
    assert store.stage_members("need", limit=0) == []
    assert store.stage_members("nowhere") == []
    with pytest.raises(ValueError):
        store.stage_members("need", offset=-1)


def test_stage_counts_empty(store: ReadModelStore) -> None:
    assert store.stage_counts() == {}


def test_changes(client: fakeredis.FakeRedis, store: ReadModelStore) -> None:
    stream = layout.changes(NS)
    entries = [("p-1", "1", "upsert"), ("p-2", "2", "upsert"), ("p-1", "3", "delete")]
    ids = [layout_text(client.xadd(stream, {"p": p, "v": v, "op": op})) for p, v, op in entries]
    assert store.changes() == [
        Change(ids[0], "p-1", 1, ChangeOp.UPSERT),
        Change(ids[1], "p-2", 2, ChangeOp.UPSERT),
        Change(ids[2], "p-1", 3, ChangeOp.DELETE),
    ]
    assert [c.id for c in store.changes(after_id=ids[0])] == ids[1:]
    assert [c.id for c in store.changes(after_id=ids[0], count=1)] == ids[1:2]
    assert store.changes(after_id=ids[2]) == []
    assert store.first_change_id() == ids[0]
    with pytest.raises(ValueError):
        store.changes(after_id="yesterday")
    with pytest.raises(ValueError):
        store.changes(count=0)


def test_first_change_id_of_empty_stream(store: ReadModelStore) -> None:
    assert store.first_change_id() is None
    assert store.changes() == []


def test_wipe_only_touches_the_namespace(client: fakeredis.FakeRedis) -> None:
    store = ReadModelStore(client, NS)
    seed_profile(client, "p-1", 1, b"{}", "need", 1)
    seed_identifier(client, "email:a@example.com", "p-1", 1)
    client.hset(layout.meta(NS), "layout", "1")
    for i in range(2500):  # more than one UNLINK batch
        seed_alias(client, f"p-a{i}", "p-1", 1)
    client.set("tunitx:v1:profile:p-1", b"other namespace")
    client.set("tunit", b"no colon, not ours")
    client.set("unrelated", b"x")
    assert store.wipe() == 2500 + 5
    assert sorted(client.keys()) == [b"tunit", b"tunitx:v1:profile:p-1", b"unrelated"]
    assert store.wipe() == 0


def test_dump(client: fakeredis.FakeRedis, store: ReadModelStore) -> None:
    client.hset(layout.meta(NS), mapping={"layout": "1", "rebuilt_at": "whenever"})
    seed_profile(client, "p-2", 7, b"two", "need", 20)
    seed_profile(client, "p-1", 5, b"one")
    seed_profile(client, "p-0", 9, None)
    seed_identifier(client, "email:b@example.com", "p-2", 6)
    seed_identifier(client, "email:a@example.com", "p-1", 4)
    seed_identifier(client, "email:gone@example.com", None, 8)
    seed_alias(client, "p-9", "p-1", 3)
    client.xadd(layout.changes(NS), {"p": "p-1", "v": "5", "op": "upsert"})

    assert store.dump() == {
        "layout": 1,
        "profiles": {
            "p-1": {"document": b"one", "stage": None, "stage_entered_ms": None},
            "p-2": {"document": b"two", "stage": "need", "stage_entered_ms": 20},
        },
        "identifiers": {
            "email:a@example.com": {"profile_id": "p-1"},
            "email:b@example.com": {"profile_id": "p-2"},
        },
        "aliases": {"p-9": {"profile_id": "p-1"}},
        "stages": {"need": [["p-2", 20]]},
        "stage_registry": ["need"],
        "funnel": {},
        "stays": {},
        "unknown_keys": [],
    }
    full = store.dump(include_versions=True)
    assert full["profiles"]["p-1"]["version"] == 5
    assert full["identifiers"]["email:a@example.com"] == {"profile_id": "p-1", "version": 4}
    assert full["aliases"]["p-9"] == {"profile_id": "p-1", "version": 3}
    assert full["profile_tombstones"] == {"p-0": 9}
    gone = layout.identifier_digest("email:gone@example.com")
    assert full["identifier_tombstones"] == {gone: 8}
    assert list(full["identifiers"]) == sorted(full["identifiers"])
    assert store.consistency_problems() == []


def test_dump_of_empty_namespace(store: ReadModelStore) -> None:
    assert store.dump() == {
        "layout": None,
        "profiles": {},
        "identifiers": {},
        "aliases": {},
        "stages": {},
        "stage_registry": [],
        "funnel": {},
        "stays": {},
        "unknown_keys": [],
    }


def test_consistency_problems_are_found(client: fakeredis.FakeRedis, store: ReadModelStore) -> None:
    seed_profile(client, "p-1", 1, b"{}", "need", 5)
    client.zrem(layout.stage(NS, "need"), "p-1")  # profile says need, set lost it
    client.zadd(layout.stage(NS, "search"), {"p-2": 1})  # member without a profile
    client.hset(layout.profile(NS, "p-3"), "doc", b"{}")  # no version
    client.set(f"{NS}:v1:junk", b"?")
    client.hset(
        layout.identifier_by_digest(NS, "0" * 32),
        mapping={"v": "1", "p": "p-1", "k": "email:x@example.com"},
    )
    problems = store.consistency_problems()
    assert any("p-1 in stage need" in p for p in problems)
    assert any("stage set search holds p-2" in p for p in problems)
    assert any("stage registry" in p for p in problems)
    assert any("has no version" in p for p in problems)
    assert any("junk" in p for p in problems)
    assert any("digest" in p for p in problems)
    assert f"{NS}:v1:junk" in store.dump()["unknown_keys"]


# ------------------------------------------------- the apply script (needs lupa)


def test_apply_on_fakeredis_with_lua(store: ReadModelStore) -> None:
    pytest.importorskip("lupa", reason="fakeredis runs Lua only with lupa installed")
    result = store.apply(
        [
            ProfileUpsert("p-1", 5, b"{}", "need", 10),
            ProfileUpsert("p-1", 4, b"old"),
            ProfileUpsert("p-1", 5, b"{}", "need", 10),
        ]
    )
    assert (result.applied, result.replayed, result.stale) == (2, 1, 1)
    assert store.stage_counts() == {"need": 1}
    assert store.apply([ProfileDelete("p-1", 6)]).applied == 1
    assert store.get_profile("p-1") is None
    assert store.stage_counts() == {}
    assert store.consistency_problems() == []


def _agg(counters: list[str], stays: list[list[object]] | None = None) -> bytes:
    return json.dumps({"h": counters, "z": stays or []}).encode()


def test_aggregates_follow_the_stored_profiles(store: ReadModelStore) -> None:
    a1 = _agg(["all|current|need", "all|reached|need"])
    a2 = _agg(
        ["all|current|search", "all|reached|need", "all|converted|need", "all|reached|search"],
        [["all|need", "p-1:0", 3600.0]],
    )
    b1 = _agg(["all|current|need", "all|reached|need"])
    store.apply([ProfileUpsert("p-1", 1, b"{}", "need", 10, a1)])
    store.apply([ProfileUpsert("p-2", 1, b"{}", "need", 10, b1)])
    assert store.dump()["funnel"] == {"all|current|need": 2, "all|reached|need": 2}
    store.apply([ProfileUpsert("p-1", 2, b"{1}", "search", 20, a2)])
    store.apply([ProfileUpsert("p-1", 2, b"{1}", "search", 20, a2)])  # replay: no change
    store.apply([ProfileUpsert("p-1", 1, b"{}", "need", 10, a1)])  # stale: no change
    dump = store.dump()
    assert dump["funnel"] == {
        "all|converted|need": 1,
        "all|current|need": 1,
        "all|current|search": 1,
        "all|reached|need": 2,
        "all|reached|search": 1,
    }
    assert dump["stays"] == {"all|need": [["p-1:0", 3600.0]]}
    store.apply([ProfileDelete("p-1", 3), ProfileDelete("p-2", 3)])
    dump = store.dump()
    assert dump["funnel"] == {} and dump["stays"] == {}
