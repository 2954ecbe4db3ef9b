"""A GDPR erasure while the worker runs: the person is gone and the pipeline keeps going.

The erasure writes tombstones to ``identity.assignments``, which the facts
stage consumes: it must forget the identifiers (and their facts) instead of
failing on the null value, and keep processing later events.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cdp.api.access import Principal
from cdp.api.privacy import Eraser, collect
from cdp.api.views import View
from cdp.producer import EventProducer
from cdp.samples import generate
from cdp.serve.store import ReadModelStore, events_in_profiles
from cdp.settings import Settings
from cdp.worker_process import WorkerProcess, settings_env

pytestmark = pytest.mark.integration


def _wait_for(store: ReadModelStore, events: int, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + 120
    while events_in_profiles(store.dump()) < events:
        assert worker.running, worker.log_tail()
        assert time.monotonic() < deadline, f"{events_in_profiles(store.dump())} of {events} events"
        time.sleep(0.5)


def test_erase_while_the_worker_runs(settings: Settings, tmp_path: Path) -> None:
    first = generate(20, 10, seed=41)
    later = generate(10, 10, seed=42)
    worker = WorkerProcess(settings_env(settings), tmp_path / "worker.log").start()
    try:
        with ReadModelStore.from_settings(settings) as store:
            with EventProducer(settings) as producer:
                for event in first.events:
                    producer.send(event)
            _wait_for(store, first.distinct_events, worker)

            customer = next(c for c in first.customers if c.email and c.depth >= 2)
            email_key = f"email:{customer.email.strip().lower()}" if customer.email else ""
            profile_id = store.lookup(email_key)
            assert profile_id is not None
            person = collect(store, profile_id)
            assert person is not None
            erased_events = json.loads(store.get_profile(profile_id) or b"{}")["event_count"]
            admin = Principal(key_id="test", department="admin", admin=True, view=View(["*"]))
            eraser = Eraser(settings, store)
            try:
                eraser.erase(person, admin)
            finally:
                eraser.close()

            # the worker consumes the tombstones and goes on with new events
            with EventProducer(settings) as producer:
                for event in later.events:
                    producer.send(event)
            expected = first.distinct_events - erased_events + later.distinct_events
            _wait_for(store, expected, worker)
            assert worker.running, worker.log_tail()
            assert store.lookup(email_key) is None
            assert store.get_profile(profile_id) is None
        log = (tmp_path / "worker.log").read_text(errors="replace")
        assert "Traceback" not in log and "[ERROR]" not in log, worker.log_tail()
    finally:
        worker.stop()
