"""Profiles as a pure function of a set of facts (no Kafka, Faust or Redis here).

The profile stage turns each event into a :class:`Fact`
(:func:`fact_from_event`), keeps the facts of a profile keyed by event id,
merges profiles by set union (:func:`merge_fact_sets`) and renders the
document with :func:`build_profile`. The format and rules are documented in
``docs/profiles.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cdp.profile.computed import (
    ALL_CHANNELS,
    ComputedTraits,
    Consent,
    ConsentDecision,
    LatestValue,
    compute_traits,
    is_consented,
    resolve_consent,
)
from cdp.profile.facts import (
    FACT_DATA_FIELDS,
    PAYLOAD_TRAITS,
    Fact,
    fact_from_event,
    merge_fact_sets,
    order_key,
    sort_facts,
)
from cdp.profile.survivorship import (
    RuleName,
    TraitConfig,
    TraitRule,
    TraitValue,
    default_trait_config,
    load_trait_config,
    parse_trait_config,
    resolve_traits,
)

if TYPE_CHECKING:
    from cdp.profile.document import (
        ProfileDocument,
        build_profile,
        canonical_json,
        profile_from_json,
        profile_to_json,
    )

_DOCUMENT_NAMES = frozenset(
    {"ProfileDocument", "build_profile", "canonical_json", "profile_from_json", "profile_to_json"}
)


def __getattr__(name: str) -> Any:
    """The document names, imported on first use.

    :mod:`cdp.profile.document` depends on :mod:`cdp.journey`, which depends on
    :mod:`cdp.profile.facts`; importing it lazily keeps either package importable first.
    """
    if name in _DOCUMENT_NAMES:
        from cdp.profile import document

        return getattr(document, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALL_CHANNELS",
    "FACT_DATA_FIELDS",
    "PAYLOAD_TRAITS",
    "ComputedTraits",
    "Consent",
    "ConsentDecision",
    "Fact",
    "LatestValue",
    "ProfileDocument",
    "RuleName",
    "TraitConfig",
    "TraitRule",
    "TraitValue",
    "build_profile",
    "canonical_json",
    "compute_traits",
    "default_trait_config",
    "fact_from_event",
    "is_consented",
    "load_trait_config",
    "merge_fact_sets",
    "order_key",
    "parse_trait_config",
    "profile_from_json",
    "profile_to_json",
    "resolve_consent",
    "resolve_traits",
    "sort_facts",
]
