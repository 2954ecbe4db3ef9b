"""``cdp api``: serve the HTTP API and dashboard; ``cdp api hash-key``: make or hash an API key."""

from __future__ import annotations

import ipaddress
import logging
import sys
from typing import Annotated, Any

import typer

from cdp.errors import ConfigError
from cdp.settings import Settings, get_settings, load_settings

app = typer.Typer()

log = logging.getLogger("cdp.api")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_serving(settings: Settings) -> None:
    """Refuse to serve the dev-only demo keys on anything but loopback (:class:`ConfigError`)."""
    if settings.access_config is None and not is_loopback(settings.api_host):
        raise ConfigError(
            "CDP_ACCESS_CONFIG: required when CDP_API_HOST is not a loopback address "
            f"({settings.api_host!r}); the dev-only access file's demo keys are public"
        )


def ensure_topic(settings: Settings, name: str) -> None:
    """Create the declared topic ``name`` if it is missing; only warn if Kafka is down."""
    from cdp.topics import declared_topics, ensure_topics

    try:
        ensure_topics(settings, [s for s in declared_topics(settings) if s.name == name], 10.0)
    except Exception as exc:  # Kafka down: serve anyway, requests report it
        log.warning("could not ensure topic %s: %s", name, type(exc).__name__)


def serving_settings(prefix: str, host: str | None, port: int | None) -> Settings:
    """The settings with ``{prefix}_host``/``{prefix}_port`` set from the command's options
    (:class:`ConfigError` naming a bad one); configures logging at the settings' level."""
    overrides: dict[str, object] = {}
    if host is not None:
        overrides[f"{prefix}_host"] = host
    if port is not None:
        overrides[f"{prefix}_port"] = port
    settings = load_settings(**overrides) if overrides else get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return settings


def run_server(application: Any, host: str, port: int, settings: Settings) -> None:
    """Serve an ASGI app with uvicorn until Ctrl-C/SIGTERM: no access log (raw paths and
    client addresses are PII), no server header."""
    import uvicorn

    uvicorn.run(
        application,
        host=host,
        port=port,
        access_log=False,
        log_level=settings.log_level,
        server_header=False,
    )


@app.callback(invoke_without_command=True)
def api(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default CDP_API_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default CDP_API_PORT).")
    ] = None,
) -> None:
    """Serve the HTTP API and dashboard with uvicorn until Ctrl-C/SIGTERM.

    Listens on CDP_API_HOST:CDP_API_PORT (default 127.0.0.1:18080). Keys and
    views come from CDP_ACCESS_CONFIG; unset, the dev-only demo keys of
    docs/api.md are used (loopback only). Reads Redis (CDP_REDIS_URL,
    CDP_NAMESPACE); erasures write to Kafka (CDP_KAFKA_BOOTSTRAP). Stages, funnel
    and moments follow the journey definition (CDP_JOURNEY_CONFIG; default: B2B).
    """
    if ctx.invoked_subcommand is not None:
        return
    from cdp.api.app import create_app
    from cdp.topics import Topics

    settings = serving_settings("api", host, port)
    check_serving(settings)
    ensure_topic(settings, Topics(settings.namespace).privacy_audit)
    application = create_app(settings)
    typer.echo(
        f"serving the API on http://{settings.api_host}:{settings.api_port}/ (dashboard:"
        f" /dashboard, OpenAPI: /openapi.json)"
    )
    # uvicorn's access log prints raw paths with query strings (?email=...): PII. The app
    # logs its own access lines with the route template instead (cdp.api.access).
    run_server(application, settings.api_host, settings.api_port, settings)


@app.command("hash-key")
def hash_key(
    key: Annotated[
        str | None, typer.Argument(help="The key to hash; omitted: generate a new random key.")
    ] = None,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the key from standard input (keeps it out of ps).")
    ] = False,
) -> None:
    """Print the sha256 digest of an API key for the access file (and a new key if none given)."""
    from cdp.api.access import MIN_KEY_LENGTH, new_key
    from cdp.api.access import hash_key as digest

    if stdin:
        key = sys.stdin.readline().strip()
    generated = key is None
    if key is None:
        key = new_key()
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(f"an API key needs at least {MIN_KEY_LENGTH} characters")
    if generated:
        typer.echo(f"key:    {key}")
    typer.echo(f"sha256: {digest(key)}")
