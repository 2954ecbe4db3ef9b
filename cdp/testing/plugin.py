"""pytest plugin of :mod:`cdp.testing`: the ``cdp_pipeline`` fixture and ``--cdp-real-stack``.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["cdp.testing.plugin"]``.
A test written against ``cdp_pipeline`` runs in memory by default; with
``pytest --cdp-real-stack`` (or ``CDP_TEST_REAL_STACK=1``) the same test runs on
the real stack (Kafka, a worker process, Redis; started if it is down), each
call in a fresh namespace.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import pytest

from cdp.contracts.events import Event
from cdp.processors.api import Processor
from cdp.settings import load_settings
from cdp.testing.memory import run_in_memory
from cdp.testing.result import PipelineResult
from cdp.testing.stack import run_on_stack

OPTION = "--cdp-real-stack"
ENVIRONMENT = "CDP_TEST_REAL_STACK"


class PipelineRunner(Protocol):
    """What ``cdp_pipeline`` returns: ``cdp_pipeline(events, processors) -> PipelineResult``."""

    def __call__(
        self, events: Iterable[Event], processors: Iterable[Processor] = ()
    ) -> PipelineResult: ...


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--cdp-real-stack``."""
    parser.addoption(
        OPTION,
        action="store_true",
        default=False,
        help="run cdp_pipeline tests on the real stack (Kafka, worker, Redis) instead of in memory",
    )


def real_stack_requested(config: pytest.Config) -> bool:
    """Whether ``--cdp-real-stack`` or ``CDP_TEST_REAL_STACK=1`` was given."""
    return bool(config.getoption(OPTION)) or os.environ.get(ENVIRONMENT) == "1"


@pytest.fixture()
def cdp_pipeline(request: pytest.FixtureRequest, tmp_path: Path) -> PipelineRunner:
    """Run events through the pipeline and processors: in memory, or on the real stack."""
    if not real_stack_requested(request.config):

        def in_memory(
            events: Iterable[Event], processors: Iterable[Processor] = ()
        ) -> PipelineResult:
            return run_in_memory(events, processors)

        return in_memory
    from cdp.stack import LocalStack

    LocalStack(load_settings()).up(progress=lambda _line: None)

    def on_stack(events: Iterable[Event], processors: Iterable[Processor] = ()) -> PipelineResult:
        namespace = "t" + uuid.uuid4().hex[:10]
        settings = load_settings(namespace=namespace, metrics_port=0)
        return run_on_stack(
            events, processors, settings=settings, log_path=tmp_path / f"{namespace}-worker.log"
        )

    return on_stack
