"""Build the API app: :func:`create_app`.

::

    from cdp.api.app import create_app
    from cdp.settings import get_settings

    app = create_app(get_settings())   # serve with uvicorn (``cdp api`` does this)

The app reads the Redis read model of ``settings.namespace`` (a
:class:`~cdp.serve.store.ReadModelStore` made from ``settings.redis_url`` unless
one is passed), authenticates department keys from ``CDP_ACCESS_CONFIG`` and
writes erasure tombstones and audit events to Kafka (``settings.kafka_bootstrap``).
Stages, owners and moments of truth come from the journey definition
(``CDP_JOURNEY_CONFIG``, default: the packaged B2B journey).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis
from fastapi import FastAPI
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from cdp.api.access import AccessControl, load_access_config
from cdp.api.context import ApiContext, KafkaCheck
from cdp.api.errors import install_error_handlers
from cdp.api.metrics import ApiMetrics, MetricsMiddleware
from cdp.api.privacy import Eraser
from cdp.api.routes import changes, dashboard, health, journey, profiles, stages
from cdp.identity.config import IdentityConfig, load_identity_config
from cdp.journey.definition import JourneyDefinition, load_journey_or_default
from cdp.serve.store import ReadModelStore
from cdp.settings import Settings

log = logging.getLogger("cdp.api")

API_VERSION = "1.0.0"

DESCRIPTION = """\
Profiles of the customer-data platform for department apps (marketing, sales,
service). Authenticate with the department's API key in `X-API-Key` or
`Authorization: Bearer`. Each department sees the fields of its view; asking
for a field outside it is a 403. Every error has the body
`{"error": {"code", "message", "details"}}`. See docs/api.md.
"""


REDIS_CONNECT_TIMEOUT_S = 2.0
REDIS_SOCKET_TIMEOUT_S = 5.0


def redis_client(settings: Settings) -> redis.Redis:
    """A client for the API: short timeouts and one quick retry, so a Redis outage is a
    fast 503 rather than a hanging request (the workers' clients retry longer)."""
    return redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
        health_check_interval=30,
    )


def create_app(
    settings: Settings,
    store: ReadModelStore | None = None,
    *,
    access: AccessControl | None = None,
    identity: IdentityConfig | None = None,
    journey_definition: JourneyDefinition | None = None,
) -> FastAPI:
    """The API as an ASGI app.

    ``store``: the read model to serve (default: one on ``settings.redis_url``
    for ``settings.namespace``, closed when the app shuts down). ``access``,
    ``identity`` and ``journey_definition`` default to the files named by
    ``CDP_ACCESS_CONFIG`` (the dev-only demo file when unset),
    ``CDP_IDENTITY_CONFIG`` and ``CDP_JOURNEY_CONFIG`` (the B2B journey when
    unset). Raises :class:`~cdp.errors.ConfigError` for a bad access, identity
    or journey file.
    """
    access = access if access is not None else load_access_config(settings.access_config)
    identity = identity if identity is not None else load_identity_config(settings.identity_config)
    definition = (
        journey_definition
        if journey_definition is not None
        else load_journey_or_default(settings.journey_config)
    )
    owns_store = store is None
    store = (
        store if store is not None else ReadModelStore(redis_client(settings), settings.namespace)
    )
    metrics = ApiMetrics()
    ctx = ApiContext(
        settings=settings,
        store=store,
        access=access,
        identity=identity,
        metrics=metrics,
        eraser=Eraser(settings, store),
        kafka_check=KafkaCheck(settings),
        journey=definition,
        owns_store=owns_store,
    )
    if access.is_dev:
        log.warning(
            "using the dev-only access file with published demo keys; "
            "set CDP_ACCESS_CONFIG for anything but a local demo"
        )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        ctx.close()

    app = FastAPI(
        title="CDP profile API",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # Swagger UI loads from a CDN; the dashboard and docs work offline
        redoc_url=None,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(profiles.router)
    app.include_router(stages.router)
    app.include_router(journey.router)
    app.include_router(changes.router)
    app.include_router(health.router)
    app.include_router(dashboard.router)
    _document_stages(app, definition)
    return app


def _document_stages(app: FastAPI, definition: JourneyDefinition) -> None:
    """Put the journey's stage names into the OpenAPI document as the ``{stage}`` enum.

    The route validates ``{stage}`` against the definition at request time (the
    journey is configuration, not code); this makes the document say which
    stages there are.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for parameter in operation.get("parameters", []):
                    if parameter.get("in") == "path" and parameter.get("name") == "stage":
                        parameter["schema"] = {
                            **parameter.get("schema", {}),
                            "enum": list(definition.stage_names),
                        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
