"""The Segment-compatible HTTP collector as an ASGI app: :func:`create_app`.

::

    from cdp.collect.app import create_app
    from cdp.settings import get_settings

    app = create_app(get_settings())   # serve with uvicorn (``cdp collector`` does this)

``POST /v1/{identify,track,page,screen,group,alias}`` take one call,
``POST /v1/batch`` (and its alias ``/v1/import``) a batch. A request is
accepted as a whole or refused as a whole: ``200 {"success": true}`` only after
Kafka acknowledged every event of it. Checks, in order: encoding, size, write
key (header), JSON, write key (body), per-message size, mapping, delivery. See
``docs/collector.md``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from cdp.collect.auth import basic_user, body_write_key, sender_of
from cdp.collect.body import (
    MAX_BATCH_BYTES,
    MAX_CALL_BYTES,
    message_size,
    parse_object,
    read_body,
)
from cdp.collect.errors import (
    InvalidBody,
    InvalidMessages,
    KafkaUnavailable,
    PayloadTooLarge,
    install_collector_errors,
)
from cdp.collect.keys import Sender, WriteKeys, load_write_keys
from cdp.collect.segment import (
    CALL_TYPES,
    InvalidMessage,
    RejectedMessages,
    batch_items,
    map_messages,
)
from cdp.collect.sink import DeliveryFailed, EventSink, KafkaSink
from cdp.settings import Settings

log = logging.getLogger("cdp.collect")

MAX_ERRORS_SHOWN = 100
"""At most this many refused messages are listed in a 400 body (``refused`` counts all)."""

SUCCESS: dict[str, Any] = {"success": True}


def create_app(
    settings: Settings, sink: EventSink | None = None, *, keys: WriteKeys | None = None
) -> FastAPI:
    """The collector as an ASGI app.

    ``sink`` defaults to a :class:`~cdp.collect.sink.KafkaSink` on
    ``settings.kafka_bootstrap`` (closed when the app shuts down), ``keys`` to the
    file named by ``CDP_WRITE_KEY_CONFIG`` (the dev-only file when unset). Raises
    :class:`~cdp.errors.ConfigError` for a bad write-key file.
    """
    keys = keys if keys is not None else load_write_keys(settings.write_key_config)
    owns_sink = sink is None
    target: EventSink = (
        sink if sink is not None else KafkaSink(settings, settings.collector_ack_timeout)
    )
    if keys.is_dev:
        log.warning(
            "using the dev-only write-key file with a published key; "
            "set CDP_WRITE_KEY_CONFIG for anything but a local demo"
        )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_sink:
            target.close()

    app = FastAPI(
        title="CDP collector",
        version="1.0.0",
        description="Segment-compatible tracking API. See docs/collector.md.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_collector_errors(app)
    # Browser SDKs post cross-origin; the write key is what authorises, not the origin.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["POST"],
        allow_headers=["Authorization", "Content-Type", "Content-Encoding"],
    )
    collector = Collector(keys, target)
    for call in CALL_TYPES:
        app.add_api_route(
            f"/v1/{call}", collector.endpoint(call), methods=["POST"], name=call, tags=["calls"]
        )
    for path in ("/v1/batch", "/v1/import"):
        app.add_api_route(
            path, collector.endpoint(None), methods=["POST"], name=path[4:], tags=["calls"]
        )
    app.add_api_route("/healthz", _healthz, methods=["GET"], tags=["health"])
    return app


async def _healthz() -> dict[str, str]:
    """Liveness: the process serves requests."""
    return {"status": "ok"}


class Collector:
    """Handles the calls: authenticate, read, map, deliver."""

    def __init__(self, keys: WriteKeys, sink: EventSink) -> None:
        self.keys = keys
        self.sink = sink

    def endpoint(self, call: str | None) -> Callable[[Request], Awaitable[dict[str, Any]]]:
        """The handler of one call type (``None``: a batch)."""

        async def handle(request: Request) -> dict[str, Any]:
            return await self.handle(request, call)

        handle.__doc__ = f"Accept a {call or 'batch'} call (Segment tracking spec)."
        return handle

    async def handle(self, request: Request, call: str | None) -> dict[str, Any]:
        """One request, all or nothing; raises the collector's errors."""
        received_at = datetime.now(UTC)
        header = request.headers.get("authorization")
        sender = sender_of(self.keys, basic_user(header)) if header else None
        body = parse_object(await read_body(request, MAX_CALL_BYTES if call else MAX_BATCH_BYTES))
        if sender is None:
            sender = sender_of(self.keys, body_write_key(body))
        messages = self._messages(call, body)
        try:
            events = map_messages(messages, sender, received_at)
        except RejectedMessages as exc:
            raise InvalidMessages(
                f"{len(exc.errors)} of {exc.total} message(s) refused; nothing was accepted",
                details={
                    "refused": len(exc.errors),
                    "errors": [e.to_json() for e in exc.errors[:MAX_ERRORS_SHOWN]],
                },
            ) from None
        await self._deliver(events, sender)
        return SUCCESS

    @staticmethod
    def _messages(call: str | None, body: dict[str, Any]) -> list[tuple[str | None, object]]:
        if call is not None:
            return [(call, body)]
        try:
            items = batch_items(body)
        except InvalidMessage as exc:
            raise InvalidBody(exc.message, details={"field": exc.field}) from None
        for index, item in enumerate(items):
            size = message_size(item)
            if size > MAX_CALL_BYTES:
                raise PayloadTooLarge(
                    f"message {index} of the batch is larger than {MAX_CALL_BYTES} bytes",
                    code="message_too_large",
                    details={"index": index, "size_bytes": size, "limit_bytes": MAX_CALL_BYTES},
                )
        return [(None, item) for item in items]

    async def _deliver(self, events: list[Any], sender: Sender) -> None:
        try:
            await self.sink.deliver(events)
        except DeliveryFailed as exc:
            log.warning(
                "%d event(s) from key %s not acknowledged: %s (%s)",
                len(events),
                sender.key_id,
                exc.reason,
                exc.detail,
            )
            raise KafkaUnavailable(
                "Kafka did not acknowledge every event; retry the request",
                details={"retryable": True, "reason": exc.reason},
            ) from None
