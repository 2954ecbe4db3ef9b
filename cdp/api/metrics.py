"""Prometheus metrics and the access log of the API, labelled by route template, never raw path.

Each app has its own :class:`~prometheus_client.CollectorRegistry` (so several
apps can live in one process, e.g. in tests); ``GET /metrics`` serves it. Paths
and query strings are never logged or used as labels: they carry identifiers
(``?email=...``). The route label is the matched template
(``/v1/profiles/{profile_id}``), ``unmatched`` for unknown paths.
"""

from __future__ import annotations

import logging
import time
import uuid

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cdp.api.errors import route_label

access_log = logging.getLogger("cdp.api.access")

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """The API's metrics, registered on their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "cdp_api_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cdp_api_request_duration_seconds",
            "Time to the end of the response by method and route template (streams: their life).",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "cdp_api_requests_in_flight",
            "Requests being served (open change feeds included).",
            registry=self.registry,
        )
        self.erasures = Counter(
            "cdp_api_erasures", "Profiles erased (GDPR).", registry=self.registry
        )
        self.change_events = Counter(
            "cdp_api_change_events", "Change-feed events sent.", registry=self.registry
        )


class MetricsMiddleware:
    """Counts and times requests; adds ``X-Request-ID``; writes a PII-free access log line."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = uuid.uuid4().hex[:16]

        async def wrapped_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, wrapped_send)
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - started
            route = route_label(scope)
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            access_log.info(
                "%s %s %d %.1fms id=%s", method, route, status, elapsed * 1000, request_id
            )
