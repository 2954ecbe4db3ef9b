"""Generate the self-contained subject schemas from the named-type sources.

Sources (edited by hand)::

    schemas/src/types/<full.name>.avsc   one named type per file (records, with inline enums)
    schemas/src/subjects.json            the envelope fields and, per subject, its payload types

Output (generated, committed, immutable once released)::

    schemas/subjects/<subject>/v<N>.avsc one self-contained schema per subject version
    schemas/registry.json                manifest: pinned id per subject version (append-only)

Each named type is inlined where it is first used and referenced by its full
name afterwards, so the channel schemas and the canonical schema share the
very same payload records without hand-copying. :func:`build` adds a new
version only when the generated schema differs from the subject's latest
version, and only if it is BACKWARD_TRANSITIVE compatible with all older ones.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdp.contracts.registry import (
    MANIFEST_NAME,
    ManifestEntry,
    SchemaRegistryError,
    fingerprint,
    full_name,
    load_schema_file,
    read_manifest,
    schema_file,
    write_manifest,
)
from cdp.errors import CdpError

SRC_DIRNAME = "src"
TYPES_DIRNAME = "types"
SUBJECTS_SOURCE = "subjects.json"
PAYLOADS_PLACEHOLDER = "@payloads"
"""Type of the envelope's ``payload`` field in the sources: replaced by the subject's union."""

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})


class SchemaBuildError(CdpError):
    """The schema sources are inconsistent, or a generated version would be incompatible."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class NewVersion:
    """A subject version :func:`build` adds (or would add, in a dry run)."""

    subject: str
    version: int
    id: int
    file: str
    schema: dict[str, Any]


def has_sources(schemas_dir: Path) -> bool:
    """True when ``schemas_dir`` holds generation sources (``src/subjects.json``)."""
    return (Path(schemas_dir) / SRC_DIRNAME / SUBJECTS_SOURCE).is_file()


def load_types(schemas_dir: Path) -> dict[str, dict[str, Any]]:
    """Named types of ``src/types``, keyed by full name (must equal the file name)."""
    types: dict[str, dict[str, Any]] = {}
    problems = []
    for path in sorted((Path(schemas_dir) / SRC_DIRNAME / TYPES_DIRNAME).glob("*.avsc")):
        schema = load_schema_file(path)
        name = full_name(schema)
        if schema.get("type") not in _NAMED:
            problems.append(f"{path.name}: a type file must hold one named type (record/enum)")
        elif name != path.stem:
            problems.append(f"{path.name}: defines {name!r}; the file must be named {name}.avsc")
        elif "." not in name:
            problems.append(f"{path.name}: named types need a namespace")
        else:
            types[name] = schema
    if problems:
        raise SchemaBuildError(problems)
    return types


def generate(schemas_dir: Path) -> dict[str, dict[str, Any]]:
    """The self-contained schema of every subject, generated from the sources."""
    schemas_dir = Path(schemas_dir)
    source_path = schemas_dir / SRC_DIRNAME / SUBJECTS_SOURCE
    try:
        source = json.loads(source_path.read_text(encoding="utf-8"))
        envelope = source["envelope_fields"]
        subjects = source["subjects"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SchemaBuildError(
            [f"{source_path}: unreadable ({type(exc).__name__}: {exc})"]
        ) from None
    types = load_types(schemas_dir)
    result: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for subject in subjects:
        name = str(subject.get("name", ""))
        if "." not in name:
            problems.append(f"{SUBJECTS_SOURCE}: subject {name!r} needs a full record name")
            continue
        namespace, _, short = name.rpartition(".")
        fields = []
        for envelope_field in envelope:
            fld = copy.deepcopy(envelope_field)
            if fld.get("type") == PAYLOADS_PLACEHOLDER:
                fld["type"] = list(subject.get("payloads", []))
            fields.append(fld)
        record: dict[str, Any] = {"type": "record", "name": short, "namespace": namespace}
        if subject.get("doc"):
            record["doc"] = subject["doc"]
        record["fields"] = fields
        try:
            result[name] = _expand(record, "", types, set())
        except SchemaBuildError as exc:
            problems.extend(f"{name}: {problem}" for problem in exc.problems)
    if problems:
        raise SchemaBuildError(problems)
    return result


def _qualify(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _expand(node: Any, namespace: str, types: Mapping[str, Any], defined: set[str]) -> Any:
    """Inline named types at their first use; later uses become full-name references."""
    if isinstance(node, str):
        if node in PRIMITIVES:
            return node
        name = _qualify(node, namespace)
        if name in defined:
            return name
        if node in defined:
            return node
        if name in types:
            return _expand(copy.deepcopy(types[name]), namespace, types, defined)
        if node in types:
            return _expand(copy.deepcopy(types[node]), namespace, types, defined)
        raise SchemaBuildError([f"unknown type {node!r}"])
    if isinstance(node, list):
        return [_expand(item, namespace, types, defined) for item in node]
    if not isinstance(node, dict):
        raise SchemaBuildError([f"not a schema: {type(node).__name__}"])
    kind = node.get("type")
    out = dict(node)
    if kind in _NAMED:
        name = str(node["name"])
        own_namespace = name.rpartition(".")[0] if "." in name else node.get("namespace", namespace)
        qualified = _qualify(name, own_namespace)
        if qualified in defined:
            raise SchemaBuildError([f"named type {qualified} is defined twice"])
        defined.add(qualified)
        if kind in ("record", "error"):
            out["fields"] = [
                {**fld, "type": _expand(fld["type"], own_namespace, types, defined)}
                for fld in node["fields"]
            ]
        return out
    if kind == "array":
        out["items"] = _expand(node["items"], namespace, types, defined)
    elif kind == "map":
        out["values"] = _expand(node["values"], namespace, types, defined)
    elif isinstance(kind, (dict, list)):
        out["type"] = _expand(kind, namespace, types, defined)
    return out


def render(schema: Mapping[str, Any]) -> str:
    """The text of a generated ``.avsc`` file."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def plan(schemas_dir: Path) -> list[NewVersion]:
    """The versions :func:`build` would add: subjects whose generated schema changed."""
    schemas_dir = Path(schemas_dir)
    generated = generate(schemas_dir)
    entries = read_manifest(schemas_dir) if (schemas_dir / MANIFEST_NAME).exists() else []
    next_id = max((entry.id for entry in entries), default=0) + 1
    latest: dict[str, ManifestEntry] = {}
    for entry in entries:
        if entry.subject not in latest or entry.version > latest[entry.subject].version:
            latest[entry.subject] = entry
    planned = []
    for subject, schema in generated.items():
        current = latest.get(subject)
        if current is not None and fingerprint(schema) == fingerprint(
            load_schema_file(schemas_dir / current.file)
        ):
            continue
        version = 1 if current is None else current.version + 1
        planned.append(NewVersion(subject, version, next_id, schema_file(subject, version), schema))
        next_id += 1
    return planned


def build(schemas_dir: Path, *, dry_run: bool = False) -> list[NewVersion]:
    """Write a new version for every subject whose sources changed; return what was added.

    Nothing is written when a new version would not be BACKWARD_TRANSITIVE
    compatible with the older versions of its subject (:class:`SchemaBuildError`
    lists the problems) or when ``dry_run`` is set.
    """
    from cdp.contracts.compat import check_compatibility

    schemas_dir = Path(schemas_dir)
    try:
        planned = plan(schemas_dir)
    except SchemaRegistryError as exc:
        raise SchemaBuildError([str(exc)]) from None
    if not planned:
        return []
    entries = read_manifest(schemas_dir) if (schemas_dir / MANIFEST_NAME).exists() else []
    problems: list[str] = []
    for new in planned:
        older = [
            load_schema_file(schemas_dir / entry.file)
            for entry in sorted(entries, key=lambda e: e.version)
            if entry.subject == new.subject
        ]
        for version, writer in enumerate(older, start=1):
            problems.extend(
                f"{new.subject} v{new.version} cannot read v{version}: {problem}"
                for problem in check_compatibility(new.schema, writer)
            )
    if problems:
        raise SchemaBuildError(problems)
    if dry_run:
        return planned
    for new in planned:
        path = schemas_dir / new.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(new.schema), encoding="utf-8")
        entries.append(
            ManifestEntry(new.id, new.subject, new.version, new.file, fingerprint(new.schema))
        )
    write_manifest(schemas_dir, entries)
    return planned
