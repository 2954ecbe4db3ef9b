"""Identity resolution: typed identifiers, configuration and the deterministic identity graph.

Pure Python (no Kafka, Faust or Redis); the identity stream stage wraps
:class:`IdentityGraph`. The rules are documented in ``docs/identity.md``.
"""

from __future__ import annotations

from cdp.identity.clustering import Evidence, ProfileId, candidate_id, cluster
from cdp.identity.config import (
    IdentifierTypeConfig,
    IdentityConfig,
    UnknownTypeDefaults,
    default_identity_config,
    load_identity_config,
    parse_identity_config,
)
from cdp.identity.graph import GraphChange, IdentityGraph, IdentityRecord, Merge, Split
from cdp.identity.identifiers import (
    IdentifierKey,
    RawIdentifier,
    Verdict,
    classify,
    key_type,
    make_key,
    normalize,
    primary_identifier,
    split_key,
    usable_identifiers,
)

__all__ = [
    "Evidence",
    "GraphChange",
    "IdentifierKey",
    "IdentifierTypeConfig",
    "IdentityConfig",
    "IdentityGraph",
    "IdentityRecord",
    "Merge",
    "ProfileId",
    "RawIdentifier",
    "Split",
    "UnknownTypeDefaults",
    "Verdict",
    "candidate_id",
    "classify",
    "cluster",
    "default_identity_config",
    "key_type",
    "load_identity_config",
    "make_key",
    "normalize",
    "parse_identity_config",
    "primary_identifier",
    "split_key",
    "usable_identifiers",
]
