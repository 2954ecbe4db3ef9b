"""``cdp topics``: create and list the declared topics."""

from __future__ import annotations

import typer

from cdp.settings import get_settings
from cdp.topics import declared_topics, ensure_topics

app = typer.Typer(
    help="Kafka topics declared in cdp.topics (created idempotently).", no_args_is_help=True
)


@app.command("create")
def create() -> None:
    """Create every declared topic that does not exist yet (idempotent)."""
    settings = get_settings()
    created = ensure_topics(settings)
    for name in created:
        typer.echo(f"created {name}")
    typer.echo(f"{len(created)} created, {len(declared_topics(settings)) - len(created)} existed")


@app.command("list")
def list_topics() -> None:
    """Show the declared topics: name, partitions, replication, cleanup policy."""
    for spec in declared_topics(get_settings()):
        typer.echo(
            f"{spec.name:<40} partitions={spec.partitions:<3} replication={spec.replication}"
            f" cleanup={spec.cleanup.value:<8} {spec.description}"
        )
