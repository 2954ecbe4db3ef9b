"""The collector over HTTP (TestClient, fake sink): auth, limits, error bodies, delivery."""

from __future__ import annotations

import base64
import gzip
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cdp.api.access import hash_key
from cdp.cli.collector import check_serving
from cdp.collect.app import create_app
from cdp.collect.body import MAX_BATCH_BYTES, MAX_CALL_BYTES
from cdp.collect.keys import load_write_keys
from cdp.collect.sink import DeliveryFailed
from cdp.contracts.events import Event
from cdp.errors import ConfigError
from cdp.settings import load_settings

DEV_KEY = "cdp-dev-write-key"
SECRET = "anna.secret@example.com"


def basic(key: str, password: str = "") -> dict[str, str]:
    token = base64.b64encode(f"{key}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


AUTH = basic(DEV_KEY)


class FakeSink:
    """Records delivered events; fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.failing: str | None = None
        self.closed = False

    async def deliver(self, events: Sequence[Event]) -> None:
        if self.failing:
            raise DeliveryFailed(self.failing, "broker down")
        self.events.extend(events)

    def close(self) -> None:
        self.closed = True


@pytest.fixture()
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture()
def client(sink: FakeSink) -> Iterator[TestClient]:
    app = create_app(load_settings(namespace="tcollect"), sink)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


def track(**extra: Any) -> dict[str, Any]:
    return {"userId": "u-1", "event": "Signed Up", **extra}


def test_single_call_is_accepted_after_delivery(client: TestClient, sink: FakeSink) -> None:
    response = client.post("/v1/track", json=track(messageId="m-1"), headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert [e.type for e in sink.events] == ["track"]
    assert sink.events[0].source == "website"


@pytest.mark.parametrize("call", ["identify", "track", "page", "screen", "group", "alias"])
def test_every_endpoint(client: TestClient, sink: FakeSink, call: str) -> None:
    message = track(previousId="a-1", groupId="g", properties={"url": "https://x.example/"})
    response = client.post(f"/v1/{call}", json=message, headers=AUTH)
    assert response.status_code == 200, response.text
    assert len(sink.events) == 1


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/import"])
def test_batch(client: TestClient, sink: FakeSink, path: str) -> None:
    batch = [
        {"type": "identify", "userId": "u-1", "anonymousId": "a-1", "traits": {"email": SECRET}},
        {"type": "page", "anonymousId": "a-1", "properties": {"url": "https://x.example/"}},
        {"type": "track", **track()},
    ]
    response = client.post(path, json={"batch": batch, "writeKey": "ignored"}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert [e.type for e in sink.events] == ["identify", "page_view", "track"]
    assert client.post(path, json={"batch": []}, headers=AUTH).json() == {"success": True}


def test_write_key_in_the_body(client: TestClient, sink: FakeSink) -> None:
    response = client.post("/v1/track", json=track(writeKey=DEV_KEY))
    assert response.status_code == 200
    response = client.post("/v1/batch", json={"writeKey": DEV_KEY, "batch": [track(type="track")]})
    assert response.status_code == 200
    assert len(sink.events) == 2


def test_wrong_or_missing_write_key(client: TestClient, sink: FakeSink) -> None:
    error = assert_error(client.post("/v1/track", json=track()), 401, "missing_write_key")
    assert "write key" in error["message"]
    wrong = client.post("/v1/track", json=track(), headers=basic("not-a-key"))
    assert_error(wrong, 401, "invalid_write_key")
    assert wrong.headers["www-authenticate"] == 'Basic realm="cdp collector"'
    assert_error(client.post("/v1/track", json=track(writeKey="nope")), 401, "invalid_write_key")
    bearer = client.post("/v1/track", json=track(), headers={"Authorization": f"Bearer {DEV_KEY}"})
    assert_error(bearer, 401, "invalid_authorization")
    garbage = client.post("/v1/track", json=track(), headers={"Authorization": "Basic %%%"})
    assert_error(garbage, 401, "invalid_authorization")
    # a wrong header key is refused before the body is read: even a broken body gets 401
    assert_error(
        client.post("/v1/track", content=b"{", headers=basic("x")), 401, "invalid_write_key"
    )
    assert sink.events == []


def test_password_is_ignored(client: TestClient) -> None:
    assert client.post("/v1/track", json=track(), headers=basic(DEV_KEY, "x")).status_code == 200


@pytest.mark.parametrize("body", [b"{", b"", b"\xff\xfe{", b'{"a": NaN}', b"[1, 2"])
def test_malformed_json(client: TestClient, body: bytes) -> None:
    assert_error(client.post("/v1/track", content=body, headers=AUTH), 400, "invalid_json")


def test_json_that_is_not_an_object(client: TestClient) -> None:
    assert_error(client.post("/v1/track", json=[1], headers=AUTH), 400, "invalid_body")
    error = assert_error(
        client.post("/v1/batch", json={"batch": {"type": "track"}}, headers=AUTH),
        400,
        "invalid_body",
    )
    assert error["details"] == {"field": "batch"}


def test_oversize_call(client: TestClient, sink: FakeSink) -> None:
    message = track(properties={"blob": "x" * MAX_CALL_BYTES})
    error = assert_error(
        client.post("/v1/track", json=message, headers=AUTH), 413, "payload_too_large"
    )
    assert error["details"] == {"limit_bytes": MAX_CALL_BYTES}
    assert "x" * 20 not in json.dumps(error)
    # just under the limit is fine
    fits = track(properties={"blob": "x" * (MAX_CALL_BYTES - 200)})
    assert client.post("/v1/track", json=fits, headers=AUTH).status_code == 200
    assert len(sink.events) == 1


def test_oversize_batch_and_oversize_message_in_a_batch(client: TestClient, sink: FakeSink) -> None:
    item = {"type": "track", **track(properties={"blob": "x" * 20_000})}
    too_many = {"batch": [item] * (MAX_BATCH_BYTES // 20_000 + 1)}
    assert_error(client.post("/v1/batch", json=too_many, headers=AUTH), 413, "payload_too_large")
    big = {"type": "track", **track(properties={"blob": "x" * MAX_CALL_BYTES})}
    error = assert_error(
        client.post("/v1/batch", json={"batch": [item, big]}, headers=AUTH),
        413,
        "message_too_large",
    )
    assert error["details"]["index"] == 1
    assert error["details"]["limit_bytes"] == MAX_CALL_BYTES
    assert sink.events == []


def test_declared_content_length_is_checked_first(client: TestClient) -> None:
    headers = {**AUTH, "Content-Length": str(MAX_CALL_BYTES + 1)}
    response = client.post("/v1/track", content=b"{" + b" " * MAX_CALL_BYTES, headers=headers)
    assert_error(response, 413, "payload_too_large")


def test_gzip_bodies(client: TestClient, sink: FakeSink) -> None:
    headers = {**AUTH, "Content-Encoding": "gzip", "Content-Type": "application/json"}
    body = gzip.compress(json.dumps({"batch": [{"type": "track", **track()}]}).encode())
    assert client.post("/v1/batch", content=body, headers=headers).status_code == 200
    bomb = gzip.compress(json.dumps(track(p="x" * (MAX_CALL_BYTES * 4))).encode())
    assert len(bomb) < MAX_CALL_BYTES
    assert_error(client.post("/v1/track", content=bomb, headers=headers), 413, "payload_too_large")
    assert_error(
        client.post("/v1/track", content=b"not gzip", headers=headers), 400, "invalid_encoding"
    )
    assert_error(
        client.post("/v1/track", content=body[:-8], headers=headers), 400, "invalid_encoding"
    )
    brotli = {**AUTH, "Content-Encoding": "br"}
    assert_error(
        client.post("/v1/track", content=b"{}", headers=brotli), 415, "unsupported_encoding"
    )
    assert len(sink.events) == 1


def test_missing_ids_and_other_message_errors(client: TestClient, sink: FakeSink) -> None:
    error = assert_error(
        client.post("/v1/track", json={"event": "E"}, headers=AUTH), 400, "invalid_message"
    )
    assert error["details"] == {
        "refused": 1,
        "errors": [
            {
                "index": 0,
                "code": "missing_identifiers",
                "field": "userId/anonymousId",
                "message": "the message needs a userId or an anonymousId",
            }
        ],
    }
    batch = [
        {"type": "track", **track()},
        {"type": "identify", "traits": {"email": SECRET}},
        {"type": "alias", "userId": "u"},
    ]
    response = client.post("/v1/batch", json={"batch": batch}, headers=AUTH)
    error = assert_error(response, 400, "invalid_message")
    assert [(e["index"], e["code"]) for e in error["details"]["errors"]] == [
        (1, "missing_identifiers"),
        (2, "missing_field"),
    ]
    assert SECRET not in response.text
    assert sink.events == []  # all or nothing


def test_kafka_not_acknowledging_is_a_retryable_503(
    client: TestClient, sink: FakeSink, caplog: pytest.LogCaptureFixture
) -> None:
    sink.failing = "ack_timeout"
    with caplog.at_level(logging.WARNING, logger="cdp.collect"):
        response = client.post(
            "/v1/identify", json={"userId": "u", "traits": {"email": SECRET}}, headers=AUTH
        )
    error = assert_error(response, 503, "kafka_unavailable")
    assert error["details"] == {"retryable": True, "reason": "ack_timeout"}
    assert response.headers["retry-after"] == "5"
    assert "dev-website" in caplog.text and SECRET not in caplog.text


def test_other_routes_and_methods(client: TestClient) -> None:
    assert_error(client.get("/v1/track"), 405, "method_not_allowed")
    assert_error(client.post("/v1/nothing", json={}, headers=AUTH), 404, "not_found")
    assert client.get("/healthz").json() == {"status": "ok"}
    preflight = client.options(
        "/v1/batch",
        headers={
            "Origin": "https://www.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"


def test_the_app_closes_a_sink_it_made_only(sink: FakeSink) -> None:
    with TestClient(create_app(load_settings(namespace="tcollect"), sink)):
        pass
    assert not sink.closed


# ------------------------------------------------------------------ write-key files, settings


def write_keys_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    return path


def test_write_key_file(tmp_path: Path, sink: FakeSink) -> None:
    key = "shop-key-0123456789abcdef"
    path = write_keys_file(
        tmp_path,
        f"keys:\n  - id: shop-1\n    source: shop-frontend\n    region: AT\n"
        f"    sha256: {hash_key(key)}\n",
    )
    keys = load_write_keys(path)
    assert not keys.is_dev
    sender = keys.authenticate(key)
    assert sender is not None and (sender.key_id, sender.source, sender.region) == (
        "shop-1",
        "shop-frontend",
        "AT",
    )
    assert keys.authenticate(DEV_KEY) is None and keys.authenticate("") is None
    app = create_app(load_settings(namespace="tcollect", write_key_config=path), sink)
    with TestClient(app) as test_client:
        assert test_client.post("/v1/track", json=track(), headers=basic(key)).status_code == 200
        assert test_client.post("/v1/track", json=track(), headers=AUTH).status_code == 401
    assert (sink.events[0].source, sink.events[0].region) == ("shop-frontend", "AT")
    assert load_write_keys().is_dev


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("keys: []", "keys: Tuple should have at least 1 item"),
        ("keys:\n  - {id: a, source: web, sha256: abc}", "keys[0].sha256: expected 64"),
        ("keys:\n  - {id: a, source: ' bad', sha256: " + "a" * 64 + "}", "keys[0].source"),
        (
            "keys:\n  - {id: a, source: w, sha256: " + "a" * 64 + "}\n"
            "  - {id: a, source: w, sha256: " + "b" * 64 + "}",
            "key id 'a' is used twice",
        ),
        ("keys:\n  - {id: a, source: w, sha256: " + "a" * 64 + ", extra: 1}", "keys[0].extra"),
        ("- not a mapping", "expected a mapping"),
    ],
)
def test_bad_write_key_files_name_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = write_keys_file(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_write_keys(path)
    assert str(path) in str(caught.value) and problem in str(caught.value)


def test_settings_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CDP_WRITE_KEY_CONFIG: Value error, no such file"):
        load_settings(write_key_config=tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="CDP_COLLECTOR_PORT"):
        load_settings(collector_port=0)
    with pytest.raises(ConfigError, match="CDP_COLLECTOR_ACK_TIMEOUT"):
        load_settings(collector_ack_timeout=0)


def test_dev_keys_only_on_loopback(tmp_path: Path) -> None:
    check_serving(load_settings(collector_host="127.0.0.1"))
    with pytest.raises(ConfigError, match="CDP_WRITE_KEY_CONFIG: required"):
        check_serving(load_settings(collector_host="0.0.0.0"))
    path = write_keys_file(tmp_path, "keys:\n  - {id: a, source: w, sha256: " + "a" * 64 + "}")
    check_serving(load_settings(collector_host="0.0.0.0", write_key_config=path))
