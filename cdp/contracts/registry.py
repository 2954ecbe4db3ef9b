"""Schema registries: where schema ids come from and how a writer schema is found by id.

Two implementations share one interface, :class:`SchemaRegistry`:

* :class:`LocalSchemaRegistry` reads the committed ``schemas/`` directory. Ids
  are pinned in the manifest ``schemas/registry.json`` (append-only), so every
  process of an installation agrees on them without any network service.
* :class:`ConfluentSchemaRegistry` talks to a Confluent-compatible registry. It
  registers the committed schema versions under their subjects on first use
  (idempotent in the registry) and resolves unknown ids by asking the registry.

Subjects follow Confluent's ``RecordNameStrategy``: the subject of a schema is
the full name of its top-level record (``cdp.channel.WebEvent``), independent
of topic names (which carry a per-installation namespace).

Every schema is parsed once with :func:`fastavro.parse_schema` and cached;
codecs never parse per message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastavro

from cdp.errors import CdpError, EventError, ReasonCode

if TYPE_CHECKING:
    from cdp.settings import Settings

log = logging.getLogger(__name__)

MANIFEST_NAME = "registry.json"
"""File name of the id manifest inside the schemas directory."""

SUBJECTS_DIRNAME = "subjects"
"""Directory (inside the schemas directory) holding ``<subject>/v<N>.avsc``."""

MANIFEST_FORMAT = 1
"""Version of the manifest layout."""


class SchemaRegistryError(CdpError):
    """The schema directory, its manifest or a schema registry is unusable."""


@dataclass(frozen=True)
class RegisteredSchema:
    """One version of one subject, with its id and its schema parsed for fastavro.

    Equality and hashing use ``(id, subject, version)`` only.
    """

    id: int
    """Schema id written into the wire header."""
    subject: str
    """Subject (full name of the top-level record)."""
    version: int
    """Version of the subject, 1-based (0 when the registry knows no local version)."""
    parsed: dict[str, Any] = field(compare=False, repr=False)
    """The schema parsed by :func:`fastavro.parse_schema` (ready for the reader/writer)."""
    raw: dict[str, Any] = field(compare=False, repr=False)
    """The schema as JSON data (what is registered)."""

    @property
    def schema_str(self) -> str:
        """The schema as a compact JSON string (the form sent to a registry)."""
        return json.dumps(self.raw, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ManifestEntry:
    """One row of ``schemas/registry.json``: a subject version and its pinned id."""

    id: int
    subject: str
    version: int
    file: str
    """Path of the ``.avsc`` file, relative to the schemas directory."""
    sha256: str
    """:func:`fingerprint` of the schema when it was added (released files never change)."""

    def to_json(self) -> dict[str, Any]:
        """The entry as written to the manifest."""
        return {
            "id": self.id,
            "subject": self.subject,
            "version": self.version,
            "file": self.file,
            "sha256": self.sha256,
        }


def fingerprint(schema: Mapping[str, Any]) -> str:
    """SHA-256 over the schema's JSON with sorted keys (docs and defaults included)."""
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def schema_file(subject: str, version: int) -> str:
    """Conventional path of a subject version, relative to the schemas directory."""
    return f"{SUBJECTS_DIRNAME}/{subject}/v{version}.avsc"


def full_name(schema: Mapping[str, Any]) -> str:
    """Full name (``namespace.name``) of a named schema given as JSON data."""
    name = str(schema.get("name", ""))
    if "." in name:
        return name
    namespace = schema.get("namespace")
    return f"{namespace}.{name}" if namespace else name


def read_manifest(schemas_dir: Path) -> list[ManifestEntry]:
    """Read the manifest rows in file order; raise :class:`SchemaRegistryError` if malformed."""
    path = Path(schemas_dir) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaRegistryError(f"schema manifest {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise SchemaRegistryError(f"schema manifest {path} is unreadable: {exc}") from None
    rows = data.get("schemas") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise SchemaRegistryError(
            f"schema manifest {path}: expected an object with a 'schemas' list"
        )
    entries = []
    for index, row in enumerate(rows):
        try:
            entries.append(
                ManifestEntry(
                    id=_as_int(row["id"]),
                    subject=str(row["subject"]),
                    version=_as_int(row["version"]),
                    file=str(row["file"]),
                    sha256=str(row["sha256"]),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaRegistryError(
                f"schema manifest {path}: row {index} is malformed ({type(exc).__name__}: {exc})"
            ) from None
    return entries


def write_manifest(schemas_dir: Path, entries: list[ManifestEntry]) -> None:
    """Write the manifest (rows in the given order)."""
    data = {
        "format": MANIFEST_FORMAT,
        "comment": (
            "Append-only. One row per registered subject version; ids are unique and never"
            " reused. Maintained by `cdp schemas build`, verified by `cdp schemas check`."
        ),
        "schemas": [entry.to_json() for entry in entries],
    }
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    (Path(schemas_dir) / MANIFEST_NAME).write_text(text, encoding="utf-8")


def _as_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def load_schema_file(path: Path) -> dict[str, Any]:
    """Read one ``.avsc`` file as JSON data (a record schema)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaRegistryError(f"schema file {path} is unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise SchemaRegistryError(f"schema file {path}: expected a JSON object (a record schema)")
    return data


def parse(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Parse a schema for fastavro (each call gets its own named-type scope)."""
    parsed = fastavro.parse_schema(dict(raw), named_schemas={})
    if not isinstance(parsed, dict):
        raise SchemaRegistryError("a subject schema must be a record")
    return parsed


class SchemaRegistry(ABC):
    """Maps subjects to their latest version and schema ids to writer schemas."""

    @abstractmethod
    def latest(self, subject: str) -> RegisteredSchema:
        """The latest version of ``subject`` (the schema producers write with).

        Raises :class:`SchemaRegistryError` for an unknown subject.
        """

    @abstractmethod
    def by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema registered under ``schema_id``.

        Raises :class:`~cdp.errors.EventError` with ``UNKNOWN_SCHEMA_ID`` for an unknown id.
        """

    @abstractmethod
    def subjects(self) -> list[str]:
        """The subjects this registry knows locally, sorted."""

    @abstractmethod
    def versions(self, subject: str) -> list[RegisteredSchema]:
        """All local versions of ``subject``, oldest first."""


class LocalSchemaRegistry(SchemaRegistry):
    """Schema ids from the committed manifest ``<schemas_dir>/registry.json``.

    All versions are read and parsed once, at construction.
    """

    def __init__(self, schemas_dir: Path | str) -> None:
        self.schemas_dir = Path(schemas_dir)
        self._by_id: dict[int, RegisteredSchema] = {}
        self._by_subject: dict[str, list[RegisteredSchema]] = {}
        for entry in read_manifest(self.schemas_dir):
            if entry.id in self._by_id:
                raise SchemaRegistryError(f"schema id {entry.id} is used twice in the manifest")
            raw = load_schema_file(self.schemas_dir / entry.file)
            try:
                parsed = parse(raw)
            except Exception as exc:
                raise SchemaRegistryError(
                    f"schema file {entry.file} does not parse: {type(exc).__name__}: {exc}"
                ) from None
            registered = RegisteredSchema(entry.id, entry.subject, entry.version, parsed, raw)
            self._by_id[entry.id] = registered
            self._by_subject.setdefault(entry.subject, []).append(registered)
        for versions in self._by_subject.values():
            versions.sort(key=lambda schema: schema.version)

    def latest(self, subject: str) -> RegisteredSchema:
        """The latest version of ``subject`` in the manifest."""
        try:
            return self._by_subject[subject][-1]
        except KeyError:
            raise SchemaRegistryError(f"unknown subject {subject!r}") from None

    def by_id(self, schema_id: int) -> RegisteredSchema:
        """The manifest row with ``schema_id``; ``UNKNOWN_SCHEMA_ID`` otherwise."""
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise EventError(
                ReasonCode.UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not registered"
            ) from None

    def subjects(self) -> list[str]:
        """Subjects in the manifest, sorted."""
        return sorted(self._by_subject)

    def versions(self, subject: str) -> list[RegisteredSchema]:
        """All versions of ``subject``, oldest first (empty for an unknown subject)."""
        return list(self._by_subject.get(subject, []))


class ConfluentSchemaRegistry(SchemaRegistry):
    """A Confluent-compatible schema registry, fed with the committed schema versions.

    On the first :meth:`latest` call for a subject, every committed version of
    that subject is registered in order (registering an existing schema returns
    its existing id, so this is idempotent); with ``auto_register=False`` the
    versions are only looked up. Ids the registry assigns are used on the wire;
    the manifest's ids are ignored. :meth:`by_id` answers from the cache and
    otherwise asks the registry (``UNKNOWN_SCHEMA_ID`` on a 404). Results,
    including unknown ids, are cached.

    Needs the ``schemaregistry`` extra of confluent-kafka (authlib, cachetools,
    attrs, httpx). ``client`` injects a ready ``SchemaRegistryClient`` (tests).
    """

    _MAX_UNKNOWN_IDS = 10_000

    def __init__(
        self,
        url: str,
        schemas_dir: Path | str | None = None,
        *,
        client: Any = None,
        client_config: Mapping[str, Any] | None = None,
        auto_register: bool = True,
    ) -> None:
        if schemas_dir is None:
            from cdp.settings import PROJECT_ROOT

            schemas_dir = PROJECT_ROOT / "schemas"
        self.url = url
        self.local = LocalSchemaRegistry(schemas_dir)
        self.auto_register = auto_register
        self._module = _schema_registry_module()
        if client is None:
            client = self._module.SchemaRegistryClient({"url": url, **dict(client_config or {})})
        self._client = client
        self._lock = threading.Lock()
        self._latest: dict[str, RegisteredSchema] = {}
        self._by_id: dict[int, RegisteredSchema] = {}
        self._unknown_ids: set[int] = set()

    def latest(self, subject: str) -> RegisteredSchema:
        """The latest committed version of ``subject``, with the registry's id."""
        cached = self._latest.get(subject)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._latest.get(subject)
            if cached is not None:
                return cached
            versions = self.local.versions(subject)
            if not versions:
                raise SchemaRegistryError(f"unknown subject {subject!r}")
            registered = None
            for local in versions:
                schema_id = self._register(local)
                registered = RegisteredSchema(
                    schema_id, local.subject, local.version, local.parsed, local.raw
                )
                self._by_id.setdefault(schema_id, registered)
                self._unknown_ids.discard(schema_id)
            assert registered is not None
            self._latest[subject] = registered
            log.info(
                "schema subject %s version %d has id %d in %s",
                subject,
                registered.version,
                registered.id,
                self.url,
            )
            return registered

    def _register(self, local: RegisteredSchema) -> int:
        schema = self._module.Schema(local.schema_str, "AVRO")
        try:
            if self.auto_register:
                return int(self._client.register_schema(local.subject, schema))
            return int(self._client.lookup_schema(local.subject, schema).schema_id)
        except Exception as exc:
            action = "register" if self.auto_register else "look up"
            raise SchemaRegistryError(
                f"could not {action} {local.subject} version {local.version} in {self.url}:"
                f" {type(exc).__name__}: {exc}"
            ) from exc

    def by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema with ``schema_id`` in the registry; ``UNKNOWN_SCHEMA_ID`` if it has none."""
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        if schema_id in self._unknown_ids:
            raise self._unknown(schema_id)
        try:
            schema = self._client.get_schema(schema_id)
        except Exception as exc:
            if getattr(exc, "http_status_code", None) == 404:
                with self._lock:
                    if len(self._unknown_ids) >= self._MAX_UNKNOWN_IDS:
                        self._unknown_ids.clear()
                    self._unknown_ids.add(schema_id)
                raise self._unknown(schema_id) from None
            raise SchemaRegistryError(
                f"could not fetch schema id {schema_id} from {self.url}: {type(exc).__name__}"
            ) from exc
        if str(getattr(schema, "schema_type", None) or "AVRO").upper() != "AVRO":
            raise EventError(
                ReasonCode.UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not an Avro schema"
            )
        try:
            loaded = json.loads(schema.schema_str)
            if not isinstance(loaded, dict):
                raise TypeError("not a record schema")
            raw: dict[str, Any] = loaded
            parsed = parse(raw)
        except Exception as exc:
            raise EventError(
                ReasonCode.UNKNOWN_SCHEMA_ID,
                f"schema id {schema_id} is not a usable Avro record schema ({type(exc).__name__})",
            ) from None
        subject = full_name(raw)
        version = 0
        wanted = fingerprint(raw)
        for local in self.local.versions(subject):
            if fingerprint(local.raw) == wanted:
                version = local.version
                break
        registered = RegisteredSchema(schema_id, subject, version, parsed, raw)
        with self._lock:
            self._by_id.setdefault(schema_id, registered)
        return self._by_id[schema_id]

    @staticmethod
    def _unknown(schema_id: int) -> EventError:
        return EventError(ReasonCode.UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not registered")

    def subjects(self) -> list[str]:
        """Subjects of the committed schemas, sorted."""
        return self.local.subjects()

    def versions(self, subject: str) -> list[RegisteredSchema]:
        """Committed versions of ``subject`` (with manifest ids), oldest first."""
        return self.local.versions(subject)


def _schema_registry_module() -> Any:
    try:
        import confluent_kafka.schema_registry as module
    except ImportError as exc:
        raise SchemaRegistryError(
            "CDP_SCHEMA_REGISTRY_URL is set but confluent_kafka.schema_registry cannot be"
            f" imported ({exc}); install confluent-kafka[schemaregistry]"
        ) from None
    return module


def registry_from_settings(settings: Settings) -> SchemaRegistry:
    """A :class:`ConfluentSchemaRegistry` when ``schema_registry_url`` is set, else local."""
    if settings.schema_registry_url:
        return ConfluentSchemaRegistry(settings.schema_registry_url, settings.schemas_dir)
    return LocalSchemaRegistry(settings.schemas_dir)
