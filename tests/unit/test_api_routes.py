"""The API on fakeredis: auth (401), views (403), lookups (404), parameters (422), the
error model, paging, the change feed, export and erase (Kafka stubbed), metrics and logs.

The same behaviour is tested against the real Redis and Kafka in
``tests/integration/test_api.py``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from redis.backoff import NoBackoff
from redis.retry import Retry

from cdp.api.app import create_app
from cdp.api.errors import Unavailable
from cdp.api.privacy import Eraser
from cdp.identity.clustering import candidate_id
from cdp.serve import AliasSet, ProfileUpsert, ReadModelStore
from cdp.serve import keys as layout
from cdp.settings import load_settings
from tests.api_support import ADMIN, ENTERED_MS, MARKETING, SALES, SERVICE, seed_person

NS = "tapi"
EMAIL = "email:anna@example.com"
PHONE = "phone:+49301234599"


@pytest.fixture()
def store() -> ReadModelStore:
    return ReadModelStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()), NS)


@pytest.fixture()
def app(store: ReadModelStore) -> FastAPI:
    seed_person(store, "p-anna", [EMAIL, PHONE, "customer_id:C-1"], aliases=("p-old",))
    return create_app(load_settings(namespace=NS), store)


@pytest.fixture()
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def get(client: TestClient, path: str, key: str | None = ADMIN, **kwargs: Any) -> Any:
    headers = {"X-API-Key": key} if key else {}
    return client.get(path, headers={**headers, **kwargs.pop("headers", {})}, **kwargs)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert "Traceback" not in response.text
    error: dict[str, Any] = body["error"]
    return error


# ------------------------------------------------------------------------ 200s


def test_profile_by_id_and_alias(client: TestClient) -> None:
    body = get(client, "/v1/profiles/p-old", SERVICE).json()
    assert body["requested_id"] == "p-old" and body["profile_id"] == "p-anna"
    assert body["department"] == "service"
    assert body["profile"]["profile_id"] == "p-anna"
    assert "consent" not in body["profile"] and "score" not in body["profile"]["journey"]
    assert "consent" not in body["fields"] and "computed.open_tickets" in body["fields"]
    admin = get(client, "/v1/profiles/p-anna").json()
    assert admin["profile"]["consent"] and admin["profile"]["journey"]["score"] == 42.5
    assert admin["profile"]["segments"] == ["b2b-chemicals"]  # unknown fields pass through


def test_bearer_token_works(client: TestClient) -> None:
    response = client.get("/v1/profiles/p-anna", headers={"Authorization": f"Bearer {SALES}"})
    assert response.status_code == 200 and response.json()["department"] == "sales"


@pytest.mark.parametrize(
    "query",
    [
        "email=%20Anna%40Example.COM%20",
        "phone=030%201234599",
        "phone=%2B49%2030%201234599",
        "customer_id=C-1",
        "email=anna@example.com&fields=journey.stage",
    ],
)
def test_lookup_normalises_like_ingest(client: TestClient, query: str) -> None:
    response = get(client, f"/v1/profiles?{query}", MARKETING)
    assert response.status_code == 200, response.text
    assert response.json()["profile_id"] == "p-anna"


def test_fields_narrow_the_response(client: TestClient) -> None:
    body = get(client, "/v1/profiles/p-anna?fields=journey.stage,traits.first_name", SALES).json()
    assert body["profile"] == {
        "profile_id": "p-anna",
        "journey": {"stage": "search"},
        "traits": {"first_name": body["profile"]["traits"]["first_name"]},
    }
    assert body["fields"] == ["journey.stage", "profile_id", "traits.first_name"]


# ------------------------------------------------------------------ 401 / 403


@pytest.mark.parametrize(
    "path",
    [
        "/v1/profiles/p-anna",
        "/v1/profiles?email=a@b.de",
        "/v1/changes",
        "/v1/stages/need/profiles",
        "/v1/profiles/p-anna/export",
    ],
)
def test_missing_key_is_401(client: TestClient, path: str) -> None:
    error = assert_error(get(client, path, None), 401, "missing_api_key")
    assert "API key" in error["message"]


def test_unknown_key_is_401(client: TestClient) -> None:
    response = get(client, "/v1/profiles/p-anna", "not-a-configured-key")
    assert_error(response, 401, "invalid_api_key")
    assert response.headers["www-authenticate"] == "Bearer"
    bearer = client.get("/v1/profiles/p-anna", headers={"Authorization": "Bearer nope"})
    assert_error(bearer, 401, "invalid_api_key")


def test_field_outside_the_view_is_403(client: TestClient) -> None:
    error = assert_error(
        get(client, "/v1/profiles/p-anna?fields=journey.score", MARKETING), 403, "field_not_in_view"
    )
    assert error["details"] == {"fields": ["journey.score"], "department": "marketing"}
    assert_error(
        get(client, "/v1/profiles/p-anna?fields=consent", SERVICE), 403, "field_not_in_view"
    )
    assert_error(
        get(client, "/v1/profiles?email=anna@example.com&fields=computed", SALES),
        403,
        "field_not_in_view",
    )
    # checked before the lookup: no existence oracle outside the view
    assert_error(
        get(client, "/v1/profiles/p-nobody?fields=consent", SERVICE), 403, "field_not_in_view"
    )


@pytest.mark.parametrize("key", [MARKETING, SALES, SERVICE])
def test_export_and_erase_need_admin(client: TestClient, key: str) -> None:
    assert_error(get(client, "/v1/profiles/p-anna/export", key), 403, "admin_required")
    response = client.delete("/v1/profiles/p-anna", headers={"X-API-Key": key})
    assert_error(response, 403, "admin_required")


# ------------------------------------------------------------------------ 404


def test_unknown_profile_and_identifier_are_404(client: TestClient) -> None:
    assert_error(get(client, "/v1/profiles/p-nobody"), 404, "profile_not_found")
    assert_error(get(client, "/v1/profiles?email=nobody@example.com"), 404, "identifier_not_found")
    # blocked values never link: not found, not invalid
    assert_error(get(client, "/v1/profiles?email=test@test.com"), 404, "identifier_not_found")
    assert_error(get(client, "/v1/profiles/p-nobody/export"), 404, "profile_not_found")
    response = client.delete("/v1/profiles/p-nobody", headers={"X-API-Key": ADMIN})
    assert_error(response, 404, "profile_not_found")
    assert_error(client.get("/v2/nothing"), 404, "not_found")


def test_404_messages_do_not_echo_the_identifier(client: TestClient) -> None:
    response = get(client, "/v1/profiles?email=secret.person@example.com")
    assert "secret.person" not in response.text


# ------------------------------------------------------------------------ 422


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/profiles", "invalid_parameters"),
        ("/v1/profiles?email=a@example.com&phone=030123456", "invalid_parameters"),
        ("/v1/profiles?email=not-an-email", "invalid_identifier"),
        ("/v1/profiles?phone=12", "invalid_identifier"),
        ("/v1/profiles?email=", "invalid_parameters"),
        ("/v1/profiles/bad%20id", "invalid_parameters"),
        ("/v1/profiles/p-anna?fields=traits,,x", "invalid_parameters"),
        ("/v1/profiles/p-anna?fields=a%20b", "invalid_parameters"),
        ("/v1/stages/limbo/profiles", "invalid_parameters"),
        ("/v1/stages/need/profiles?limit=0", "invalid_parameters"),
        ("/v1/stages/need/profiles?limit=501", "invalid_parameters"),
        ("/v1/stages/need/profiles?limit=ten", "invalid_parameters"),
        ("/v1/stages/need/profiles?cursor=%21%21%21", "invalid_parameters"),
        ("/v1/stages/need/profiles?cursor=bm9wZQ", "invalid_cursor"),
        ("/v1/changes?after=yesterday", "invalid_parameters"),
        ("/v1/changes?max_events=0", "invalid_parameters"),
        ("/v1/changes?timeout=-1", "invalid_parameters"),
    ],
)
def test_bad_parameters_are_422(client: TestClient, path: str, code: str) -> None:
    error = assert_error(get(client, path), 422, code)
    assert error["details"]


def test_bad_last_event_id_is_422(client: TestClient) -> None:
    response = get(client, "/v1/changes", headers={"Last-Event-ID": "nope"})
    assert_error(response, 422, "invalid_parameters")


def test_validation_details_do_not_echo_input(client: TestClient) -> None:
    response = get(client, "/v1/stages/secret.person@example.com/profiles")
    assert_error(response, 422, "invalid_parameters")
    assert "secret.person" not in response.text


def test_wrong_method_uses_the_error_model(client: TestClient) -> None:
    assert_error(client.post("/v1/profiles/p-anna"), 405, "method_not_allowed")


# ------------------------------------------------------------------- 5xx never leak


def test_unexpected_errors_are_a_json_500_without_trace_or_pii(
    app: FastAPI, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    def boom() -> None:
        raise RuntimeError("anna@example.com broke it")

    app.add_api_route("/boom", boom)
    with caplog.at_level(logging.DEBUG):
        response = client.get("/boom")
    assert_error(response, 500, "internal_error")
    assert "anna@example.com" not in response.text
    assert "RuntimeError" in caplog.text and "anna@example.com" not in caplog.text


def test_redis_down_is_503(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = ReadModelStore(redis.Redis(port=1, retry=Retry(NoBackoff(), 0)), NS)
    app = create_app(load_settings(namespace=NS, kafka_bootstrap="127.0.0.1:1"), dead)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert_error(get(client, "/v1/profiles/p-anna"), 503, "unavailable")
        assert_error(get(client, "/v1/profiles?email=anna@example.com"), 503, "unavailable")
        error = assert_error(client.get("/readyz"), 503, "not_ready")
        assert error["details"]["checks"]["redis"].startswith("unreachable")
        assert client.get("/healthz").json() == {"status": "ok"}


# ---------------------------------------------------------------------- stages


def test_stage_pages_are_newest_first_and_stable(store: ReadModelStore, client: TestClient) -> None:
    for index in range(7):  # two ties on the same entered-at
        seed_person(
            store,
            f"p-{index}",
            [f"customer_id:S-{index}"],
            stage="choice",
            entered_ms=ENTERED_MS + (index // 2) * 1000,
        )
    expected = [m.profile_id for m in store.stage_members("choice", 0, 100)]
    seen: list[str] = []
    cursor = None
    while True:
        query = "limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = get(client, f"/v1/stages/choice/profiles?{query}", SERVICE).json()
        seen += [p["profile_id"] for p in page["profiles"]]
        if len(seen) == 3:  # someone enters the stage between two pages: no repeat, no skip
            seed_person(
                store, "p-new", ["customer_id:S-new"], stage="choice", entered_ms=ENTERED_MS * 2
            )
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    first = get(client, "/v1/stages/choice/profiles?limit=1").json()["profiles"][0]
    assert (
        first
        == {
            "profile_id": "p-new",
            "entered_ms": ENTERED_MS * 2,
            "entered_at": "2112-01-01T18:00:00Z",
        }
        or first["profile_id"] == "p-new"
    )
    assert get(client, "/v1/stages/usage/profiles").json() == {
        "stage": "usage",
        "profiles": [],
        "next_cursor": None,
    }


# ----------------------------------------------------------------- change feed


def events(text: str) -> list[dict[str, str]]:
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1)
            for line in block.splitlines()
            if not line.startswith(":") and ": " in line
        )
        if "event" in fields:
            out.append(fields)
    return out


def test_change_feed_replays_and_resumes(store: ReadModelStore, client: TestClient) -> None:
    seed_person(store, "p-b", ["customer_id:B"])
    all_changes = store.changes(None, 100)
    assert len(all_changes) == 2
    response = get(client, "/v1/changes?after=0-0&max_events=2")
    assert response.headers["content-type"].startswith("text/event-stream")
    got = events(response.text)
    assert [e["event"] for e in got] == ["position", "change", "change"]
    assert got[0]["id"] == "0-0"
    data = [json.loads(e["data"]) for e in got[1:]]
    assert [d["profile_id"] for d in data] == ["p-anna", "p-b"]
    assert [e["id"] for e in got[1:]] == [c.id for c in all_changes]
    assert data[0] == {
        "id": all_changes[0].id,
        "profile_id": "p-anna",
        "version": 10,
        "op": "upsert",
    }
    resumed = events(get(client, f"/v1/changes?after={all_changes[0].id}&max_events=1").text)
    assert json.loads(resumed[-1]["data"])["profile_id"] == "p-b"
    # Last-Event-ID wins over ?after= (a reconnecting EventSource sends the original URL)
    header = get(
        client, "/v1/changes?after=0-0&max_events=1", headers={"Last-Event-ID": all_changes[0].id}
    )
    assert json.loads(events(header.text)[-1]["data"])["profile_id"] == "p-b"


def test_change_feed_without_position_starts_at_the_end(
    store: ReadModelStore, client: TestClient
) -> None:
    end = store.changes(None, 100)[-1].id
    got = events(get(client, "/v1/changes?timeout=0.3").text)
    assert got == [{"id": end, "event": "position", "data": json.dumps({"after": end})}]


def test_change_feed_says_reset_when_the_position_was_trimmed(
    store: ReadModelStore, client: TestClient
) -> None:
    first = store.changes(None, 1)[0].id
    got = events(get(client, "/v1/changes?after=1-0&timeout=0.3").text)
    assert got[0]["event"] == "reset" and json.loads(got[0]["data"])["first_id"] == first


# ------------------------------------------------------------- export and erase


def test_export_holds_everything_about_the_person(
    store: ReadModelStore, client: TestClient
) -> None:
    store.apply([AliasSet("p-older", "p-old", 11)])  # a two-hop alias chain
    body = get(client, "/v1/profiles/p-old/export").json()
    assert body["requested_id"] == "p-old" and body["profile_id"] == "p-anna"
    assert body["document"]["traits"]["first_name"]["value"] == "Anna"
    assert body["stage"] == "search" and body["version"] == 10
    assert [i["key"] for i in body["identifiers"]] == sorted([EMAIL, PHONE, "customer_id:C-1"])
    assert all(i["digest"] == layout.identifier_digest(i["key"]) for i in body["identifiers"])
    aliases = {a["alias_id"]: a["to"] for a in body["aliases"]}
    assert aliases == {"p-old": "p-anna", "p-older": "p-old"} | {
        candidate_id(k): "p-anna" for k in (EMAIL, PHONE, "customer_id:C-1")
    }
    assert [c["profile_id"] for c in body["changes"]] == ["p-anna"]


class FakeKafka:
    """Stands in for :meth:`Eraser._send_and_wait` (the real one is integration-tested)."""

    def __init__(self, fail: bool = False) -> None:
        self.records: list[tuple[str, bytes, bytes | None]] = []
        self.fail = fail

    def __call__(self, records: list[tuple[str, bytes, bytes | None]]) -> None:
        if self.fail:
            raise Unavailable("Kafka did not acknowledge the erasure; nothing was removed, retry")
        self.records += records


def test_erase_removes_the_person_and_sends_tombstones_and_audit(
    monkeypatch: pytest.MonkeyPatch,
    store: ReadModelStore,
    client: TestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kafka = FakeKafka()
    monkeypatch.setattr(Eraser, "_send_and_wait", lambda self, records: kafka(records))
    seed_person(store, "p-other", ["email:other@example.com"], first_name="Otto")
    with caplog.at_level(logging.DEBUG):
        response = client.delete("/v1/profiles/p-old", headers={"X-API-Key": ADMIN})
    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt["profile_id"] == "p-anna" and receipt["department"] == "admin"
    assert receipt["identifier_count"] == 3 and receipt["profile_ids_deleted"] == ["p-anna"]
    topics = [topic for topic, _, _ in kafka.records]
    assert topics.count(f"{NS}.identity.assignments") == 3
    assert {
        key
        for topic, key, value in kafka.records
        if topic == f"{NS}.identity.assignments" and value is None
    } == {k.encode() for k in (EMAIL, PHONE, "customer_id:C-1")}
    assert (f"{NS}.profile.changes", b"p-anna", None) in kafka.records
    audit = [json.loads(v) for t, _, v in kafka.records if t == f"{NS}.privacy.audit" and v]
    assert len(audit) == 1 and audit[0]["type"] == "profile_erased"
    assert audit[0]["key_id"] == "admin-dev" and audit[0]["identifier_count"] == 3
    assert "anna" not in json.dumps(audit).replace("p-anna", "") and "+49" not in json.dumps(audit)
    assert "anna@example.com" not in caplog.text and "Anna" not in caplog.text
    # gone from Redis: document, identifier links, aliases; others untouched
    assert store.get_profile("p-anna") is None and store.resolve("p-old") is None
    assert all(store.lookup(k) is None for k in (EMAIL, PHONE, "customer_id:C-1"))
    assert store.alias_target("p-old") is None and store.alias_target(candidate_id(EMAIL)) is None
    assert store.stage_members("search", 0, 10)[0].profile_id == "p-other"
    assert store.consistency_problems() == []
    assert_error(get(client, "/v1/profiles?email=anna@example.com"), 404, "identifier_not_found")
    assert get(client, "/v1/profiles?email=other@example.com").status_code == 200
    dump = json.dumps(store.dump(include_versions=True), default=str)
    assert "anna@example.com" not in dump and "Anna" not in dump
    # an older replayed write cannot resurrect it; the delete is in the change stream
    store.apply([ProfileUpsert("p-anna", 10, b'{"profile_id":"p-anna"}')])
    assert store.get_profile("p-anna") is None
    assert store.changes(None, 100)[-1].op.value == "delete"


def test_erase_stops_before_redis_when_kafka_does_not_ack(
    monkeypatch: pytest.MonkeyPatch, store: ReadModelStore, client: TestClient
) -> None:
    monkeypatch.setattr(
        Eraser, "_send_and_wait", lambda self, records: FakeKafka(fail=True)(records)
    )
    response = client.delete("/v1/profiles/p-anna", headers={"X-API-Key": ADMIN})
    assert_error(response, 503, "unavailable")
    assert store.get_profile("p-anna") is not None and store.lookup(EMAIL) == "p-anna"


# ---------------------------------------------------------- operations and docs


def test_metrics_use_route_templates_not_paths(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="cdp.api.access"):
        get(client, "/v1/profiles?email=anna@example.com")
        get(client, "/v1/profiles/p-old")
        get(client, "/v1/profiles/p-nobody")
    text = client.get("/metrics").text
    assert (
        'cdp_api_requests_total{method="GET",route="/v1/profiles/{profile_id}",status="404"} 1.0'
        in text
    )
    assert 'route="/v1/profiles",status="200"' in text
    assert "cdp_api_request_duration_seconds_bucket" in text
    assert "anna" not in text and "p-old" not in text
    assert "GET /v1/profiles 200" in caplog.text and "anna@example.com" not in caplog.text


def test_responses_carry_a_request_id(client: TestClient) -> None:
    assert len(get(client, "/v1/profiles/p-anna").headers["x-request-id"]) == 16


def test_openapi_documents_the_error_model_on_every_route(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "500" in responses, (method, path)
            if path.startswith("/v1/"):
                for status in ("401", "403", "404", "422", "500", "503"):
                    ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (method, path, status)
    assert not any(p.startswith("/dashboard") for p in schema["paths"])
    security = schema["components"]["securitySchemes"]
    assert {"APIKeyHeader", "HTTPBearer"} <= set(security)
