"""Profiles as a pure function of a set of facts (no Kafka, Faust or Redis here).

The profile stage turns each event into a :class:`Fact`
(:func:`fact_from_event`), keeps the facts of a profile keyed by event id,
merges profiles by set union (:func:`merge_fact_sets`) and renders the
document with :func:`build_profile`. The format and rules are documented in
``docs/profiles.md``.
"""

from __future__ import annotations

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
from cdp.profile.document import (
    ProfileDocument,
    build_profile,
    canonical_json,
    profile_from_json,
    profile_to_json,
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
