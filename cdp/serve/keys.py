"""The Redis key layout of the read model, version 1 (``docs/specs/redis-layout.md``).

Every key of an installation starts with ``{namespace}:``; every data key with
``{namespace}:v1:``. The only key outside the versioned prefix is the meta key
``{namespace}:meta``, which records the layout version a namespace holds, so a
reader can find out which prefix to use before it reads anything else.

One function per key kind; nothing else in the code base spells a key. The Lua
scripts of :mod:`cdp.serve.scripts` receive complete key names (or, for the
per-stage sets, :func:`stage_prefix`) from here, so the layout lives in one place.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

LAYOUT_VERSION = 1
"""Version of the layout this module spells; part of every data key (``v1``)."""

NAMESPACE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
"""Same rule as ``Settings.namespace``: no ``:`` and no glob characters (safe in SCAN MATCH)."""

IDENTIFIER_DIGEST_CHARS = 32
"""Hex chars of ``sha256(identifier key)`` in an identifier index key (128 bits)."""

META_LAYOUT_FIELD = "layout"
"""Field of the meta hash that holds the layout version (decimal)."""


class KeyKind(StrEnum):
    """The kinds of keys the read model stores (the ``kind`` segment of a key)."""

    META = "meta"
    PROFILE = "profile"
    IDENTIFIER = "ident"
    ALIAS = "alias"
    STAGE = "stage"
    STAGES = "stages"
    CHANGES = "changes"
    FUNNEL = "funnel"
    STAYS = "stays"


def check_namespace(namespace: str) -> str:
    """Return ``namespace`` unchanged; raise :class:`ValueError` if it breaks the rule."""
    if not NAMESPACE_PATTERN.match(namespace):
        raise ValueError(f"invalid namespace {namespace!r}: expected {NAMESPACE_PATTERN.pattern}")
    return namespace


def namespace_pattern(namespace: str) -> str:
    """SCAN MATCH pattern of every key of ``namespace`` (meta key included)."""
    return f"{check_namespace(namespace)}:*"


def meta(namespace: str) -> str:
    """Hash ``{ns}:meta``: ``layout`` = the layout version of the namespace's data keys."""
    return f"{check_namespace(namespace)}:meta"


@lru_cache(maxsize=256)
def prefix(namespace: str) -> str:
    """The versioned prefix ``{ns}:v1:`` of every data key (cached: it is on every key)."""
    return f"{check_namespace(namespace)}:v{LAYOUT_VERSION}:"


def profile(namespace: str, profile_id: str) -> str:
    """Hash ``{ns}:v1:profile:{profile_id}``: document, version and journey stage."""
    return f"{prefix(namespace)}{KeyKind.PROFILE}:{profile_id}"


def identifier_digest(identifier_key: str) -> str:
    """The digest that names an identifier's index key (keeps raw PII out of key names)."""
    return hashlib.sha256(identifier_key.encode("utf-8")).hexdigest()[:IDENTIFIER_DIGEST_CHARS]


def identifier(namespace: str, identifier_key: str) -> str:
    """Hash ``{ns}:v1:ident:{digest}``: the profile id an identifier key belongs to."""
    return identifier_by_digest(namespace, identifier_digest(identifier_key))


def identifier_by_digest(namespace: str, digest: str) -> str:
    """The identifier index key for an already computed :func:`identifier_digest`."""
    return f"{prefix(namespace)}{KeyKind.IDENTIFIER}:{digest}"


def alias(namespace: str, alias_id: str) -> str:
    """Hash ``{ns}:v1:alias:{alias_id}``: the profile id ``alias_id`` was merged into."""
    return f"{prefix(namespace)}{KeyKind.ALIAS}:{alias_id}"


def stage_prefix(namespace: str) -> str:
    """``{ns}:v1:stage:``; :func:`stage` is this plus the stage name (the Lua side relies on it)."""
    return f"{prefix(namespace)}{KeyKind.STAGE}:"


def stage(namespace: str, stage_name: str) -> str:
    """Sorted set ``{ns}:v1:stage:{stage}``: profile ids in the stage, score = entered-at ms."""
    return f"{stage_prefix(namespace)}{stage_name}"


def stages(namespace: str) -> str:
    """Set ``{ns}:v1:stages``: names of the stages whose sorted set is not empty."""
    return f"{prefix(namespace)}{KeyKind.STAGES}"


def changes(namespace: str) -> str:
    """Stream ``{ns}:v1:changes``: one entry per applied profile write, capped."""
    return f"{prefix(namespace)}{KeyKind.CHANGES}"


def funnel(namespace: str) -> str:
    """Hash ``{ns}:v1:funnel``: funnel and moment counters (``all|current|need`` -> n).

    Each profile adds its share (see :mod:`cdp.serve.journey`); the apply script
    replaces a profile's old share with its new one atomically.
    """
    return f"{prefix(namespace)}{KeyKind.FUNNEL}"


def stays_prefix(namespace: str) -> str:
    """``{ns}:v1:stays:``; :func:`stays` is this plus ``{segment}|{stage}``."""
    return f"{prefix(namespace)}{KeyKind.STAYS}:"


def stays(namespace: str, segment: str, stage_name: str) -> str:
    """Sorted set ``{ns}:v1:stays:{segment}|{stage}``: closed stays, score = seconds.

    Members are ``{profile_id}:{n}`` (the profile's n-th transition began the stay).
    """
    return f"{stays_prefix(namespace)}{segment}|{stage_name}"


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """A key of the namespace split into its kind and the id it is about."""

    kind: KeyKind
    ident: str
    """Profile id, identifier digest, alias id or stage name; ``""`` for singleton keys."""


def parse(namespace: str, key: str) -> ParsedKey | None:
    """Classify a key of ``namespace``; None for keys this layout does not define."""
    if key == meta(namespace):
        return ParsedKey(KeyKind.META, "")
    base = prefix(namespace)
    if not key.startswith(base):
        return None
    rest = key[len(base) :]
    if rest == KeyKind.STAGES:
        return ParsedKey(KeyKind.STAGES, "")
    if rest == KeyKind.CHANGES:
        return ParsedKey(KeyKind.CHANGES, "")
    if rest == KeyKind.FUNNEL:
        return ParsedKey(KeyKind.FUNNEL, "")
    kind_name, sep, ident = rest.partition(":")
    if not sep or not ident:
        return None
    for kind in (
        KeyKind.PROFILE,
        KeyKind.IDENTIFIER,
        KeyKind.ALIAS,
        KeyKind.STAGE,
        KeyKind.STAYS,
    ):
        if kind_name == kind.value:
            return ParsedKey(kind, ident)
    return None
