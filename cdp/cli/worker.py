"""``cdp worker``: run the stream processors."""

from __future__ import annotations

from cdp.settings import get_settings


def worker() -> None:
    """Run the stream-processing worker (ingest -> canonical topic) until Ctrl-C/SIGTERM.

    Creates missing topics first. Settings: CDP_KAFKA_BOOTSTRAP, CDP_NAMESPACE,
    CDP_METRICS_PORT (Prometheus /metrics, 0 = off), CDP_LOG_LEVEL.
    """
    from cdp.worker import run_worker

    run_worker(get_settings())
