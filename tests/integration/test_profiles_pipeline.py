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
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cdp.identity.config import default_identity_config
from cdp.identity.identifiers import primary_identifier, usable_identifiers
from cdp.journey import JourneyState, compute_funnel, default_journey
from cdp.journey.handoff import QualificationCandidate
from cdp.producer import EventProducer
from cdp.profile.document import build_profile
from cdp.profile.facts import Fact, fact_from_event
from cdp.profile.survivorship import default_trait_config
from cdp.samples import STAGES, Dataset, generate
from cdp.scoring import Expected, expected_profiles, score
from cdp.serve.journey import read_funnel, read_moments
from cdp.serve.rebuild import rebuild
from cdp.serve.store import ReadModelStore
from cdp.settings import Settings, load_settings
from cdp.topic_reader import read_topic
from cdp.topics import Topics, ensure_topics
from cdp.worker_process import WorkerProcess, settings_env
from tests.pipeline_support import wait_converged

pytestmark = pytest.mark.integration

CUSTOMERS = int(os.environ.get("CDP_TEST_CUSTOMERS", "2000"))
CONVERGE_TIMEOUT = float(os.environ.get("CDP_TEST_CONVERGE_TIMEOUT", "1800"))
"""Upper bound for one run to converge (seconds)."""
STALL_TIMEOUT = 240.0
"""A run fails earlier when the read model made no progress for this long."""


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
            final = wait_converged(
                store,
                dataset.distinct_events,
                worker,
                stall=STALL_TIMEOUT,
                ceiling=CONVERGE_TIMEOUT,
                settings=settings,
            )
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
    stack_settings: Settings,
    dataset: Dataset,
    expected: Expected,
    undisturbed: Run,
    tmp_path: Path,
) -> None:
    for crashed in _run(stack_settings, dataset, tmp_path, kills=3, seed=7):
        assert crashed.kills == 3
        assert crashed.dump == undisturbed.dump
        _check_handoffs(crashed, dataset, expected)


# ------------------------------------------------------------------ journeys


def _documents(run: Run) -> dict[str, dict[str, Any]]:
    return {pid: json.loads(e["document"]) for pid, e in run.dump["profiles"].items()}


def test_journey_stages_match_the_ground_truth(
    undisturbed: Run, dataset: Dataset, expected: Expected
) -> None:
    """Each profile's journey equals a batch evaluation of its true events; each customer
    whose events all form one profile ends in the stage of their true depth."""
    config = default_identity_config()
    journey, traits = default_journey(), default_trait_config()
    cluster_of = {key: index for index, keys in enumerate(expected.clusters) for key in keys}
    facts: dict[int, list[Fact]] = defaultdict(list)
    clusters_of_customer: dict[str, set[int]] = defaultdict(set)
    for event in {e.event_id: e for e in dataset.events}.values():
        keys = usable_identifiers(((i.type, i.value) for i in event.identifiers), config)
        index = cluster_of[primary_identifier(keys, config)]
        facts[index].append(fact_from_event(event))
        clusters_of_customer[dataset.truth[event.event_id]].add(index)
    documents = _documents(undisturbed)
    by_key = {key: doc for doc in documents.values() for key in doc["identifiers"]}
    depth = {c.key: c.depth for c in dataset.customers}
    single = 0
    for index, keys in enumerate(expected.clusters):
        document = by_key[next(iter(keys))]
        batch = build_profile("x", facts[index], traits, identifiers=keys, journey=journey)
        assert batch.journey is not None
        assert document["journey"] == batch.journey.model_dump(mode="json"), sorted(keys)
        customer = expected.owner[next(iter(keys))]
        if clusters_of_customer[customer] == {index}:
            single += 1
            assert document["journey"]["stage"] == STAGES[depth[customer]], customer
    assert single > len(dataset.customers) * 0.9
    stages = Counter(doc["journey"]["stage"] for doc in documents.values())
    print(
        f"\njourneys of {len(expected.clusters)} profiles equal the batch evaluation;"
        f" {single} customers in one profile each end in their true stage; {dict(stages)}"
    )


def test_funnel_in_redis_equals_a_recomputation(undisturbed: Run) -> None:
    journey = default_journey()
    states = [JourneyState.model_validate(d["journey"]) for d in _documents(undisturbed).values()]
    with ReadModelStore.from_settings(undisturbed.settings) as store:
        funnel = read_funnel(store, journey)
        moments = read_moments(store)
    assert funnel == compute_funnel(states, journey)
    assert funnel.overall.profiles == len(states)
    totals = Counter(m.name for state in states for m in state.moments)
    assert {name: counts["total"] for name, counts in moments.items()} == dict(totals)
    print(f"\nfunnel: {[(m.stage, m.current, m.reached) for m in funnel.overall.stages]}")


def _check_handoffs(run: Run, dataset: Dataset, expected: Expected) -> None:
    """Exactly one hand-off per qualified person; never a competitor or consultant.

    The hand-off stage runs after the profile stage: wait up to 60 s for it.
    """
    roles = {c.key: c.role for c in dataset.customers}
    qualified = {
        expected.owner[doc["identifiers"][0]]
        for doc in _documents(run).values()
        if doc["journey"]["qualification_id"] is not None
    }
    assert len(qualified) > len(dataset.customers) // 10
    deadline = time.monotonic() + 60
    while True:
        per_customer: Counter[str] = Counter()
        for _key, value in read_topic(run.settings, Topics(run.settings.namespace).handoffs):
            assert value is not None
            handoff = QualificationCandidate.parse(value)
            owners = {expected.owner[key] for key in handoff.members}
            assert len(owners) == 1, owners
            owner = owners.pop()
            assert roles[owner] == "lead", (owner, roles[owner])
            per_customer[owner] += 1
        assert all(n == 1 for n in per_customer.values()), per_customer.most_common(3)
        if set(per_customer) == qualified or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert set(per_customer) == qualified
    excluded = sum(1 for role in roles.values() if role != "lead")
    print(
        f"\n{len(per_customer)} qualified people, {sum(per_customer.values())} hand-offs;"
        f" {excluded} generated competitors/consultants, none handed off"
    )


def test_each_qualified_lead_is_handed_off_once(
    undisturbed: Run, dataset: Dataset, expected: Expected
) -> None:
    _check_handoffs(undisturbed, dataset, expected)
