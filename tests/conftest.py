"""Shared fixtures. Integration tests run against the real local stack.

The stack (Kafka broker + Redis) is brought up once per session with the
project's own ``LocalStack`` (idempotent: reused when already running). Each
test session uses a fresh namespace, so topics, consumer groups and Redis keys
never carry state over from an earlier run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from cdp.settings import Settings, load_settings

pytest_plugins = ["cdp.testing.plugin"]  # cdp_pipeline fixture, --cdp-real-stack


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[Settings]:
    """Settings of the running local stack (started here if needed)."""
    from cdp.stack import LocalStack

    settings = load_settings()
    LocalStack(settings).up(progress=print)
    yield settings


@pytest.fixture()
def namespace() -> str:
    """A namespace no earlier run has used."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture()
def settings(stack_settings: Settings, namespace: str) -> Settings:
    """Stack settings with a fresh namespace and its topics created."""
    from cdp.topics import ensure_topics

    fresh = load_settings(namespace=namespace, metrics_port=0)
    ensure_topics(fresh)
    return fresh


@pytest.fixture()
def worker_env(settings: Settings) -> dict[str, str]:
    """Environment for a worker subprocess bound to ``settings``."""
    from cdp.worker_process import settings_env

    return settings_env(settings, CDP_METRICS_PORT="0", CDP_LOG_LEVEL="warning")
