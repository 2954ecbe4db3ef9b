"""Dead letters keep the original bytes and their coordinates."""

from __future__ import annotations

import pytest

from cdp.deadletter import DeadLetter, SourceRecord
from cdp.errors import ReasonCode


def test_headers_round_trip() -> None:
    source = SourceRecord(
        topic="cdp.channel.web",
        partition=3,
        offset=12345,
        key=b"k",
        value=b"\x00garbage",
        timestamp_ms=1700000000000,
        headers=(("trace", b"abc"),),
    )
    letter = DeadLetter(source, ReasonCode.AVRO_DECODE_ERROR, "truncated body", "ingest")
    back = DeadLetter.from_kafka(b"k", b"\x00garbage", letter.headers())
    assert back == letter


def test_foreign_record_is_rejected() -> None:
    with pytest.raises(ValueError, match="not a cdp dead-letter record"):
        DeadLetter.from_kafka(None, b"x", [("other", b"1")])
