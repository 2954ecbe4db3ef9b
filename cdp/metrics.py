"""Prometheus metrics of the stream processors (served by the worker on ``CDP_METRICS_PORT``)."""

from __future__ import annotations

from prometheus_client import Counter, start_http_server

INGEST_RECORDS = Counter(
    "cdp_ingest_records",
    "Channel records handled by ingest, by source topic and outcome (accepted or reason code).",
    ["topic", "outcome"],
)


def count_ingest(topic: str, outcome: str) -> None:
    """Count one ingested record."""
    INGEST_RECORDS.labels(topic=topic, outcome=outcome).inc()


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose ``/metrics`` on ``host:port`` (port 0 disables it)."""
    if port:
        start_http_server(port, addr=host)
