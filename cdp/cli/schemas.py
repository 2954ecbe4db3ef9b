"""``cdp schemas``: check, list and build the event schemas.

* ``check`` -- manifest, files, ids, BACKWARD_TRANSITIVE compatibility and
  sources-in-sync; exit 1 with a list of problems (CI runs it).
* ``list`` -- subjects, versions and ids.
* ``build`` -- generate new subject versions from ``schemas/src`` (refuses
  incompatible changes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cdp.contracts.build import SchemaBuildError, build
from cdp.contracts.compat import check_schemas
from cdp.contracts.registry import SchemaRegistryError, read_manifest

app = typer.Typer(
    name="schemas",
    help="Event schemas: compatibility check, listing, generation.",
    no_args_is_help=True,
)

SchemasDir = Annotated[
    Path | None,
    typer.Option(
        "--schemas-dir",
        help="Schemas directory (default: CDP_SCHEMAS_DIR, i.e. schemas/ of the checkout).",
        file_okay=False,
    ),
]


def _resolve(schemas_dir: Path | None) -> Path:
    if schemas_dir is not None:
        return schemas_dir
    from cdp.settings import get_settings

    return get_settings().schemas_dir


@app.command("check")
def check_command(schemas_dir: SchemasDir = None) -> None:
    """Verify every subject version: files, ids, manifest, BACKWARD_TRANSITIVE compatibility."""
    directory = _resolve(schemas_dir)
    problems = check_schemas(directory)
    if problems:
        typer.echo(f"schema check failed for {directory}: {len(problems)} problem(s)", err=True)
        for problem in problems:
            typer.echo(f"  - {problem}", err=True)
        raise typer.Exit(code=1)
    entries = read_manifest(directory)
    subjects = {entry.subject for entry in entries}
    typer.echo(f"schemas OK: {len(subjects)} subjects, {len(entries)} versions in {directory}")


@app.command("list")
def list_command(schemas_dir: SchemasDir = None) -> None:
    """List subjects with their versions and schema ids (latest marked with *)."""
    directory = _resolve(schemas_dir)
    try:
        entries = read_manifest(directory)
    except SchemaRegistryError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=1) from None
    latest: dict[str, int] = {}
    for entry in entries:
        latest[entry.subject] = max(entry.version, latest.get(entry.subject, 0))
    width = max((len(entry.subject) for entry in entries), default=7)
    typer.echo(f"{'subject':<{width}}  version  id")
    for entry in sorted(entries, key=lambda e: (e.subject, e.version)):
        mark = "*" if entry.version == latest[entry.subject] else " "
        typer.echo(f"{entry.subject:<{width}}  v{entry.version:<6}{mark} {entry.id}")


@app.command("build")
def build_command(
    schemas_dir: SchemasDir = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be added, write nothing.")
    ] = False,
) -> None:
    """Add a new version for every subject whose sources in src/ changed."""
    directory = _resolve(schemas_dir)
    try:
        added = build(directory, dry_run=dry_run)
    except SchemaBuildError as exc:
        typer.echo("schema build refused:", err=True)
        for problem in exc.problems:
            typer.echo(f"  - {problem}", err=True)
        raise typer.Exit(code=1) from None
    if not added:
        typer.echo("schemas up to date: nothing to build")
        return
    verb = "would add" if dry_run else "added"
    for new in added:
        typer.echo(f"{verb} {new.subject} v{new.version} (id {new.id}): {new.file}")
