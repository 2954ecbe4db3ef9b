"""``/healthz`` (liveness), ``/readyz`` (Redis, layout, Kafka) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cdp.api.context import Context
from cdp.api.errors import ERROR_RESPONSES, error_response
from cdp.api.models import Health, Readiness
from cdp.serve import keys

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, responses={500: ERROR_RESPONSES[500]})
def healthz() -> Health:
    """Liveness: the process answers (no dependency is checked)."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={500: ERROR_RESPONSES[500], 503: ERROR_RESPONSES[503]},
)
def readyz(ctx: Context) -> Response:
    """Readiness: Redis answers PING, holds this code's layout version, Kafka gives metadata."""
    checks: dict[str, str] = {}
    try:
        ctx.store.client.ping()
        checks["redis"] = "ok"
        layout = ctx.store.layout_version()
        if layout is None or layout == keys.LAYOUT_VERSION:
            checks["layout"] = "ok" if layout is not None else "ok (empty namespace)"
        else:
            checks["layout"] = (
                f"namespace holds layout {layout}, this code reads {keys.LAYOUT_VERSION}"
            )
    except Exception as exc:
        checks["redis"] = f"unreachable ({type(exc).__name__})"
        checks["layout"] = "unknown"
    problem = ctx.kafka_check()
    checks["kafka"] = "ok" if problem is None else problem
    if all(value.startswith("ok") for value in checks.values()):
        return JSONResponse(Readiness(status="ready", checks=checks).model_dump())
    return error_response(503, "not_ready", "a dependency is not ready", {"checks": checks})


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        500: ERROR_RESPONSES[500],
    },
)
def metrics(ctx: Context) -> Response:
    """Prometheus metrics: requests by route template and status, latency, erasures, feed."""
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
