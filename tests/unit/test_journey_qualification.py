"""Qualification: exclusions (competitor domain, consultant title, CRM status), required
identifiers and traits, and stable ids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cdp.journey import (
    ExclusionReason,
    JourneyState,
    Qualification,
    evaluate_journey,
    qualification_id,
)
from cdp.journey.qualification import eligible, email_domain
from cdp.profile.facts import Fact
from cdp.profile.survivorship import TraitValue
from tests.unit.test_journey_support import fact, journey

DEFINITION = journey(
    """
scoring:
  threshold: 10
  weights: {form_submit: 10, page_view: 1}
qualification:
  excluded_email_domains: ["@Rival.example", competitor.example]
  excluded_job_titles: ["(?i)\\\\bconsultant\\\\b", "(?i)^freelance"]
  excluded_lead_statuses: [Disqualified, competitor]
"""
)

REQUIRING = journey(
    """
scoring:
  threshold: 10
  weights: {form_submit: 10, page_view: 1}
qualification:
  excluded_email_domains: [rival.example]
  excluded_job_titles: ["(?i)\\\\bconsultant\\\\b"]
  required_identifiers: [email]
  required_traits: [job_title]
"""
)
"""Like :data:`DEFINITION` but only profiles with an email and a job title qualify."""

EMAIL = ["anonymous_id:a-1", "email:anna@example.com"]
CTO = {"job_title": "CTO"}


def _lead(*extra: Fact, traits: dict[str, str] | None = None) -> list[Fact]:
    return [
        fact(
            "form_submit",
            0,
            event_id="form",
            form_id="f",
            form_type="demo_request",
            traits=traits or {},
        ),
        *extra,
    ]


def test_qualified_lead() -> None:
    state = evaluate_journey(_lead(), DEFINITION, identifiers=["email:anna@example.com"])
    assert state.qualified
    assert state.excluded is None
    assert state.qualification_event_id == "form"
    assert state.qualification_id == qualification_id("test", "form")


def test_domains_are_normalised_at_load() -> None:
    assert DEFINITION.qualification.excluded_email_domains == (
        "rival.example",
        "competitor.example",
    )


@pytest.mark.parametrize(
    ("identifiers", "excluded"),
    [
        (["email:bob@rival.example"], True),
        (["email:bob@sales.rival.example"], True),  # subdomain
        (["phone:+491701234567", "email:x@example.com", "email:y@competitor.example"], True),
        (["email:bob@notrival.example"], False),
        (["email:bob@rival.example.com"], False),
        (["customer_id:rival.example"], False),
    ],
)
def test_competitor_domain(identifiers: list[str], excluded: bool) -> None:
    state = evaluate_journey(_lead(), DEFINITION, identifiers=identifiers)
    if excluded:
        assert state.excluded is ExclusionReason.COMPETITOR_DOMAIN
        assert not state.qualified
        assert state.qualification_id is None
        assert state.qualified_at is None
        assert state.score == 10.0  # the score is still shown
    else:
        assert state.excluded is None
        assert state.qualified


@pytest.mark.parametrize(
    ("title", "excluded"),
    [
        ("Senior Consultant", True),
        ("SAP CONSULTANT", True),
        ("Freelance developer", True),
        ("Consultancy manager", False),
        ("Head of IT (not freelance)", False),
    ],
)
def test_consultant_title(title: str, excluded: bool) -> None:
    state = evaluate_journey(_lead(traits={"job_title": title}), DEFINITION)
    assert (state.excluded is ExclusionReason.CONSULTANT_TITLE) is excluded
    assert state.qualified is not excluded


def test_title_from_resolved_traits() -> None:
    resolved = {
        "job_title": TraitValue(
            value="IT Consultant",
            source="crm",
            channel="crm",
            event_time=datetime(2026, 1, 1, tzinfo=UTC),
            event_id="x",
            rule="most_recent",
        )
    }
    state = evaluate_journey(_lead(traits={"job_title": "CTO"}), DEFINITION, traits=resolved)
    assert state.excluded is ExclusionReason.CONSULTANT_TITLE
    assert evaluate_journey(_lead(), DEFINITION, traits={"job_title": "CTO"}).qualified


def test_crm_status_latest_counts() -> None:
    flagged = _lead(fact("lead_status_change", 5, status="disqualified"))
    state = evaluate_journey(flagged, DEFINITION)
    assert state.excluded is ExclusionReason.CRM_STATUS
    assert not state.qualified
    competitor = _lead(fact("lead_status_change", 5, status="Competitor"))
    assert evaluate_journey(competitor, DEFINITION).excluded is ExclusionReason.CRM_STATUS
    requalified = [*flagged, fact("lead_status_change", 9, status="qualified")]
    assert evaluate_journey(requalified, DEFINITION).excluded is None


def test_first_reason_wins() -> None:
    facts = _lead(
        fact("lead_status_change", 5, status="competitor"), traits={"job_title": "Consultant"}
    )
    state = evaluate_journey(facts, DEFINITION, identifiers=["email:a@rival.example"])
    assert state.excluded is ExclusionReason.COMPETITOR_DOMAIN
    assert evaluate_journey(facts, DEFINITION).excluded is ExclusionReason.CONSULTANT_TITLE


def test_qualification_id_is_stable_under_later_facts() -> None:
    facts = [
        fact("page_view", 0, page_category="blog"),
        fact("form_submit", 10, event_id="crossing", form_id="f", form_type="contact"),
    ]
    first = evaluate_journey(facts, DEFINITION)
    assert first.qualification_id is not None
    later = [
        *facts,
        fact("form_submit", 20, form_id="f", form_type="contact"),
        fact("page_view", 60 * 24 * 365, page_category="blog"),  # decayed: no longer qualified
    ]
    second = evaluate_journey(later, DEFINITION)
    assert second.qualification_id == first.qualification_id
    assert second.qualified_at == first.qualified_at
    assert second.qualification_event_id == "crossing"
    assert not second.qualified


def test_qualification_id_does_not_depend_on_the_profile() -> None:
    assert qualification_id("b2b", "e1") == qualification_id("b2b", "e1")
    assert qualification_id("b2b", "e1") != qualification_id("b2b", "e2")
    assert qualification_id("b2b", "e1") != qualification_id("other", "e1")


def test_email_domain() -> None:
    assert email_domain("email:anna@Example.com") == "example.com"
    assert email_domain("phone:+49") is None
    assert email_domain("email:broken") is None


def test_default_journey_excludes_consultants_and_competitors() -> None:
    from cdp.journey import default_journey

    definition = default_journey()
    facts = [
        fact("page_view", 0, page_category="pricing"),
        fact("form_submit", 0, form_id="demo", form_type="demo_request"),
        fact("call", 0, direction="inbound"),
        fact("download", 0, asset_type="whitepaper"),
    ]
    email = ["email:anna@example.com"]
    assert evaluate_journey(facts, definition, identifiers=email, traits=CTO).qualified
    consultant = evaluate_journey(
        facts, definition, identifiers=email, traits={"job_title": "IT Consultant"}
    )
    assert consultant.excluded is ExclusionReason.CONSULTANT_TITLE
    assert not consultant.qualified
    competitor = evaluate_journey(
        facts, definition, identifiers=["email:x@competitor.example"], traits=CTO
    )
    assert competitor.excluded is ExclusionReason.COMPETITOR_DOMAIN
    assert not competitor.qualified


def test_required_fields_default_to_nothing() -> None:
    assert DEFINITION.qualification.required_identifiers == ()
    assert DEFINITION.qualification.required_traits == ()
    assert REQUIRING.qualification.required_identifiers == ("email",)
    assert REQUIRING.qualification.required_traits == ("job_title",)


def _not_qualified_but_scored(state: JourneyState) -> None:
    assert state.score == 10.0  # the threshold is reached
    assert not state.qualified
    assert state.excluded is None  # not eligible yet is no exclusion
    assert state.qualified_at is None
    assert state.qualification_event_id is None
    assert state.qualification_id is None


@pytest.mark.parametrize(
    "identifiers",
    [
        [],
        ["anonymous_id:a-1"],
        ["anonymous_id:a-1", "phone:+491701234567", "customer_id:C-1"],
        ["customer_id:email:anna@example.com"],  # the type is what counts, not the value
    ],
)
def test_no_email_identifier_does_not_qualify(identifiers: list[str]) -> None:
    state = evaluate_journey(_lead(traits=CTO), REQUIRING, identifiers=identifiers)
    _not_qualified_but_scored(state)


@pytest.mark.parametrize("traits", [{}, {"job_title": ""}, {"company": "Nordwind GmbH"}])
def test_no_job_title_does_not_qualify(traits: dict[str, str]) -> None:
    state = evaluate_journey(_lead(), REQUIRING, identifiers=EMAIL, traits=traits)
    _not_qualified_but_scored(state)
    from_facts = evaluate_journey(_lead(traits=traits), REQUIRING, identifiers=EMAIL)
    _not_qualified_but_scored(from_facts)


def test_email_and_job_title_qualify() -> None:
    state = evaluate_journey(_lead(), REQUIRING, identifiers=EMAIL, traits=CTO)
    assert state.qualified
    assert state.excluded is None
    assert state.qualified_at == _lead()[0].event_time
    assert state.qualification_event_id == "form"
    assert state.qualification_id == qualification_id("test", "form")
    # the job title may come from the facts, too
    assert evaluate_journey(_lead(traits=CTO), REQUIRING, identifiers=EMAIL).qualified


def test_qualifies_once_the_missing_trait_arrives() -> None:
    anonymous = _lead()
    before = evaluate_journey(anonymous, REQUIRING, identifiers=EMAIL)
    _not_qualified_but_scored(before)
    # a CRM record with the title, at the same instant (no decay)
    known = [*anonymous, fact("contact_upsert", 0, contact_id="c-1", traits=CTO)]
    after = evaluate_journey(known, REQUIRING, identifiers=EMAIL)
    assert after.qualified
    # the crossing is where the score reached the threshold, not where the title came in,
    # so the id is the same whichever arrived first
    assert after.qualification_event_id == "form"
    assert after.qualification_id == qualification_id("test", "form")
    assert (
        after.qualification_id
        == evaluate_journey(_lead(traits=CTO), REQUIRING, identifiers=EMAIL).qualification_id
    )


def test_exclusions_apply_without_the_required_fields() -> None:
    competitor = evaluate_journey(_lead(), REQUIRING, identifiers=["email:bob@rival.example"])
    assert competitor.excluded is ExclusionReason.COMPETITOR_DOMAIN
    consultant = evaluate_journey(_lead(traits={"job_title": "IT Consultant"}), REQUIRING)
    assert consultant.excluded is ExclusionReason.CONSULTANT_TITLE
    for state in (competitor, consultant):
        assert not state.qualified
        assert state.qualification_id is None


def test_low_score_with_the_required_fields_does_not_qualify() -> None:
    facts = [fact("page_view", 0, page_category="blog")]
    state = evaluate_journey(facts, REQUIRING, identifiers=EMAIL, traits=CTO)
    assert not state.qualified
    assert state.qualification_id is None


REQUIRED = Qualification(required_identifiers=("email",), required_traits=("job_title",))


@pytest.mark.parametrize(
    ("identifiers", "traits", "expected"),
    [
        (["email:anna@example.com"], {"job_title": "CTO"}, True),
        (
            ["anonymous_id:a-1", "phone:+491701234567", "email:anna@example.com"],
            {"company": "Nordwind GmbH", "job_title": "CTO"},
            True,
        ),
        ([], {"job_title": "CTO"}, False),
        (["anonymous_id:a-1", "phone:+491701234567"], {"job_title": "CTO"}, False),
        (["customer_id:email"], {"job_title": "CTO"}, False),
        (["email:anna@example.com"], {}, False),
        (["email:anna@example.com"], {"job_title": ""}, False),
        (["email:anna@example.com"], {"title": "CTO"}, False),
        ([], {}, False),
    ],
)
def test_eligible(identifiers: list[str], traits: dict[str, str], expected: bool) -> None:
    assert eligible(identifiers, traits, REQUIRED) is expected
    assert eligible(iter(identifiers), traits, REQUIRED) is expected  # any iterable


def test_eligible_without_requirements_and_with_several() -> None:
    assert eligible([], {}, Qualification())
    several = Qualification(required_identifiers=("email", "phone"), required_traits=("a", "b"))
    both = {"a": "1", "b": "2"}
    assert eligible(["email:x@example.com", "phone:+491701234567"], both, several)
    assert not eligible(["email:x@example.com"], both, several)
    assert not eligible(["email:x@example.com", "phone:+491701234567"], {"a": "1"}, several)


def test_default_journey_requires_email_and_job_title() -> None:
    from cdp.journey import default_journey

    definition = default_journey()
    assert definition.qualification.required_identifiers == ("email",)
    assert definition.qualification.required_traits == ("job_title",)
    facts = [
        fact("page_view", 0, page_category="pricing"),
        fact("form_submit", 0, form_id="demo", form_type="demo_request"),
        fact("call", 0, direction="inbound"),
        fact("download", 0, asset_type="whitepaper"),
    ]
    email = ["email:anna@example.com"]
    anonymous = evaluate_journey(facts, definition, identifiers=["anonymous_id:a-1"], traits=CTO)
    untitled = evaluate_journey(facts, definition, identifiers=email)
    for state in (anonymous, untitled):
        assert state.score >= definition.scoring.threshold
        assert not state.qualified
        assert state.excluded is None
        assert state.qualification_id is None
    known = evaluate_journey(facts, definition, identifiers=email, traits=CTO)
    assert known.qualified
    assert known.qualification_id is not None
