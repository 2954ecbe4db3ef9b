"""The HTTP collector on the real stack: Segment calls in, the right profiles out.

500 mixed calls (page, track, identify, screen, alias, group) of 50 people are
posted in shuffled batches to a collector served by uvicorn; the worker is
SIGKILLed and restarted half-way, and one batch is retried. Then every person
is one profile holding their user id, both anonymous ids (identify links the
web one, alias the app one) and their email, with exactly their 10 events:
nothing accepted is lost or counted twice. Requests the collector refuses
(malformed JSON, oversize call/batch/message, wrong write key, missing ids)
get their documented 4xx and leave no trace; a broker that does not answer
gives a 503.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cdp.collect.app import create_app
from cdp.serve.store import ReadModelStore, events_in_profiles
from cdp.settings import Settings, load_settings
from cdp.worker_process import WorkerProcess, settings_env
from tests.api_support import serving
from tests.pipeline_support import unexpected_errors

pytestmark = pytest.mark.integration

DEV_KEY = "cdp-dev-write-key"
PEOPLE = 50
CALLS_PER_PERSON = 10
BATCH = 50
START = datetime.now(UTC) - timedelta(days=3)


def _person_calls(i: int) -> list[dict[str, Any]]:
    """Ten calls of person ``i``: anonymous web visits, identify, app screen, alias, group."""
    web, app, user = f"anon-web-{i}", f"anon-app-{i}", f"U-{i:04d}"
    email = f"person.{i}@example.net"
    page = {"url": f"https://www.example.com/p/{i}"}
    calls: list[dict[str, Any]] = [
        {"type": "page", "anonymousId": web, "category": "Product", "properties": page},
        {"type": "page", "anonymousId": web, "category": "Pricing", "properties": page},
        {"type": "track", "anonymousId": web, "event": "Whitepaper Downloaded"},
        {
            "type": "identify",
            "userId": user,
            "anonymousId": web,
            "traits": {"email": email, "firstName": f"First{i}", "title": "CTO"},
        },
        {"type": "track", "userId": user, "event": "Demo Requested", "properties": {"seats": i}},
        {"type": "screen", "anonymousId": app, "name": "Home"},
        {"type": "alias", "previousId": app, "userId": user},
        {"type": "group", "userId": user, "groupId": f"acct-{i % 7}", "traits": {"name": f"Co{i}"}},
        {
            "type": "page",
            "userId": user,
            "context": {"traits": {"email": email}},
            "properties": page,
        },
        {
            "type": "track",
            "anonymousId": web,
            "event": "Feature Used",
            "integrations": {"All": True},
        },
    ]
    for k, message in enumerate(calls):
        message["messageId"] = f"msg-{i}-{k}"
        message["timestamp"] = (START + timedelta(hours=i, minutes=k)).isoformat()
        message["context"] = {"ip": "203.0.113.7", **message.get("context", {})}
    return calls


def _batches() -> list[list[dict[str, Any]]]:
    messages = [m for i in range(PEOPLE) for m in _person_calls(i)]
    random.Random(7).shuffle(messages)
    return [messages[n : n + BATCH] for n in range(0, len(messages), BATCH)]


def _wait_for(
    store: ReadModelStore, events: int, worker: WorkerProcess, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while events_in_profiles(store.dump()) < events:
        assert worker.running, worker.log_tail()
        assert time.monotonic() < deadline, f"{events_in_profiles(store.dump())} of {events} events"
        time.sleep(0.5)


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    return error


def _refused_requests(client: httpx.Client) -> None:
    """Each refused request carries otherwise valid messages with new ids: a leak would show."""
    valid = {"type": "track", "userId": "U-9999", "event": "Leaked", "messageId": "leak-1"}
    _error(client.post("/v1/track", content=b'{"userId": "U-1", "event": '), 400, "invalid_json")
    oversize = {**valid, "properties": {"blob": "x" * 40_000}}
    _error(client.post("/v1/track", json=oversize), 413, "payload_too_large")
    batch = [
        {**valid, "messageId": f"leak-{n}", "properties": {"b": "x" * 20_000}} for n in range(30)
    ]
    _error(client.post("/v1/batch", json={"batch": batch}), 413, "payload_too_large")
    error = _error(
        client.post("/v1/batch", json={"batch": [valid, oversize]}), 413, "message_too_large"
    )
    assert error["details"]["index"] == 1
    wrong = client.post("/v1/batch", json={"batch": [valid]}, auth=("not-the-key", ""))
    _error(wrong, 401, "invalid_write_key")
    _error(httpx.post(client.base_url.join("/v1/track"), json=valid), 401, "missing_write_key")
    missing = {"type": "track", "event": "No Ids", "messageId": "leak-x"}
    error = _error(
        client.post("/v1/batch", json={"batch": [valid, missing]}), 400, "invalid_message"
    )
    assert [(e["index"], e["code"]) for e in error["details"]["errors"]] == [
        (1, "missing_identifiers")
    ]


def _check_profiles(store: ReadModelStore) -> None:
    dump = store.dump()
    documents = [json.loads(entry["document"]) for entry in dump["profiles"].values()]
    assert len(documents) == PEOPLE
    assert events_in_profiles(dump) == PEOPLE * CALLS_PER_PERSON
    for i in range(PEOPLE):
        profile_id = store.lookup(f"customer_id:U-{i:04d}")
        assert profile_id is not None
        doc = json.loads(store.get_profile(profile_id) or b"{}")
        assert doc["identifiers"] == sorted(
            [
                f"customer_id:U-{i:04d}",
                f"anonymous_id:anon-web-{i}",
                f"anonymous_id:anon-app-{i}",
                f"email:person.{i}@example.net",
            ]
        )
        assert doc["event_count"] == CALLS_PER_PERSON
        traits = {name: trait["value"] for name, trait in doc["traits"].items()}
        assert traits["first_name"] == f"First{i}"
        assert traits["job_title"] == "CTO"
        assert traits["company"] == f"Co{i}"
        assert doc["computed"]["events_by_type"] == {
            "alias": 1,
            "group": 1,
            "identify": 1,
            "page_view": 3,
            "screen": 1,
            "track": 3,
        }
        assert doc["journey"]["stage"] == "choice"  # the pricing page


def test_collector_to_profiles(settings: Settings, tmp_path: Path) -> None:
    batches = _batches()
    assert sum(len(b) for b in batches) == PEOPLE * CALLS_PER_PERSON == 500
    worker = WorkerProcess(settings_env(settings, CDP_LOG_LEVEL="warning"), tmp_path / "w.log")
    worker.start()
    try:
        with (
            serving(create_app(settings)) as url,
            httpx.Client(base_url=url, auth=(DEV_KEY, ""), timeout=30) as client,
            ReadModelStore.from_settings(settings) as store,
        ):
            half = len(batches) // 2
            for batch in batches[:half]:
                response = client.post("/v1/batch", json={"batch": batch})
                assert response.json() == {"success": True}, response.text
            _refused_requests(client)
            _wait_for(store, 1, worker)
            worker.kill()  # the crash case: no commit, no flush
            worker.start()
            for batch in [*batches[half:], batches[0]]:  # the last one is a retry
                response = client.post("/v1/batch", json={"batch": batch})
                assert response.json() == {"success": True}, response.text
            _wait_for(store, PEOPLE * CALLS_PER_PERSON, worker)
            time.sleep(3)  # nothing more arrives: a double count or a leak would show now
            _check_profiles(store)
        log = (tmp_path / "w.log").read_text(errors="replace")
        assert unexpected_errors(log) == [], worker.log_tail()
    finally:
        worker.stop()


def test_unreachable_kafka_is_a_retryable_503(stack_settings: Settings) -> None:
    settings = load_settings(
        namespace="tunreachable", kafka_bootstrap="127.0.0.1:1", collector_ack_timeout=1.0
    )
    with (
        serving(create_app(settings)) as url,
        httpx.Client(base_url=url, auth=(DEV_KEY, ""), timeout=30) as client,
    ):
        started = time.monotonic()
        response = client.post("/v1/track", json={"userId": "U-1", "event": "E"})
        error = _error(response, 503, "kafka_unavailable")
        assert error["details"]["retryable"] is True
        assert response.headers["retry-after"] == "5"
        assert time.monotonic() - started < 10
