"""Departments, their field-level views and their API keys (hashed), from a YAML file.

The file is ``CDP_ACCESS_CONFIG``; unset, the packaged **dev-only** file
``cdp/api/dev_access.yaml`` is used, whose demo keys are published in
``docs/api.md`` (never use it outside a local demo). Format::

    departments:
      service:
        description: Service desk
        fields: [profile_id, identifiers, traits.first_name, computed.open_tickets]
        reports: [funnel]    # aggregate reports it may read (default: all of REPORTS)
      admin:
        admin: true          # may export and erase
        fields: ["*"]        # "*" = every field
    keys:
      - id: service-app      # names the key in logs and audit events (not secret)
        department: service
        sha256: 9f86d08...   # sha256 hex of the key (`cdp api hash-key`)

Keys are stored as the SHA-256 hex digest of the key. That is enough for random,
high-entropy keys (``cdp api hash-key`` makes 256-bit ones); it is not a password
hash. A presented key is hashed and compared with every configured digest in
constant time (:func:`hmac.compare_digest`, no early exit).

Reports (:data:`REPORTS`: the journey ``funnel`` and the ``moments`` of truth)
are counts and durations over all profiles: they hold no profile id, identifier
or field value, so field-level views do not apply to them; a department reads a
report if its ``reports`` list names it (default: every report).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from cdp.api.views import View, check_path
from cdp.config_files import read_yaml, validate_config

DEV_ACCESS_RESOURCE = "dev_access.yaml"
"""The packaged dev-only access file (next to this module)."""

DEPARTMENT_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
REPORTS: tuple[str, ...] = ("funnel", "moments")
"""The aggregate reports a department may be allowed to read (``reports`` of a department)."""

Report = Literal["funnel", "moments"]

MIN_KEY_LENGTH = 16
"""Shortest API key :func:`hash_key` accepts (keys should be random, see :func:`new_key`)."""


T = TypeVar("T")


def check_digest(value: str) -> str:
    """A stored key digest: 64 lower-case hex characters (:class:`ValueError` otherwise)."""
    if not _SHA256_HEX.match(value):
        raise ValueError("expected 64 lower-case hex characters (`cdp api hash-key`)")
    return value


def match_key(entries: Sequence[tuple[bytes, T]], key: str | None) -> T | None:
    """The value stored with the SHA-256 digest of ``key``, or None (missing or unknown).

    Compares the digest with every stored digest in constant time (no early exit).
    """
    if not key:
        return None
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    found: T | None = None
    for stored, value in entries:
        if hmac.compare_digest(stored, digest):
            found = value
    return found


Sha256Digest = Annotated[str, AfterValidator(check_digest)]
"""A key's stored form in a config file (checked by :func:`check_digest`)."""


def hash_key(key: str) -> str:
    """The stored form of an API key: SHA-256 hex of its UTF-8 bytes."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (256 bits, URL-safe text)."""
    return "cdp_" + secrets.token_urlsafe(32)


class DepartmentConfig(BaseModel):
    """One department: its view and whether it may export and erase."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str = ""
    admin: bool = Field(default=False, description="May export and erase profiles.")
    fields: tuple[str, ...] = Field(
        min_length=1, description="Field paths the department sees; '*' = all."
    )
    reports: tuple[Report, ...] = Field(
        default=("funnel", "moments"),
        description="Aggregate reports the department may read (no per-profile data).",
    )

    @field_validator("fields")
    @classmethod
    def _check_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for index, path in enumerate(value):
            if path != "*":
                try:
                    check_path(path)
                except ValueError as exc:
                    raise ValueError(f"[{index}]: {exc}") from None
        return value


class KeyConfig(BaseModel):
    """One API key: its public id, department and SHA-256 digest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    department: str
    sha256: Sha256Digest


class AccessConfig(BaseModel):
    """The validated access file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    departments: dict[str, DepartmentConfig] = Field(min_length=1)
    keys: tuple[KeyConfig, ...] = ()

    @field_validator("departments")
    @classmethod
    def _check_names(cls, value: dict[str, DepartmentConfig]) -> dict[str, DepartmentConfig]:
        for name in value:
            if not DEPARTMENT_PATTERN.match(name):
                raise ValueError(
                    f"{name}: department names must match {DEPARTMENT_PATTERN.pattern}"
                )
        return value

    @model_validator(mode="after")
    def _check_keys(self) -> AccessConfig:
        ids: set[str] = set()
        digests: set[str] = set()
        for index, key in enumerate(self.keys):
            where = f"keys[{index}]"
            if key.department not in self.departments:
                raise ValueError(f"{where}: unknown department {key.department!r}")
            if key.id in ids:
                raise ValueError(f"{where}: key id {key.id!r} is used twice")
            if key.sha256 in digests:
                raise ValueError(f"{where}: the same key is configured twice")
            ids.add(key.id)
            digests.add(key.sha256)
        return self


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, its department and the department's view."""

    key_id: str
    department: str
    admin: bool
    view: View
    reports: frozenset[str] = frozenset(REPORTS)
    """The aggregate reports the department may read."""


class AccessControl:
    """Authenticates API keys and hands out the caller's :class:`Principal`."""

    def __init__(self, config: AccessConfig, source: str = "<memory>") -> None:
        self.config = config
        self.source = source
        self._entries: list[tuple[bytes, Principal]] = []
        views = {name: View(dept.fields) for name, dept in config.departments.items()}
        for key in config.keys:
            dept = config.departments[key.department]
            principal = Principal(
                key.id, key.department, dept.admin, views[key.department], frozenset(dept.reports)
            )
            self._entries.append((bytes.fromhex(key.sha256), principal))
        self.views = views

    @property
    def is_dev(self) -> bool:
        """True if this is the packaged dev-only file with its published demo keys."""
        return self.source == DEV_ACCESS_RESOURCE

    def authenticate(self, key: str | None) -> Principal | None:
        """The principal of ``key``, or None if it is missing or not configured.

        Compares the key's digest with every configured digest in constant time.
        """
        return match_key(self._entries, key)


def load_access_config(path: str | Path | None = None) -> AccessControl:
    """Read and validate an access file (None: the dev-only demo file).

    Raises :class:`~cdp.errors.ConfigError` naming the file, the field and the problem.
    """
    data, source = read_yaml(path, __package__ or "cdp.api", DEV_ACCESS_RESOURCE)
    config = validate_config(AccessConfig, data, source)
    return AccessControl(config, DEV_ACCESS_RESOURCE if path is None else source)
