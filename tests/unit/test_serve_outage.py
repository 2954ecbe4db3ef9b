"""Read-model writes of the stages wait out a Redis outage instead of failing."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import redis

from cdp.serve import outage
from cdp.serve.writes import ProfileDelete


class FlakyStore:
    """Fails ``failures`` times with ``error``, then records the applied batch."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.applied: list[Any] = []
        self.calls = 0

    def apply(self, writes: Any) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        self.applied.append(list(writes))


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outage, "FIRST_DELAY_S", 0.001)
    monkeypatch.setattr(outage, "MAX_DELAY_S", 0.004)


@pytest.mark.parametrize(
    "error",
    [redis.ConnectionError("refused"), redis.TimeoutError(), redis.BusyLoadingError("loading")],
)
def test_writes_are_retried_until_redis_answers(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(5, error)
    writes = [ProfileDelete("p-1", 3)]
    with caplog.at_level(logging.WARNING):
        asyncio.run(outage.apply_waiting(store, writes, "profiles"))  # type: ignore[arg-type]
    assert store.applied == [writes]
    assert store.calls == 6
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2  # one line when it starts, one when it is over
    assert "Redis unavailable" in messages[0] and "Redis is back" in messages[1]


def test_other_errors_are_not_swallowed() -> None:
    store = FlakyStore(1, redis.ResponseError("CDP_LAYOUT namespace holds layout 2"))
    with pytest.raises(redis.ResponseError):
        asyncio.run(outage.apply_waiting(store, [ProfileDelete("p-1", 3)], "identity"))  # type: ignore[arg-type]
    store = FlakyStore(0, RuntimeError())
    asyncio.run(outage.apply_waiting(store, [], "identity"))  # type: ignore[arg-type]
    assert store.calls == 0
