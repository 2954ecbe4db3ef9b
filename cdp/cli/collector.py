"""``cdp collector``: serve the Segment-compatible HTTP collector."""

from __future__ import annotations

from typing import Annotated

import typer

from cdp.cli.api import ensure_topic, is_loopback, run_server, serving_settings
from cdp.errors import ConfigError
from cdp.settings import Settings


def check_serving(settings: Settings) -> None:
    """Refuse to serve the dev-only write key on anything but loopback (:class:`ConfigError`)."""
    if settings.write_key_config is None and not is_loopback(settings.collector_host):
        raise ConfigError(
            "CDP_WRITE_KEY_CONFIG: required when CDP_COLLECTOR_HOST is not a loopback address "
            f"({settings.collector_host!r}); the dev-only write key is public"
        )


def collector(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default CDP_COLLECTOR_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default CDP_COLLECTOR_PORT).")
    ] = None,
) -> None:
    """Serve the Segment-compatible HTTP collector with uvicorn until Ctrl-C/SIGTERM.

    Listens on CDP_COLLECTOR_HOST:CDP_COLLECTOR_PORT (default 127.0.0.1:18090).
    Write keys come from CDP_WRITE_KEY_CONFIG; unset, the dev-only key of
    docs/collector.md is used (loopback only). Events go to the web channel topic
    of CDP_NAMESPACE on CDP_KAFKA_BOOTSTRAP; a request is answered after Kafka
    acknowledged it (at most CDP_COLLECTOR_ACK_TIMEOUT seconds, then 503).
    """
    from cdp.collect.app import create_app
    from cdp.topics import Channel, Topics

    settings = serving_settings("collector", host, port)
    check_serving(settings)
    ensure_topic(settings, Topics(settings.namespace).channel(Channel.WEB))
    application = create_app(settings)
    typer.echo(
        f"collecting on http://{settings.collector_host}:{settings.collector_port}/v1/"
        f" -> {settings.namespace}.channel.web"
    )
    run_server(application, settings.collector_host, settings.collector_port, settings)
