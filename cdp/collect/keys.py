"""Write keys of the HTTP collector (hashed), from a YAML file.

The file is ``CDP_WRITE_KEY_CONFIG``; unset, the packaged **dev-only** file
``cdp/collect/dev_write_keys.yaml`` is used, whose key is published in
``docs/collector.md`` (never use it outside a local demo). Format::

    keys:
      - id: website-2026       # names the key in logs (not secret)
        source: website        # the events' source: trait provenance, part of the event id
        region: DE             # optional: region of every event sent with this key
        sha256: 9f86d08...     # sha256 hex of the write key (`cdp api hash-key`)

Keys are stored as SHA-256 hex digests, like the API keys of
:mod:`cdp.api.access`: write keys are random, high-entropy strings. A presented
key is hashed and compared with every configured digest in constant time. Two
keys may name the same source (key rotation); their events share the source,
so a retry with either key is deduplicated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdp.api.access import Sha256Digest, match_key
from cdp.config_files import read_yaml, validate_config

DEV_WRITE_KEYS_RESOURCE = "dev_write_keys.yaml"
"""The packaged dev-only write-key file (next to this module)."""


class WriteKeyEntry(BaseModel):
    """One write key: its public id, the source it sends as, an optional region, its digest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    source: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$", max_length=128)
    region: str | None = Field(default=None, pattern=r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
    sha256: Sha256Digest


class WriteKeyConfig(BaseModel):
    """The validated write-key file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keys: tuple[WriteKeyEntry, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> WriteKeyConfig:
        ids: set[str] = set()
        digests: set[str] = set()
        for index, key in enumerate(self.keys):
            if key.id in ids:
                raise ValueError(f"keys[{index}]: key id {key.id!r} is used twice")
            if key.sha256 in digests:
                raise ValueError(f"keys[{index}]: the same key is configured twice")
            ids.add(key.id)
            digests.add(key.sha256)
        return self


@dataclass(frozen=True)
class Sender:
    """Who sends: the key's id, the source its events carry and their default region."""

    key_id: str
    source: str
    region: str | None = None


class WriteKeys:
    """Authenticates write keys and hands out the :class:`Sender`."""

    def __init__(self, config: WriteKeyConfig, origin: str = "<memory>") -> None:
        self.config = config
        self.origin = origin
        self._entries = [
            (bytes.fromhex(key.sha256), Sender(key.id, key.source, key.region))
            for key in config.keys
        ]

    @property
    def is_dev(self) -> bool:
        """True if this is the packaged dev-only file with its published key."""
        return self.origin == DEV_WRITE_KEYS_RESOURCE

    def authenticate(self, key: str | None) -> Sender | None:
        """The sender of ``key``, or None if it is missing or not configured.

        Compares the key's digest with every configured digest in constant time.
        """
        return match_key(self._entries, key)


def load_write_keys(path: str | Path | None = None) -> WriteKeys:
    """Read and validate a write-key file (None: the dev-only demo file).

    Raises :class:`~cdp.errors.ConfigError` naming the file, the field and the problem.
    """
    data, origin = read_yaml(path, __package__ or "cdp.collect", DEV_WRITE_KEYS_RESOURCE)
    config = validate_config(WriteKeyConfig, data, origin)
    return WriteKeys(config, DEV_WRITE_KEYS_RESOURCE if path is None else origin)
