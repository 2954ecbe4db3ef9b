"""A GDPR erasure while the worker runs: the person is gone, for good, and the pipeline goes on.

The erasure (``cdp.api.privacy.Eraser``) deletes the person in Redis, writes
tombstones to the compacted topics and an erasure request for the workers.
The workers must forget the person too -- identity graph, facts and profile
state -- so that none of these brings the erased data back:

* later events of other people (the pipeline keeps going, nothing crashes);
* a new event that carries one of the erased identifiers (it starts a new,
  one-event profile, not the old one);
* a worker restart (every stage re-publishes its state on recovery);
* a rebuild of Redis from Kafka.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cdp.api.access import Principal
from cdp.api.privacy import Eraser, collect
from cdp.api.views import View
from cdp.contracts.events import Identifier, NewsletterSignup, NewsletterSignupPayload
from cdp.producer import EventProducer
from cdp.samples import generate
from cdp.serve.rebuild import rebuild
from cdp.serve.store import ReadModelStore, events_in_profiles
from cdp.settings import Settings
from cdp.topic_reader import read_topic
from cdp.topics import Topics
from cdp.worker_process import WorkerProcess, settings_env
from tests.pipeline_support import unexpected_errors, wait_converged

pytestmark = pytest.mark.integration


def _latest(settings: Settings, topic: str) -> dict[str, bytes | None]:
    latest: dict[str, bytes | None] = {}
    for key, value in read_topic(settings, topic):
        latest[key] = value
    return latest


def test_erase_while_the_worker_runs(settings: Settings, tmp_path: Path) -> None:
    first = generate(20, 10, seed=41)
    later = generate(10, 10, seed=42)
    topics = Topics(settings.namespace)
    worker = WorkerProcess(settings_env(settings), tmp_path / "worker.log").start()
    try:
        with ReadModelStore.from_settings(settings) as store:
            with EventProducer(settings) as producer:
                for event in first.events:
                    producer.send(event)
            wait_converged(store, first.distinct_events, worker)

            customer = next(
                c for c in first.customers if c.email and c.depth >= 2 and c.customer_id
            )
            assert customer.email is not None
            email_key = f"email:{customer.email.strip().lower()}"
            profile_id = store.lookup(email_key)
            assert profile_id is not None
            person = collect(store, profile_id)
            assert person is not None
            person_keys = set(person.identifier_keys)
            assert len(person_keys) >= 2
            erased_events = json.loads(store.get_profile(profile_id) or b"{}")["event_count"]
            admin = Principal(key_id="test", department="admin", admin=True, view=View(["*"]))
            eraser = Eraser(settings, store)
            try:
                eraser.erase(person, admin)
            finally:
                eraser.close()

            # the worker consumes the erasure and goes on with new events
            with EventProducer(settings) as producer:
                for event in later.events:
                    producer.send(event)
            expected = first.distinct_events - erased_events + later.distinct_events
            wait_converged(store, expected, worker)
            assert store.lookup(email_key) is None
            assert store.get_profile(profile_id) is None

            # the workers forgot the person: graph records, facts and profile state are gone
            _wait_for_tombstones(settings, topics, person_keys, worker)

            # a new event with the erased email starts a new profile of that one event
            with EventProducer(settings) as producer:
                producer.send(
                    NewsletterSignup(
                        event_id=str(uuid.uuid4()),
                        event_time=datetime.now(UTC),
                        source="website",
                        identifiers=[Identifier.email(customer.email)],
                        payload=NewsletterSignupPayload(list_id="news"),
                    )
                )
            wait_converged(store, expected + 1, worker)
            came_back = store.lookup(email_key)
            assert came_back is not None
            document = json.loads(store.get_profile(came_back) or b"{}")
            assert document["event_count"] == 1
            assert document["identifiers"] == [email_key]

            # a restart re-publishes every stage's state: still only the new event
            worker.stop()
            worker = WorkerProcess(settings_env(settings), tmp_path / "worker2.log").start()
            _wait_for_republished(tmp_path / "worker2.log", worker)
            wait_converged(store, expected + 1, worker)
            document = json.loads(store.get_profile(came_back) or b"{}")
            assert document["event_count"] == 1 and document["identifiers"] == [email_key]
            for key in person_keys - {email_key}:
                assert store.lookup(key) is None

            # and so does a rebuild of Redis from Kafka
            worker.stop()
            rebuild(settings)
            assert events_in_profiles(store.dump()) == expected + 1
            for key in person_keys - {email_key}:
                assert store.lookup(key) is None
            assert store.get_profile(profile_id) is None
        for name in ("worker.log", "worker2.log"):
            log = (tmp_path / name).read_text(errors="replace")
            assert unexpected_errors(log) == [], log[-3000:]
    finally:
        worker.stop()


REPUBLISHED = ("identity: restored", "facts: re-published", "profiles: re-published")


def _wait_for_republished(log: Path, worker: WorkerProcess) -> None:
    """Wait until every stage logged that it re-published its recovered state."""
    deadline = time.monotonic() + 120
    while not all(line in log.read_text(errors="replace") for line in REPUBLISHED):
        assert worker.running, worker.log_tail()
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.5)
    time.sleep(2)  # the re-published records pass through the later stages


def _wait_for_tombstones(
    settings: Settings, topics: Topics, person_keys: set[str], worker: WorkerProcess
) -> None:
    """The identity graph's changelog ends every erased identifier with a tombstone."""
    deadline = time.monotonic() + 60
    while True:
        graph = _latest(settings, topics.changelog("identity-graph"))
        assignments = _latest(settings, topics.assignments)
        left = [k for k in person_keys if graph.get(k) is not None or assignments.get(k)]
        if not left:
            break
        assert worker.running, worker.log_tail()
        assert time.monotonic() < deadline, f"{len(left)} identifiers still in the graph"
        time.sleep(1)
    for key in person_keys:
        assert key in graph, "the identifier was never in the graph"
