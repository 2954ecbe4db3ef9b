"""Survivorship: rule tables (incl. equal-time tie-breaks), provenance, config loading."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cdp.errors import ConfigError
from cdp.profile import (
    Fact,
    TraitConfig,
    TraitRule,
    TraitValue,
    default_trait_config,
    load_trait_config,
    parse_trait_config,
    resolve_traits,
)

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

CHANNELS = {"website": "web", "shop": "ecommerce", "callcenter": "callcenter", "crm": "crm"}

CONFIG = parse_trait_config(
    {
        "default": {"rule": "most_recent"},
        "traits": {
            "first_name": {"rule": "source_priority", "sources": ["crm", "shop", "website"]},
            "company": {
                "rule": "source_priority",
                "sources": ["crm", "channel:ecommerce"],
                "unlisted": "ignore",
            },
            "campaign": {"rule": "first_seen"},
            "city": {"rule": "most_recent"},
        },
    }
)


def fact(event_id: str, minutes: int, source: str, **traits: str) -> Fact:
    """A fact at ``T0 + minutes`` from ``source`` carrying ``traits``."""
    return Fact(
        event_id=event_id,
        event_time=T0 + timedelta(minutes=minutes),
        channel=CHANNELS.get(source, "web"),
        type="form_submit",
        source=source,
        traits=tuple(traits.items()),
    )


def winner(trait: str, facts: list[Fact], config: TraitConfig = CONFIG) -> str | None:
    """Event id of the winning fact, checked to be the same for every input order."""
    results = set()
    for order in itertools.permutations(facts):
        resolved = resolve_traits(order, config)
        value = resolved.get(trait)
        results.add(None if value is None else (value.event_id, value.value))
    assert len(results) == 1, f"order-dependent result: {results}"
    found = results.pop()
    return None if found is None else found[0]


# id prefixes make the event-id tie-break visible: "a..." < "b..."
@pytest.mark.parametrize(
    ("trait", "facts", "expected"),
    [
        # most_recent
        ("city", [fact("a1", 0, "crm", city="X"), fact("b1", 5, "website", city="Y")], "b1"),
        ("city", [fact("b1", 0, "crm", city="X"), fact("a1", 5, "website", city="Y")], "a1"),
        ("city", [fact("a1", 5, "crm", city="X"), fact("b1", 5, "website", city="Y")], "b1"),
        ("city", [fact("b1", 5, "crm", city="X"), fact("a1", 5, "website", city="Y")], "b1"),
        ("city", [fact("a1", 5, "crm", city="X"), fact("b1", 9, "website")], "a1"),
        # default rule (unlisted trait) is most_recent
        (
            "phone_type",
            [fact("a", 1, "crm", phone_type="m"), fact("b", 0, "shop", phone_type="l")],
            "a",
        ),
        # first_seen
        (
            "campaign",
            [fact("a1", 5, "website", campaign="X"), fact("b1", 0, "website", campaign="Y")],
            "b1",
        ),
        (
            "campaign",
            [fact("a1", 5, "website", campaign="X"), fact("b1", 5, "website", campaign="Y")],
            "a1",
        ),
        (
            "campaign",
            [fact("b1", 5, "website", campaign="X"), fact("a1", 5, "website", campaign="Y")],
            "a1",
        ),
        # source_priority: the best source wins even when older
        (
            "first_name",
            [fact("a", 0, "crm", first_name="A"), fact("b", 9, "website", first_name="B")],
            "a",
        ),
        (
            "first_name",
            [fact("a", 0, "shop", first_name="A"), fact("b", 9, "website", first_name="B")],
            "a",
        ),
        # ... among its facts the most recent, equal times by event id
        (
            "first_name",
            [
                fact("a", 0, "crm", first_name="A"),
                fact("b", 4, "crm", first_name="B"),
                fact("c", 9, "shop", first_name="C"),
            ],
            "b",
        ),
        (
            "first_name",
            [fact("a", 4, "crm", first_name="A"), fact("b", 4, "crm", first_name="B")],
            "b",
        ),
        (
            "first_name",
            [fact("b", 4, "crm", first_name="A"), fact("a", 4, "crm", first_name="B")],
            "b",
        ),
        # unlisted sources rank last (but count when nothing better is there)
        (
            "first_name",
            [fact("a", 0, "callcenter", first_name="A"), fact("b", 0, "website", first_name="B")],
            "b",
        ),
        (
            "first_name",
            [fact("a", 0, "callcenter", first_name="A"), fact("b", 9, "erp", first_name="B")],
            "b",
        ),
        ("first_name", [fact("b", 0, "callcenter", first_name="A")], "b"),
        # channel: entries; unlisted: ignore
        ("company", [fact("a", 0, "shop", company="A"), fact("b", 9, "website", company="B")], "a"),
        ("company", [fact("a", 0, "shop", company="A"), fact("b", 0, "crm", company="B")], "b"),
        ("company", [fact("a", 0, "website", company="A")], None),
    ],
)
def test_rule_table(trait: str, facts: list[Fact], expected: str | None) -> None:
    assert winner(trait, facts) == expected


def test_provenance_is_kept() -> None:
    facts = [
        fact("e-web", 9, "website", first_name="Anne", city="Berlin"),
        fact("e-crm", 1, "crm", first_name="Anna", campaign="spring"),
    ]
    resolved = resolve_traits(facts, CONFIG)
    assert list(resolved) == ["campaign", "city", "first_name"]  # names sorted
    assert resolved["first_name"] == TraitValue(
        value="Anna",
        source="crm",
        channel="crm",
        event_time=T0 + timedelta(minutes=1),
        event_id="e-crm",
        rule="source_priority",
    )
    assert resolved["city"].rule == "most_recent"
    assert resolved["city"].source == "website"
    assert resolved["city"].channel == "web"
    assert resolved["campaign"].rule == "first_seen"
    assert "Anna" not in repr(resolved["first_name"])


def test_no_traits_no_result() -> None:
    assert resolve_traits([], CONFIG) == {}
    assert resolve_traits([fact("a", 0, "crm")], CONFIG) == {}


def test_rank() -> None:
    rule = CONFIG.rule_for("first_name")
    assert [rule.rank(s, CHANNELS[s]) for s in ("crm", "shop", "website", "callcenter")] == [
        0,
        1,
        2,
        3,
    ]
    assert CONFIG.rule_for("company").rank("x", "ecommerce") == 1
    assert CONFIG.rule_for("company").rank("x", "web") is None
    assert CONFIG.rule_for("anything") is CONFIG.default
    assert TraitRule(rule="most_recent").rank("x", "web") == 0


# --------------------------------------------------------------------------- config


def test_packaged_default() -> None:
    config = load_trait_config()
    assert config == default_trait_config()
    assert config.default.rule == "most_recent"
    for name in ("first_name", "last_name", "job_title", "company"):
        rule = config.rule_for(name)
        assert rule.rule == "source_priority"
        assert rule.sources[:4] == ("crm", "shop", "callcenter", "website")
    assert config.rule_for("favourite_colour").rule == "most_recent"
    with pytest.raises(Exception, match="frozen"):
        config.default = TraitRule(rule="first_seen")  # type: ignore[misc]


def test_empty_file_is_the_builtin_default(tmp_path: Path) -> None:
    path = tmp_path / "traits.yaml"
    path.write_text("", encoding="utf-8")
    assert load_trait_config(path) == TraitConfig()


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "traits.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_trait_config(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    return message


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("traits:\n  first_name: {rule: newest}\n", "traits.first_name.rule", "source_priority"),
        (
            "traits:\n  first_name: {rule: source_priority}\n",
            "traits.first_name.sources",
            "at least one",
        ),
        (
            "traits:\n  first_name: {rule: source_priority, sources: []}\n",
            "traits.first_name.sources",
            "at least one",
        ),
        (
            "traits:\n  city: {rule: most_recent, sources: [crm]}\n",
            "traits.city.sources",
            "only for",
        ),
        (
            "traits:\n  city: {rule: first_seen, unlisted: ignore}\n",
            "traits.city.unlisted",
            "only for",
        ),
        (
            "traits:\n  first_name: {rule: source_priority, sources: [crm, 'channel:fax']}\n",
            "traits.first_name.sources[1]",
            "unknown channel 'fax'",
        ),
        (
            "traits:\n  first_name: {rule: source_priority, sources: [crm, crm]}\n",
            "traits.first_name.sources[1]",
            "listed twice",
        ),
        (
            "traits:\n  first_name: {rule: source_priority, sources: [crm, ' ']}\n",
            "traits.first_name.sources[1]",
            "non-blank",
        ),
        (
            "traits:\n  first_name: {rule: source_priority, sources: [crm], unlisted: drop}\n",
            "traits.first_name.unlisted",
            "'last' or 'ignore'",
        ),
        ("traits:\n  First-Name: {rule: most_recent}\n", "traits.First-Name", "pattern"),
        ("traits:\n  city: {rule: most_recent, weight: 3}\n", "traits.city.weight", "Extra"),
        ("default: {rule: source_priority}\n", "default.sources", "at least one"),
        ("defaults: {rule: most_recent}\n", "defaults", "Extra"),
        ("traits: [first_name]\n", "traits", "dictionary"),
        ("- a\n- b\n", "", "mapping at the top level"),
        ("traits: {first_name: [\n", "", "not valid YAML"),
    ],
)
def test_config_errors_name_file_and_field(
    tmp_path: Path, text: str, field: str, problem: str
) -> None:
    message = _error(tmp_path, text)
    assert f": {field}" in message, message
    assert problem in message, message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read"):
        load_trait_config(path)


def test_parse_names_its_source() -> None:
    data: Any = {"traits": {"x": {"rule": "first_seen", "sources": ["crm"]}}}
    with pytest.raises(ConfigError, match=r"^custom\.yaml: traits\.x\.sources: only for"):
        parse_trait_config(data, "custom.yaml")
