"""The processor decorator, discovery and the per-input decisions (cdp.processors)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cdp.contracts import events as ev
from cdp.contracts.events import Identifier
from cdp.errors import EventError
from cdp.processors import Input, Processor, ProcessorError, State, discover, processor
from cdp.processors import discovery as discovery_module
from cdp.processors.steps import on_event, on_profile
from cdp.profile import build_profile, default_trait_config
from cdp.profile.derived import derived_fact, derived_fact_id, is_derived, parse_derived_fact
from cdp.profile.facts import fact_from_event
from cdp.settings import load_settings

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


def view(minutes: int, category: str = "sensors", event_id: str | None = None) -> ev.Event:
    extra: dict[str, Any] = {} if event_id is None else {"event_id": event_id}
    return ev.ProductView(
        source="shop",
        event_time=T0 + timedelta(minutes=minutes),
        identifiers=[Identifier.email("anna@example.com")],
        payload=ev.ProductViewPayload(product_id="P-1", category=category),
        **extra,
    )


@processor(event_types={"product_view"})
def last_category(event: ev.Event, state: State) -> str | None:
    """Counts views; returns the latest category."""
    state["n"] = state.get("n", 0) + 1
    return getattr(event.payload, "category", None)


@processor("vip", input=Input.PROFILES, trait="segment")
def vip(profile: Any) -> str | None:
    return "vip" if profile.computed.order_count >= 2 else None


# --------------------------------------------------------------------------- decorator


def test_decorator_names_input_and_trait() -> None:
    assert isinstance(last_category, Processor)
    assert (last_category.name, last_category.trait, last_category.input) == (
        "last_category",
        "last_category",
        Input.EVENTS,
    )
    assert last_category.stateful and last_category.event_types == {"product_view"}
    assert (vip.name, vip.trait, vip.input.topic) == ("vip", "segment", "profile.changes")
    assert last_category.description == "Counts views; returns the latest category."
    assert last_category(view(0), {}) == "sensors"  # still callable like the function


@pytest.mark.parametrize(
    ("kwargs", "function", "message"),
    [
        ({"name": "Bad-Name"}, lambda e: None, "not lower_snake_case"),
        ({"trait": "9x"}, lambda e: None, "trait '9x'"),
        ({"input": Input.PROFILES}, lambda p, s: None, "takes (profile)"),
        ({"input": Input.PROFILES, "event_types": {"order"}}, lambda p: None, "Input.EVENTS only"),
        ({}, lambda: None, "takes (event[, state])"),
    ],
)
def test_decorator_rejects_bad_definitions(kwargs: Any, function: Any, message: str) -> None:
    with pytest.raises(ProcessorError, match=re.escape(message)):
        processor(**{"name": "x", **kwargs})(function)


# --------------------------------------------------------------------------- derived facts


def test_derived_facts_replace_and_never_count_as_events() -> None:
    assert derived_fact_id("a", "t", "email:x") == derived_fact_id("a", "t", "email:x")
    assert derived_fact_id("a", "t", "email:x") != derived_fact_id("a", "t", "email:y")
    fact = derived_fact("a", "t", "email:x", "high", T0)
    assert is_derived(fact) and fact.source == "processor:a"
    assert parse_derived_fact(json.dumps(fact.to_json()).encode()) == fact
    event_fact = fact_from_event(view(0))
    doc = build_profile("p", [event_fact, fact], default_trait_config())
    assert doc.traits["t"].value == "high"
    assert doc.event_count == 1 and doc.sources == ["shop"]
    assert doc.computed.events_by_channel == {"ecommerce": 1}


@pytest.mark.parametrize(
    "value",
    [b"not json", b'{"id": "x"}', json.dumps(fact_from_event(view(0)).to_json()).encode()],
)
def test_only_derived_facts_are_accepted_on_the_computed_topic(value: bytes) -> None:
    with pytest.raises(EventError):
        parse_derived_fact(value)


# --------------------------------------------------------------------------- steps


def test_event_step_keeps_state_dedupes_and_uses_the_latest_time() -> None:
    first, state = on_event(last_category, "email:a", view(5, "sensors", _id(1)), None)
    assert [e.fact.traits_dict for e in first] == [{"last_category": "sensors"}]
    assert state is not None and state["s"] == {"n": 1}
    again, unchanged = on_event(last_category, "email:a", view(5, "sensors", _id(1)), state)
    assert (again, unchanged) == ([], None)  # a re-delivery is not passed again
    earlier, state = on_event(last_category, "email:a", view(1, "gateways", _id(2)), state)
    assert state is not None and state["s"] == {"n": 2}
    assert earlier[0].fact.event_time == T0 + timedelta(minutes=5)  # latest time seen
    skipped = on_event(last_category, "email:a", _order(), state)
    assert skipped == ([], None)


def test_profile_step_emits_only_when_the_document_differs() -> None:
    facts = [fact_from_event(_order(n)) for n in range(2)]
    keys = ["customer_id:c-1", "email:anna@example.com"]
    doc = build_profile("p", facts, default_trait_config(), identifiers=keys)
    emissions = on_profile(vip, doc)
    assert len(emissions) == 1 and emissions[0].fact.traits_dict == {"segment": "vip"}
    assert emissions[0].fact.event_time == doc.computed.last_seen
    settled = build_profile(
        "p", [*facts, emissions[0].fact], default_trait_config(), identifiers=keys
    )
    assert on_profile(vip, settled) == []  # no feedback loop


def test_profile_step_replaces_a_stale_fact_of_another_member() -> None:
    facts = [fact_from_event(_order(n)) for n in range(2)]
    keys = ["customer_id:c-1", "email:anna@example.com"]
    designated = max(keys, key=lambda k: derived_fact_id("vip", "segment", k))
    other = next(k for k in keys if k != designated)
    stale = derived_fact("vip", "segment", other, "old", T0 + timedelta(days=9))
    doc = build_profile("p", [*facts, stale], default_trait_config(), identifiers=keys)
    emissions = on_profile(vip, doc)
    assert sorted(e.key for e in emissions) == keys
    fixed = build_profile(
        "p", [*facts, *(e.fact for e in emissions)], default_trait_config(), identifiers=keys
    )
    assert fixed.traits["segment"].value == "vip" and on_profile(vip, fixed) == []


def test_value_none_removes_an_earlier_value() -> None:
    facts = [fact_from_event(_order(0))]
    keys = ["customer_id:c-1"]
    earlier = derived_fact("vip", "segment", keys[0], "vip", T0)
    doc = build_profile("p", [*facts, earlier], default_trait_config(), identifiers=keys)
    emissions = on_profile(vip, doc)
    assert [e.fact.traits for e in emissions] == [()]
    gone = build_profile("p", [*facts, emissions[0].fact], default_trait_config(), identifiers=keys)
    assert "segment" not in gone.traits and on_profile(vip, gone) == []


def test_a_value_that_is_no_string_is_an_error() -> None:
    wrong = processor("wrong")(lambda event: 3)
    with pytest.raises(TypeError, match="expected str or None"):
        on_event(wrong, "email:a", view(0), None)


# --------------------------------------------------------------------------- discovery

GOOD = '''
from cdp.processors import Input, processor

@processor(input=Input.PROFILES)
def {name}(profile):
    """A test processor."""
    return None
'''


def _folder(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for file, text in files.items():
        (folder / file).write_text(text)
    return folder


def test_discovery_finds_folder_modules_and_filters(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        "plugins_a",
        {"one.py": GOOD.format(name="one"), "two.py": GOOD.format(name="two"), "_x.py": "1/0"},
    )
    found = discover(load_settings(processors_path=str(folder)))
    assert [p.name for p in found] == ["one", "two"]
    assert found[0].origin == str(folder / "one.py")
    only = discover(load_settings(processors_path=str(folder), processors="two"))
    assert [p.name for p in only] == ["two"]
    assert discover(load_settings(processors_path=str(folder), processors="")) == []
    with pytest.raises(ProcessorError, match="no processor named three"):
        discover(load_settings(processors_path=str(folder), processors="three"))


def test_the_checkout_folder_holds_the_examples() -> None:
    names = [p.name for p in discover(load_settings())]
    assert {"churn_risk", "product_affinity"} <= set(names)


def test_a_module_that_fails_to_import_is_named(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "plugins_b", {"broken.py": "import no_such_module_here\n"})
    with pytest.raises(ProcessorError, match=r"broken\.py failed to import: ModuleNotFoundError"):
        discover(load_settings(processors_path=str(folder)))


def test_two_processors_with_one_name_are_refused(tmp_path: Path) -> None:
    one = _folder(tmp_path, "plugins_c", {"same.py": GOOD.format(name="same")})
    two = _folder(tmp_path, "plugins_d", {"same.py": GOOD.format(name="same")})
    with pytest.raises(ProcessorError, match="defined twice"):
        discover(load_settings(processors_path=f"{one}:{two}"))


def test_entry_points_add_processors(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = SimpleNamespace(name="vip", value="tests:vip", load=lambda: vip)
    broken = SimpleNamespace(name="bad", value="x:y", load=lambda: 42)
    monkeypatch.setattr(discovery_module, "entry_points", lambda group: [entry])
    found = discover(load_settings(processors_path=""))
    assert [(p.name, p.origin) for p in found] == [("vip", "entry point vip = tests:vip")]
    monkeypatch.setattr(discovery_module, "entry_points", lambda group: [broken])
    with pytest.raises(ProcessorError, match="entry point bad = x:y: not a processor"):
        discover(load_settings(processors_path=""))


def _order(n: int = 0) -> ev.Event:
    return ev.Order(
        source="shop",
        event_time=T0 + timedelta(days=n),
        identifiers=[Identifier.customer_id("C-1"), Identifier.email("anna@example.com")],
        payload=ev.OrderPayload(order_id=f"O-{n}", value="10.00", currency="EUR", items=1),
    )


def _id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"
