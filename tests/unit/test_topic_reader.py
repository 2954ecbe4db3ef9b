"""Reading a topic waits out a partition whose leader is still settling."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from cdp.topic_reader import _watermarks


class Flaky:
    def __init__(self, errors: list[int]) -> None:
        self.errors = errors

    def get_watermark_offsets(self, partition: Any, timeout: float) -> tuple[int, int]:
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        return 0, 7


def test_a_settling_leader_is_waited_for() -> None:
    consumer = Flaky([KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE])
    assert _watermarks(consumer, TopicPartition("t", 0)) == (0, 7)  # type: ignore[arg-type]


def test_other_errors_are_raised() -> None:
    consumer = Flaky([KafkaError.TOPIC_AUTHORIZATION_FAILED])
    with pytest.raises(KafkaException):
        _watermarks(consumer, TopicPartition("t", 0))  # type: ignore[arg-type]
