"""Identity resolution and profiles on the real stack, scored against the ground truth.

One undisturbed run of 2,000 generated customers (about 20,000 events with
duplicates, late events, case/whitespace variants and shared call-center
numbers) is the reference. Then: the read model matches the ground truth
exactly; a wipe + rebuild from Kafka gives an identical canonical dump; and a
run whose worker is SIGKILLed at random points and restarted ends with the
same dump.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cdp.identity.config import default_identity_config
from cdp.producer import EventProducer
from cdp.samples import Dataset, generate
from cdp.scoring import Expected, expected_profiles, score
from cdp.serve.rebuild import rebuild
from cdp.serve.store import ReadModelStore
from cdp.settings import Settings, load_settings
from cdp.topics import ensure_topics
from cdp.worker_process import WorkerProcess, settings_env

pytestmark = pytest.mark.integration

CUSTOMERS = int(os.environ.get("CDP_TEST_CUSTOMERS", "2000"))
CONVERGE_TIMEOUT = 420.0


@dataclass
class Run:
    """One pipeline run over the dataset: its settings and final canonical dump."""

    settings: Settings
    dump: dict[str, Any]
    seconds: float
    kills: int


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    data = generate(CUSTOMERS, 10, seed=2026, duplicate_rate=0.03, late_rate=0.05)
    assert data.distinct_events >= CUSTOMERS * 10
    return data


@pytest.fixture(scope="module")
def expected(dataset: Dataset) -> Expected:
    return expected_profiles(dataset, default_identity_config())


def _events_in_profiles(store: ReadModelStore) -> int:
    return sum(
        json.loads(entry["document"])["event_count"] for entry in store.dump()["profiles"].values()
    )


def _wait_converged(store: ReadModelStore, events: int, worker: WorkerProcess) -> dict[str, Any]:
    """Wait until every event is in a profile and two dumps 3 s apart are equal."""
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    previous: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        assert worker.running, worker.log_tail()
        if _events_in_profiles(store) == events:
            current = store.dump()
            if current == previous:
                return current
            previous = current
        time.sleep(3)
    raise AssertionError(f"no convergence in {CONVERGE_TIMEOUT}s\n{worker.log_tail()}")


def _wait_for_progress(settings: Settings, worker: WorkerProcess, timeout: float = 120) -> None:
    """Wait until the worker (re)started and wrote something new to the read model."""
    with ReadModelStore.from_settings(settings) as store:
        before = store.client.dbsize()
        deadline = time.monotonic() + timeout
        while store.client.dbsize() == before:
            assert worker.running, worker.log_tail()
            assert time.monotonic() < deadline, "worker made no progress"
            time.sleep(0.2)


def _run(
    stack: Settings, dataset: Dataset, tmp: Path, kills: int = 0, seed: int = 0
) -> Iterator[Run]:
    settings = load_settings(namespace="t" + uuid.uuid4().hex[:10], metrics_port=0)
    ensure_topics(settings)
    env = settings_env(settings, CDP_LOG_LEVEL="warning")
    rng = random.Random(seed)
    kill_at = sorted(rng.sample(range(1, len(dataset.events)), kills)) if kills else []
    started = time.monotonic()
    worker = WorkerProcess(env, tmp / f"worker-{settings.namespace}.log").start()
    done_kills = 0
    try:
        with EventProducer(settings) as producer:
            for index, event in enumerate(dataset.events):
                producer.send(event)
                if kill_at and index == kill_at[0]:
                    kill_at.pop(0)
                    producer.flush()
                    _wait_for_progress(settings, worker)  # kill it mid-work, not at start-up
                    time.sleep(rng.uniform(0.0, 2.0))
                    worker.kill()
                    done_kills += 1
                    worker.start()
        with ReadModelStore.from_settings(settings) as store:
            final = _wait_converged(store, dataset.distinct_events, worker)
        yield Run(settings, final, time.monotonic() - started, done_kills)
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def undisturbed(
    stack_settings: Settings, dataset: Dataset, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    yield from _run(stack_settings, dataset, tmp_path_factory.mktemp("undisturbed"))


def test_profiles_match_the_ground_truth(undisturbed: Run, expected: Expected) -> None:
    print(
        f"\n{len(expected.clusters)} expected profiles, {expected.keys} identifiers,"
        f" converged in {undisturbed.seconds:.0f}s"
    )
    with ReadModelStore.from_settings(undisturbed.settings) as store:
        problems = score(expected, store)
        assert problems == [], problems[:20]
        # lookup by every identifier returns the profile that holds it
        for cluster in expected.clusters[:300]:
            for key in cluster:
                profile_id = store.lookup(key)
                assert profile_id is not None
                document = json.loads(store.get_profile(profile_id) or b"{}")
                assert key in document["identifiers"]
    assert len(undisturbed.dump["profiles"]) == len(expected.clusters)


def test_no_profile_spans_two_customers(undisturbed: Run, expected: Expected) -> None:
    for entry in undisturbed.dump["profiles"].values():
        owners = {expected.owner[key] for key in json.loads(entry["document"])["identifiers"]}
        assert len(owners) == 1


def test_rebuild_from_kafka_gives_an_identical_read_model(undisturbed: Run) -> None:
    stats = rebuild(undisturbed.settings)
    assert stats.wiped_keys > 0
    with ReadModelStore.from_settings(undisturbed.settings) as store:
        assert store.dump() == undisturbed.dump


def test_sigkill_and_restart_converge_to_the_same_state(
    stack_settings: Settings, dataset: Dataset, undisturbed: Run, tmp_path: Path
) -> None:
    for crashed in _run(stack_settings, dataset, tmp_path, kills=3, seed=7):
        assert crashed.kills == 3
        assert crashed.dump == undisturbed.dump
