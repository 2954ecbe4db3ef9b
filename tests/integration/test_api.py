"""The HTTP API on the real stack: a real uvicorn server on the real Redis and Kafka.

Every endpoint and every error class (401, 403, 404, 422) through the Python
client and raw HTTP; the funnel and the moments of truth equal a recomputation
over the stored documents; the change feed delivers a Redis write within a
second and resumes from an id; erase, then rebuild Redis from Kafka: the person
stays gone; a schemathesis run over the OpenAPI document finds no server error.
Each test uses a fresh namespace (``settings`` fixture) and wipes its Redis keys
afterwards.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from confluent_kafka import Producer
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from cdp.api.app import create_app
from cdp.api.models import FunnelOut, MomentsOut
from cdp.client import (
    AuthenticationError,
    CdpClient,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from cdp.identity.clustering import candidate_id
from cdp.journey import FunnelSegment, JourneyState, compute_funnel, default_journey
from cdp.messages import Assignment, dumps
from cdp.profile.document import ProfileDocument, canonical_json
from cdp.serve import ReadModelStore
from cdp.serve.journey import read_funnel, read_moments
from cdp.serve.rebuild import rebuild
from cdp.settings import Settings
from cdp.topic_reader import read_topic
from cdp.topics import Topics
from tests.api_support import (
    ADMIN,
    MARKETING,
    SALES,
    SERVICE,
    seed_generated,
    seed_person,
    serving,
)

pytestmark = pytest.mark.integration

ANNA = ["email:anna@example.com", "phone:+49301234599", "customer_id:C-1"]
OTTO = ["email:otto@example.com"]


@dataclass
class Api:
    """A running server and what the tests need around it."""

    url: str
    settings: Settings
    store: ReadModelStore

    def client(self, key: str | None = ADMIN, **options: Any) -> CdpClient:
        return CdpClient(self.url, key, **options)


@pytest.fixture()
def store(settings: Settings) -> Iterator[ReadModelStore]:
    with ReadModelStore.from_settings(settings) as store:
        yield store
        store.wipe()


@pytest.fixture()
def api(settings: Settings, store: ReadModelStore) -> Iterator[Api]:
    with serving(create_app(settings)) as url:
        yield Api(url, settings, store)


def raw(api: Api, method: str, path: str, key: str | None = ADMIN, **kwargs: Any) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    headers.update(kwargs.pop("headers", {}))
    return httpx.request(method, api.url + path, headers=headers, timeout=30, **kwargs)


def code_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["code"])


def test_every_endpoint_through_the_client(api: Api) -> None:
    seed_person(api.store, "p-anna", ANNA, aliases=("p-old",))
    seed_person(api.store, "p-otto", OTTO, first_name="Otto", stage="choice")
    with api.client(SALES) as sales, api.client(SERVICE) as service, api.client() as admin:
        profile = sales.get_profile("p-old")
        assert profile.profile_id == "p-anna" and profile.journey and profile.journey.score == 42.5
        assert profile.consent is None  # not in the sales view
        response = service.lookup_response(phone="030 1234599")
        assert response.requested_id is None and response.profile_id == "p-anna"
        assert response.profile.computed and response.profile.computed.open_tickets == ["T-4711"]
        assert service.lookup(email=" ANNA@example.com ").profile_id == "p-anna"
        page = sales.stage_profiles("search", limit=10)
        assert [m.profile_id for m in page.profiles] == ["p-anna"] and page.next_cursor is None
        assert [m.profile_id for m in admin.iter_stage("choice", page_size=1)] == ["p-otto"]
        export = admin.export("p-old")
        assert export.profile_id == "p-anna" and {i.key for i in export.identifiers} == set(ANNA)
        assert {a.alias_id for a in export.aliases} == {"p-old", *map(candidate_id, ANNA)}
        assert [c.profile_id for c in export.changes] == ["p-anna"]
        ready = admin.ready()
        assert ready.status == "ready" and set(ready.checks) == {"redis", "layout", "kafka"}
    assert raw(api, "GET", "/healthz", None).json() == {"status": "ok"}
    metrics = raw(api, "GET", "/metrics", None).text
    assert 'route="/v1/profiles/{profile_id}",status="200"' in metrics
    assert "anna" not in metrics.replace("p-anna", "")
    schema = raw(api, "GET", "/openapi.json", None).json()
    assert {
        "/v1/profiles",
        "/v1/profiles/{profile_id}",
        "/v1/profiles/{profile_id}/export",
        "/v1/stages/{stage}/profiles",
        "/v1/funnel",
        "/v1/moments",
        "/v1/changes",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(schema["paths"])
    dashboard = httpx.get(f"{api.url}/dashboard/profiles?email=anna@example.com&key={MARKETING}")
    assert dashboard.status_code == 200 and 'data-testid="current-stage">search<' in dashboard.text


def test_every_error_class(api: Api) -> None:
    seed_person(api.store, "p-anna", ANNA)
    assert code_of(raw(api, "GET", "/v1/profiles/p-anna", None)) == "missing_api_key"
    assert code_of(raw(api, "GET", "/v1/profiles/p-anna", "wrong-key")) == "invalid_api_key"
    assert (
        code_of(raw(api, "GET", "/v1/profiles/p-anna?fields=journey.score", MARKETING))
        == "field_not_in_view"
    )
    assert code_of(raw(api, "DELETE", "/v1/profiles/p-anna", SALES)) == "admin_required"
    assert code_of(raw(api, "GET", "/v1/profiles/p-nobody")) == "profile_not_found"
    assert (
        code_of(raw(api, "GET", "/v1/profiles?email=nobody@example.com")) == "identifier_not_found"
    )
    assert (
        code_of(raw(api, "GET", "/v1/profiles?email=a@b.de&phone=030123456"))
        == "invalid_parameters"
    )
    assert code_of(raw(api, "GET", "/v1/profiles?email=broken")) == "invalid_identifier"
    assert code_of(raw(api, "GET", "/v1/stages/limbo/profiles")) == "invalid_parameters"
    assert code_of(raw(api, "GET", "/v1/funnel", None)) == "missing_api_key"
    assert code_of(raw(api, "GET", "/v1/moments", "wrong-key")) == "invalid_api_key"
    assert code_of(raw(api, "GET", "/v1/funnel?region=ZZ")) == "segment_not_found"
    assert code_of(raw(api, "GET", "/v1/funnel?region=DE&channel=web")) == "invalid_parameters"
    assert code_of(raw(api, "GET", "/v1/funnel?channel=Web%21")) == "invalid_parameters"
    with api.client(None) as anonymous, pytest.raises(AuthenticationError):
        anonymous.get_profile("p-anna")
    with api.client(SERVICE) as service:
        with pytest.raises(PermissionDeniedError) as denied:
            service.get_profile("p-anna", fields=["consent"])
        assert denied.value.details == {"fields": ["consent"], "department": "service"}
        with pytest.raises(PermissionDeniedError):
            service.export("p-anna")
        with pytest.raises(NotFoundError):
            service.get_profile("p-nobody")
        with pytest.raises(InvalidRequestError) as invalid:
            service.lookup(email="a@b.de", customer_id="C-1")
        assert invalid.value.status == 422 and invalid.value.code == "invalid_parameters"
    assert raw(api, "GET", "/v1/profiles/p-anna", SERVICE).status_code == 200  # still there


def _stored_states(store: ReadModelStore) -> list[JourneyState]:
    """The journey states of every document stored in the namespace (read back from Redis)."""
    documents = [json.loads(e["document"]) for e in store.dump()["profiles"].values()]
    return [JourneyState.model_validate(d["journey"]) for d in documents if d.get("journey")]


def test_funnel_and_moments_equal_a_recomputation_over_the_stored_documents(api: Api) -> None:
    seed_generated(api.store, 60, seed=11)
    journey = default_journey()
    states = _stored_states(api.store)
    assert len(states) == 60
    expected = compute_funnel(states, journey)
    assert read_funnel(api.store, journey) == expected  # the aggregates the writes keep
    overall = FunnelOut.model_validate(raw(api, "GET", "/v1/funnel", MARKETING).json())
    assert overall.journey == "b2b" and overall.stages == list(journey.stage_names)
    assert overall.segment.kind == "all" and overall.segment.value is None
    assert FunnelSegment.model_validate(overall.funnel.model_dump()) == expected.overall
    assert overall.regions == sorted(expected.by_region)
    assert overall.channels == sorted(expected.by_channel)
    for name, segments in (("region", expected.by_region), ("channel", expected.by_channel)):
        for value, segment in segments.items():
            response = raw(api, "GET", f"/v1/funnel?{name}={value}", SERVICE)
            got = FunnelOut.model_validate(response.json())
            assert got.segment.kind == name and got.segment.value == value
            assert FunnelSegment.model_validate(got.funnel.model_dump()) == segment

    moments = MomentsOut.model_validate(raw(api, "GET", "/v1/moments", SERVICE).json())
    totals = Counter(m.name for state in states for m in state.moments)
    assert {m.name: m.total for m in moments.moments if m.total} == dict(totals)
    assert moments.total == sum(totals.values()) > 0
    stored = read_moments(api.store)
    for moment in moments.moments:
        if moment.total:
            assert moment.by_stage == {k: v for k, v in stored[moment.name].items() if k != "total"}
    with api.client(MARKETING) as client:  # the typed client reads the same reports
        assert client.funnel() == overall
        region = next(iter(expected.by_region))
        assert client.funnel(region=region).segment.value == region
        assert client.moments() == moments
    page = httpx.get(f"{api.url}/dashboard/funnel?key={SALES}")
    assert page.status_code == 200
    need = expected.overall.stages[0]
    assert f'data-stage="need" data-reached="{need.reached}" data-current="{need.current}"' in (
        page.text
    )


def _read_event(lines: Iterator[str]) -> dict[str, str]:
    """The next SSE event from a line iterator (comments skipped)."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if "event" in fields:
                return fields
            fields = {}
            continue
        if not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    raise AssertionError("stream ended")


def test_change_feed_delivers_within_a_second_and_resumes(api: Api) -> None:
    seed_person(api.store, "p-before", ["customer_id:B"])
    latencies = []
    ids = []
    with httpx.stream(
        "GET", f"{api.url}/v1/changes", headers={"X-API-Key": SERVICE}, timeout=30
    ) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        position = _read_event(lines)
        assert position["event"] == "position"  # subscribed at the current end
        for pid in ("p-first", "p-second"):
            written = time.monotonic()
            seed_person(api.store, pid, [f"customer_id:{pid}"])
            event = _read_event(lines)
            latencies.append(time.monotonic() - written)
            data = json.loads(event["data"])
            assert (
                event["event"] == "change" and data["profile_id"] == pid and data["op"] == "upsert"
            )
            assert event["id"] == data["id"]
            ids.append(event["id"])
    assert max(latencies) < 1.0, latencies
    with api.client(SERVICE) as client:
        resumed = list(client.changes(after=ids[0], max_events=1, timeout=10))
        assert [c.id for c in resumed] == [ids[1]]
        replay = list(client.changes(after="0-0", max_events=3, timeout=10))
        assert [c.profile_id for c in replay] == ["p-before", "p-first", "p-second"]
    # a reconnecting EventSource sends Last-Event-ID with the original URL: the header wins
    header = raw(
        api,
        "GET",
        "/v1/changes?after=0-0&max_events=1",
        SERVICE,
        headers={"Last-Event-ID": ids[0], "X-API-Key": SERVICE},
    )
    assert f"id: {ids[1]}" in header.text and "p-first" not in header.text


def _publish_like_the_worker(
    settings: Settings, people: dict[str, list[str]], version: int
) -> None:
    """What the profile and identity stages publish to the compacted topics for ``people``."""
    topics = Topics(settings.namespace)
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "acks": "all",
            "partitioner": "murmur2_random",
        }
    )  # as cdp/outputs.py
    for pid, identifiers in people.items():
        # a real ProfileDocument (the rebuild validates what it replays)
        doc = json.loads(
            canonical_json(
                ProfileDocument(
                    profile_id=pid, identifiers=sorted(identifiers), sources=["crm"], event_count=1
                )
            )
        )
        producer.produce(topics.profiles, dumps({"doc": doc, "v": version}), pid.encode())
        for key in identifiers:
            producer.produce(topics.assignments, Assignment(pid, version).to_bytes(), key.encode())
    assert producer.flush(30) == 0


def test_erase_then_rebuild_does_not_bring_the_person_back(api: Api) -> None:
    settings = api.settings
    _publish_like_the_worker(settings, {"p-anna": ANNA, "p-otto": OTTO}, version=5)
    rebuild(settings)  # Redis from Kafka: both people are served
    with api.client() as admin:
        assert admin.lookup(email="anna@example.com").profile_id == "p-anna"
        receipt = admin.erase("p-anna")
        assert receipt.profile_id == "p-anna" and receipt.identifier_count == len(ANNA)
        assert receipt.tombstones == {
            f"{settings.namespace}.profile.changes": 1 + len(ANNA),
            f"{settings.namespace}.identity.assignments": len(ANNA),
        }
        with pytest.raises(NotFoundError):
            admin.lookup(email="anna@example.com")
        with pytest.raises(NotFoundError):
            admin.get_profile("p-anna")

        audit = list(read_topic(settings, receipt.audit_topic))
        assert len(audit) == 1 and audit[0][0] == "p-anna" and audit[0][1] is not None
        event = json.loads(audit[0][1])
        assert event["type"] == "profile_erased" and event["department"] == "admin"
        assert event["audit_id"] == receipt.audit_id and event["identifier_count"] == len(ANNA)
        assert b"anna@" not in audit[0][1] and b"+49" not in audit[0][1]
        tombstoned = {
            k for k, v in read_topic(settings, Topics(settings.namespace).assignments) if v is None
        }
        assert tombstoned == set(ANNA)

        stats = rebuild(settings)
        assert stats.profiles == 1
        with pytest.raises(NotFoundError):
            admin.lookup(email="anna@example.com")
        with pytest.raises(NotFoundError):
            admin.get_profile("p-anna")
        assert all(api.store.lookup(key) is None for key in ANNA)
        assert admin.lookup(email="otto@example.com").profile_id == "p-otto"
    dump = json.dumps(api.store.dump(include_versions=True), default=str)
    assert "anna@example.com" not in dump and "p-anna" not in dump


@pytest.fixture()
def seeded_app(settings: Settings, store: ReadModelStore) -> FastAPI:
    seed_person(store, "p-anna", ANNA, aliases=("p-old",))
    seed_person(store, "p-otto", OTTO, first_name="Otto", stage="usage")
    seed_generated(store, 10, seed=3)  # funnel and moments aggregates
    return create_app(settings, store)


SCHEMATHESIS_EXAMPLES = 30
"""Examples per operation and generation mode (positive: valid data, negative: invalid)."""


def test_schemathesis_finds_no_server_error(seeded_app: FastAPI) -> None:
    """Every operation of the OpenAPI document, valid and invalid input, admin key: no 5xx."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", seeded_app)
    operations = [result.ok() for result in schema.exclude(path="/v1/changes").get_all_operations()]
    assert len(operations) >= 9  # profiles x4, stages, funnel, moments, healthz, readyz, metrics
    calls = 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(
                max_examples=SCHEMATHESIS_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def check(case: Any) -> None:
                nonlocal calls
                headers = {**(case.headers or {}), "X-API-Key": ADMIN}
                response = case.call(headers=headers)
                calls += 1
                case.validate_response(response, checks=[not_a_server_error])
                assert response.status_code < 500, (case.operation.label, response.text[:300])

            try:
                check()
            except Unsatisfiable:
                # no parameters to make invalid (healthz, readyz, metrics)
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert calls >= len(operations) * 10
