"""Lead qualification filters and the stable id of a qualification.

A profile is never handed to sales when one of the filters of the journey's
``qualification`` section applies (checked in this order, the first reason
found is reported):

1. ``competitor_domain``: one of its ``email:`` identifier keys has an
   excluded domain (or a subdomain of one);
2. ``consultant_title``: its ``job_title`` trait matches an excluded pattern;
3. ``crm_status``: its latest CRM lead status (``lead_status_change``) is excluded.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

from cdp.journey.definition import Qualification
from cdp.journey.predicates import compiled
from cdp.profile.facts import Fact

QUALIFICATION_NAMESPACE = uuid.UUID("6b1f3c52-0f7e-4c39-9a51-3e0d2f7c9b10")
"""UUID namespace of qualification ids (:func:`qualification_id`)."""


class ExclusionReason(StrEnum):
    """Why a profile is never handed to sales."""

    COMPETITOR_DOMAIN = "competitor_domain"
    """An email address of an excluded domain."""
    CONSULTANT_TITLE = "consultant_title"
    """A job title that matches an excluded pattern."""
    CRM_STATUS = "crm_status"
    """The latest CRM lead status is an excluded one."""


def email_domain(key: str) -> str | None:
    """The domain of an ``email:local@domain`` identifier key (lower case), else ``None``."""
    kind, _, value = key.partition(":")
    if kind != "email" or "@" not in value:
        return None
    return value.rsplit("@", 1)[1].lower()


def _domain_excluded(domain: str, excluded: Sequence[str]) -> bool:
    return any(domain == item or domain.endswith("." + item) for item in excluded)


def latest_lead_status(ordered: Sequence[Fact]) -> str | None:
    """Status of the latest ``lead_status_change`` fact that has one (facts sorted)."""
    for fact in reversed(ordered):
        if fact.type == "lead_status_change":
            status = fact.get("status")
            if status is not None:
                return str(status)
    return None


def exclusion_reason(
    identifiers: Iterable[str],
    traits: Mapping[str, str],
    ordered: Sequence[Fact],
    qualification: Qualification,
) -> ExclusionReason | None:
    """The first filter that keeps the profile from sales, or ``None``."""
    domains = qualification.excluded_email_domains
    if domains:
        for key in identifiers:
            domain = email_domain(key)
            if domain is not None and _domain_excluded(domain, domains):
                return ExclusionReason.COMPETITOR_DOMAIN
    title = traits.get("job_title")
    if title is not None and any(
        compiled(pattern).search(title) for pattern in qualification.excluded_job_titles
    ):
        return ExclusionReason.CONSULTANT_TITLE
    statuses = qualification.excluded_lead_statuses
    if statuses:
        status = latest_lead_status(ordered)
        if status is not None and status.strip().lower() in statuses:
            return ExclusionReason.CRM_STATUS
    return None


def eligible(
    identifiers: Iterable[str], traits: Mapping[str, str], qualification: Qualification
) -> bool:
    """Whether the profile has every required identifier type and trait to qualify."""
    kinds = {key.partition(":")[0] for key in identifiers}
    return all(kind in kinds for kind in qualification.required_identifiers) and all(
        traits.get(name) for name in qualification.required_traits
    )


def qualification_id(journey: str, event_id: str) -> str:
    """Stable id of a qualification: a UUID of the journey name and the crossing event id.

    It does not depend on the profile id, so it survives profile merges and
    re-deliveries; consumers dedupe hand-offs on it.
    """
    return str(uuid.uuid5(QUALIFICATION_NAMESPACE, f"{journey}/{event_id}"))
