"""Errors of the Python client, one class per kind of API error.

Every error response of the API has the body ``{"error": {"code", "message",
"details"}}``; :func:`error_from_response` maps it to the class of its status.
"""

from __future__ import annotations

from typing import Any

import httpx

from cdp.errors import CdpError


class CdpApiError(CdpError):
    """An API call failed; ``status`` is None when no response arrived (transport)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "error",
        details: Any = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{status or 'no response'} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.request_id = request_id


class AuthenticationError(CdpApiError):
    """401: the API key is missing or not valid."""


class PermissionDeniedError(CdpApiError):
    """403: a field outside the department's view, or an admin-only operation."""


class NotFoundError(CdpApiError):
    """404: no such profile or identifier."""


class InvalidRequestError(CdpApiError):
    """422 (or another 4xx): bad parameters; ``details`` says which."""


class RateLimitedError(CdpApiError):
    """429: too many requests (retried with backoff before this is raised)."""


class ServerError(CdpApiError):
    """5xx: the API or a dependency failed (retried with backoff before this is raised)."""


class ConnectionFailedError(CdpApiError):
    """The API could not be reached (retried with backoff before this is raised)."""


_BY_STATUS: dict[int, type[CdpApiError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: InvalidRequestError,
    429: RateLimitedError,
}


def error_from_response(response: httpx.Response) -> CdpApiError:
    """The client error for a non-success response (error body parsed when present)."""
    status = response.status_code
    code, message, details = "http_error", f"HTTP {status}", None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
        details = error.get("details")
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else InvalidRequestError
    return cls(
        message,
        status=status,
        code=code,
        details=details,
        request_id=response.headers.get("x-request-id"),
    )
