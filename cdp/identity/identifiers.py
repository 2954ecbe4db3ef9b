"""Typed identifiers: normalisation, validity, blocking, canonical keys.

An identifier is a ``(type, raw value)`` pair taken from an event, for example
``("email", " Anna@Example.COM ")``. :func:`normalize` turns it into an
:data:`IdentifierKey`, the canonical string ``"{type}:{normalised value}"``
(``"email:anna@example.com"``) that every later stage uses, Kafka keys
included. ``None`` means the identifier is unusable: blank, invalid for its
type, or blocked by the configuration.

Rules (see ``docs/identity.md``):

==========  =========================================================
rule        applied to the (stripped) value
==========  =========================================================
``email``   lower-cased; must look like ``local@domain.tld``
``phone``   parsed with ``phonenumbers`` (default region from config)
            and formatted as E.164; must be a valid number
``strip``   kept as is (case kept): ``customer_id``, ``crm_contact_id``
``lower``   lower-cased: ``anonymous_id``, ``device_id``
``text``    inner whitespace collapsed to one space: unknown types
==========  =========================================================

Type names are stripped and lower-cased and must match ``^[a-z][a-z0-9_]*$``;
the value after normalisation must not be longer than
:data:`MAX_VALUE_LENGTH` characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Literal, NewType

import phonenumbers

if TYPE_CHECKING:
    from cdp.identity.config import IdentityConfig

IdentifierKey = NewType("IdentifierKey", str)
"""Canonical identifier, ``"{type}:{normalised value}"``; sorts and hashes as a str."""

RawValue = str | int
"""A raw identifier value as it arrives on an event (ints are taken as their decimal text)."""

RawIdentifier = tuple[str, RawValue | None]
"""``(type, raw value)`` as carried by an event."""

Rule = Literal["email", "phone", "strip", "lower", "text"]
"""Name of a normalisation rule."""

BUILTIN_RULES: dict[str, Rule] = {
    "email": "email",
    "phone": "phone",
    "customer_id": "strip",
    "crm_contact_id": "strip",
    "anonymous_id": "lower",
    "device_id": "lower",
}
"""The rule of each built-in identifier type; any other type defaults to ``text``."""

DEFAULT_RULE: Rule = "text"
"""Rule of identifier types that are neither built in nor given a rule in the config."""

TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
"""What an identifier type name must look like (after strip + lower-case)."""

MAX_VALUE_LENGTH = 256
"""Longest accepted normalised value; longer values are invalid (they are keys downstream)."""

MAX_TYPE_LENGTH = 64
"""Longest accepted identifier type name."""

_WHITESPACE = re.compile(r"\s+")
_LABEL = r"[^\W_](?:(?:[^\W_]|-)*[^\W_])?"
_EMAIL = re.compile(
    r"^(?P<local>[^\s@\"(),:;<>\[\]\\]{1,64})@(?P<domain>(?:" + _LABEL + r"\.)+" + _LABEL + r")$"
)
_MAX_EMAIL_LENGTH = 254


class Verdict(StrEnum):
    """What :func:`classify` decided about one raw identifier."""

    USABLE = "usable"
    """Normalised, valid and not blocked: it takes part in identity resolution."""
    INVALID = "invalid"
    """Blank, malformed for its type, too long, or of a malformed type name."""
    BLOCKED = "blocked"
    """Valid, but listed as blocked in the configuration (shared or test value)."""


def make_key(id_type: str, normalised: str) -> IdentifierKey:
    """Join an already normalised type and value into an :data:`IdentifierKey`."""
    return IdentifierKey(f"{id_type}:{normalised}")


def split_key(key: IdentifierKey | str) -> tuple[str, str]:
    """Split a key into ``(type, normalised value)``; the type never contains ``:``."""
    id_type, sep, value = key.partition(":")
    if not sep:
        raise ValueError("not an identifier key (no ':')")
    return id_type, value


def key_type(key: IdentifierKey | str) -> str:
    """The identifier type of a key (``"email"`` for ``"email:anna@example.com"``)."""
    return key.partition(":")[0]


@lru_cache(maxsize=1024)
def normalize_type(id_type: str) -> str | None:
    """Strip and lower-case a type name; ``None`` if it is not ``^[a-z][a-z0-9_]*$``."""
    name = id_type.strip().lower()
    if len(name) > MAX_TYPE_LENGTH or not TYPE_PATTERN.match(name):
        return None
    return name


def _email(value: str) -> str | None:
    value = value.lower()
    if len(value) > _MAX_EMAIL_LENGTH:
        return None
    match = _EMAIL.match(value)
    if match is None:
        return None
    local = match.group("local")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    return value


@lru_cache(maxsize=65536)
def _e164(value: str, region: str) -> str | None:
    """E.164 form of a phone number, or ``None``; cached (parsing is the costly step)."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    formatted: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return formatted


def normalize_value(rule: Rule, value: str, default_region: str) -> str | None:
    """Apply one normalisation rule to a raw value; ``None`` if blank or invalid.

    This is the pure rule, without any blocked-list check; see :func:`normalize`.
    """
    value = value.strip()
    if not value:
        return None
    result: str | None
    if rule == "email":
        result = _email(value)
    elif rule == "phone":
        result = _e164(value, default_region) if len(value) <= MAX_VALUE_LENGTH else None
    elif rule == "strip":
        result = value
    elif rule == "lower":
        result = value.lower()
    else:
        result = _WHITESPACE.sub(" ", value)
    if result is None or len(result) > MAX_VALUE_LENGTH:
        return None
    return result


def _raw_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def classify(
    id_type: str, value: RawValue | None, config: IdentityConfig
) -> tuple[Verdict, IdentifierKey | None]:
    """Normalise one identifier and say whether it is usable, invalid or blocked.

    The key is returned for usable *and* blocked identifiers (it names the
    blocked value, e.g. for metrics without logging PII), ``None`` if invalid.
    """
    name = normalize_type(id_type) if isinstance(id_type, str) else None
    text = _raw_text(value)
    if name is None or text is None:
        return Verdict.INVALID, None
    normalised = normalize_value(config.rule_for(name), text, config.default_region)
    if normalised is None:
        return Verdict.INVALID, None
    key = make_key(name, normalised)
    if config.is_blocked(key):
        return Verdict.BLOCKED, key
    return Verdict.USABLE, key


def normalize(id_type: str, value: RawValue | None, config: IdentityConfig) -> IdentifierKey | None:
    """The canonical key of a usable identifier; ``None`` if blank, invalid or blocked.

    >>> normalize("email", " Anna@Example.COM ", config)  # doctest: +SKIP
    'email:anna@example.com'
    """
    verdict, key = classify(id_type, value, config)
    return key if verdict is Verdict.USABLE else None


def usable_identifiers(raw: Iterable[RawIdentifier], config: IdentityConfig) -> list[IdentifierKey]:
    """The usable keys of an event's identifiers: sorted, without duplicates.

    Invalid, blank and blocked identifiers are dropped. The order is the plain
    string order of the keys, so the result depends only on the set of inputs.
    """
    keys: set[IdentifierKey] = set()
    for id_type, value in raw:
        key = normalize(id_type, value, config)
        if key is not None:
            keys.add(key)
    return sorted(keys)


def primary_identifier(
    keys: Iterable[IdentifierKey], config: IdentityConfig
) -> IdentifierKey | None:
    """The strongest key: minimal ``(priority of its type, key)``; ``None`` if there is none.

    The primary identifier of an event decides which profile the event
    belongs to (see :meth:`cdp.identity.graph.IdentityGraph.profile_for_event`).
    """
    best: IdentifierKey | None = None
    best_rank: tuple[int, str] | None = None
    for key in keys:
        rank = (config.priority(key_type(key)), key)
        if best_rank is None or rank < best_rank:
            best, best_rank = key, rank
    return best
