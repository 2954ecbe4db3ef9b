"""The versioned Redis key layout (cdp.serve.keys)."""

from __future__ import annotations

import fnmatch

import pytest

from cdp.serve import keys
from cdp.serve.keys import KeyKind, ParsedKey

NS = "cdp"


def test_every_data_key_is_under_the_versioned_prefix() -> None:
    assert keys.prefix(NS) == "cdp:v1:"
    assert keys.LAYOUT_VERSION == 1
    data_keys = [
        keys.profile(NS, "p-1"),
        keys.identifier(NS, "email:anna@example.com"),
        keys.alias(NS, "p-0"),
        keys.stage(NS, "need"),
        keys.stages(NS),
        keys.changes(NS),
    ]
    assert all(k.startswith("cdp:v1:") for k in data_keys)
    assert len(set(data_keys)) == len(data_keys)


def test_key_spelling() -> None:
    assert keys.meta(NS) == "cdp:meta"
    assert keys.profile(NS, "p-abc") == "cdp:v1:profile:p-abc"
    assert keys.alias(NS, "p-abc") == "cdp:v1:alias:p-abc"
    assert keys.stage(NS, "need") == "cdp:v1:stage:need"
    assert keys.stages(NS) == "cdp:v1:stages"
    assert keys.changes(NS) == "cdp:v1:changes"


def test_stage_key_is_prefix_plus_name() -> None:
    # the Lua script builds stage keys as stage_prefix .. stage
    for name in ("need", "search", "Empfehlung", "with space"):
        assert keys.stage(NS, name) == keys.stage_prefix(NS) + name


def test_identifier_keys_hold_no_raw_identifier() -> None:
    key = keys.identifier(NS, "email:anna@example.com")
    assert "anna" not in key and "example" not in key
    digest = keys.identifier_digest("email:anna@example.com")
    assert key == f"cdp:v1:ident:{digest}" == keys.identifier_by_digest(NS, digest)
    assert len(digest) == keys.IDENTIFIER_DIGEST_CHARS
    assert int(digest, 16) >= 0
    assert keys.identifier_digest("email:anna@example.com") != keys.identifier_digest(
        "email:anna@example.org"
    )


def test_identifier_digest_is_stable() -> None:
    # changing the digest changes the layout: the value is pinned
    assert keys.identifier_digest("email:anna@example.com") == ("d3f7f41e7d44762cc478f4fc1bf1ea1e")


@pytest.mark.parametrize("bad", ["", "Cdp", "1cdp", "cdp:x", "cdp*", "c" * 32, "cdp x"])
def test_bad_namespaces_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        keys.profile(bad, "p-1")
    with pytest.raises(ValueError, match="namespace"):
        keys.namespace_pattern(bad)


def test_namespace_pattern_matches_only_its_namespace() -> None:
    pattern = keys.namespace_pattern("t1")
    assert fnmatch.fnmatchcase(keys.profile("t1", "p-1"), pattern)
    assert fnmatch.fnmatchcase(keys.meta("t1"), pattern)
    assert not fnmatch.fnmatchcase(keys.profile("t10", "p-1"), pattern)
    assert not fnmatch.fnmatchcase(keys.profile("t1x", "p-1"), pattern)


def test_parse_round_trips_every_kind() -> None:
    digest = keys.identifier_digest("phone:+4930123")
    cases = {
        keys.meta(NS): ParsedKey(KeyKind.META, ""),
        keys.profile(NS, "p-1"): ParsedKey(KeyKind.PROFILE, "p-1"),
        keys.identifier(NS, "phone:+4930123"): ParsedKey(KeyKind.IDENTIFIER, digest),
        keys.alias(NS, "p-0"): ParsedKey(KeyKind.ALIAS, "p-0"),
        keys.stage(NS, "need"): ParsedKey(KeyKind.STAGE, "need"),
        keys.stage(NS, "a:b"): ParsedKey(KeyKind.STAGE, "a:b"),
        keys.stages(NS): ParsedKey(KeyKind.STAGES, ""),
        keys.changes(NS): ParsedKey(KeyKind.CHANGES, ""),
    }
    for key, parsed in cases.items():
        assert keys.parse(NS, key) == parsed


@pytest.mark.parametrize(
    "key",
    ["cdp:v2:profile:p-1", "cdp:v1:nope:x", "cdp:v1:profile:", "cdp:v1:profile", "other:meta"],
)
def test_parse_rejects_keys_outside_the_layout(key: str) -> None:
    assert keys.parse(NS, key) is None
