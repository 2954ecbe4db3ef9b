"""``cdp rebuild``: wipe the Redis read model and rebuild it from Kafka."""

from __future__ import annotations

import typer

from cdp.settings import get_settings


def rebuild() -> None:
    """Wipe this namespace's Redis keys and rebuild them from the compacted Kafka topics.

    Stop the worker first, or run it afterwards: while it runs, its writes are
    version-guarded, so a rebuild never overwrites newer state.
    Settings: CDP_NAMESPACE, CDP_KAFKA_BOOTSTRAP, CDP_REDIS_URL.
    """
    from cdp.serve.rebuild import rebuild as run

    stats = run(get_settings(), progress=lambda line: typer.echo(f"    {line}"))
    typer.echo(
        f"rebuilt {stats.profiles} profiles ({stats.deleted_profiles} deleted ids skipped) and"
        f" {stats.identifiers} identifiers in {stats.seconds:.1f}s"
    )
