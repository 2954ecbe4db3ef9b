"""`cdp schemas check/build/list`: compatibility, manifest rules, source sync (temp dirs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cdp.cli.schemas import app
from cdp.contracts.build import SchemaBuildError, build, plan
from cdp.contracts.compat import check_compatibility, check_schemas
from cdp.contracts.registry import fingerprint, read_manifest, write_manifest
from cdp.settings import PROJECT_ROOT

SCHEMAS = PROJECT_ROOT / "schemas"
WEB = "cdp.channel.WebEvent"
PAGE_VIEW = "cdp.payload.web.PageView"
runner = CliRunner()


@pytest.fixture
def schemas(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, target)
    return target


def edit_type(schemas: Path, name: str, change: Any) -> None:
    path = schemas / "src" / "types" / f"{name}.avsc"
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema, indent=2))


def edit_subjects(schemas: Path, change: Any) -> None:
    path = schemas / "src" / "subjects.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def add_version_by_hand(schemas: Path, subject: str, schema: dict[str, Any]) -> None:
    """Bypass `build` (as a careless engineer would) to test that `check` still catches it."""
    entries = read_manifest(schemas)
    version = max(e.version for e in entries if e.subject == subject) + 1
    file = f"subjects/{subject}/v{version}.avsc"
    (schemas / file).write_text(json.dumps(schema, indent=2))
    entries.append(
        type(entries[0])(
            max(e.id for e in entries) + 1, subject, version, file, fingerprint(schema)
        )
    )
    write_manifest(schemas, entries)


def latest_version(schemas: Path, subject: str) -> int:
    return max(e.version for e in read_manifest(schemas) if e.subject == subject)


def latest_raw(schemas: Path, subject: str) -> dict[str, Any]:
    entry = max(
        (e for e in read_manifest(schemas) if e.subject == subject), key=lambda e: e.version
    )
    data: dict[str, Any] = json.loads((schemas / entry.file).read_text())
    return data


def page_view_record(schema: dict[str, Any]) -> dict[str, Any]:
    payload = next(f for f in schema["fields"] if f["name"] == "payload")
    record: dict[str, Any] = next(b for b in payload["type"] if b["name"] == "PageView")
    return record


# ------------------------------------------------------------------ the committed state


def test_copy_of_committed_schemas_is_clean(schemas: Path) -> None:
    assert check_schemas(schemas) == []
    assert plan(schemas) == []
    assert build(schemas) == []


# ------------------------------------------------------------------ incompatible changes


def test_build_refuses_field_without_default(schemas: Path) -> None:
    edit_type(
        schemas, PAGE_VIEW, lambda s: s["fields"].append({"name": "language", "type": "string"})
    )
    before = (schemas / "registry.json").read_text()
    new = latest_version(schemas, WEB) + 1
    with pytest.raises(SchemaBuildError) as caught:
        build(schemas)
    text = "\n".join(caught.value.problems)
    assert "reader_field_missing_default_value" in text
    assert f"{WEB} v{new} cannot read v1" in text
    assert f"payload[{PAGE_VIEW}].language" in text
    assert (schemas / "registry.json").read_text() == before  # nothing written
    assert not (schemas / "subjects" / WEB / f"v{new}.avsc").exists()
    # and check() says the sources are not built
    assert any("run `cdp schemas build`" in p for p in check_schemas(schemas))


def test_build_refuses_removed_union_branch(schemas: Path) -> None:
    def drop_download(data: dict[str, Any]) -> None:
        for subject in data["subjects"]:
            subject["payloads"] = [p for p in subject["payloads"] if not p.endswith(".Download")]

    edit_subjects(schemas, drop_download)
    with pytest.raises(SchemaBuildError) as caught:
        build(schemas)
    text = "\n".join(caught.value.problems)
    assert "missing_union_branch" in text
    assert WEB in text and "cdp.CanonicalEvent" in text


def test_check_reports_hand_added_incompatible_version(schemas: Path) -> None:
    schema = latest_raw(schemas, WEB)
    page_view_record(schema)["fields"].append({"name": "language", "type": "string"})
    add_version_by_hand(schemas, WEB, schema)
    new = latest_version(schemas, WEB)
    problems = check_schemas(schemas)
    assert any(
        p.startswith(f"{WEB}: v{new} is not backward compatible with v1")
        and "reader_field_missing_default_value" in p
        for p in problems
    ), problems


def test_check_is_transitive(schemas: Path) -> None:
    # n+1 adds an optional field (fine), n+2 drops its default: it reads n+1 but not n, .., v1
    old = latest_version(schemas, WEB)
    v2 = latest_raw(schemas, WEB)
    page_view_record(v2)["fields"].append(
        {"name": "language", "type": ["null", "string"], "default": None}
    )
    add_version_by_hand(schemas, WEB, v2)
    assert [p for p in check_schemas(schemas) if "compatible" in p] == []
    v3 = json.loads(json.dumps(v2))
    del page_view_record(v3)["fields"][-1]["default"]
    add_version_by_hand(schemas, WEB, v3)
    problems = [p for p in check_schemas(schemas) if "compatible" in p]
    assert len(problems) == old
    assert [p.split(":")[1].strip() for p in problems] == [
        f"v{old + 2} is not backward compatible with v{version}" for version in range(1, old + 1)
    ]


def test_compatible_change_adds_versions_with_new_ids(schemas: Path) -> None:
    edit_type(
        schemas,
        PAGE_VIEW,
        lambda s: s["fields"].append(
            {"name": "language", "type": ["null", "string"], "default": None}
        ),
    )
    planned = plan(schemas)
    added = build(schemas)
    assert [(n.subject, n.version, n.id) for n in added] == [
        (n.subject, n.version, n.id) for n in planned
    ]
    old_max = max(e.id for e in read_manifest(SCHEMAS))
    assert sorted((n.subject, n.version) for n in added) == [
        ("cdp.CanonicalEvent", latest_version(SCHEMAS, "cdp.CanonicalEvent") + 1),
        (WEB, latest_version(SCHEMAS, WEB) + 1),
    ]
    assert sorted(n.id for n in added) == [old_max + 1, old_max + 2]
    assert check_schemas(schemas) == []
    assert (schemas / "subjects" / WEB / "v1.avsc").read_text() == (
        SCHEMAS / "subjects" / WEB / "v1.avsc"
    ).read_text()
    assert build(schemas) == []  # idempotent


def test_check_compatibility_directly() -> None:
    writer = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]}
    reader = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "a", "type": "string"}, {"name": "b", "type": "int", "default": 0}],
    }
    assert check_compatibility(reader, writer) == []
    assert check_compatibility(writer, reader) == []  # dropping a field is backward compatible
    changed = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}
    assert "type_mismatch" in check_compatibility(changed, writer)[0]


# ------------------------------------------------------------------ manifest rules


def rewrite_manifest(schemas: Path, change: Any) -> None:
    path = schemas / "registry.json"
    data = json.loads(path.read_text())
    change(data["schemas"])
    path.write_text(json.dumps(data, indent=2))


def test_duplicate_and_decreasing_ids(schemas: Path) -> None:
    def dup(rows: list[dict[str, Any]]) -> None:
        rows[2]["id"] = rows[0]["id"]

    rewrite_manifest(schemas, dup)
    assert any("id already used by" in p for p in check_schemas(schemas))


def test_ids_must_increase(schemas: Path) -> None:
    def swap(rows: list[dict[str, Any]]) -> None:
        rows[0]["id"], rows[1]["id"] = rows[1]["id"], rows[0]["id"]

    rewrite_manifest(schemas, swap)
    assert any("append-only" in p for p in check_schemas(schemas))


def test_released_file_must_not_change(schemas: Path) -> None:
    path = schemas / "subjects" / WEB / "v1.avsc"
    schema = json.loads(path.read_text())
    schema["doc"] = "edited in place"
    path.write_text(json.dumps(schema))
    problems = check_schemas(schemas)
    assert any("changed after it was added" in p for p in problems)


def test_missing_orphan_and_misnamed_files(schemas: Path) -> None:
    (schemas / "subjects" / WEB / "v9.avsc").write_text("{}")
    shutil.move(
        schemas / "subjects" / "cdp.channel.CrmEvent" / "v1.avsc", schemas / "elsewhere.avsc"
    )
    problems = check_schemas(schemas)
    assert any("v9.avsc: schema file is not in the manifest" in p for p in problems)
    assert any(p.startswith("cdp.channel.CrmEvent v1:") and "unreadable" in p for p in problems)


def test_version_gap_and_wrong_name(schemas: Path) -> None:
    def gap(rows: list[dict[str, Any]]) -> None:
        rows[0]["version"] = 2
        rows[1]["subject"] = "cdp.channel.Other"

    rewrite_manifest(schemas, gap)
    problems = check_schemas(schemas)
    assert any("expected version 1" in p for p in problems)
    assert any("RecordNameStrategy" in p for p in problems)


def test_unparsable_schema(schemas: Path) -> None:
    schema = {
        "type": "record",
        "name": "WebEvent",
        "namespace": "cdp.channel",
        "fields": [{"name": "a", "type": "no.such.Type"}],
    }
    add_version_by_hand(schemas, WEB, schema)
    assert any("does not parse with fastavro" in p for p in check_schemas(schemas))


def test_unreadable_manifest(tmp_path: Path) -> None:
    (tmp_path / "registry.json").write_text("not json")
    assert "unreadable" in check_schemas(tmp_path)[0]


def test_sources_must_be_consistent(schemas: Path) -> None:
    path = schemas / "src" / "types" / f"{PAGE_VIEW}.avsc"
    path.rename(path.with_name("cdp.payload.web.Renamed.avsc"))
    problems = check_schemas(schemas)
    assert any("must be named" in p for p in problems)


# ------------------------------------------------------------------ CLI


def test_cli_check_ok(schemas: Path) -> None:
    result = runner.invoke(app, ["check", "--schemas-dir", str(schemas)])
    assert result.exit_code == 0, result.output
    versions = len(read_manifest(schemas))
    assert f"schemas OK: 5 subjects, {versions} versions" in result.output


def test_cli_check_default_dir_is_the_checkout() -> None:
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 0, result.output


def test_cli_check_fails_with_a_list(schemas: Path) -> None:
    schema = latest_raw(schemas, WEB)
    page_view_record(schema)["fields"].append({"name": "language", "type": "string"})
    add_version_by_hand(schemas, WEB, schema)
    new = latest_version(schemas, WEB)
    result = runner.invoke(app, ["check", "--schemas-dir", str(schemas)])
    assert result.exit_code == 1
    assert "schema check failed" in result.output
    assert f"  - cdp.channel.WebEvent: v{new} is not backward compatible with v1" in result.output


def test_cli_list(schemas: Path) -> None:
    result = runner.invoke(app, ["list", "--schemas-dir", str(schemas)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["subject", "version", "id"]
    entries = read_manifest(schemas)
    latest = max((e for e in entries if e.subject == WEB), key=lambda e: e.version)
    row = [WEB, f"v{latest.version}", "*", str(latest.id)]
    assert any(line.split() == row for line in lines), result.output
    assert any(line.split() == [WEB, "v1", "1"] for line in lines) == (latest.version > 1)
    assert len(lines) == 1 + len(entries)


def test_cli_build(schemas: Path) -> None:
    result = runner.invoke(app, ["build", "--schemas-dir", str(schemas)])
    assert result.exit_code == 0 and "nothing to build" in result.output
    edit_type(
        schemas,
        PAGE_VIEW,
        lambda s: s["fields"].append(
            {"name": "language", "type": ["null", "string"], "default": None}
        ),
    )
    new = latest_version(schemas, WEB) + 1
    result = runner.invoke(app, ["build", "--dry-run", "--schemas-dir", str(schemas)])
    assert result.exit_code == 0 and f"would add cdp.channel.WebEvent v{new}" in result.output
    assert not (schemas / "subjects" / WEB / f"v{new}.avsc").exists()
    result = runner.invoke(app, ["build", "--schemas-dir", str(schemas)])
    assert result.exit_code == 0 and f"added cdp.channel.WebEvent v{new}" in result.output
    assert (schemas / "subjects" / WEB / f"v{new}.avsc").exists()


def test_cli_build_refuses(schemas: Path) -> None:
    edit_type(schemas, PAGE_VIEW, lambda s: s["fields"].pop(0))  # drop url: still readable
    edit_type(
        schemas, PAGE_VIEW, lambda s: s["fields"].append({"name": "language", "type": "string"})
    )
    result = runner.invoke(app, ["build", "--schemas-dir", str(schemas)])
    assert result.exit_code == 1
    assert "schema build refused" in result.output
