"""The asynchronous client, :class:`AsyncCdpClient` (httpx, asyncio)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import aclosing
from types import TracebackType
from typing import Any

import httpx

from cdp.api import models
from cdp.client import _common
from cdp.client._common import FEED_READ_TIMEOUT_S as FEED_READ_TIMEOUT_S  # re-exported
from cdp.client._common import ModelT, RetryPolicy


class AsyncCdpClient:
    """Typed asyncio client of the CDP HTTP API; the same methods as :class:`~cdp.client.CdpClient`.

    ::

        async with AsyncCdpClient("http://127.0.0.1:18080", api_key="...") as cdp:
            profile = await cdp.lookup(email="anna@example.com")
            async for change in cdp.changes():    # endless; resumes after a dropped connection
                ...

    Requests are retried with exponential backoff (:class:`RetryPolicy`) on
    connection errors, 5xx and 429, never on other 4xx. Failures raise the
    subclasses of :class:`~cdp.client.errors.CdpApiError`.
    """

    def __init__(
        self,
        base_url: str = _common.DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=_common.auth_headers(api_key),
            timeout=timeout,
            transport=transport,
        )

    # -------------------------------------------------------------- plumbing

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncCdpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def request(
        self, method: str, path: str, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        """Send a request with retries; return the success response or raise the API error."""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = await self._http.request(method, path, params=params)
            except httpx.TransportError as exc:
                await self._sleep(_common.retry_delay(self.retry, attempt, exc))
                continue
            if response.is_success:
                return response
            await self._sleep(_common.retry_delay(self.retry, attempt, response))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call(self, call: _common.Call[ModelT]) -> ModelT:
        return call.parse(await self.request(call.method, call.path, call.params))

    # ----------------------------------------------------------------- reads

    async def get_profile_response(
        self, profile_id: str, *, fields: Iterable[str] | str | None = None
    ) -> models.ProfileResponse:
        """The full response of ``GET /v1/profiles/{id}`` (resolved id, view, profile)."""
        return await self._call(_common.profile_call(profile_id, fields))

    async def get_profile(
        self, profile_id: str, *, fields: Iterable[str] | str | None = None
    ) -> models.Profile:
        """The profile ``profile_id`` resolves to (aliases followed), in the caller's view."""
        return (await self.get_profile_response(profile_id, fields=fields)).profile

    @_common.params_of(_common.lookup_call)
    async def lookup_response(self, **identifiers: Any) -> models.ProfileResponse:
        """The full response of ``GET /v1/profiles?{identifier}=``."""
        return await self._call(_common.lookup_call(**identifiers))

    @_common.params_of(_common.lookup_call)
    async def lookup(self, **identifiers: Any) -> models.Profile:
        """The profile of exactly one identifier (normalised by the server like ingest)."""
        return (await self.lookup_response(**identifiers)).profile

    async def stage_profiles(
        self, stage: str, *, limit: int = 50, cursor: str | None = None
    ) -> models.StagePage:
        """One page of the profiles in ``stage``, newest first."""
        return await self._call(_common.stage_call(stage, limit, cursor))

    async def funnel(
        self, *, region: str | None = None, channel: str | None = None
    ) -> models.FunnelOut:
        """The journey funnel (overall, or of one region or one channel)."""
        return await self._call(_common.funnel_call(region, channel))

    async def moments(self) -> models.MomentsOut:
        """Moment-of-truth counts, per moment and per stage."""
        return await self._call(_common.MOMENTS_CALL)

    async def iter_stage(
        self, stage: str, *, page_size: int = 200
    ) -> AsyncIterator[models.StageMemberOut]:
        """Every profile in ``stage``, newest first, page by page."""
        cursor: str | None = None
        while True:
            page = await self.stage_profiles(stage, limit=page_size, cursor=cursor)
            for member in page.profiles:
                yield member
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def ready(self) -> models.Readiness:
        """``GET /readyz``; raises :class:`~cdp.client.errors.ServerError` when not ready."""
        return await self._call(_common.READY_CALL)

    # ---------------------------------------------------------------- admin

    async def export(self, profile_id: str) -> models.ExportOut:
        """GDPR export of the person ``profile_id`` resolves to (admin key)."""
        return await self._call(_common.export_call(profile_id))

    async def erase(self, profile_id: str) -> models.EraseReceipt:
        """GDPR erasure of the person ``profile_id`` resolves to (admin key); the receipt."""
        return await self._call(_common.erase_call(profile_id))

    # ----------------------------------------------------------- change feed

    @_common.params_of(_common.ChangeFeed)  # the parameters and the docstring
    async def changes(self, *args: Any, **kwargs: Any) -> AsyncIterator[models.ChangeOut]:
        feed = _common.ChangeFeed(*args, **kwargs)
        while (request := feed.next_request(self._http)) is not None:
            try:
                async with aclosing(await self._http.send(request, stream=True)) as response:
                    if not response.is_success:
                        await response.aread()
                    feed.opened(response)
                    async for line in response.aiter_lines():
                        if (change := feed.feed(line)) is not None:
                            yield change
                            if feed.done:
                                return
            except _common.FEED_ERRORS as exc:
                await self._sleep(feed.failed(exc, self.retry))
                continue
            delay = feed.ended(self.retry)
            if delay is None:
                return
            await self._sleep(delay)  # the server ended the stream: reconnect shortly
