"""The synchronous client, :class:`CdpClient` (httpx)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from types import TracebackType
from typing import Any

import httpx

from cdp.api.models import (
    ChangeOut,
    EraseReceipt,
    ExportOut,
    FunnelOut,
    MomentsOut,
    Profile,
    ProfileResponse,
    Readiness,
    StageMemberOut,
    StagePage,
)
from cdp.client._common import (
    DEFAULT_BASE_URL,
    FEED_ERRORS,
    MOMENTS_CALL,
    READY_CALL,
    Call,
    ChangeFeed,
    ModelT,
    RetryPolicy,
    auth_headers,
    erase_call,
    export_call,
    funnel_call,
    lookup_call,
    params_of,
    profile_call,
    retry_delay,
    stage_call,
)
from cdp.client._common import FEED_READ_TIMEOUT_S as FEED_READ_TIMEOUT_S  # re-exported


class CdpClient:
    """Typed client of the CDP HTTP API for department apps.

    ::

        with CdpClient("http://127.0.0.1:18080", api_key="...") as cdp:
            profile = cdp.lookup(email="anna@example.com")
            print(profile.profile_id, profile.journey.stage if profile.journey else None)
            for change in cdp.changes():          # endless; resumes after a dropped connection
                ...

    Requests are retried with exponential backoff (:class:`RetryPolicy`) on
    connection errors, 5xx and 429, never on other 4xx. Failures raise the
    subclasses of :class:`~cdp.client.errors.CdpApiError`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url, headers=auth_headers(api_key), timeout=timeout, transport=transport
        )

    # -------------------------------------------------------------- plumbing

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> CdpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def request(
        self, method: str, path: str, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        """Send a request with retries; return the success response or raise the API error."""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = self._http.request(method, path, params=params)
            except httpx.TransportError as exc:
                self._sleep(retry_delay(self.retry, attempt, exc))
                continue
            if response.is_success:
                return response
            self._sleep(retry_delay(self.retry, attempt, response))
        raise AssertionError("unreachable")  # pragma: no cover

    def _call(self, call: Call[ModelT]) -> ModelT:
        return call.parse(self.request(call.method, call.path, call.params))

    # ----------------------------------------------------------------- reads

    def get_profile_response(
        self, profile_id: str, *, fields: Iterable[str] | str | None = None
    ) -> ProfileResponse:
        """The full response of ``GET /v1/profiles/{id}`` (resolved id, view, profile)."""
        return self._call(profile_call(profile_id, fields))

    def get_profile(self, profile_id: str, *, fields: Iterable[str] | str | None = None) -> Profile:
        """The profile ``profile_id`` resolves to (aliases followed), in the caller's view."""
        return self.get_profile_response(profile_id, fields=fields).profile

    @params_of(lookup_call)
    def lookup_response(self, **identifiers: Any) -> ProfileResponse:
        """The full response of ``GET /v1/profiles?{identifier}=``."""
        return self._call(lookup_call(**identifiers))

    @params_of(lookup_call)
    def lookup(self, **identifiers: Any) -> Profile:
        """The profile of exactly one identifier (normalised by the server like ingest)."""
        return self.lookup_response(**identifiers).profile

    def stage_profiles(
        self, stage: str, *, limit: int = 50, cursor: str | None = None
    ) -> StagePage:
        """One page of the profiles in ``stage``, newest first."""
        return self._call(stage_call(stage, limit, cursor))

    def iter_stage(self, stage: str, *, page_size: int = 200) -> Iterator[StageMemberOut]:
        """Every profile in ``stage``, newest first, page by page."""
        cursor: str | None = None
        while True:
            page = self.stage_profiles(stage, limit=page_size, cursor=cursor)
            yield from page.profiles
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def funnel(self, *, region: str | None = None, channel: str | None = None) -> FunnelOut:
        """The journey funnel (overall, or of one region or one channel)."""
        return self._call(funnel_call(region, channel))

    def moments(self) -> MomentsOut:
        """Moment-of-truth counts, per moment and per stage."""
        return self._call(MOMENTS_CALL)

    def ready(self) -> Readiness:
        """``GET /readyz``; raises :class:`~cdp.client.errors.ServerError` when not ready."""
        return self._call(READY_CALL)

    # ---------------------------------------------------------------- admin

    def export(self, profile_id: str) -> ExportOut:
        """GDPR export of the person ``profile_id`` resolves to (admin key)."""
        return self._call(export_call(profile_id))

    def erase(self, profile_id: str) -> EraseReceipt:
        """GDPR erasure of the person ``profile_id`` resolves to (admin key); the receipt."""
        return self._call(erase_call(profile_id))

    # ----------------------------------------------------------- change feed

    @params_of(ChangeFeed)  # the parameters and the docstring
    def changes(self, *args: Any, **kwargs: Any) -> Iterator[ChangeOut]:
        feed = ChangeFeed(*args, **kwargs)
        while (request := feed.next_request(self._http)) is not None:
            try:
                with closing(self._http.send(request, stream=True)) as response:
                    if not response.is_success:
                        response.read()
                    feed.opened(response)
                    for line in response.iter_lines():
                        if (change := feed.feed(line)) is not None:
                            yield change
                            if feed.done:
                                return
            except FEED_ERRORS as exc:
                self._sleep(feed.failed(exc, self.retry))
                continue
            delay = feed.ended(self.retry)
            if delay is None:
                return
            self._sleep(delay)  # the server ended the stream: reconnect shortly
