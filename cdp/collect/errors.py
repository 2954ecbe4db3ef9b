"""The collector's 4xx/5xx errors, in the API's error model.

Every error body is ``{"error": {"code", "message", "details"}}`` (as in
:mod:`cdp.api.errors`, whose handlers the collector installs). Codes are listed
in ``docs/collector.md``; messages and details name fields and limits, never the
values a client sent.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cdp.api.errors import ApiError, error_response, install_error_handlers

RETRY_AFTER_S = 5
"""``Retry-After`` of a 503: when a client should try again."""


class InvalidJson(ApiError):
    """400 ``invalid_json``: the body is not JSON (or not UTF-8)."""

    code = "invalid_json"


class InvalidBody(ApiError):
    """400 ``invalid_body``: JSON, but not an object (or a batch without a list)."""

    code = "invalid_body"


class InvalidMessages(ApiError):
    """400 ``invalid_message``: messages break the tracking spec; details list each one."""

    code = "invalid_message"


class Unauthorized(ApiError):
    """401 ``missing_write_key`` / ``invalid_write_key``."""

    status = 401
    code = "invalid_write_key"


class PayloadTooLarge(ApiError):
    """413 ``payload_too_large`` (the request body) or ``message_too_large`` (a batch item)."""

    status = 413
    code = "payload_too_large"


class UnsupportedEncoding(ApiError):
    """415 ``unsupported_encoding``: a ``Content-Encoding`` other than gzip or identity."""

    status = 415
    code = "unsupported_encoding"


class KafkaUnavailable(ApiError):
    """503 ``kafka_unavailable``: Kafka did not acknowledge every event; retry the request."""

    status = 503
    code = "kafka_unavailable"


async def _collector_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers: dict[str, str] = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="cdp collector"'
    if exc.status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    return error_response(exc.status, exc.code, exc.message, exc.details, headers)


def install_collector_errors(app: FastAPI) -> None:
    """The API's handlers (404/405/500 in the error model), with the collector's 401/503
    headers (``WWW-Authenticate: Basic``, ``Retry-After``)."""
    install_error_handlers(app)
    app.add_exception_handler(ApiError, _collector_error)
