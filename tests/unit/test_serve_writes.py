"""Read-model writes: validation, and how a batch is encoded for the apply script."""

from __future__ import annotations

import hashlib

import pytest

from cdp.serve import (
    AliasSet,
    ApplyResult,
    IdentifierLink,
    IdentifierUnlink,
    Outcome,
    ProfileDelete,
    ProfileUpsert,
)
from cdp.serve import keys as layout
from cdp.serve.scripts import APPLY_SHA, APPLY_SOURCE, decode, encode
from cdp.serve.writes import MAX_VERSION

NS = "cdp"


def test_valid_writes() -> None:
    ProfileUpsert("p-1", 0, b"{}")
    ProfileUpsert("p-1", MAX_VERSION, b"{}", "need", 1_700_000_000_000)
    ProfileDelete("p-1", 3)
    IdentifierLink("email:a@example.com", "p-1", 3)
    IdentifierUnlink("email:a@example.com", 3)
    AliasSet("p-0", "p-1", 3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ProfileUpsert("p-1", -1, b"{}"),
        lambda: ProfileUpsert("p-1", MAX_VERSION + 1, b"{}"),
        lambda: ProfileUpsert("", 1, b"{}"),
        lambda: ProfileUpsert("p-1", 1, b""),
        lambda: ProfileUpsert("p-1", 1, b"{}", "need", None),
        lambda: ProfileUpsert("p-1", 1, b"{}", None, 5),
        lambda: ProfileUpsert("p-1", 1, b"{}", "", 5),
        lambda: ProfileUpsert("p-1", 1, b"{}", "need", -5),
        lambda: ProfileDelete("p-1", -1),
        lambda: IdentifierLink("", "p-1", 1),
        lambda: IdentifierLink("email:a", "", 1),
        lambda: IdentifierUnlink("email:a", -1),
        lambda: AliasSet("", "p-1", 1),
        lambda: AliasSet("p-1", "", 1),
    ],
)
def test_invalid_writes_are_refused(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


@pytest.mark.parametrize("version", [True, 1.0, "1", None])
def test_versions_must_be_ints(version: object) -> None:
    with pytest.raises(TypeError):
        ProfileDelete("p-1", version)  # type: ignore[arg-type]


def test_document_must_be_bytes() -> None:
    with pytest.raises(ValueError):
        ProfileUpsert("p-1", 1, "{}")  # type: ignore[arg-type]


def test_encode_layout() -> None:
    calls = encode(
        NS,
        [
            ProfileUpsert("p-1", 7, b'{"a":1}', "need", 1000, b'{"h":["all|current|need"]}'),
            ProfileUpsert("p-2", 8, b"{}"),
            ProfileDelete("p-3", 9),
            IdentifierLink("email:a@example.com", "p-1", 10),
            IdentifierUnlink("email:b@example.com", 11),
            AliasSet("p-0", "p-1", 12),
        ],
        maxlen=1234,
        writes_per_call=100,
    )
    assert len(calls) == 1
    call = calls[0]
    assert call.writes == 6
    assert call.keys == (
        layout.meta(NS),
        layout.changes(NS),
        layout.stages(NS),
        layout.funnel(NS),
        layout.profile(NS, "p-1"),
        layout.profile(NS, "p-2"),
        layout.profile(NS, "p-3"),
        layout.identifier(NS, "email:a@example.com"),
        layout.identifier(NS, "email:b@example.com"),
        layout.alias(NS, "p-0"),
    )
    assert call.args == (
        "1",
        "1234",
        layout.stage_prefix(NS),
        layout.stays_prefix(NS),
        *("U", "p-1", "7", b'{"a":1}', "need", "1000", b'{"h":["all|current|need"]}'),
        *("U", "p-2", "8", b"{}", "", "", b""),
        *("D", "p-3", "9"),
        *("L", "p-1", "10", "email:a@example.com"),
        *("X", "11"),
        *("A", "p-1", "12"),
    )


def test_encode_splits_into_calls_in_order() -> None:
    batch = [ProfileDelete(f"p-{i}", i) for i in range(10)]
    calls = encode(NS, batch, maxlen=10, writes_per_call=4)
    assert [c.writes for c in calls] == [4, 4, 2]
    ids = [arg for c in calls for arg in c.args if isinstance(arg, str) and arg.startswith("p-")]
    assert ids == [f"p-{i}" for i in range(10)]
    assert encode(NS, [], maxlen=10, writes_per_call=4) == []
    with pytest.raises(ValueError):
        encode(NS, batch, maxlen=10, writes_per_call=0)


def test_encode_refuses_other_objects() -> None:
    with pytest.raises(TypeError):
        encode(NS, ["not a write"], maxlen=10, writes_per_call=4)  # type: ignore[list-item]


def test_decode() -> None:
    assert decode(b"0120", 4) == [Outcome.STALE, Outcome.APPLIED, Outcome.REPLAYED, Outcome.STALE]
    assert decode("", 0) == []
    with pytest.raises(ValueError):
        decode(b"01", 3)
    with pytest.raises(ValueError):
        decode(b"013", 3)


def test_script_sha_matches_source() -> None:
    assert hashlib.sha1(APPLY_SOURCE.encode()).hexdigest() == APPLY_SHA


def test_apply_result_counts() -> None:
    result = ApplyResult((Outcome.APPLIED, Outcome.REPLAYED, Outcome.STALE, Outcome.APPLIED))
    assert (result.applied, result.replayed, result.stale) == (3, 1, 1)
    empty = ApplyResult()
    assert (empty.applied, empty.replayed, empty.stale) == (0, 0, 0)
