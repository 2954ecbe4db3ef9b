"""Python client of the CDP HTTP API: :class:`CdpClient` and :class:`AsyncCdpClient`.

::

    from cdp.client import CdpClient, NotFoundError

    with CdpClient("http://127.0.0.1:18080", api_key="cdp-dev-service-key") as cdp:
        try:
            profile = cdp.lookup(email="Anna@Example.com")   # normalised by the server
        except NotFoundError:
            ...
        print(profile.profile_id, profile.computed.open_tickets if profile.computed else None)

Profiles come back as :class:`~cdp.api.models.Profile`: the profile document's
structure with every field optional (views leave fields out) and unknown fields
kept. Requests retry with backoff on connection errors, 5xx and 429; errors are
the classes of :mod:`cdp.client.errors`. ``changes()`` iterates the server-sent
change feed and resumes after a dropped connection. See ``docs/api.md``.
"""

from __future__ import annotations

from cdp.api.models import (
    ChangeOut,
    EraseReceipt,
    ExportOut,
    FunnelOut,
    FunnelSegmentOut,
    Journey,
    MomentCountOut,
    MomentsOut,
    Profile,
    ProfileResponse,
    Readiness,
    StageMemberOut,
    StageMetricsOut,
    StagePage,
)
from cdp.client._common import DEFAULT_BASE_URL, NO_RETRY, RetryPolicy
from cdp.client.async_ import AsyncCdpClient
from cdp.client.errors import (
    AuthenticationError,
    CdpApiError,
    ConnectionFailedError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
)
from cdp.client.sync import CdpClient

__all__ = [
    "DEFAULT_BASE_URL",
    "NO_RETRY",
    "AsyncCdpClient",
    "AuthenticationError",
    "CdpApiError",
    "CdpClient",
    "ChangeOut",
    "ConnectionFailedError",
    "EraseReceipt",
    "ExportOut",
    "FunnelOut",
    "FunnelSegmentOut",
    "InvalidRequestError",
    "Journey",
    "MomentCountOut",
    "MomentsOut",
    "NotFoundError",
    "PermissionDeniedError",
    "Profile",
    "ProfileResponse",
    "RateLimitedError",
    "Readiness",
    "RetryPolicy",
    "ServerError",
    "StageMemberOut",
    "StageMetricsOut",
    "StagePage",
]
