"""Integration tests of the local stack: real Kafka broker and Redis server on spare ports.

Each test gets its own temporary state dir and free non-default ports; only the Kafka
jar cache (``CDP_CACHE_DIR``) is shared. The fixture stops and purges the stack.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from typer.testing import CliRunner

from cdp.cli import stack as stack_cli
from cdp.errors import StackError
from cdp.settings import Settings, load_settings
from cdp.stack import LocalStack, process

pytestmark = pytest.mark.integration

TOPIC = "cdp-stack-test.kept"


def pick_ports(count: int) -> list[int]:
    """Free ports below the ephemeral range (so no client connection grabs them meanwhile)."""
    ports: list[int] = []
    candidate = random.randrange(30000, 32000)
    while len(ports) < count:
        candidate += 1
        if candidate in (29092, 29093, 26379, 19092, 19093, 16379):
            continue
        if not process.port_in_use(candidate):
            ports.append(candidate)
    return ports


def stack_settings(tmp_path: Path, **overrides: object) -> Settings:
    kafka, controller, redis_port = pick_ports(3)
    values: dict[str, object] = {
        "state_dir": tmp_path / "state",
        "kafka_bootstrap": f"127.0.0.1:{kafka}",
        "kafka_controller_port": controller,
        "redis_url": f"redis://127.0.0.1:{redis_port}/0",
    }
    values.update(overrides)
    return load_settings(**values)  # cache_dir: the shared jar cache


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return stack_settings(tmp_path)


@pytest.fixture
def stack(settings: Settings) -> Iterator[LocalStack]:
    local = LocalStack(settings)
    try:
        yield local
    finally:
        local.down(purge=True)


def _redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


def _topics(settings: Settings) -> set[str]:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    return set(admin.list_topics(timeout=10).topics)


def _create_topic(settings: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    futures = admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])
    futures[TOPIC].result(timeout=30)


def test_lifecycle_up_idempotent_down_keeps_data_purge(
    stack: LocalStack, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages: list[str] = []
    statuses = stack.up(progress=messages.append)
    assert [st.state for st in statuses] == ["running", "running"], messages
    pids = {st.name: st.pid for st in statuses}
    assert all(process.is_alive(pid) for pid in pids.values() if pid is not None)
    cluster_id = (stack.kafka.data_dir / "meta.properties").read_text()
    assert stack.kafka.log_file.stat().st_size > 0
    assert stack.redis.log_file.stat().st_size > 0

    _create_topic(settings)
    _redis(settings).set("cdp-stack-test", "kept")

    # up again: nothing restarts
    messages.clear()
    again = stack.up(progress=messages.append)
    assert {st.name: st.pid for st in again} == pids
    assert sum("already running" in message for message in messages) == 2

    # the CLI sees the same
    monkeypatch.setattr(stack_cli, "get_settings", lambda: settings)
    result = CliRunner().invoke(stack_cli.app, ["status"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("running") == 2
    result = CliRunner().invoke(stack_cli.app, ["logs", "kafka", "-n", "5"])
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 5

    # down: processes gone, pid files gone, data kept
    stack.down()
    assert [st.state for st in stack.status()] == ["stopped", "stopped"]
    assert not any(process.is_alive(pid) for pid in pids.values() if pid is not None)
    assert not stack.kafka.pid_file.exists() and not stack.redis.pid_file.exists()
    assert CliRunner().invoke(stack_cli.app, ["status"]).exit_code == 1

    # up again: same cluster, data still there
    statuses = stack.up()
    assert [st.state for st in statuses] == ["running", "running"]
    assert {st.name: st.pid for st in statuses} != pids
    assert (stack.kafka.data_dir / "meta.properties").read_text() == cluster_id
    assert TOPIC in _topics(settings)
    assert _redis(settings).get("cdp-stack-test") == b"kept"

    # down --purge: everything gone, the next up starts from scratch
    stack.down(purge=True)
    assert [st.state for st in stack.status()] == ["stopped", "stopped"]
    assert not stack.kafka.dir.exists() and not stack.redis.dir.exists()


def test_broker_that_dies_during_start_shows_its_output(tmp_path: Path) -> None:
    local = LocalStack(stack_settings(tmp_path, kafka_heap="1k"))
    try:
        with pytest.raises(StackError, match=r"(?s)kafka exited during start.*Too small"):
            local.up()
        assert {st.name: st.state for st in local.status()} == {
            "redis": "running",
            "kafka": "stopped",
        }
    finally:
        local.down(purge=True)
    assert [st.state for st in local.status()] == ["stopped", "stopped"]


def test_started_with_other_ports_is_reported(stack: LocalStack) -> None:
    stack.up()
    moved = LocalStack(
        stack.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{pick_ports(1)[0]}/0"})
    )
    assert {st.name: st.state for st in moved.status()}["redis"] == "mismatched"
    with pytest.raises(StackError, match="cdp stack down"):
        moved.up()
