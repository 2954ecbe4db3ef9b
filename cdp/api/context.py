"""What every request handler needs: settings, store, access control, and the dependencies.

One :class:`ApiContext` per app, on ``app.state.ctx``; FastAPI dependencies
(:func:`get_context`, :func:`require_principal`, :func:`require_admin`,
:func:`require_report`) hand it and the authenticated caller to the routes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from cdp.api.access import AccessControl, Principal
from cdp.api.errors import Forbidden, Unauthorized
from cdp.api.metrics import ApiMetrics
from cdp.api.privacy import Eraser
from cdp.identity.config import IdentityConfig
from cdp.journey.definition import JourneyDefinition
from cdp.serve.store import ReadModelStore
from cdp.settings import Settings

KAFKA_CHECK_TTL_S = 5.0
"""How long a Kafka readiness result is reused (readiness probes come often)."""


@dataclass
class KafkaCheck:
    """Kafka metadata reachability, cached for :data:`KAFKA_CHECK_TTL_S`."""

    settings: Settings
    timeout_s: float = 2.0
    _admin: Any = None
    _last: tuple[float, str | None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> str | None:
        """None if the broker answered a metadata request, else the problem."""
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < KAFKA_CHECK_TTL_S:
                return self._last[1]
            problem: str | None = None
            try:
                if self._admin is None:
                    from confluent_kafka.admin import AdminClient

                    self._admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})
                metadata = self._admin.list_topics(timeout=self.timeout_s)
                if not metadata.brokers:
                    problem = "no brokers in metadata"
            except Exception as exc:
                problem = f"metadata request failed ({type(exc).__name__})"
            self._last = (now, problem)
            return problem


@dataclass
class ApiContext:
    """Shared state of one API app."""

    settings: Settings
    store: ReadModelStore
    access: AccessControl
    identity: IdentityConfig
    metrics: ApiMetrics
    eraser: Eraser
    kafka_check: KafkaCheck
    journey: JourneyDefinition
    """The journey definition (``CDP_JOURNEY_CONFIG``): stages, owners, moments."""
    owns_store: bool = False

    def close(self) -> None:
        """Release the producer and, if the app made it, the store's client."""
        self.eraser.close()
        if self.owns_store:
            self.store.client.close()


def context_of(request: Request) -> ApiContext:
    """The app's :class:`ApiContext`."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


# The dependencies are coroutines although they do no I/O: FastAPI runs a plain
# function dependency in the thread pool, a hop that cost more than the lookup.


async def get_context(request: Request) -> ApiContext:
    """The app's :class:`ApiContext` (a dependency)."""
    return context_of(request)


_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The department's API key."
)
_bearer = HTTPBearer(auto_error=False, description="The department's API key as a bearer token.")


async def presented_key(
    api_key: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> str | None:
    """The key the caller sent (``X-API-Key`` or ``Authorization: Bearer``), if any."""
    if api_key:
        return api_key
    if bearer is not None and bearer.credentials:
        return bearer.credentials
    return None


async def require_principal(
    ctx: Annotated[ApiContext, Depends(get_context)],
    key: Annotated[str | None, Depends(presented_key)],
) -> Principal:
    """The authenticated caller; :class:`Unauthorized` (401) if the key is missing or unknown."""
    if not key:
        raise Unauthorized(
            "an API key is required (header X-API-Key or Authorization: Bearer)",
            code="missing_api_key",
        )
    principal = ctx.access.authenticate(key)
    if principal is None:
        raise Unauthorized("the API key is not valid", code="invalid_api_key")
    return principal


async def require_admin(principal: Annotated[Principal, Depends(require_principal)]) -> Principal:
    """The caller, if its department is admin; :class:`Forbidden` (403) otherwise."""
    if not principal.admin:
        raise Forbidden(
            "this operation needs an admin key",
            code="admin_required",
            details={"department": principal.department},
        )
    return principal


def ensure_report(principal: Principal, report: str) -> None:
    """:class:`Forbidden` (403 ``report_not_allowed``) unless the department may read ``report``."""
    if report not in principal.reports:
        raise Forbidden(
            f"the {principal.department} department may not read the {report} report",
            code="report_not_allowed",
            details={"report": report, "department": principal.department},
        )


def require_report(report: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller, if its department may read ``report`` (see ``reports``)."""

    async def dependency(principal: Annotated[Principal, Depends(require_principal)]) -> Principal:
        ensure_report(principal, report)
        return principal

    return dependency


Context = Annotated[ApiContext, Depends(get_context)]
Caller = Annotated[Principal, Depends(require_principal)]
Admin = Annotated[Principal, Depends(require_admin)]
