"""The writes the streaming stages send to the read model (:meth:`ReadModelStore.apply`).

Every write carries a ``version``: an integer that only grows for the key it
writes (the writers pass the Kafka offset of the input record that produced
it). A write applies only if its version is >= the version stored on its key.
Versions must be exact in a Lua number, so they are limited to ``0 .. 2**53-1``
(Kafka offsets stay far below that).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_VERSION = 2**53 - 1
"""Largest version (and stage timestamp) a Lua number (IEEE double) holds exactly."""


def _check_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= MAX_VERSION:
        raise ValueError(f"{name} must be in 0..2**53-1, got {value}")


def _check_id(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty str")


@dataclass(frozen=True, slots=True)
class ProfileUpsert:
    """Store a profile's document (opaque bytes) and its journey stage.

    ``stage`` None: the profile has no stage (it leaves any stage set it was in).
    ``stage_entered_ms`` (epoch ms, the score in the stage set) is required with
    a stage and must be None without one.
    """

    profile_id: str
    version: int
    document: bytes
    stage: str | None = None
    stage_entered_ms: int | None = None
    aggregates: bytes = b""
    """The profile's share of the funnel and moment counters: JSON
    ``{"h": [counter field, ...], "z": [[stays suffix, member, seconds], ...]}``
    (:func:`cdp.serve.journey.aggregate_entries`); empty = none."""

    def __post_init__(self) -> None:
        _check_id("profile_id", self.profile_id)
        _check_int("version", self.version)
        if not isinstance(self.document, bytes) or not self.document:
            raise ValueError("document must be non-empty bytes")
        if self.stage is None:
            if self.stage_entered_ms is not None:
                raise ValueError("stage_entered_ms given without a stage")
        else:
            _check_id("stage", self.stage)
            if self.stage_entered_ms is None:
                raise ValueError("stage_entered_ms is required with a stage")
            _check_int("stage_entered_ms", self.stage_entered_ms)


@dataclass(frozen=True, slots=True)
class ProfileDelete:
    """Delete a profile (GDPR erasure, or merged away): document and stage go, a tombstone stays.

    The tombstone keeps ``version`` so an older upsert cannot bring the profile back.
    """

    profile_id: str
    version: int

    def __post_init__(self) -> None:
        _check_id("profile_id", self.profile_id)
        _check_int("version", self.version)


@dataclass(frozen=True, slots=True)
class IdentifierLink:
    """Point an identifier key (``"email:anna@example.com"``) at a profile id."""

    identifier_key: str
    profile_id: str
    version: int

    def __post_init__(self) -> None:
        _check_id("identifier_key", self.identifier_key)
        _check_id("profile_id", self.profile_id)
        _check_int("version", self.version)


@dataclass(frozen=True, slots=True)
class IdentifierUnlink:
    """Remove an identifier from the index; a tombstone keeps ``version`` (no raw identifier)."""

    identifier_key: str
    version: int

    def __post_init__(self) -> None:
        _check_id("identifier_key", self.identifier_key)
        _check_int("version", self.version)


@dataclass(frozen=True, slots=True)
class AliasSet:
    """Record that ``alias_id`` (merged-away or candidate profile id) resolves to ``profile_id``."""

    alias_id: str
    profile_id: str
    version: int

    def __post_init__(self) -> None:
        _check_id("alias_id", self.alias_id)
        _check_id("profile_id", self.profile_id)
        _check_int("version", self.version)
        # alias_id == profile_id is allowed: a self-alias says "this id is current"
        # (readers stop there), so the alias set is a function of the assignments.


Write = ProfileUpsert | ProfileDelete | IdentifierLink | IdentifierUnlink | AliasSet
"""Any write :meth:`ReadModelStore.apply` accepts."""
