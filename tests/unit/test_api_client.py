"""The Python client with a mocked transport: models, error classes, retries, the change feed."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from cdp.client import (
    AsyncCdpClient,
    AuthenticationError,
    CdpClient,
    ConnectionFailedError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    Profile,
    RateLimitedError,
    RetryPolicy,
    ServerError,
)
from cdp.client._common import ChangeFeed, RetryableFeedError, SseParser, retry_delay
from cdp.profile.document import ProfileDocument, canonical_json
from tests.api_support import document

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)


def error(status: int, code: str) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code}!", "details": {"x": 1}}}
    return httpx.Response(status, json=body, headers={"x-request-id": "r1"})


def profile_body(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "requested_id": "p-old",
        "profile_id": doc["profile_id"],
        "department": "admin",
        "fields": ["*"],
        "profile": doc,
    }


def sync_client(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> CdpClient:
    sleeps: list[float] = []
    client = CdpClient(
        "http://api",
        "k",
        transport=httpx.MockTransport(handler),
        retry=FAST,
        sleep=sleeps.append,
        **kwargs,
    )
    client.sleeps = sleeps  # type: ignore[attr-defined]
    return client


def test_profile_models_accept_views_extras_and_real_documents() -> None:
    doc = document("p-1", ["email:anna@example.com"], extra={"future": {"a": 1}})
    doc["journey"]["brand_new"] = True
    profile = Profile.model_validate(doc)
    assert profile.journey is not None and profile.journey.stage == "search"
    assert profile.journey.history and profile.journey.history[1].from_stage == "need"
    assert profile.journey.moments and profile.journey.moments[0].name == "first_contact"
    assert profile.model_extra == {"segments": ["b2b-chemicals"], "future": {"a": 1}}
    assert profile.computed is not None and profile.computed.lead_status is not None
    partial = Profile.model_validate({"profile_id": "p-1", "journey": {"stage": "need"}})
    assert partial.traits is None and partial.computed is None
    real = ProfileDocument(profile_id="p-2", identifiers=["email:a@b.de"])
    assert Profile.model_validate_json(canonical_json(real)).identifiers == ["email:a@b.de"]
    assert "anna" not in repr(profile)


def test_get_profile_and_lookup_send_the_right_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=profile_body(document("p-1", [])))

    with sync_client(handler) as client:
        assert client.get_profile("p-old", fields=["traits", "journey.stage"]).profile_id == "p-1"
        client.lookup(email="Anna@Example.com")
        client.get_profile("a/b?c")
    assert seen[0].url.path == "/v1/profiles/p-old"
    assert seen[0].url.params["fields"] == "traits,journey.stage"
    assert seen[0].headers["x-api-key"] == "k"
    assert dict(seen[1].url.params) == {"email": "Anna@Example.com"}
    assert seen[2].url.raw_path == b"/v1/profiles/a%2Fb%3Fc"


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "invalid_api_key", AuthenticationError),
        (403, "field_not_in_view", PermissionDeniedError),
        (404, "profile_not_found", NotFoundError),
        (422, "invalid_parameters", InvalidRequestError),
        (400, "bad_request", InvalidRequestError),
    ],
)
def test_4xx_map_to_error_classes_without_retry(
    status: int, code: str, cls: type[Exception]
) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return error(status, code)

    with sync_client(handler) as client, pytest.raises(cls) as raised:
        client.get_profile("p-1")
    assert len(calls) == 1
    assert raised.value.status == status and raised.value.code == code  # type: ignore[attr-defined]
    assert raised.value.details == {"x": 1} and raised.value.request_id == "r1"  # type: ignore[attr-defined]


def test_5xx_and_429_are_retried_with_backoff() -> None:
    replies = iter(
        [
            error(503, "unavailable"),
            httpx.Response(429, headers={"retry-after": "0.015"}),
            httpx.Response(200, json=profile_body(document("p-1", []))),
        ]
    )
    client = sync_client(lambda request: next(replies))
    assert client.get_profile("p-1").profile_id == "p-1"
    assert len(client.sleeps) == 2 and client.sleeps[1] == 0.015  # type: ignore[attr-defined]
    assert 0.005 <= client.sleeps[0] <= 0.01  # type: ignore[attr-defined]


def test_retries_give_up_with_the_last_error() -> None:
    with pytest.raises(ServerError) as raised:
        sync_client(lambda request: error(500, "internal_error")).get_profile("p-1")
    assert raised.value.code == "internal_error"
    with pytest.raises(RateLimitedError):
        sync_client(lambda request: httpx.Response(429)).get_profile("p-1")


def test_connect_errors_are_retried_then_raised() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=profile_body(document("p-1", [])))

    assert sync_client(handler).get_profile("p-1").profile_id == "p-1"

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ConnectionFailedError):
        sync_client(down).get_profile("p-1")


def test_iter_stage_follows_cursors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        member = {
            "profile_id": cursor or "p-a",
            "entered_ms": 1,
            "entered_at": "2026-01-01T00:00:00Z",
        }
        return httpx.Response(
            200,
            json={"stage": "need", "profiles": [member], "next_cursor": None if cursor else "p-b"},
        )

    assert [m.profile_id for m in sync_client(handler).iter_stage("need")] == ["p-a", "p-b"]


def test_sse_parser() -> None:
    parser = SseParser()
    lines = [
        "retry: 1000",
        "",
        ": keepalive",
        "",
        "id: 1-0",
        "event: change",
        'data: {"a":',
        "data: 1}",
        "",
    ]
    events = [e for e in (parser.feed(line) for line in lines) if e is not None]
    assert len(events) == 1 and events[0].id == "1-0" and events[0].data == '{"a":\n1}'


def test_retry_delay_decides_retry_or_raise() -> None:
    request = httpx.Request("GET", "http://api/x")
    refused = httpx.ConnectError("refused", request=request)
    assert 0.005 <= retry_delay(FAST, 1, error(503, "unavailable")) <= 0.01
    assert retry_delay(FAST, 2, httpx.Response(429, headers={"retry-after": "0.015"})) == 0.015
    assert 0.005 <= retry_delay(FAST, 1, refused) <= 0.01
    with pytest.raises(NotFoundError):
        retry_delay(FAST, 1, error(404, "profile_not_found"))
    with pytest.raises(ServerError):
        retry_delay(FAST, 3, error(503, "unavailable"))
    with pytest.raises(ConnectionFailedError) as raised:
        retry_delay(FAST, 3, refused)
    assert raised.value.__cause__ is refused


def test_change_feed_state() -> None:
    http = httpx.Client(base_url="http://api")
    resets: list[str | None] = []
    feed = ChangeFeed("1-0", on_reset=resets.append, max_events=2)
    first = feed.next_request(http)
    assert first is not None and first.headers["last-event-id"] == "1-0"
    assert first.url.params["max_events"] == "2"
    feed.opened(httpx.Response(200))
    lines = [*change("5-0").split("\n"), "event: reset", 'data: {"first_id": "9-0"}', ""]
    changes = [c for c in map(feed.feed, lines) if c is not None]
    assert [c.id for c in changes] == ["5-0"] and resets == ["9-0"] and not feed.done
    again = feed.next_request(http)
    assert again is not None and again.headers["last-event-id"] == "5-0"
    assert again.url.params["max_events"] == "1"
    assert ChangeFeed(timeout=0).next_request(http) is None
    assert ChangeFeed(timeout=0).ended(FAST) is None


def test_change_feed_gives_up_only_before_the_first_connect() -> None:
    flaky = RetryableFeedError(ServerError("down", status=503, code="unavailable"))
    feed = ChangeFeed()
    assert feed.failed(flaky, FAST) > 0 and feed.failed(flaky, FAST) > 0
    with pytest.raises(ServerError):
        feed.failed(flaky, FAST)
    with pytest.raises(RetryableFeedError):
        feed.opened(error(502, "bad_gateway"))
    with pytest.raises(AuthenticationError):
        feed.opened(error(401, "invalid_api_key"))
    feed.opened(httpx.Response(200))
    assert all(feed.failed(flaky, FAST) > 0 for _ in range(5))


def test_sync_and_async_clients_have_the_same_methods() -> None:
    def shape(cls: type) -> dict[str, list[tuple[str, object, object]]]:
        methods = {
            name: inspect.signature(getattr(cls, name))
            for name in dir(cls)
            if not name.startswith("_") and callable(getattr(cls, name))
        }
        return {
            name: [(p.name, p.kind, p.default) for p in sig.parameters.values()]
            for name, sig in methods.items()
        }

    assert shape(CdpClient) == shape(AsyncCdpClient)
    lookup = inspect.signature(CdpClient.lookup)
    assert next(iter(lookup.parameters)) == "self" and "email" in lookup.parameters
    assert lookup.parameters["email"].kind is inspect.Parameter.KEYWORD_ONLY
    assert CdpClient.changes.__doc__ == AsyncCdpClient.changes.__doc__ == ChangeFeed.__doc__


def change(entry_id: str, pid: str = "p-1") -> str:
    data = json.dumps({"id": entry_id, "profile_id": pid, "version": 1, "op": "upsert"})
    return f"id: {entry_id}\nevent: change\ndata: {data}\n\n"


class Feed:
    """A change feed that drops the connection after each scripted chunk."""

    def __init__(self, chunks: list[str]) -> None:
        self.chunks = chunks
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        index = len(self.requests) - 1
        if index == 1:
            raise httpx.ConnectError("dropped", request=request)
        body = self.chunks[min(index, len(self.chunks) - 1)]
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})


def script() -> list[str]:
    return [
        "retry: 1000\n\nid: 5-0\nevent: position\ndata: {}\n\n" + change("6-0"),
        "",  # (the second attempt fails to connect)
        "retry: 1000\n\nid: 6-0\nevent: position\ndata: {}\n\n" + change("7-0") + change("8-0"),
    ]


def test_changes_resume_after_a_dropped_connection() -> None:
    feed = Feed(script())
    client = sync_client(feed)
    resets: list[str | None] = []
    got = [c.id for c in client.changes(on_reset=resets.append, max_events=3)]
    assert got == ["6-0", "7-0", "8-0"]
    assert "last-event-id" not in feed.requests[0].headers
    assert feed.requests[1].headers["last-event-id"] == "6-0"
    assert feed.requests[2].headers["last-event-id"] == "6-0"
    assert feed.requests[2].url.params["max_events"] == "2"


def test_changes_report_resets_and_raise_4xx() -> None:
    body = 'event: reset\ndata: {"first_id": "9-0"}\n\n' + change("9-0")
    client = sync_client(lambda r: httpx.Response(200, text=body))
    resets: list[str | None] = []
    assert [c.id for c in client.changes("1-0", on_reset=resets.append, max_events=1)] == ["9-0"]
    assert resets == ["9-0"]
    with pytest.raises(AuthenticationError):
        next(iter(sync_client(lambda r: error(401, "invalid_api_key")).changes()))


def test_async_client() -> None:
    async def run() -> None:
        feed = Feed(script())
        failures = iter([error(502, "bad_gateway")])

        def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path == "/v1/changes":
                return feed(request)
            for reply in failures:
                return reply
            if request.url.path.endswith("/nobody"):
                return error(404, "profile_not_found")
            return httpx.Response(200, json=profile_body(document("p-1", [])))

        async def no_sleep(_seconds: float) -> None:
            return None

        async with AsyncCdpClient(
            "http://api", "k", transport=httpx.MockTransport(handler), retry=FAST, sleep=no_sleep
        ) as client:
            profile = await client.lookup(email="anna@example.com")
            assert profile.journey is not None and profile.journey.owner == "marketing"
            with pytest.raises(NotFoundError):
                await client.get_profile("nobody")
            got = [c.id async for c in client.changes(max_events=3)]
            assert got == ["6-0", "7-0", "8-0"]

    asyncio.run(run())


def test_journey_model_reads_the_journey_stage_output() -> None:
    from cdp.journey.engine import JourneyState, Transition

    at = "2026-03-02T09:00:00Z"
    transition = Transition.model_validate(
        {
            "from_stage": "need",
            "to_stage": "search",
            "at": at,
            "event_id": "e",
            "channel": "web",
            "rule": "r",
        }
    )
    state = JourneyState(
        journey="b2b", stage="search", owner="marketing", history=(transition,), score=12.5
    )
    journey = Profile.model_validate(
        {"profile_id": "p", "journey": state.model_dump(mode="json")}
    ).journey
    assert journey is not None and journey.score == 12.5 and journey.qualified is False
    assert journey.history is not None and journey.history[0].to_stage == "search"
    assert journey.model_extra == {}
