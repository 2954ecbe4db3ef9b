"""The worker's Prometheus counters count every record (their label children are cached)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from cdp.metrics import count_ingest, count_processor


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_each_call_counts_once_per_label_set() -> None:
    before = _value("cdp_ingest_records_total", topic="t.channel.web", outcome="accepted")
    other = _value("cdp_ingest_records_total", topic="t.channel.web", outcome="invalid_avro")
    for _ in range(3):
        count_ingest("t.channel.web", "accepted")
    count_ingest("t.channel.web", "invalid_avro")
    assert (
        _value("cdp_ingest_records_total", topic="t.channel.web", outcome="accepted") == before + 3
    )
    assert (
        _value("cdp_ingest_records_total", topic="t.channel.web", outcome="invalid_avro")
        == other + 1
    )


def test_a_processor_record_is_counted_and_timed() -> None:
    count = _value("cdp_processor_latency_seconds_count", processor="p-test")
    count_processor("p-test", "processed", 0.002)
    count_processor("p-test", "skipped")
    assert _value("cdp_processor_records_total", processor="p-test", outcome="processed") >= 1
    assert _value("cdp_processor_latency_seconds_count", processor="p-test") == count + 1
