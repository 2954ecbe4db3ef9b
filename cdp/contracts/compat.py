"""The schema check CI runs (``cdp schemas check``).

:func:`check_schemas` verifies a schemas directory and returns a list of
problems (empty = fine):

* the manifest parses; ids are unique, positive 32-bit and increase row by
  row (append-only); each subject's versions are 1..N in row order;
* every listed file exists at ``subjects/<subject>/v<N>.avsc``, is a record
  named like its subject, parses with fastavro and with Apache Avro, and still
  has the fingerprint it had when it was added (released versions are
  immutable: change a schema by adding a version);
* no ``.avsc`` file under ``subjects/`` is missing from the manifest;
* every version N is BACKWARD_TRANSITIVE compatible: a reader with version N
  reads data written with every version < N (Apache Avro's
  ``ReaderWriterCompatibilityChecker``);
* when ``src/`` exists, the schemas generated from it equal each subject's
  latest version (otherwise: run ``cdp schemas build``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from cdp.contracts.build import SchemaBuildError, generate, has_sources
from cdp.contracts.registry import (
    SUBJECTS_DIRNAME,
    ManifestEntry,
    SchemaRegistryError,
    fingerprint,
    full_name,
    load_schema_file,
    parse,
    read_manifest,
    schema_file,
)
from cdp.contracts.wire import MAX_SCHEMA_ID


def check_compatibility(reader: Mapping[str, Any], writer: Mapping[str, Any]) -> list[str]:
    """Why ``reader`` cannot read data written with ``writer`` (empty when it can).

    Each line names the incompatibility kinds (Apache Avro's names, e.g.
    ``reader_field_missing_default_value``) and field paths such as
    ``payload[cdp.payload.web.PageView].language``.
    """
    return [
        f"{', '.join(kinds)} at {', '.join(paths)} ({'; '.join(details)})"
        for kinds, paths, details in _incompatibilities(reader, writer, "")
    ]


_Finding = tuple[list[str], list[str], list[str]]


def _incompatibilities(reader: Any, writer: Any, prefix: str) -> list[_Finding]:
    try:
        reader_schema = avro.schema.parse(json.dumps(reader))
        writer_schema = avro.schema.parse(json.dumps(writer))
    except Exception as exc:
        return [(["unparsable"], [prefix or "<record>"], [f"{type(exc).__name__}: {exc}"])]
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader_schema, writer_schema)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    findings: list[_Finding] = []
    paths: list[str] = []
    for location in sorted(result.locations):
        path, reader_branch, writer_branch = _resolve(location, reader, writer)
        path = _join(prefix, path)
        if reader_branch is not None and writer_branch is not None:
            # a same-named union branch exists but cannot read the writer's: say why
            nested = _incompatibilities(reader_branch, writer_branch, path)
            if nested and nested[0][0] != ["unparsable"]:
                findings += nested
                continue
        paths.append(path)
    if paths or not findings:
        kinds = sorted({kind.value for kind in result.incompatibilities})
        findings.insert(0, (kinds, paths or [prefix or "<record>"], sorted(result.messages)))
    return findings


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path or "<record>"
    if not path:
        return prefix
    return prefix + ("" if path.startswith("[") else ".") + path


def _resolve(pointer: str, reader: Any, writer: Any) -> tuple[str, Any, Any]:
    """Field path of a checker location, plus the (reader, writer) union branches it names.

    Record field indices in the checker's locations refer to the reader's
    fields, union indices to the writer's branches; both schemas are walked in
    parallel so the path uses names. The branches are returned only when the
    location ends at a named writer branch that the reader's union also has.
    """
    parts = [part for part in pointer.split("/") if part]
    path = ""
    read: Any = reader
    write: Any = writer
    branch_pair: tuple[Any, Any] = (None, None)
    index = 0
    try:
        while index < len(parts):
            part = parts[index]
            branch_pair = (None, None)
            if part == "fields" and index + 1 < len(parts):
                fld = read["fields"][int(parts[index + 1])]
                name = str(fld["name"])
                path += ("." if path else "") + name
                read = fld["type"]
                write = _field_type(write, name)
                index += 2
                continue
            if part in ("type", "name", "size", "symbols"):
                index += 1
                continue
            if part == "items":
                read, write, path = read["items"], _sub(write, "items"), path + "[]"
            elif part == "values":
                read, write, path = read["values"], _sub(write, "values"), path + "{}"
            elif part.isdigit():
                branch = write[int(part)] if isinstance(write, list) else None
                branch_name = (
                    full_name(branch) if isinstance(branch, dict) and "name" in branch else None
                )
                path += f"[{branch_name or (branch if isinstance(branch, str) else part)}]"
                match = _branch(read, branch_name) if branch_name else None
                read, write = match, branch
                if match is not None and branch is not None:
                    branch_pair = (match, branch)
            index += 1
    except (KeyError, IndexError, TypeError, ValueError):
        return pointer, None, None
    return path, branch_pair[0], branch_pair[1]


def _field_type(record: Any, name: str) -> Any:
    if isinstance(record, dict):
        for fld in record.get("fields", []):
            if fld.get("name") == name:
                return fld["type"]
    return None


def _sub(node: Any, key: str) -> Any:
    return node.get(key) if isinstance(node, dict) else None


def _branch(union: Any, name: str) -> Any:
    branches = union if isinstance(union, list) else [union]
    for branch in branches:
        if isinstance(branch, dict) and "name" in branch and full_name(branch) == name:
            return branch
    return None


def check_schemas(schemas_dir: Path | str) -> list[str]:
    """Every problem of the schemas directory, as human-readable lines (empty = fine)."""
    schemas_dir = Path(schemas_dir)
    try:
        entries = read_manifest(schemas_dir)
    except SchemaRegistryError as exc:
        return [str(exc)]
    problems: list[str] = []
    problems += _check_ids(entries)
    schemas: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for entry in entries:
        raw, entry_problems = _check_file(schemas_dir, entry)
        problems += entry_problems
        if raw is not None:
            schemas.setdefault(entry.subject, []).append((entry.version, raw))
    listed = {Path(entry.file).as_posix() for entry in entries}
    for path in sorted((schemas_dir / SUBJECTS_DIRNAME).rglob("*.avsc")):
        relative = path.relative_to(schemas_dir).as_posix()
        if relative not in listed:
            problems.append(f"{relative}: schema file is not in the manifest")
    for subject, versions in sorted(schemas.items()):
        versions.sort(key=lambda item: item[0])
        for position, (version, reader) in enumerate(versions):
            for older, writer in versions[:position]:
                problems += [
                    f"{subject}: v{version} is not backward compatible with v{older}: {problem}"
                    for problem in check_compatibility(reader, writer)
                ]
    if has_sources(schemas_dir):
        problems += _check_sources(schemas_dir, entries)
    return problems


def _check_ids(entries: list[ManifestEntry]) -> list[str]:
    problems = []
    seen: dict[int, ManifestEntry] = {}
    previous_id = 0
    last_version: dict[str, int] = {}
    for entry in entries:
        label = f"manifest: {entry.subject} v{entry.version} (id {entry.id})"
        if not 0 < entry.id <= MAX_SCHEMA_ID:
            problems.append(f"{label}: id must be between 1 and {MAX_SCHEMA_ID}")
        if entry.id in seen:
            other = seen[entry.id]
            problems.append(f"{label}: id already used by {other.subject} v{other.version}")
        elif entry.id <= previous_id:
            problems.append(f"{label}: ids must increase row by row (the manifest is append-only)")
        seen.setdefault(entry.id, entry)
        previous_id = max(previous_id, entry.id)
        expected = last_version.get(entry.subject, 0) + 1
        if entry.version != expected:
            problems.append(f"{label}: expected version {expected} of this subject next")
        last_version[entry.subject] = max(entry.version, last_version.get(entry.subject, 0))
    return problems


def _check_file(schemas_dir: Path, entry: ManifestEntry) -> tuple[dict[str, Any] | None, list[str]]:
    label = f"{entry.subject} v{entry.version}"
    problems = []
    expected_file = schema_file(entry.subject, entry.version)
    if Path(entry.file).as_posix() != expected_file:
        problems.append(f"{label}: file is {entry.file}, expected {expected_file}")
    try:
        raw = load_schema_file(schemas_dir / entry.file)
    except SchemaRegistryError as exc:
        return None, [*problems, f"{label}: {exc}"]
    if raw.get("type") != "record":
        return None, [*problems, f"{label}: top-level schema must be a record"]
    if full_name(raw) != entry.subject:
        problems.append(
            f"{label}: record is named {full_name(raw)}, the subject must be the record's full"
            " name (RecordNameStrategy)"
        )
    if fingerprint(raw) != entry.sha256:
        problems.append(
            f"{label}: {entry.file} changed after it was added (fingerprint differs);"
            " released versions are immutable: restore it and add a new version"
        )
    try:
        parse(raw)
    except Exception as exc:
        return None, [*problems, f"{label}: does not parse with fastavro: {exc}"]
    try:
        avro.schema.parse(json.dumps(raw))
    except Exception as exc:
        return None, [*problems, f"{label}: does not parse with Apache Avro: {exc}"]
    return raw, problems


def _check_sources(schemas_dir: Path, entries: list[ManifestEntry]) -> list[str]:
    try:
        generated = generate(schemas_dir)
    except (SchemaBuildError, SchemaRegistryError) as exc:
        problems = exc.problems if isinstance(exc, SchemaBuildError) else [str(exc)]
        return [f"sources: {problem}" for problem in problems]
    latest: dict[str, ManifestEntry] = {}
    for entry in entries:
        if entry.subject not in latest or entry.version > latest[entry.subject].version:
            latest[entry.subject] = entry
    problems = []
    for subject, schema in sorted(generated.items()):
        current = latest.get(subject)
        if current is None:
            problems.append(f"{subject}: defined in src/ but never built: run `cdp schemas build`")
        elif fingerprint(schema) != current.sha256:
            problems.append(
                f"{subject}: src/ differs from the latest version v{current.version}:"
                " run `cdp schemas build` to add a version (and commit it)"
            )
    for subject in sorted(set(latest) - set(generated)):
        problems.append(f"{subject}: in the manifest but no longer defined in src/subjects.json")
    return problems
