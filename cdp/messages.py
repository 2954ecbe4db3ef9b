"""JSON messages on the internal topics between the stages (see ``docs/topics.md``).

Compact JSON (short field names) because every event crosses these topics.
Each message type has one ``to_bytes`` and one ``parse`` so producer and
consumer cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson


def embed_json(value: Any) -> Any:
    """``default`` of :func:`orjson.dumps`: ``bytes`` are JSON already and go in as they are.

    The stages keep each fact as its canonical JSON bytes (:func:`cdp.profile.facts.encode_fact`)
    and write them into table changelogs and ``profile.facts`` messages unchanged.
    """
    if isinstance(value, bytes):
        return orjson.Fragment(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """Canonical compact JSON bytes (sorted keys, UTF-8); ``bytes`` values are embedded JSON."""
    return orjson.dumps(value, default=embed_json, option=orjson.OPT_SORT_KEYS)


def dumps_to_keep(value: Any) -> bytes:
    """:func:`dumps` as a right-sized copy, for bytes kept in memory.

    orjson (3.12 on) returns buffers of at least 4 KiB whatever the JSON's length;
    a typical fact is 250 bytes, so a kept fact would hold 16 times its size.
    """
    return memoryview(dumps(value)).tobytes()


@dataclass(frozen=True)
class Observation:
    """The usable identifier keys one event carried (``identity.observations``)."""

    event_id: str
    event_time: datetime
    keys: tuple[str, ...]

    def to_bytes(self) -> bytes:
        """Serialise."""
        return dumps({"e": self.event_id, "t": self.event_time.isoformat(), "k": list(self.keys)})

    @classmethod
    def parse(cls, data: bytes) -> Observation:
        """Deserialise."""
        return cls.from_json(orjson.loads(data))

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Observation:
        """From the parsed JSON object."""
        return cls(raw["e"], datetime.fromisoformat(raw["t"]), tuple(raw["k"]))


@dataclass(frozen=True)
class ErasureRequest:
    """Forget a person (GDPR erasure, ``identity.observations``, keyed by the audit id).

    ``keys`` are identifier keys of the person; the identity stage erases the
    whole profile(s) they belong to. ``audit_id`` ties it to the audit event.
    """

    keys: tuple[str, ...]
    audit_id: str

    def to_bytes(self) -> bytes:
        """Serialise."""
        return dumps({"op": "erase", "k": list(self.keys), "a": self.audit_id})


IdentityInput = Observation | ErasureRequest


def parse_identity_input(data: bytes) -> IdentityInput:
    """Deserialise an ``identity.observations`` record: an observation or an erasure request."""
    raw = orjson.loads(data)
    if raw.get("op") == "erase":
        return ErasureRequest(tuple(raw["k"]), str(raw["a"]))
    return Observation.from_json(raw)


@dataclass(frozen=True)
class Assignment:
    """Identifier key -> profile id, as decided by the identity stage (``identity.assignments``).

    The key of the Kafka record is the identifier key; ``version`` is the
    offset of the observation that produced it.
    """

    profile_id: str
    version: int

    def to_bytes(self) -> bytes:
        """Serialise."""
        return dumps({"p": self.profile_id, "v": self.version})

    @classmethod
    def parse(cls, data: bytes) -> Assignment:
        """Deserialise."""
        raw = orjson.loads(data)
        return cls(raw["p"], int(raw["v"]))


@dataclass(frozen=True)
class FactsAdded:
    """Facts of one member identifier for a profile (``profile.facts``, keyed by profile id)."""

    member: str
    facts: Mapping[str, Any]
    """event id -> fact: its canonical JSON bytes (a parsed message) or its JSON form."""

    def to_bytes(self) -> bytes:
        """Serialise."""
        return dumps({"op": "add", "m": self.member, "f": dict(self.facts)})


@dataclass(frozen=True)
class MemberReleased:
    """A member identifier left the profile; drop its facts (``profile.facts``)."""

    member: str

    def to_bytes(self) -> bytes:
        """Serialise."""
        return dumps({"op": "release", "m": self.member})


@dataclass(frozen=True)
class MembersSet:
    """The authoritative member list of a profile, from the identity stage (``profile.facts``).

    An empty list means the profile id is no longer current (merged away).
    """

    members: Sequence[str]
    version: int

    def to_bytes(self) -> bytes:
        """Serialise."""
        return dumps({"op": "members", "m": list(self.members), "v": self.version})


@dataclass(frozen=True)
class ProfileErased:
    """The person of this profile id was erased: forget everything (``profile.facts``).

    Facts that arrive later for the id are dropped until the identity stage
    makes it current again (a non-empty :class:`MembersSet`).
    """

    version: int

    def to_bytes(self) -> bytes:
        """Serialise."""
        return dumps({"op": "erase", "v": self.version})


FactsMessage = FactsAdded | MemberReleased | MembersSet | ProfileErased


def parse_facts_message(data: bytes) -> FactsMessage:
    """Deserialise a ``profile.facts`` message."""
    raw = orjson.loads(data)
    op = raw["op"]
    if op == "add":
        facts = {event_id: dumps_to_keep(fact) for event_id, fact in raw["f"].items()}
        return FactsAdded(raw["m"], facts)
    if op == "release":
        return MemberReleased(raw["m"])
    if op == "members":
        return MembersSet(tuple(raw["m"]), int(raw["v"]))
    if op == "erase":
        return ProfileErased(int(raw["v"]))
    raise ValueError(f"unknown profile.facts op {op!r}")
