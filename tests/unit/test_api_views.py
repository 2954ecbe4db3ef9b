"""Field-level views: path rules, projection, refusal of fields outside a view."""

from __future__ import annotations

import copy

import pytest

from cdp.api.access import load_access_config
from cdp.api.views import FieldNotInView, View, check_path, parse_fields
from tests.api_support import document


@pytest.fixture(scope="module")
def views() -> dict[str, View]:
    return load_access_config().views


def test_paths_are_validated() -> None:
    assert check_path("traits.first_name") == "traits.first_name"
    for bad in ["", ".", "a..b", "a.", "traits.first name", "a" * 65, ".".join("a" * 9), "a*"]:
        with pytest.raises(ValueError):
            check_path(bad)


def test_parse_fields() -> None:
    assert parse_fields(None) is None
    assert parse_fields(" traits , journey.stage,traits") == ["journey.stage", "traits"]
    for bad in ["", ",", "traits,,consent", "a b", ",".join(f"f{i}" for i in range(51))]:
        with pytest.raises(ValueError):
            parse_fields(bad)


def test_view_keeps_the_minimal_paths() -> None:
    view = View(["traits", "traits.first_name", "computed.order_count", "computed.revenue"])
    assert view.paths == ("computed.order_count", "computed.revenue", "traits")
    assert view.covers("traits.first_name") and view.covers("traits")
    assert not view.covers("computed") and not view.covers("consent")
    assert view.covers("profile_id")
    assert View(["*", "traits"]).paths == ("*",)


def test_projection_copies_exactly_the_covered_parts() -> None:
    doc = document("p-1", ["email:anna@example.com"])
    original = copy.deepcopy(doc)
    view = View(["traits.first_name", "computed.order_count", "computed.nothing", "journey.stage"])
    out = view.project(doc)
    assert out == {
        "profile_id": "p-1",
        "traits": {"first_name": doc["traits"]["first_name"]},
        "computed": {"order_count": 1},
        "journey": {"stage": "search"},
    }
    assert doc == original  # the source is never modified


def test_projection_skips_paths_through_scalars() -> None:
    out = View(["event_count.deeper", "identifiers.x"]).project(
        {"profile_id": "p", "event_count": 3}
    )
    assert out == {"profile_id": "p"}


def test_requested_fields_narrow_and_are_checked() -> None:
    doc = document("p-1", ["email:anna@example.com"])
    view = View(["traits", "journey.stage", "journey.owner"])
    assert view.project(doc, ["journey.stage"]) == {
        "profile_id": "p-1",
        "journey": {"stage": "search"},
    }
    assert view.project(doc, ["traits.first_name", "traits"])["traits"] == doc["traits"]
    with pytest.raises(FieldNotInView) as refused:
        view.project(doc, ["journey", "traits", "journey.score"])
    assert refused.value.paths == ["journey", "journey.score"]


def test_star_view_passes_unknown_fields_through_restricted_views_do_not() -> None:
    doc = document("p-1", ["email:anna@example.com"], extra={"future_field": {"x": 1}})
    assert View(["*"]).project(doc) == doc
    assert "future_field" not in View(["traits"]).project(doc)


def test_dev_views_match_the_departments(views: dict[str, View]) -> None:
    service, marketing, sales, admin = (
        views[d] for d in ("service", "marketing", "sales", "admin")
    )
    assert service.covers("computed.open_tickets") and service.covers("computed.avg_satisfaction")
    assert not service.covers("consent") and not service.covers("journey.score")
    assert not service.covers("computed.lead_status")
    assert marketing.covers("consent") and marketing.covers("segments")
    assert marketing.covers("journey.stage") and marketing.covers("journey.history")
    assert not marketing.covers("journey.score") and not marketing.covers("computed.open_tickets")
    assert sales.covers("journey.score") and sales.covers("computed.lead_status")
    assert sales.covers("journey.owner") and sales.covers("computed.opportunity_stage")
    assert not sales.covers("consent") and not sales.covers("computed.avg_satisfaction")
    assert admin.all


def test_service_projection_of_a_full_document(views: dict[str, View]) -> None:
    doc = document("p-1", ["email:anna@example.com"])
    out = views["service"].project(doc)
    assert set(out) == {
        "profile_id",
        "identifiers",
        "traits",
        "computed",
        "journey",
        "sources",
        "event_count",
    }
    assert set(out["traits"]) == {"first_name", "last_name"}
    assert out["journey"] == {
        "stage": "search",
        "owner": "marketing",
        "entered_at": "2026-03-02T09:00:00Z",
    }
    assert "lead_status" not in out["computed"] and out["computed"]["open_tickets"] == ["T-4711"]
