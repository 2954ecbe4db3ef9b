"""The ``cdp`` command. Settings come from ``CDP_*`` environment variables.

Exit codes: 0 success, 1 a failure the message explains (bad config, stack
down, failed check), 2 wrong usage.
"""

from __future__ import annotations

import sys

import typer

from cdp.cli import api, collector, demo, processors, rebuild, schemas, stack, topics, worker
from cdp.errors import CdpError

app = typer.Typer(
    name="cdp",
    help="Event-streaming customer-data platform: Kafka in, unified profiles out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(topics.app, name="topics")
app.add_typer(schemas.app, name="schemas")
app.command("worker")(worker.worker)
app.command("rebuild")(rebuild.rebuild)
app.command("demo")(demo.demo)
app.add_typer(demo.sample_app, name="sample")
app.add_typer(api.app, name="api")
app.command("collector")(collector.collector)
app.add_typer(processors.app, name="processors")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except CdpError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
