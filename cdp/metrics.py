"""Prometheus metrics of the stream processors (served by the worker on ``CDP_METRICS_PORT``)."""

from __future__ import annotations

from functools import cache
from typing import Any

from prometheus_client import Counter, Histogram, start_http_server

INGEST_RECORDS = Counter(
    "cdp_ingest_records",
    "Channel records handled by ingest, by source topic and outcome (accepted or reason code).",
    ["topic", "outcome"],
)


def count_ingest(topic: str, outcome: str) -> None:
    """Count one ingested record."""
    _child(INGEST_RECORDS, topic, outcome).inc()


PROCESSOR_RECORDS = Counter(
    "cdp_processor_records",
    "Input records handled by a processor plugin, by outcome (processed, skipped, dead_lettered).",
    ["processor", "outcome"],
)
PROCESSOR_LATENCY = Histogram(
    "cdp_processor_latency_seconds",
    "Time a processor plugin's function took for one input record.",
    ["processor"],
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0),
)


def count_processor(processor: str, outcome: str, seconds: float | None = None) -> None:
    """Count one record a processor plugin handled (and how long its function took)."""
    _child(PROCESSOR_RECORDS, processor, outcome).inc()
    if seconds is not None:
        _child(PROCESSOR_LATENCY, processor).observe(seconds)


@cache
def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once per label set (counted once per record)."""
    return metric.labels(*labels)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose ``/metrics`` on ``host:port`` (port 0 disables it)."""
    if port:
        start_http_server(port, addr=host)
