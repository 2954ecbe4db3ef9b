"""One error model for every response that is not a success, and the handlers that make it.

Every 4xx/5xx body is ``{"error": {"code": ..., "message": ..., "details": ...}}``
(:class:`cdp.api.models.ErrorBody`). Messages and details never carry PII: they
name parameters and fields, not the values a caller sent. Nothing the app raises
turns into a bare 500 with a stack trace: :class:`CatchAllMiddleware` answers
``internal_error`` and logs the exception's type and frames (file, line, function: not its message
nor source lines, which may quote data).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cdp.api.models import ErrorBody
from cdp.serve.store import AliasCycleError, LayoutMismatchError, ReadModelError

log = logging.getLogger("cdp.api")


class ApiError(Exception):
    """An error the API answers on purpose, with its status, code, message and details."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def body(self) -> dict[str, Any]:
        """The JSON body of this error."""
        return error_body(self.code, self.message, self.details)


class Unauthorized(ApiError):
    """401: no API key, or one that is not configured."""

    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    """403: the department may not see a field or do an operation."""

    status = 403
    code = "forbidden"


class NotFound(ApiError):
    """404: no such profile, identifier or resource."""

    status = 404
    code = "not_found"


class InvalidParameters(ApiError):
    """422: parameters that are missing, malformed or contradict each other."""

    status = 422
    code = "invalid_parameters"


class Unavailable(ApiError):
    """503: a dependency (Redis, Kafka) cannot be reached or refuses; retry later."""

    status = 503
    code = "unavailable"


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or unknown API key (`unauthorized`)."},
    403: {"model": ErrorBody, "description": "Outside the department's view or not admin."},
    404: {"model": ErrorBody, "description": "Unknown profile, identifier or resource."},
    422: {"model": ErrorBody, "description": "Invalid parameters (`invalid_parameters`)."},
    500: {"model": ErrorBody, "description": "Unexpected error (`internal_error`), no details."},
    503: {"model": ErrorBody, "description": "Redis or Kafka unavailable (`unavailable`)."},
}
"""The error responses every route documents in the OpenAPI document."""


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """``{"error": {"code", "message", "details"}}``."""
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSON response carrying the error model."""
    return JSONResponse(
        error_body(code, message, details), status_code=status, headers=dict(headers or {})
    )


def validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic/FastAPI validation errors without the input values (they may be PII)."""
    out = []
    for err in errors:
        if not isinstance(err, Mapping):
            continue
        out.append(
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_parameters",
    429: "too_many_requests",
}


def route_label(scope: Scope) -> str:
    """The matched route template (``/v1/profiles/{profile_id}``), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.code, exc.message, exc.details, headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(
        422,
        "invalid_parameters",
        "the request parameters are invalid",
        validation_details(exc.errors()),
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "internal_error" if exc.status_code >= 500 else "error")
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    return error_response(exc.status_code, code, message, None, exc.headers)


async def _redis_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("redis unavailable on %s: %s", route_label(request.scope), type(exc).__name__)
    return error_response(503, "unavailable", "the read model (Redis) is unavailable")


async def _layout_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("layout mismatch on %s", route_label(request.scope))
    return error_response(
        503, "layout_mismatch", "the Redis namespace holds another layout version"
    )


async def _read_model_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("read model error on %s: %s", route_label(request.scope), type(exc).__name__)
    code = "alias_cycle" if isinstance(exc, AliasCycleError) else "read_model_error"
    return error_response(500, code, "the stored data for this request is inconsistent")


def install_error_handlers(app: FastAPI) -> None:
    """Map every error the app can raise to the error model (see the module docstring)."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(redis.ConnectionError, _redis_error)
    app.add_exception_handler(redis.TimeoutError, _redis_error)
    app.add_exception_handler(LayoutMismatchError, _layout_error)
    app.add_exception_handler(ReadModelError, _read_model_error)
    app.add_middleware(CatchAllMiddleware)


class CatchAllMiddleware:
    """Turn any exception that escaped the handlers into a JSON 500 (no trace to the client).

    Logs the exception type, the route template and the stack frames (file, line,
    function), but not the exception's message (it may quote request data). If the response had
    already started (a stream), the connection is closed instead.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            frames = "\n".join(
                f"  {frame.filename}:{frame.lineno} in {frame.name}"
                for frame in traceback.extract_tb(exc.__traceback__)
            )
            log.error("unhandled %s on %s\n%s", type(exc).__name__, route_label(scope), frames)
            if started:
                return
            response = error_response(500, "internal_error", "internal error")
            await response(scope, receive, send)
