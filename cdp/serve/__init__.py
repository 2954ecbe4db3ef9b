"""Serve: the Redis read model of profiles, identifiers, aliases, stages and the change stream.

Redis is a read model, Kafka the source of truth: writes are version-guarded
(:meth:`ReadModelStore.apply`), the key layout is versioned (:mod:`cdp.serve.keys`,
``docs/specs/redis-layout.md``) and a namespace can be wiped and rebuilt.
"""

from __future__ import annotations

from cdp.serve.scripts import Outcome
from cdp.serve.store import (
    DEFAULT_CHANGE_STREAM_MAXLEN,
    DEFAULT_WRITES_PER_CALL,
    MAX_ALIAS_HOPS,
    AliasCycleError,
    ApplyResult,
    Change,
    ChangeOp,
    LayoutMismatchError,
    ReadModelError,
    ReadModelStore,
    StageMember,
)
from cdp.serve.writes import (
    AliasSet,
    IdentifierLink,
    IdentifierUnlink,
    ProfileDelete,
    ProfileUpsert,
    Write,
)

__all__ = [
    "DEFAULT_CHANGE_STREAM_MAXLEN",
    "DEFAULT_WRITES_PER_CALL",
    "MAX_ALIAS_HOPS",
    "AliasCycleError",
    "AliasSet",
    "ApplyResult",
    "Change",
    "ChangeOp",
    "IdentifierLink",
    "IdentifierUnlink",
    "LayoutMismatchError",
    "Outcome",
    "ProfileDelete",
    "ProfileUpsert",
    "ReadModelError",
    "ReadModelStore",
    "StageMember",
    "Write",
]
