"""A customer whose history outgrows Kafka's default 1 MB record still flows through.

The facts stage keeps an identifier's whole fact set in one table value, and the
profiles stage a profile's; each is written to its changelog as one record. With
the broker's and clients' default limits (about 1 MB), the first value past that
size is refused, the stage's batch fails and the worker exits, again on every
restart. The topics and the worker's clients take ``CDP_MAX_MESSAGE_BYTES``
(16 MiB by default) instead.
"""

from __future__ import annotations

import json
import random
import string
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cdp.contracts.events import Identifier, PageView, PageViewPayload
from cdp.producer import EventProducer
from cdp.serve.store import ReadModelStore
from cdp.settings import Settings
from cdp.topic_reader import read_messages
from cdp.topics import Topics
from cdp.worker_process import WorkerProcess
from tests.pipeline_support import wait_converged

pytestmark = pytest.mark.integration

EVENTS = 1000
"""Page views of one visitor; each fact keeps about 1.4 kB of campaign and category text."""


def _text(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits, k=length))


def test_a_history_larger_than_one_megabyte(
    settings: Settings, worker_env: dict[str, str], tmp_path: Path
) -> None:
    rng = random.Random(7)
    email = f"long.history.{uuid.uuid4().hex[:8]}@example.com"
    start = datetime(2026, 3, 1, tzinfo=UTC)
    events = [
        PageView(
            event_id=str(uuid.uuid4()),
            event_time=start + timedelta(minutes=index),
            source="website",
            identifiers=[Identifier.email(email)],
            payload=PageViewPayload(
                url=f"https://example.com/docs/{index}",
                page_category=_text(rng, 1000),
                campaign=_text(rng, 1000),
            ),
        )
        for index in range(EVENTS)
    ]
    worker = WorkerProcess(worker_env, tmp_path / "worker.log").start()
    try:
        with ReadModelStore.from_settings(settings) as store:
            with EventProducer(settings) as producer:
                for event in events:
                    producer.send(event)
            wait_converged(store, EVENTS, worker)
            profile_id = store.lookup(f"email:{email}")
            assert profile_id is not None
            document = json.loads(store.get_profile(profile_id) or b"{}")
            assert document["event_count"] == EVENTS
    finally:
        worker.stop()
    changelog = Topics(settings.namespace).changelog("facts-by-identifier")
    largest = max(len(message.value() or b"") for message in read_messages(settings, changelog))
    assert largest > 1_100_000, f"the test must cross the default limit: {largest} bytes"
