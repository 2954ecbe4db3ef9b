"""A stage whose body raises ends the process before its batch is acknowledged."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from faust.streams import Stream

from cdp import in_order
from cdp.streams import stage_agent, stages_busy


@pytest.fixture()
def acks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Values of the events a stream acknowledged."""
    seen: list[Any] = []
    original = Stream.ack

    async def ack(self: Stream, event: Any) -> bool:
        seen.append(event.value)
        return bool(await original(self, event))

    monkeypatch.setattr(Stream, "ack", ack)
    return seen


async def _failing(stream: Any) -> None:
    async for _batch in stream.take_events(10, within=0.05):
        raise RuntimeError("Redis said OOM")


async def _feed(agent: Any, *values: bytes) -> None:
    async with agent.test_context() as context:
        for value in values:
            await context.put(value)
        await asyncio.sleep(0.3)


def _app() -> faust.App:
    return faust.App("t-stage-agent", broker="kafka://127.0.0.1:1", store="memory://")


def test_faust_alone_acknowledges_a_batch_whose_body_raised(acks: list[Any]) -> None:
    """Why :func:`stage_agent` exists: the failed batch would be committed unprocessed."""
    app = _app()
    agent = app.agent(app.channel(), name="plain", concurrency=1)(_failing)
    asyncio.run(_feed(agent, b"a", b"b"))
    assert acks == [b"a", b"b"]


def test_a_failing_stage_exits_for_a_restart_before_acknowledging(
    acks: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    exits: list[tuple[str, int]] = []

    def exit_for_restart(message: str, *args: Any, exc_info: bool = False) -> None:
        exits.append((message % args, len(acks)))
        assert exc_info

    monkeypatch.setattr(in_order, "exit_for_restart", exit_for_restart)
    app = _app()
    agent = stage_agent(app, app.channel(), "t.failing", _failing)
    asyncio.run(_feed(agent, b"a", b"b"))
    assert exits == [(f"stage t.failing failed; {in_order.RESTART_LINE}", 0)]


def test_a_stage_counts_as_busy_while_it_processes_a_batch_only() -> None:
    """What a rebalance looks at before it gives up messages nobody acknowledges."""
    seen: list[frozenset[str]] = []

    async def body(stream: Any) -> None:
        async for _batch in stream.take_events(10, within=0.05):
            seen.append(stages_busy())
            await asyncio.sleep(0)

    app = _app()
    agent = stage_agent(app, app.channel(), "t.tracked", body)
    asyncio.run(_feed(agent, b"a", b"b"))
    assert seen and all(busy == {"t.tracked"} for busy in seen)
    assert stages_busy() == frozenset()  # between batches, and after
