"""Identity configuration: per-type priority, per-profile limits, blocked values, region.

The configuration is data (YAML), validated by pydantic models. The packaged
default is ``cdp/identity/default_identity.yaml``; an installation points
:func:`load_identity_config` at its own file. Example::

    default_region: DE           # region of phone numbers written without +CC
    unknown_types:               # identifier types not listed under `types`
      priority: 100
      max_per_profile: 10
    types:
      customer_id: {priority: 10, max_per_profile: 1}
      email:
        priority: 30             # lower = stronger
        max_per_profile: 3       # at most 3 emails in one profile (null = no limit)
        blocked: [test@test.com] # normalised at load, never link anything
      loyalty_card: {priority: 35, max_per_profile: 2, rule: lower}

Listed types need a ``priority``; types that are not listed (built-in or not)
get the ``unknown_types`` priority and limit. Built-in types keep their
built-in normalisation rule; other types may choose one (default ``text``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import phonenumbers
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cdp.config_files import read_yaml, validate_config
from cdp.identity.identifiers import (
    BUILTIN_RULES,
    DEFAULT_RULE,
    IdentifierKey,
    Rule,
    make_key,
    normalize_type,
    normalize_value,
)

DEFAULT_CONFIG_RESOURCE = "default_identity.yaml"
"""File name of the packaged default configuration (next to this module)."""


class IdentifierTypeConfig(BaseModel):
    """Rules for one identifier type."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    priority: int = Field(
        ge=0, le=1_000_000, description="Strength of the type; lower = stronger (anchor)."
    )
    max_per_profile: int | None = Field(
        default=None, ge=1, description="Most identifiers of this type in one profile; null = any."
    )
    blocked: tuple[str, ...] = Field(
        default=(),
        description="Values that never link and never form a profile; normalised at load.",
    )
    rule: Rule | None = Field(
        default=None, description="Normalisation rule; built-in types keep their own."
    )

    @field_validator("blocked", mode="before")
    @classmethod
    def _ints_are_text(cls, value: Any) -> Any:
        # YAML reads an unquoted 12345 or +4930123 as a number; take its text.
        if isinstance(value, list | tuple):
            return tuple(
                str(item) if isinstance(item, int) and not isinstance(item, bool) else item
                for item in value
            )
        return value


class UnknownTypeDefaults(BaseModel):
    """Priority and limit of identifier types that the configuration does not list."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    priority: int = Field(default=100, ge=0, le=1_000_000)
    max_per_profile: int | None = Field(default=10, ge=1)


class IdentityConfig(BaseModel):
    """The validated identity configuration; blocked values are stored normalised.

    Lookups used per event (:meth:`rule_for`, :meth:`priority`,
    :meth:`max_per_profile`, :meth:`is_blocked`) are plain dict/set look-ups.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    default_region: str = Field(
        default="DE", description="ISO 3166 region for phone numbers without country code."
    )
    unknown_types: UnknownTypeDefaults = Field(default_factory=UnknownTypeDefaults)
    types: dict[str, IdentifierTypeConfig] = Field(default_factory=dict)

    if TYPE_CHECKING:
        # Plain look-up tables, set in the instance __dict__ after validation (not a
        # pydantic private attribute: those are read through a slow __getattr__).
        _tables: _Tables

    @field_validator("default_region")
    @classmethod
    def _check_region(cls, value: str) -> str:
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {value!r} (expected e.g. 'DE', 'US')")
        return region

    @field_validator("types")
    @classmethod
    def _check_type_names(
        cls, value: dict[str, IdentifierTypeConfig]
    ) -> dict[str, IdentifierTypeConfig]:
        for name, type_config in value.items():
            if normalize_type(name) != name:
                raise ValueError(f"type name {name!r} must match ^[a-z][a-z0-9_]*$")
            builtin = BUILTIN_RULES.get(name)
            if builtin is not None and type_config.rule not in (None, builtin):
                raise ValueError(
                    f"{name}.rule: built-in type {name!r} always uses rule {builtin!r}"
                )
        return value

    @model_validator(mode="after")
    def _normalise_blocked(self) -> IdentityConfig:
        types: dict[str, IdentifierTypeConfig] = {}
        blocked_keys: set[IdentifierKey] = set()
        tables = _Tables(
            unknown_priority=self.unknown_types.priority,
            unknown_limit=self.unknown_types.max_per_profile,
        )
        for name, type_config in self.types.items():
            rule = BUILTIN_RULES.get(name) or type_config.rule or DEFAULT_RULE
            normalised: set[str] = set()
            for index, raw in enumerate(type_config.blocked):
                value = normalize_value(rule, raw, self.default_region)
                if value is None:
                    raise PydanticCustomError(
                        "blocked_value",
                        "types.{name}.blocked[{index}]: {raw!r} is not a valid value for"
                        " rule {rule!r}",
                        {"name": name, "index": index, "raw": raw, "rule": rule},
                    )
                normalised.add(value)
                blocked_keys.add(make_key(name, value))
            types[name] = type_config.model_copy(
                update={"blocked": tuple(sorted(normalised)), "rule": rule}
            )
            tables.rules[name] = rule
            tables.priorities[name] = type_config.priority
            tables.limits[name] = type_config.max_per_profile
        tables.blocked = frozenset(blocked_keys)
        object.__setattr__(self, "types", types)
        object.__setattr__(self, "_tables", tables)
        return self

    def rule_for(self, id_type: str) -> Rule:
        """Normalisation rule of a (normalised) type name."""
        rule = self._tables.rules.get(id_type)
        if rule is None:
            return BUILTIN_RULES.get(id_type, DEFAULT_RULE)
        return rule

    def priority(self, id_type: str) -> int:
        """Priority of a type; lower is stronger. Unlisted types get ``unknown_types``."""
        tables = self._tables
        return tables.priorities.get(id_type, tables.unknown_priority)

    def max_per_profile(self, id_type: str) -> int | None:
        """Most identifiers of this type one profile may hold; ``None`` = unlimited."""
        tables = self._tables
        return tables.limits.get(id_type, tables.unknown_limit)

    def is_blocked(self, key: IdentifierKey | str) -> bool:
        """Whether a normalised key is on a blocked list."""
        return key in self._tables.blocked

    @property
    def blocked_keys(self) -> frozenset[str]:
        """All blocked values as identifier keys."""
        return self._tables.blocked


@dataclass(slots=True)
class _Tables:
    """Per-event look-ups of an :class:`IdentityConfig`, as plain dicts and sets."""

    unknown_priority: int
    unknown_limit: int | None
    rules: dict[str, Rule] = field(default_factory=dict)
    priorities: dict[str, int] = field(default_factory=dict)
    limits: dict[str, int | None] = field(default_factory=dict)
    blocked: frozenset[str] = frozenset()


def parse_identity_config(data: Any, source: str = "<identity config>") -> IdentityConfig:
    """Validate already-parsed YAML/JSON data; :class:`ConfigError` names source and field."""
    return validate_config(IdentityConfig, data, source)


def load_identity_config(path: str | Path | None = None) -> IdentityConfig:
    """Read and validate an identity configuration file (default: the packaged one).

    Raises :class:`~cdp.errors.ConfigError` whose message names the file, the
    field path (``types.email.max_per_profile``) and the problem.
    """
    data, source = read_yaml(path, __package__ or "", DEFAULT_CONFIG_RESOURCE)
    return parse_identity_config(data, source)


@lru_cache(maxsize=1)
def default_identity_config() -> IdentityConfig:
    """The packaged default configuration (read once)."""
    return load_identity_config()
