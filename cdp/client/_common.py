"""What the sync and the async client share: everything but the I/O.

Building requests (:class:`Call` and its builders), the retry decision and
backoff schedule (:func:`retry_delay`), mapping error bodies to exceptions
(:func:`~cdp.client.errors.error_from_response`), parsing models, and the
change feed's state machine (:class:`ChangeFeed`: SSE parsing, the last event
id, resets, counts, deadline, reconnect policy). :class:`~cdp.client.CdpClient`
and :class:`~cdp.client.AsyncCdpClient` only send, read and sleep.
"""

from __future__ import annotations

import inspect
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from cdp.api.models import (
    ChangeOut,
    EraseReceipt,
    ExportOut,
    FunnelOut,
    MomentsOut,
    ProfileResponse,
    Readiness,
    StagePage,
)
from cdp.client.errors import CdpApiError, ConnectionFailedError, error_from_response

ModelT = TypeVar("ModelT", bound=BaseModel)
P = ParamSpec("P")
SelfT = TypeVar("SelfT")
R = TypeVar("R")

DEFAULT_BASE_URL = "http://127.0.0.1:18080"
"""Where ``cdp api`` listens by default."""

CHANGES_PATH = "/v1/changes"
"""Path of the server-sent change feed."""

FEED_READ_TIMEOUT_S = 60.0
"""Read timeout of the change feed (the server sends a keepalive every 15 s)."""

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Statuses that are retried (never other 4xx: repeating a bad request does not help)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for connect errors, 5xx and 429.

    Attempt ``n`` (from 1) waits ``min(max_delay, base_delay * 2**(n-1))`` times a
    random factor in ``[0.5, 1]`` before the next try; a ``Retry-After`` header
    (seconds) is honoured up to ``max_delay``. ``attempts`` counts all tries.
    """

    attempts: int = 4
    base_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        if retry_after is not None:
            try:
                return min(self.max_delay, max(0.0, float(retry_after or 0)))
            except ValueError:
                pass
        backoff = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return float(backoff * random.uniform(0.5, 1.0))


NO_RETRY = RetryPolicy(attempts=1)
"""A policy that never retries."""


def quote_segment(segment: str) -> str:
    """A path segment, percent-encoded (ids must not add path or query parts)."""
    return quote(segment, safe="")


def should_retry(response: httpx.Response) -> bool:
    """True for a retryable status."""
    return response.status_code in RETRY_STATUSES


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The headers that authenticate every request (none without a key)."""
    return {"X-API-Key": api_key} if api_key else {}


def connection_failed(exc: Exception) -> ConnectionFailedError:
    """The error raised when the API could not be reached (``exc`` is the last cause)."""
    return ConnectionFailedError(
        f"{type(exc).__name__} talking to the API", code="connection_failed"
    )


def retry_delay(
    policy: RetryPolicy, attempt: int, outcome: httpx.Response | httpx.TransportError
) -> float:
    """Seconds to wait after failed try ``attempt`` (1-based) before the next one.

    ``outcome`` is the non-success response or the transport error of the try.
    Raises the client error instead when the try is not retried: a status other
    than 5xx/429, or the policy's last attempt.
    """
    last = attempt >= policy.attempts
    if isinstance(outcome, httpx.TransportError):
        if last:
            raise connection_failed(outcome) from outcome
        return policy.delay(attempt)
    if should_retry(outcome) and not last:
        return policy.delay(attempt, outcome.headers.get("retry-after"))
    raise error_from_response(outcome)


def fields_param(fields: Iterable[str] | str | None) -> dict[str, str]:
    """``?fields=`` from a list of paths (or a ready comma-separated string)."""
    if fields is None:
        return {}
    return {"fields": fields if isinstance(fields, str) else ",".join(fields)}


def lookup_params(given: Mapping[str, str | None]) -> dict[str, str]:
    """The identifier parameters that were given (the API wants exactly one)."""
    return {name: value for name, value in given.items() if value is not None}


@dataclass(frozen=True)
class Call(Generic[ModelT]):
    """One API call: what to send, and the model of the success body."""

    model: type[ModelT]
    path: str
    params: dict[str, Any] | None = None
    method: str = "GET"

    def parse(self, response: httpx.Response) -> ModelT:
        """The model of a success response."""
        return self.model.model_validate(response.json())


def profile_call(
    profile_id: str, fields: Iterable[str] | str | None = None
) -> Call[ProfileResponse]:
    """``GET /v1/profiles/{id}``."""
    return Call(ProfileResponse, f"/v1/profiles/{quote_segment(profile_id)}", fields_param(fields))


def lookup_call(
    *,
    email: str | None = None,
    phone: str | None = None,
    customer_id: str | None = None,
    crm_contact_id: str | None = None,
    anonymous_id: str | None = None,
    fields: Iterable[str] | str | None = None,
) -> Call[ProfileResponse]:
    """``GET /v1/profiles?{identifier}=`` (the parameters of ``lookup``)."""
    params = lookup_params(
        {
            "email": email,
            "phone": phone,
            "customer_id": customer_id,
            "crm_contact_id": crm_contact_id,
            "anonymous_id": anonymous_id,
        }
    )
    return Call(ProfileResponse, "/v1/profiles", {**params, **fields_param(fields)})


def stage_call(stage: str, limit: int, cursor: str | None) -> Call[StagePage]:
    """``GET /v1/stages/{stage}/profiles``: one page."""
    params: dict[str, Any] = {"limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    return Call(StagePage, f"/v1/stages/{quote_segment(stage)}/profiles", params)


def funnel_call(region: str | None = None, channel: str | None = None) -> Call[FunnelOut]:
    """``GET /v1/funnel`` overall, or of one region or one channel."""
    params = {k: v for k, v in {"region": region, "channel": channel}.items() if v is not None}
    return Call(FunnelOut, "/v1/funnel", params)


MOMENTS_CALL = Call(MomentsOut, "/v1/moments")
"""``GET /v1/moments``."""

READY_CALL = Call(Readiness, "/readyz")
"""``GET /readyz``."""


def export_call(profile_id: str) -> Call[ExportOut]:
    """``GET /v1/profiles/{id}/export`` (admin)."""
    return Call(ExportOut, f"/v1/profiles/{quote_segment(profile_id)}/export")


def erase_call(profile_id: str) -> Call[EraseReceipt]:
    """``DELETE /v1/profiles/{id}`` (admin)."""
    return Call(EraseReceipt, f"/v1/profiles/{quote_segment(profile_id)}", method="DELETE")


def params_of(
    spec: Callable[P, object],
) -> Callable[[Callable[Concatenate[SelfT, ...], R]], Callable[Concatenate[SelfT, P], R]]:
    """Give a method the parameters of ``spec`` (after ``self``), for type checkers and
    :func:`inspect.signature`; the method passes them on with ``*args, **kwargs``.

    The sync and the async client declare a shared parameter list once this way;
    the method keeps its own return type, and ``spec``'s docstring if it has none.
    """

    def decorate(
        method: Callable[Concatenate[SelfT, ...], R],
    ) -> Callable[Concatenate[SelfT, P], R]:
        own = inspect.signature(method)
        self_param = next(iter(own.parameters.values()))
        shared = inspect.signature(spec)
        method.__signature__ = shared.replace(  # type: ignore[attr-defined]
            parameters=[self_param, *shared.parameters.values()],
            return_annotation=own.return_annotation,
        )
        if method.__doc__ is None:
            method.__doc__ = spec.__doc__
        return method

    return decorate


@dataclass
class SseEvent:
    """One server-sent event."""

    event: str = "message"
    data: str = ""
    id: str | None = None


class SseParser:
    """Incremental ``text/event-stream`` parser: feed lines, get complete events."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> SseEvent | None:
        """Feed one line (without its newline); an event when a blank line completes it."""
        if not line:
            if not self._data and self._id is None:
                self._event = "message"
                return None
            event = SseEvent(self._event, "\n".join(self._data), self._id)
            self._event, self._data, self._id = "message", [], None
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None


def change_of(event: SseEvent) -> ChangeOut | None:
    """The change an SSE event carries (None for other events)."""
    if event.event != "change":
        return None
    return ChangeOut.model_validate(json.loads(event.data))


def first_id(event: SseEvent) -> str | None:
    """The oldest kept position a ``reset`` event reports."""
    try:
        data: Any = json.loads(event.data)
    except ValueError:
        return None
    value = data.get("first_id") if isinstance(data, dict) else None
    return str(value) if value is not None else None


class RetryableFeedError(Exception):
    """A retryable error response of the change feed (carries the API error)."""

    def __init__(self, error: CdpApiError) -> None:
        super().__init__(str(error))
        self.error = error


FEED_ERRORS = (httpx.TransportError, RetryableFeedError)
"""What ends a connection of the change feed and is retried (connection, 5xx, 429)."""


# The I/O-free state of one ``changes()`` iteration (position, count, deadline,
# failures); the clients open the stream, read its lines and sleep. Its docstring and
# parameters are those of ``CdpClient.changes`` and ``AsyncCdpClient.changes``.
class ChangeFeed:
    """The change feed: every profile change after ``after`` (None: from now on).

    Endless unless ``max_events`` or ``timeout`` (seconds) ends it. A dropped
    connection is reopened with backoff and resumes after the last id seen (the
    server's first event gives the start position, so nothing is missed even
    before the first change). ``on_reset(first_id)`` is called when the server
    says entries may have been trimmed since the position (resync from profiles).
    4xx errors are raised; connection errors and 5xx are retried without limit
    while the feed runs (the retry policy's attempts apply to the first connect).
    """

    def __init__(
        self,
        after: str | None = None,
        *,
        on_reset: Callable[[str | None], None] | None = None,
        max_events: int | None = None,
        timeout: float | None = None,
    ) -> None:
        self.position = after
        self.sent = 0
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.failures = 0
        self.connected_once = False
        self._on_reset = on_reset
        self._max_events = max_events
        self._parser = SseParser()

    def next_request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request | None:
        """The request of the next connection (resuming after the position); None once
        the deadline has passed."""
        params: dict[str, Any] = {}
        if self._max_events is not None:
            params["max_events"] = self._max_events - self.sent
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                return None
            params["timeout"] = round(remaining, 3)
        headers = {"Last-Event-ID": self.position} if self.position is not None else {}
        timeout = httpx.Timeout(http.timeout.connect, read=FEED_READ_TIMEOUT_S)
        return http.build_request(
            "GET", CHANGES_PATH, params=params, headers=headers, timeout=timeout
        )

    def opened(self, response: httpx.Response) -> None:
        """Check a connection's response (its body read when it is an error): raises the
        client error, or :class:`RetryableFeedError` for 5xx/429; else starts parsing."""
        if not response.is_success:
            if not should_retry(response):
                raise error_from_response(response)
            raise RetryableFeedError(error_from_response(response))
        self.connected_once = True
        self.failures = 0
        self._parser = SseParser()

    def feed(self, line: str) -> ChangeOut | None:
        """Feed one line of the stream; the change it completes, if any."""
        event = self._parser.feed(line)
        if event is None:
            return None
        if event.id is not None:
            self.position = event.id
        if event.event == "reset" and self._on_reset is not None:
            self._on_reset(first_id(event))
        change = change_of(event)
        if change is not None:
            self.sent += 1
        return change

    @property
    def done(self) -> bool:
        """True once ``max_events`` changes were delivered."""
        return self._max_events is not None and self.sent >= self._max_events

    def failed(self, exc: Exception, policy: RetryPolicy) -> float:
        """Seconds to wait after a connection failed with ``exc`` (one of
        :data:`FEED_ERRORS`); raises the client error when the first connect gives up."""
        self.failures += 1
        if not self.connected_once and self.failures >= policy.attempts:
            if isinstance(exc, RetryableFeedError):
                raise exc.error from None
            raise connection_failed(exc) from exc
        return policy.delay(min(self.failures, 10))

    def ended(self, policy: RetryPolicy) -> float | None:
        """Seconds to wait before reconnecting after the server ended the stream; None
        when the deadline has passed."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return None
        return policy.delay(1)
