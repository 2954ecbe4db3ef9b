"""Identifier normalisation: case, whitespace, E.164 phones, invalid and blocked values."""

from __future__ import annotations

import pytest

from cdp.identity import (
    IdentityConfig,
    Verdict,
    classify,
    default_identity_config,
    key_type,
    make_key,
    normalize,
    primary_identifier,
    split_key,
    usable_identifiers,
)
from cdp.identity.identifiers import MAX_VALUE_LENGTH, RawValue

CONFIG = default_identity_config()


@pytest.mark.parametrize(
    ("id_type", "raw", "expected"),
    [
        # email: strip + lower-case, nothing provider-specific
        ("email", "anna@example.com", "email:anna@example.com"),
        ("email", "  Anna.Schmidt@Example.COM\t", "email:anna.schmidt@example.com"),
        ("email", "anna+news@gmail.com", "email:anna+news@gmail.com"),
        ("email", "a.n.n.a@gmail.com", "email:a.n.n.a@gmail.com"),
        ("email", "jürgen@müller.de", "email:jürgen@müller.de"),
        ("email", "x@sub.example.co.uk", "email:x@sub.example.co.uk"),
        # phone: E.164, default region DE for national numbers
        ("phone", "+49 170 1234599", "phone:+491701234599"),
        ("phone", "0170 1234599", "phone:+491701234599"),
        ("phone", "0049 (170) 123-45-99", "phone:+491701234599"),
        ("phone", "+49 (0)30 8765432", "phone:+49308765432"),
        ("phone", " +1 650-253-0000 ", "phone:+16502530000"),
        # customer ids: strip, case kept
        ("customer_id", "  C-00042 ", "customer_id:C-00042"),
        ("customer_id", "c-00042", "customer_id:c-00042"),
        ("customer_id", 4711, "customer_id:4711"),
        ("crm_contact_id", "\t003Abc ", "crm_contact_id:003Abc"),
        # anonymous / device ids: strip + lower-case
        ("anonymous_id", " 7F3A-Bc ", "anonymous_id:7f3a-bc"),
        ("device_id", "IDFA-ABC", "device_id:idfa-abc"),
        # unknown types: default rule strip + collapse whitespace, case kept
        ("loyalty_card", "  LC   12\t34 ", "loyalty_card:LC 12 34"),
        ("x2_ref", "A", "x2_ref:A"),
        # the type name is stripped and lower-cased
        (" Email ", "anna@example.com", "email:anna@example.com"),
        ("PHONE", "0170 1234599", "phone:+491701234599"),
    ],
)
def test_normalize_table(id_type: str, raw: RawValue, expected: str) -> None:
    assert normalize(id_type, raw, CONFIG) == expected


@pytest.mark.parametrize(
    ("id_type", "raw"),
    [
        ("email", ""),
        ("email", "   "),
        ("email", "anna"),
        ("email", "anna@"),
        ("email", "@example.com"),
        ("email", "anna@example"),
        ("email", "anna@@example.com"),
        ("email", "an na@example.com"),
        ("email", "anna@exa mple.com"),
        ("email", ".anna@example.com"),
        ("email", "an..na@example.com"),
        ("email", "anna@-example.com"),
        ("email", "anna@example..com"),
        ("email", "<anna@example.com>"),
        ("email", "x" * 250 + "@example.com"),
        ("phone", ""),
        ("phone", "12"),
        ("phone", "not a number"),
        ("phone", "+49 000"),
        ("phone", "0" * 300),
        ("customer_id", "  "),
        ("anonymous_id", "\n"),
        ("customer_id", "x" * (MAX_VALUE_LENGTH + 1)),
        ("customer_id", None),
        ("customer_id", True),
        ("customer_id", 1.5),
        # malformed type names
        ("bad-type", "x"),
        ("1type", "x"),
        ("", "x"),
        ("ty pe", "x"),
    ],
)
def test_invalid_values_normalise_to_none(id_type: str, raw: RawValue | None) -> None:
    assert normalize(id_type, raw, CONFIG) is None
    assert classify(id_type, raw, CONFIG) == (Verdict.INVALID, None)


@pytest.mark.parametrize(
    ("id_type", "raw", "key"),
    [
        ("email", "TEST@test.com", "email:test@test.com"),
        ("email", " noreply@example.com", "email:noreply@example.com"),
        ("phone", "+49 30 1234567", "phone:+49301234567"),
        ("phone", "030/1234567", "phone:+49301234567"),
        ("phone", "0049301234567", "phone:+49301234567"),
        ("anonymous_id", "UNDEFINED", "anonymous_id:undefined"),
        ("device_id", "00000000-0000-0000-0000-000000000000", None),
    ],
)
def test_blocked_values_are_dropped(id_type: str, raw: str, key: str | None) -> None:
    verdict, blocked_key = classify(id_type, raw, CONFIG)
    assert verdict is Verdict.BLOCKED
    if key is not None:
        assert blocked_key == key
    assert normalize(id_type, raw, CONFIG) is None


def test_usable_identifiers_sorted_deduplicated_without_invalid_or_blocked() -> None:
    raw: list[tuple[str, RawValue | None]] = [
        ("phone", "0170 1234599"),
        ("email", "Anna@Example.com"),
        ("email", " anna@example.com "),
        ("phone", "+49 30 1234567"),  # blocked call-center number
        ("email", "test@test.com"),  # blocked
        ("email", "not-an-email"),
        ("customer_id", "C1"),
        ("anonymous_id", None),
        ("phone", "+491701234599"),
    ]
    expected = ["customer_id:C1", "email:anna@example.com", "phone:+491701234599"]
    assert usable_identifiers(raw, CONFIG) == expected
    assert usable_identifiers(reversed(raw), CONFIG) == expected
    assert usable_identifiers([], CONFIG) == []


def test_default_region_comes_from_config() -> None:
    us = IdentityConfig.model_validate({"default_region": "US"})
    assert normalize("phone", "(650) 253-0000", us) == "phone:+16502530000"
    assert normalize("phone", "(650) 253-0000", CONFIG) == "phone:+496502530000"  # read as German
    assert normalize("phone", "+49 170 1234599", us) == "phone:+491701234599"


def test_configured_rule_for_custom_type() -> None:
    config = IdentityConfig.model_validate(
        {"types": {"loyalty_card": {"priority": 35, "rule": "lower", "blocked": ["LC-0"]}}}
    )
    assert normalize("loyalty_card", " LC-77 ", config) == "loyalty_card:lc-77"
    assert normalize("loyalty_card", "lc-0", config) is None


def test_key_helpers() -> None:
    key = make_key("email", "anna@example.com")
    assert key == "email:anna@example.com"
    assert split_key(key) == ("email", "anna@example.com")
    assert key_type("phone:+49170") == "phone"
    assert split_key("x:a:b") == ("x", "a:b")
    with pytest.raises(ValueError, match="no ':'"):
        split_key("nocolon")


def test_primary_identifier_is_min_priority_then_key() -> None:
    keys = usable_identifiers(
        [("anonymous_id", "a1"), ("email", "b@example.com"), ("email", "a@example.com")], CONFIG
    )
    assert primary_identifier(keys, CONFIG) == "email:a@example.com"
    keys.append(make_key("customer_id", "Z9"))
    assert primary_identifier(keys, CONFIG) == "customer_id:Z9"
    assert primary_identifier([make_key("zzz_custom", "1")], CONFIG) == "zzz_custom:1"
    assert primary_identifier([], CONFIG) is None
